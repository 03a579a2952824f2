/**
 * The Kubernetes driver (scripts/scale/drivers/kubernetes.ts) with the real
 * @kubernetes/client-node against a fake API server on loopback that checks PATCH content types
 * the way the real one does, and simulates KEDA's reaction to its pause annotations.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { scalingSchema } from '../../worker/config/scaling';
import { kubernetesDriver, KEDA_PAUSED, KEDA_PAUSED_REPLICAS } from '../../scripts/scale/drivers/kubernetes';
import type { ScaleTarget } from '../../scripts/scale/drivers/types';
import { closedUrl } from '../setup/scale/http';
import { startFakeKubernetes, type FakeKubernetes } from '../setup/scale/kubernetes-api';
import { loopbackKubeConfig } from '../setup/scale/fixture';

let k8s: FakeKubernetes;
beforeAll(async () => {
  k8s = await startFakeKubernetes();
});
afterAll(() => k8s.close());
beforeEach(() => {
  k8s.deployments.clear();
  k8s.scaledObjects = [];
  k8s.calls = [];
  k8s.keda = true;
  k8s.readyLags = false;
});

const target = (deployment: string, namespace = 'inference'): ScaleTarget => ({
  id: deployment,
  scaling: scalingSchema.parse({ driver: 'kubernetes', max_replicas: 4, kubernetes: { namespace, deployment } }),
  status: undefined,
});

const driver = (token?: string) => kubernetesDriver({ kubeConfig: () => loopbackKubeConfig(k8s.url, token ?? k8s.token) });

describe('kubernetes driver', () => {
  it('reads spec and ready replicas and scales with a merge patch on the scale subresource', async () => {
    k8s.deployments.set('inference/vllm-8b', { replicas: 2, readyReplicas: 1 });
    const d = driver();
    expect(await d.current(target('vllm-8b'))).toEqual({ replicas: 2, ready: 1 });

    const r = await d.scale(target('vllm-8b'), 0);
    expect(r.changed).toBe(true);
    expect(k8s.deployments.get('inference/vllm-8b')!.replicas).toBe(0);
    expect(k8s.patches()).toEqual([{ method: 'PATCH', path: '/apis/apps/v1/namespaces/inference/deployments/vllm-8b/scale', contentType: 'application/merge-patch+json' }]);
  });

  it('writes nothing when the Deployment is already at the target', async () => {
    k8s.deployments.set('inference/vllm-8b', { replicas: 0, readyReplicas: 0 });
    const r = await driver().scale(target('vllm-8b'), 0);
    expect(r.changed).toBe(false);
    expect(k8s.patches()).toHaveLength(0);
  });

  it('the fake rejects what the real API server rejects (so the content-type check above means something)', async () => {
    k8s.deployments.set('inference/vllm-8b', { replicas: 1, readyReplicas: 1 });
    const path = `${k8s.url}/apis/apps/v1/namespaces/inference/deployments/vllm-8b/scale`;
    const headers = { authorization: `Bearer ${k8s.token}` };
    const body = JSON.stringify({ spec: { replicas: 0 } });
    const plain = await fetch(path, { method: 'PATCH', headers: { ...headers, 'content-type': 'application/json' }, body });
    expect(plain.status).toBe(415);
    expect(await plain.json()).toMatchObject({ kind: 'Status', reason: 'UnsupportedMediaType' });
    // The client's default for patch calls, json-patch, with an object body.
    const jsonPatch = await fetch(path, { method: 'PATCH', headers: { ...headers, 'content-type': 'application/json-patch+json' }, body });
    expect(jsonPatch.status).toBe(400);
    expect(k8s.deployments.get('inference/vllm-8b')!.replicas).toBe(1);
  });

  it('gives a clear error for a missing Deployment, bad credentials and an unreachable server', async () => {
    await expect(driver().current(target('nope'))).rejects.toThrow(/kubernetes: get deployment inference\/nope: HTTP 404: deployments.apps "nope" not found \(not found/);
    k8s.deployments.set('inference/vllm-8b', { replicas: 1, readyReplicas: 1 });
    await expect(driver('wrong-token').current(target('vllm-8b'))).rejects.toThrow(/HTTP 401.*credentials rejected/);
    const down = await closedUrl();
    const closed = kubernetesDriver({ kubeConfig: () => loopbackKubeConfig(down, 't') });
    await expect(closed.current(target('vllm-8b'))).rejects.toThrow(`cannot reach the API server at ${down}: `);
  });

  it('works without KEDA installed (the keda.sh API answers 404)', async () => {
    k8s.keda = false;
    k8s.deployments.set('inference/vllm-8b', { replicas: 1, readyReplicas: 1 });
    expect(await driver().current(target('vllm-8b'))).toEqual({ replicas: 1, ready: 1 });
    await driver().scale(target('vllm-8b'), 0);
    expect(k8s.deployments.get('inference/vllm-8b')!.replicas).toBe(0);
  });

  describe('with a KEDA ScaledObject on the Deployment', () => {
    beforeEach(() => {
      k8s.deployments.set('inference/vllm-8b', { replicas: 3, readyReplicas: 3 });
      k8s.scaledObjects.push({ name: 'vllm-8b-so', namespace: 'inference', target: 'vllm-8b', annotations: {} });
      // Another namespace's object for a Deployment of the same name must not match.
      k8s.scaledObjects.push({ name: 'other', namespace: 'staging', target: 'vllm-8b', annotations: {} });
    });

    it('parks through paused-replicas "0" on the ScaledObject, never through the scale subresource', async () => {
      const d = driver();
      expect(await d.current(target('vllm-8b'))).toEqual({ replicas: 3, ready: 3, managedBy: 'keda', note: 'keda vllm-8b-so: autoscaling' });
      const r = await d.scale(target('vllm-8b'), 0);
      expect(r).toMatchObject({ changed: true, detail: `keda vllm-8b-so: ${KEDA_PAUSED_REPLICAS}=0` });
      expect(k8s.patches()).toEqual([{ method: 'PATCH', path: '/apis/keda.sh/v1alpha1/namespaces/inference/scaledobjects/vllm-8b-so', contentType: 'application/merge-patch+json' }]);
      expect(k8s.scaledObjects[0]!.annotations).toEqual({ [KEDA_PAUSED_REPLICAS]: '0' });
      expect(k8s.scaledObjects[1]!.annotations).toEqual({});
      expect(await d.current(target('vllm-8b'))).toMatchObject({ replicas: 0, note: 'keda vllm-8b-so: paused at 0' });
      // Idempotent.
      expect((await d.scale(target('vllm-8b'), 0)).changed).toBe(false);
      expect(k8s.patches()).toHaveLength(1);
    });

    it('wakes by removing the pause annotations when KEDA keeps enough replicas itself', async () => {
      const so = k8s.scaledObjects[0]!;
      so.minReplicaCount = 1;
      so.annotations = { [KEDA_PAUSED_REPLICAS]: '0', [KEDA_PAUSED]: 'true', 'team': 'ml' };
      k8s.deployments.set('inference/vllm-8b', { replicas: 0, readyReplicas: 0 });
      const r = await driver().scale(target('vllm-8b'), 1);
      expect(r.changed).toBe(true);
      expect(so.annotations).toEqual({ team: 'ml' });
      expect(k8s.deployments.get('inference/vllm-8b')!.replicas).toBe(1);
      expect(k8s.patches().filter((p) => !p.path.includes('/scaledobjects/'))).toEqual([]);
    });

    it('pins the count with paused-replicas when minReplicaCount would not serve a wake-up', async () => {
      const so = k8s.scaledObjects[0]!;
      so.annotations = { [KEDA_PAUSED_REPLICAS]: '0' };
      k8s.deployments.set('inference/vllm-8b', { replicas: 0, readyReplicas: 0 });
      await driver().scale(target('vllm-8b'), 2);
      expect(so.annotations).toEqual({ [KEDA_PAUSED_REPLICAS]: '2' });
      expect(k8s.deployments.get('inference/vllm-8b')!.replicas).toBe(2);
    });
  });
});
