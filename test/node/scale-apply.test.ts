/**
 * apply and watch (scripts/scale/run.ts) in-process against a fake router, a fake Kubernetes API
 * server and a fake Replicate API on loopback, plus a recording Modal client: decisions, scale
 * calls, events, idempotence, isolation of a failing backend, the re-check before parking.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { scaleConfigFromToml } from '../../scripts/scale/config';
import { makeDrivers } from '../../scripts/scale/drivers';
import type { ModalClientLike } from '../../scripts/scale/drivers/modal';
import { sdkReplicateClient } from '../../scripts/scale/drivers/replicate';
import { routerClient, type RouterClient } from '../../scripts/scale/router-client';
import { applyRound, needsFollowUp, planRound, watch, type Round, type Row, type ScaleContext } from '../../scripts/scale/run';
import { decisionTable } from '../../scripts/scale/table';
import { startFakeKubernetes, type FakeKubernetes } from '../setup/scale/kubernetes-api';
import { startFakeReplicate, type FakeReplicate } from '../setup/scale/replicate-deployments';
import { backendStatus, startFakeRouter, type FakeRouter } from '../setup/scale/router';
import { initialStatuses, loopbackKubeConfig, SCALE_TOML, seedKubernetes } from '../setup/scale/fixture';
import { closedUrl, json, listen } from '../setup/scale/http';

const TOKEN = 'admin-test-token';
const NOW = new Date('2026-06-10T12:00:00Z');
const ago = (m: number) => new Date(NOW.getTime() - m * 60_000).toISOString();

let router: FakeRouter;
let k8s: FakeKubernetes;
let replicate: FakeReplicate;
let modalCalls: unknown[][];

beforeAll(async () => {
  [router, k8s, replicate] = await Promise.all([startFakeRouter(TOKEN, []), startFakeKubernetes(), startFakeReplicate()]);
});
afterAll(async () => {
  await Promise.all([router.close(), k8s.close(), replicate.close()]);
});
beforeEach(() => {
  router.backends = new Map(initialStatuses(NOW).map((b) => [b.id, b]));
  router.events = [];
  router.failEventsFor.clear();
  router.now = NOW;
  seedKubernetes(k8s);
  k8s.readyLags = false;
  replicate.deployments.clear();
  replicate.deployments.set('acme/llama-8b', { min_instances: 1, max_instances: 2, release: 1 });
  replicate.calls = [];
  modalCalls = [];
});

function context(over: Partial<ScaleContext> = {}): ScaleContext {
  const modal: ModalClientLike = {
    functions: {
      fromName: async (app, name) => ({
        updateAutoscaler: async (p) => void modalCalls.push(['updateAutoscaler', app, name, p]),
        getCurrentStats: async () => ({ backlog: 0, numTotalRunners: 1 }),
      }),
    },
  };
  return {
    router: routerClient(router.url, TOKEN),
    backends: scaleConfigFromToml(SCALE_TOML, 'test.toml'),
    drivers: makeDrivers({
      kubernetes: { kubeConfig: () => loopbackKubeConfig(k8s.url, k8s.token) },
      modal: async () => modal,
      replicate: () => sdkReplicateClient({ auth: replicate.token, baseUrl: `${replicate.url}/v1` }),
    }),
    ...over,
  };
}

const row = (round: Round, id: string) => round.rows.find((r) => r.id === id)!;
const eventsOf = (id: string) => router.events.filter((e) => e.id === id).map((e) => e.event);

describe('plan', () => {
  it('decides for every backend, in config order then router-only ones, and changes nothing', async () => {
    const round = await planRound(context());
    expect(round.rows.map((r) => [r.id, r.decision?.action ?? 'error'])).toEqual([
      ['k8s-idle', 'scale_to_zero'],
      ['k8s-busy', 'keep'],
      ['k8s-wake', 'scale_up'],
      ['k8s-missing', 'error'],
      ['replicate-8b', 'scale_to_zero'],
      ['modal-8b', 'scale_to_zero'],
      ['sim-8b', 'skip'],
      ['not-configured', 'skip'],
    ]);
    expect(row(round, 'k8s-missing').error).toMatch(/deployment inference\/missing: HTTP 404/);
    expect(round.failed).toBe(true);
    expect(k8s.patches()).toHaveLength(0);
    expect(replicate.calls.filter((c) => c.method === 'PATCH')).toHaveLength(0);
    expect(modalCalls).toHaveLength(0);
    expect(router.events).toHaveLength(0);

    const table = decisionTable(round.rows, round.routerNow, false);
    expect(table.split('\n')[0]).toMatch(/^BACKEND\s+DRIVER\s+STATE\s+IN-FLIGHT\s+LAST REQUEST\s+REPLICAS\s+ACTION\s+REASON$/);
    expect(table).toMatch(/k8s-idle\s+kubernetes\s+warm\s+0\s+30m ago\s+1 → 0\s+scale_to_zero\s+idle 30m \(≥ 15m\)/);
    expect(table).toMatch(/k8s-wake\s+kubernetes\s+cold \(\+1 wake\)\s+0\s+never\s+0 → 2\s+scale_up\s+1 wake-up pending/);
  });
});

describe('apply', () => {
  it('acts on each backend independently, reports events, and a second run changes nothing', async () => {
    const first = await applyRound(context());
    // The failing backend fails alone…
    expect(first.failed).toBe(true);
    expect(first.rows.filter((r) => r.error).map((r) => r.id)).toEqual(['k8s-missing']);
    // …and the others acted.
    expect(k8s.deployments.get('inference/idle')!.replicas).toBe(0);
    expect(k8s.deployments.get('inference/busy')!.replicas).toBe(1);
    expect(k8s.deployments.get('inference/wake')!.replicas).toBe(2);
    expect(replicate.deployments.get('acme/llama-8b')).toMatchObject({ min_instances: 0, max_instances: 2 });
    expect(modalCalls).toEqual([['updateAutoscaler', 'inference', 'serve', { minContainers: 0, maxContainers: 1, scaledownWindowMs: 900_000 }]]);
    expect(eventsOf('k8s-idle')).toEqual([{ type: 'scaled_down', replicas: 0 }]);
    expect(eventsOf('k8s-wake')).toEqual([{ type: 'waking', replicas: 2 }]);
    expect(eventsOf('replicate-8b')).toEqual([{ type: 'scaled_down', replicas: 0 }]);
    expect(eventsOf('modal-8b')).toEqual([{ type: 'scaled_down', replicas: 0 }]);
    expect(eventsOf('k8s-busy')).toEqual([]);
    expect(eventsOf('sim-8b')).toEqual([]);
    const patches = k8s.patches().length;
    const replicatePatches = replicate.calls.filter((c) => c.method === 'PATCH').length;
    expect(patches).toBe(2);
    expect(replicatePatches).toBe(1);

    // Second run: the waking backend now serves (the fake's pods are ready at once), so the only
    // thing left to say is `ready`, timed on the router's clock; no scale call anywhere.
    router.now = new Date(NOW.getTime() + 45_000);
    router.events = [];
    const second = await applyRound(context());
    expect(k8s.patches()).toHaveLength(patches);
    expect(replicate.calls.filter((c) => c.method === 'PATCH')).toHaveLength(replicatePatches);
    expect(modalCalls).toHaveLength(1);
    expect(router.events).toEqual([{ id: 'k8s-wake', event: { type: 'ready', replicas: 2, cold_start_ms: 45_000 } }]);
    expect(second.rows.filter((r) => r.result)).toEqual([]);

    // Third run: nothing at all.
    router.events = [];
    await applyRound(context());
    expect(router.events).toEqual([]);
    expect(k8s.patches()).toHaveLength(patches);
  });

  it('re-reads the router before parking and keeps a backend that got a request meanwhile', async () => {
    const real = routerClient(router.url, TOKEN);
    let reads = 0;
    const racing: RouterClient = {
      url: real.url,
      report: real.report,
      async backends() {
        reads += 1;
        const list = await real.backends();
        // A request reaches k8s-idle between the plan and the scale call.
        if (reads === 2) return { ...list, data: list.data.map((s) => (s.id === 'k8s-idle' ? { ...s, in_flight: 1 } : s)) };
        return list;
      },
    };
    const round = await applyRound(context({ router: racing }));
    expect(reads).toBe(2);
    expect(row(round, 'k8s-idle').decision).toMatchObject({ action: 'keep', reason: '1 request in flight' });
    expect(k8s.deployments.get('inference/idle')!.replicas).toBe(1);
    expect(eventsOf('k8s-idle')).toEqual([]);
  });

  it('does not park when the re-check cannot reach the router', async () => {
    const real = routerClient(router.url, TOKEN);
    let reads = 0;
    const flaky: RouterClient = {
      url: real.url,
      report: real.report,
      async backends() {
        reads += 1;
        if (reads === 2) throw new Error('connection reset');
        return real.backends();
      },
    };
    const round = await applyRound(context({ router: flaky }));
    expect(row(round, 'k8s-idle').error).toMatch(/not scaled down: could not re-check the router \(connection reset\)/);
    expect(k8s.deployments.get('inference/idle')!.replicas).toBe(1);
    // Scale-ups do not wait for the re-check.
    expect(k8s.deployments.get('inference/wake')!.replicas).toBe(2);
  });

  it('marks a backend failed when its event cannot be reported, after scaling it', async () => {
    router.failEventsFor.add('k8s-idle');
    const round = await applyRound(context());
    expect(row(round, 'k8s-idle').error).toMatch(/scaled, but reporting scaled_down failed: router: POST \/admin\/backends\/k8s-idle\/events: HTTP 500: event store unavailable/);
    expect(k8s.deployments.get('inference/idle')!.replicas).toBe(0);
    expect(eventsOf('replicate-8b')).toEqual([{ type: 'scaled_down', replicas: 0 }]);
  });

  it('rejects a wrong admin token and a router answer that does not follow the contract', async () => {
    await expect(planRound(context({ router: routerClient(router.url, 'wrong') }))).rejects.toThrow(/HTTP 401 \(admin token rejected.*\): invalid admin token/);
    const odd = await listen((_req, _body, res) => json(res, 200, { object: 'list', now: NOW.toISOString(), data: [{ id: 'x', state: 'asleep' }] }));
    try {
      await expect(planRound(context({ router: routerClient(odd.url, TOKEN) }))).rejects.toThrow(/unexpected answer:\n {2}body\.data\[0\]\.kind: .*\n[^]*body\.data\[0\]\.state: /);
    } finally {
      await odd.close();
    }
  });
});

describe('watch', () => {
  it('serves a wake-up, then polls fast until the replicas are ready, then stops on abort', async () => {
    k8s.readyLags = true; // pods start, but are not ready yet
    const stop = new AbortController();
    const rounds: Round[] = [];
    const result = await watch(
      {
        ctx: context(),
        intervalMs: 3_600_000, // a slow round would time the test out: only the wake interval may run
        wakeIntervalMs: 5,
        onRound: (round, n) => {
          rounds.push(round);
          if (n === 2) {
            k8s.deployments.get('inference/wake')!.readyReplicas = 2;
            router.now = new Date(NOW.getTime() + 40_000);
          }
          if (n === 3) stop.abort();
        },
      },
      stop.signal,
    );
    expect(result.rounds).toBe(3);
    expect(eventsOf('k8s-wake')).toEqual([
      { type: 'waking', replicas: 2 },
      { type: 'ready', replicas: 2, cold_start_ms: 40_000 },
    ]);
    expect(row(rounds[1]!, 'k8s-wake').events).toEqual([]);
    expect(row(rounds[2]!, 'k8s-wake').events).toEqual([{ type: 'ready', replicas: 2, cold_start_ms: 40_000 }]);
  });

  it('keeps going when a round fails, and stops during the wait', async () => {
    const down = await closedUrl();
    const stop = new AbortController();
    const errors: string[] = [];
    let n = 0;
    const result = await watch(
      {
        ctx: context({ router: routerClient(down, TOKEN, 2_000) }),
        intervalMs: 5,
        onError: (e) => {
          errors.push(String(e));
          if (++n === 2) setImmediate(() => stop.abort());
        },
      },
      stop.signal,
    );
    expect(result.rounds).toBeGreaterThanOrEqual(2);
    expect(errors[0]).toContain(`router: GET /admin/backends: cannot reach ${down} (fetch failed: connect ECONNREFUSED`);
  });

  it('polls fast only while a wake-up waits or a start it can see is under way', () => {
    const base: Row = { id: 'b', driver: 'kubernetes', status: backendStatus('b'), current: { replicas: 1, ready: 0 }, decision: { action: 'keep', target: 1, reason: '' }, events: [] };
    const at = (over: Partial<Row>, status: Partial<Row['status'] & object> = {}) => needsFollowUp({ ...base, ...over, status: { ...base.status!, ...status } }, NOW);
    expect(at({})).toBe(false);
    expect(at({}, { pending_wakeups: 1 })).toBe(true);
    expect(at({ error: 'kubernetes: HTTP 403' }, { pending_wakeups: 1 })).toBe(false); // retried at the normal pace
    expect(at({ events: [{ type: 'waking', replicas: 1 }] })).toBe(true);
    expect(at({}, { state: 'waking', state_since: ago(5) })).toBe(true);
    expect(at({}, { state: 'waking', state_since: ago(45) })).toBe(false); // stuck: not every 2 s forever
    expect(at({ current: { replicas: 1, ready: null } }, { state: 'waking', state_since: ago(5) })).toBe(false); // Replicate: nothing to see
  });

  it('returns at once when aborted while waiting for the next round', async () => {
    router.backends = new Map([['k8s-busy', backendStatus('k8s-busy', { last_request_at: ago(1) })]]);
    const stop = new AbortController();
    const result = await watch({ ctx: context(), intervalMs: 3_600_000, onRound: () => setImmediate(() => stop.abort()) }, stop.signal);
    expect(result.rounds).toBe(1);
  });
});

