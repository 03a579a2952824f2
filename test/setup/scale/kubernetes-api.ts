/**
 * A Kubernetes API server on loopback with just what the scale driver touches, answering as the
 * real one does (Status objects for errors, application/json bodies):
 *   GET   /apis/apps/v1/namespaces/{ns}/deployments/{name}
 *   GET   /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale
 *   PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale     (merge, strategic merge, JSON patch)
 *   GET   /apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects[/{name}]  (404 when KEDA is "not installed")
 *   PATCH /apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects/{name}    (merge, JSON patch: CRDs take no strategic merge)
 * A PATCH in any other content type gets 415 UnsupportedMediaType, like the real API server; a
 * JSON patch whose body is not an array gets 400. KEDA's reaction to its pause annotations is
 * simulated: paused-replicas N sets the Deployment to N; removing it lets KEDA go back to at least
 * minReplicaCount.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { json, listen, mediaType, mergePatch, type FakeServer } from './http';

export interface FakeDeployment {
  replicas: number;
  /** Replicas ready; follows `replicas` at once unless `readyLags` is set. */
  readyReplicas: number;
  annotations?: Record<string, string>;
}

export interface FakeScaledObject {
  name: string;
  namespace: string;
  target: string;
  minReplicaCount?: number;
  annotations: Record<string, string>;
}

export interface FakeKubernetes extends FakeServer {
  token: string;
  deployments: Map<string, FakeDeployment>;
  scaledObjects: FakeScaledObject[];
  /** False: the keda.sh CRD is not installed (its paths answer 404). */
  keda: boolean;
  /** True: readyReplicas stays where it is after a scale (pods still starting). */
  readyLags: boolean;
  calls: { method: string; path: string; contentType: string }[];
  patches(): { method: string; path: string; contentType: string }[];
}

const MERGE = 'application/merge-patch+json';
const STRATEGIC = 'application/strategic-merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';

export async function startFakeKubernetes(token = 'k8s-test-token'): Promise<FakeKubernetes> {
  const state = {
    token,
    deployments: new Map<string, FakeDeployment>(),
    scaledObjects: [] as FakeScaledObject[],
    keda: true,
    readyLags: false,
    calls: [] as { method: string; path: string; contentType: string }[],
    patches() {
      return state.calls.filter((c) => c.method === 'PATCH');
    },
  };

  const setReplicas = (d: FakeDeployment, n: number) => {
    d.replicas = n;
    if (!state.readyLags) d.readyReplicas = n;
  };

  const handler = (req: IncomingMessage, body: string, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    state.calls.push({ method, path: url.pathname, contentType: mediaType(req) });
    if (req.headers.authorization !== `Bearer ${state.token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');

    const dep = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)(\/scale)?$/.exec(url.pathname);
    if (dep) {
      const [, ns, name, scale] = dep as unknown as [string, string, string, string | undefined];
      const d = state.deployments.get(`${ns}/${name}`);
      if (!d) return status(res, 404, 'NotFound', `deployments.apps "${name}" not found`);
      if (method === 'GET' && !scale) return json(res, 200, deploymentObject(ns, name, d));
      if (method === 'GET' && scale) return json(res, 200, scaleObject(ns, name, d));
      if (method === 'PATCH' && scale) {
        const patched = applyPatch(req, res, body, scaleObject(ns, name, d), [MERGE, STRATEGIC, JSON_PATCH]);
        if (patched === undefined) return;
        const replicas = (patched as { spec?: { replicas?: unknown } }).spec?.replicas;
        if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) return status(res, 422, 'Invalid', `Scale.autoscaling "${name}" is invalid: spec.replicas: Invalid value`);
        setReplicas(d, replicas);
        return json(res, 200, scaleObject(ns, name, d));
      }
      return status(res, 405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
    }

    const keda = /^\/apis\/keda\.sh\/v1alpha1\/namespaces\/([^/]+)\/scaledobjects(?:\/([^/]+))?$/.exec(url.pathname);
    if (keda) {
      if (!state.keda) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
      const [, ns, name] = keda as unknown as [string, string, string | undefined];
      if (!name && method === 'GET') {
        return json(res, 200, { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObjectList', metadata: { resourceVersion: '1' }, items: state.scaledObjects.filter((s) => s.namespace === ns).map(scaledObjectBody) });
      }
      const so = state.scaledObjects.find((s) => s.namespace === ns && s.name === name);
      if (!so) return status(res, 404, 'NotFound', `scaledobjects.keda.sh "${name}" not found`);
      if (method === 'GET') return json(res, 200, scaledObjectBody(so));
      if (method === 'PATCH') {
        const patched = applyPatch(req, res, body, scaledObjectBody(so), [MERGE, JSON_PATCH]);
        if (patched === undefined) return;
        so.annotations = ((patched as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations ?? {}) as Record<string, string>;
        kedaReacts(so);
        return json(res, 200, scaledObjectBody(so));
      }
    }
    return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  };

  /** What the KEDA operator does with its pause annotations. */
  const kedaReacts = (so: FakeScaledObject) => {
    const d = state.deployments.get(`${so.namespace}/${so.target}`);
    if (!d) return;
    const pinned = so.annotations['autoscaling.keda.sh/paused-replicas'];
    if (pinned !== undefined) setReplicas(d, Number(pinned));
    else if (so.annotations['autoscaling.keda.sh/paused'] !== 'true') setReplicas(d, Math.max(so.minReplicaCount ?? 0, d.replicas));
  };

  const server = await listen(handler);
  return Object.assign(state, server);
}

function applyPatch(req: IncomingMessage, res: ServerResponse, body: string, current: object, accepted: string[]): unknown {
  const type = mediaType(req);
  if (!accepted.includes(type)) {
    status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`);
    return undefined;
  }
  let patch: unknown;
  try {
    patch = JSON.parse(body);
  } catch {
    status(res, 400, 'BadRequest', 'error decoding patch: invalid JSON');
    return undefined;
  }
  if (type === JSON_PATCH) {
    if (!Array.isArray(patch)) {
      status(res, 400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
      return undefined;
    }
    // Enough of RFC 6902 for these resources: replace/add at a path of object keys.
    const doc = structuredClone(current) as Record<string, unknown>;
    for (const op of patch as { op: string; path: string; value?: unknown }[]) {
      const keys = op.path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
      let at: Record<string, unknown> = doc;
      for (const k of keys.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
      const last = keys[keys.length - 1]!;
      if (op.op === 'remove') delete at[last];
      else at[last] = op.value;
    }
    return doc;
  }
  return mergePatch(current, patch);
}

function deploymentObject(ns: string, name: string, d: FakeDeployment) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, annotations: d.annotations ?? {} },
    spec: { replicas: d.replicas, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'vllm', image: 'vllm/vllm-openai' }] } } },
    status: { replicas: d.replicas, readyReplicas: d.readyReplicas || undefined, availableReplicas: d.readyReplicas || undefined },
  };
}

function scaleObject(ns: string, name: string, d: FakeDeployment) {
  return { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name, namespace: ns }, spec: { replicas: d.replicas }, status: { replicas: d.replicas, selector: `app=${name}` } };
}

function scaledObjectBody(so: FakeScaledObject) {
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: so.name, namespace: so.namespace, annotations: so.annotations },
    spec: { scaleTargetRef: { name: so.target }, ...(so.minReplicaCount !== undefined ? { minReplicaCount: so.minReplicaCount } : {}), triggers: [{ type: 'prometheus', metadata: {} }] },
  };
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
