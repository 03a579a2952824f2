/**
 * The Replicate driver with the real `replicate` client against a fake of Replicate's
 * deployments API on loopback, and the Modal driver with a recording stand-in for the `modal`
 * SDK's client (Modal's control plane is gRPC, not a web API a test server can follow here).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ModalClientLike, ModalFunctionHandle } from '../../scripts/scale/drivers/modal';
import { MODAL_MAX_SCALEDOWN_MS, modalDriver } from '../../scripts/scale/drivers/modal';
import { replicateDriver, sdkReplicateClient } from '../../scripts/scale/drivers/replicate';
import type { ScaleTarget } from '../../scripts/scale/drivers/types';
import { scalingSchema } from '../../worker/config/scaling';
import { backendStatus } from '../setup/scale/router';
import { startFakeReplicate, type FakeReplicate } from '../setup/scale/replicate-deployments';

describe('replicate driver', () => {
  let api: FakeReplicate;
  beforeAll(async () => {
    api = await startFakeReplicate();
  });
  afterAll(() => api.close());
  beforeEach(() => {
    api.deployments.clear();
    api.calls = [];
  });

  const target = (deployment: string, over: Record<string, unknown> = {}): ScaleTarget => ({
    id: 'rep',
    scaling: scalingSchema.parse({ driver: 'replicate', max_replicas: 3, replicate: { deployment }, ...over }),
    status: undefined,
  });
  const driver = (auth = api.token) => replicateDriver(() => sdkReplicateClient({ auth, baseUrl: `${api.url}/v1` }));

  it('reads min_instances as the warm floor and sets it with max_instances in one PATCH', async () => {
    api.deployments.set('acme/llama-8b', { min_instances: 1, max_instances: 3, release: 4 });
    const d = driver();
    expect(await d.current(target('acme/llama-8b'))).toEqual({ replicas: 1, ready: null, note: 'instances 1..3' });
    const r = await d.scale(target('acme/llama-8b'), 0);
    expect(r).toEqual({ changed: true, detail: 'PATCH deployments/acme/llama-8b min_instances=0 max_instances=3' });
    const patch = api.calls.find((c) => c.method === 'PATCH');
    expect(patch).toEqual({ method: 'PATCH', path: '/v1/deployments/acme/llama-8b', body: { min_instances: 0, max_instances: 3 } });
    expect(api.deployments.get('acme/llama-8b')).toEqual({ min_instances: 0, max_instances: 3, release: 5 });
  });

  it('makes no new release when the bounds are already right', async () => {
    api.deployments.set('acme/llama-8b', { min_instances: 0, max_instances: 3, release: 4 });
    expect((await driver().scale(target('acme/llama-8b'), 0)).changed).toBe(false);
    expect(api.calls.filter((c) => c.method === 'PATCH')).toHaveLength(0);
  });

  it('turns API errors into one clear line', async () => {
    await expect(driver().current(target('acme/missing'))).rejects.toThrow('replicate: get deployment acme/missing: HTTP 404: Not found. (check [scaling.replicate].deployment)');
    api.deployments.set('acme/llama-8b', { min_instances: 0, max_instances: 3, release: 1 });
    await expect(driver('bad').current(target('acme/llama-8b'))).rejects.toThrow(/HTTP 401: You did not pass a valid authentication token \(check REPLICATE_API_TOKEN\)/);
    expect(() => sdkReplicateClient({ auth: '' })).toThrow(/REPLICATE_API_TOKEN is not set/);
  });
});

describe('modal driver', () => {
  /** Records every SDK call; stats and failures are set per test. */
  function recordingClient(opts: { running?: number; failUpdate?: Error; missing?: boolean } = {}) {
    const calls: unknown[][] = [];
    const handle: ModalFunctionHandle = {
      async updateAutoscaler(params) {
        calls.push(['updateAutoscaler', params]);
        if (opts.failUpdate) throw opts.failUpdate;
        return params;
      },
      async getCurrentStats() {
        calls.push(['getCurrentStats']);
        return { backlog: 0, numTotalRunners: opts.running ?? 0 };
      },
    };
    const client: ModalClientLike = {
      functions: {
        async fromName(app, name, params) {
          calls.push(['fromName', app, name, params]);
          if (opts.missing) throw new Error(`Function '${app}/${name}' not found`);
          return handle;
        },
      },
    };
    return { client, calls };
  }

  const target = (over: Record<string, unknown> = {}, replicas: number | null = null): ScaleTarget => ({
    id: 'modal-8b',
    scaling: scalingSchema.parse({ driver: 'modal', max_replicas: 2, modal: { app: 'inference', function: 'serve', environment: 'prod' }, ...over }),
    status: backendStatus('modal-8b', { replicas }),
  });

  it('sets the warm floor with updateAutoscaler, with the idle window as Modal scaledown window', async () => {
    const { client, calls } = recordingClient();
    const d = modalDriver(async () => client);
    const r = await d.scale(target({ idle_minutes: 10 }), 0);
    expect(r.changed).toBe(true);
    expect(calls).toEqual([
      ['fromName', 'inference', 'serve', { environment: 'prod' }],
      ['updateAutoscaler', { minContainers: 0, maxContainers: 2, scaledownWindowMs: 600_000 }],
    ]);
  });

  it('caps the scaledown window at Modal’s 20 minutes and never sets max below min', async () => {
    const { client, calls } = recordingClient();
    await modalDriver(async () => client).scale(target({ idle_minutes: 60, max_replicas: 1 }), 1);
    expect(calls[1]).toEqual(['updateAutoscaler', { minContainers: 1, maxContainers: 1, scaledownWindowMs: MODAL_MAX_SCALEDOWN_MS }]);
  });

  it('reports the floor the router last recorded and the running containers from getCurrentStats', async () => {
    const { client } = recordingClient({ running: 2 });
    const d = modalDriver(async () => client);
    expect(await d.current(target({}, 1))).toEqual({ replicas: 1, ready: 2, note: '2 running' });
    expect(await d.current(target({}, null))).toMatchObject({ replicas: null, ready: 2, note: '2 running; floor never set' });
  });

  it('names the function and the step in SDK errors', async () => {
    const missing = recordingClient({ missing: true });
    await expect(modalDriver(async () => missing.client).current(target())).rejects.toThrow("modal: look up function inference/serve (environment prod): Function 'inference/serve' not found");
    const failing = recordingClient({ failUpdate: new Error('PERMISSION_DENIED: token lacks scope') });
    await expect(modalDriver(async () => failing.client).scale(target(), 1)).rejects.toThrow('modal: update autoscaler of inference/serve (environment prod): PERMISSION_DENIED: token lacks scope');
    const noCreds = modalDriver(async () => {
      throw new Error('Profile is missing credentials.');
    });
    await expect(noCreds.current(target())).rejects.toThrow(/modal: look up function inference\/serve .*: Profile is missing credentials/);
  });

  it('the recording client has the shape of the real SDK (ModalClient.functions.fromName → Function_)', async () => {
    const modal = await import('modal');
    const proto = modal.Function_.prototype as unknown as Record<string, unknown>;
    expect(typeof proto.updateAutoscaler).toBe('function');
    expect(typeof proto.getCurrentStats).toBe('function');
    expect(typeof modal.ModalClient).toBe('function');
  });
});
