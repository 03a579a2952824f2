import { createExecutionContext, env as testEnv, waitOnExecutionContext } from 'cloudflare:test';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LifecycleSettings } from '../../worker/protocol/rules/lifecycle-rules';
import worker from '../../worker/index';
import { backendListSchema, backendStatusSchema, type BackendStatus } from '../../worker/protocol/backends-api';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { coldStateOf, lifecycleView, noteLifecycle, refreshBackendLifecycles } from '../../worker/routing/backend-lifecycle-view';
import type { LifecycleStatus } from '../../worker/protocol/lifecycle';
import { resetIsolate } from '../../worker/isolate/registry';
import { coldStartHeader, planColdStarts } from '../../worker/routing/cold-start';
import type { Candidate } from '../../worker/routing/plan';
import { FAST, spawnSim, type Sim } from './sims';
import { admin, baseConfig, call, chat, createKey, envWith, errorOf } from './support';
import { uid } from '../support/uid';
import { until } from '../support/until';

const env = testEnv as unknown as Env;
const ns = env.BACKEND_LIFECYCLE;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const T0 = Date.UTC(2030, 0, 1);
const HI = [{ role: 'user', content: 'Say hello.' }];
const SETTINGS: LifecycleSettings = { configured_ms: 600, idle_ms: null };

let key: string;
beforeAll(async () => {
  key = (await createKey('demo', envWith(baseConfig()))).key;
});
beforeEach(() => resetIsolate());

const event = (e: Env, id: string, body: unknown) => admin(`/admin/backends/${id}/events`, { env: e, method: 'POST', body: JSON.stringify(body) });
async function statusOf(e: Env, id: string): Promise<BackendStatus> {
  const res = await admin(`/admin/backends/${id}`, { env: e });
  expect(res.status).toBe(200);
  return backendStatusSchema.parse(await res.json());
}

/**
 * Regions in config order (no client location): a backend per entry, each its own region so the
 * first is tried first. `cold` ones have cold_start_ms (tracked); the others do not.
 */
function config(backends: { id: string; url: string; cold_start_ms?: number; timeouts?: Record<string, number>; scaling?: Record<string, unknown> }[], extra: Record<string, unknown> = {}) {
  return {
    regions: backends.map((_, i) => ({ id: `r${i}`, latitude: 0, longitude: i })),
    models: [{ id: 'm' }],
    backends: backends.map((b, i) => ({ kind: 'vllm', region: `r${i}`, models: ['m'], ...b })),
    tiers: { fast: { models: ['m'] } },
    tenants: { demo: { models: ['*'] } },
    ...extra,
  };
}

function compiled(cfg: unknown): CompiledConfig {
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config;
}

describe('BackendLifecycle Durable Object', () => {
  const fresh = () => {
    const backend = `lc-${uid()}`;
    return { backend, stub: ns.get(ns.idFromName(backend)) };
  };

  it('follows scale events: scaled_down → cold, waking → waking, ready → warm with an observed cold start', async () => {
    const { backend, stub } = fresh();
    const base = { backend, settings: SETTINGS };
    expect(await stub.status({ ...base, now: T0 })).toMatchObject({ state: 'unknown', since: null, expected_ms: 600, observed: [], replicas: null });
    expect(await stub.event({ ...base, event: { type: 'scaled_down', replicas: 0 }, now: T0 })).toMatchObject({ state: 'cold', since: T0, replicas: 0 });
    const asked = await stub.wake({ ...base, ping: false, now: T0 + 10 });
    expect(asked).toMatchObject({ state: 'cold', pending_wakeups: 1, wakeup_requested_at: T0 + 10 });
    expect(await stub.wake({ ...base, ping: false, now: T0 + 20 })).toMatchObject({ pending_wakeups: 2, wakeup_requested_at: T0 + 10 });
    // A start answers the pending wake-ups.
    expect(await stub.event({ ...base, event: { type: 'waking', replicas: 1 }, now: T0 + 30 })).toMatchObject({ state: 'waking', since: T0 + 30, pending_wakeups: 0, wakeup_requested_at: null, replicas: 1 });
    const ready = await stub.event({ ...base, event: { type: 'ready', cold_start_ms: 900 }, now: T0 + 930 });
    expect(ready).toMatchObject({ state: 'warm', since: T0 + 930, observed: [900], expected_ms: 900, replicas: 1 });
    // Scaling down to a replica or more keeps it serving.
    expect(await stub.event({ ...base, event: { type: 'scaled_down', replicas: 1 }, now: T0 + 1000 })).toMatchObject({ state: 'warm', replicas: 1 });
  });

  it('learns the expected cold start as the median of the last observed ones', async () => {
    const { backend, stub } = fresh();
    const base = { backend, settings: SETTINGS };
    for (const ms of [1000, 3000, 2000]) await stub.event({ ...base, event: { type: 'ready', cold_start_ms: ms } });
    expect(await stub.status(base)).toMatchObject({ observed: [1000, 3000, 2000], expected_ms: 2000 });
    await stub.report({ ...base, isolate: 'i', in_flight: 0, requests: 0, last_request_at: null, warm_at: null, cold_at: null, observed: [4000] });
    expect((await stub.status(base)).expected_ms).toBe(2500);
    for (let i = 0; i < 25; i++) await stub.event({ ...base, event: { type: 'ready', cold_start_ms: 10 } });
    const s = await stub.status(base);
    expect(s.observed).toHaveLength(20);
    expect(s.expected_ms).toBe(10);
  });

  it('sums in-flight counts of isolates that reported within a minute, and counts requests per minute over 5 minutes', async () => {
    const { backend, stub } = fresh();
    const report = (isolate: string, in_flight: number, requests: number, now: number) =>
      stub.report({ backend, settings: SETTINGS, isolate, in_flight, requests, last_request_at: now, warm_at: null, cold_at: null, observed: [], now });
    await report('a', 2, 6, T0);
    const both = await report('b', 3, 4, T0 + 30_000);
    expect(both).toMatchObject({ in_flight: 5, rate_per_min: 2, last_request_at: T0 + 30_000 });
    // a's count replaces its previous one; a vanished isolate stops counting after a minute.
    expect((await report('a', 1, 0, T0 + 40_000)).in_flight).toBe(4);
    expect((await stub.status({ now: T0 + 95_000 })).in_flight).toBe(1);
    expect((await stub.status({ now: T0 + 101_000 })).in_flight).toBe(0);
    expect((await stub.status({ now: T0 + 4 * 60_000 })).rate_per_min).toBe(2);
    expect((await stub.status({ now: T0 + 5 * 60_000 })).rate_per_min).toBe(0);
  });

  it('an answer makes it warm and clears wake-ups; news older than the state is ignored; a failed ping undoes its waking', async () => {
    const { backend, stub } = fresh();
    const base = { backend, settings: SETTINGS, isolate: 'i', in_flight: 0, requests: 1, last_request_at: T0, observed: [] };
    await stub.event({ backend, settings: SETTINGS, event: { type: 'scaled_down', replicas: 0 }, now: T0 + 100 });
    // A success from before the scale-down says nothing about now.
    expect(await stub.report({ ...base, warm_at: T0 + 50, cold_at: null, now: T0 + 200 })).toMatchObject({ state: 'cold', since: T0 + 100 });
    expect(await stub.wake({ backend, settings: SETTINGS, ping: true, now: T0 + 300 })).toMatchObject({ state: 'waking', pending_wakeups: 1 });
    // The ping could not connect: nothing is starting it.
    expect(await stub.report({ ...base, warm_at: null, cold_at: T0 + 400, now: T0 + 400 })).toMatchObject({ state: 'cold', since: T0 + 400, pending_wakeups: 1 });
    // A scale event's waking is not undone by a refused request (the platform is starting it).
    await stub.event({ backend, settings: SETTINGS, event: { type: 'waking' }, now: T0 + 500 });
    expect(await stub.report({ ...base, warm_at: null, cold_at: T0 + 600, now: T0 + 600 })).toMatchObject({ state: 'waking' });
    await stub.wake({ backend, settings: SETTINGS, ping: false, now: T0 + 650 });
    expect(await stub.report({ ...base, warm_at: T0 + 700, cold_at: null, now: T0 + 700 })).toMatchObject({ state: 'warm', since: T0 + 700, pending_wakeups: 0 });
  });

  it('presumes a self-parking backend cold after its idle window, unless requests are in flight', async () => {
    const { backend, stub } = fresh();
    const settings = { configured_ms: 600, idle_ms: 60_000 };
    const base = { backend, settings, isolate: 'i', requests: 1, last_request_at: T0, warm_at: T0, cold_at: null, observed: [] };
    await stub.report({ ...base, in_flight: 0, now: T0 });
    expect((await stub.status({ settings, now: T0 + 59_000 })).state).toBe('warm');
    // A request in flight (a long stream) keeps it warm past the window…
    await stub.report({ ...base, requests: 0, in_flight: 1, now: T0 + 50_000 });
    expect((await stub.status({ settings, now: T0 + 61_000 })).state).toBe('warm');
    // …until that isolate's count goes stale (a minute without a report): then it idled out at T0 + 60 s.
    expect(await stub.status({ settings, now: T0 + 111_000 })).toMatchObject({ state: 'cold', since: T0 + 60_000, in_flight: 0 });
    // A floor the scripts raised (replicas left by a scale event) keeps the platform from parking it.
    const floor = fresh();
    await floor.stub.event({ backend: floor.backend, settings, event: { type: 'ready', replicas: 1 }, now: T0 });
    expect((await floor.stub.status({ settings, now: T0 + 10 * 60_000 })).state).toBe('warm');
  });
});

describe('cold-start planning (isolate view)', () => {
  const status = (over: Partial<LifecycleStatus>): LifecycleStatus => ({
    backend: null,
    state: 'warm',
    since: Date.now(),
    last_request_at: null,
    in_flight: 0,
    rate_per_min: 0,
    pending_wakeups: 0,
    wakeup_requested_at: null,
    observed: [],
    expected_ms: 600,
    replicas: null,
    version: 100,
    at: Date.now(),
    ...over,
  });
  // Port 9 (discard) refuses: a wake-up ping fails at once, and no Durable Object is bound.
  const setup = (ids: string[], tracked: boolean[]) => {
    const cfg = compiled(config(ids.map((id, i) => ({ id, url: 'http://127.0.0.1:9', ...(tracked[i] ? { cold_start_ms: 600 } : {}) }))));
    const candidates: Candidate[] = ids.map((id) => ({ backend: cfg.backends.get(id)!, model: cfg.modelsByName.get('m')!, tier: 'fast', reason: 'single' }));
    const work: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void work.push(p) };
    const plan = (deadlineIn: number) => planColdStarts({ config: cfg, env: {}, ctx, candidates, deadline: Date.now() + deadlineIn, stream: false });
    return { cfg, candidates, work, ctx, plan };
  };

  it('costs nothing for backends without cold_start_ms: the same chain back, no background work', () => {
    const { candidates, work, plan } = setup([`a-${uid()}`, `b-${uid()}`], [false, false]);
    const p = plan(60_000);
    expect(p.candidates).toBe(candidates);
    expect(p.avoided).toBe(false);
    expect(work).toHaveLength(0);
  });

  it('a warm, fresh copy: no change and no call to the object', () => {
    const ids = [`a-${uid()}`];
    const { candidates, work, plan, cfg, ctx } = setup(ids, [true]);
    noteLifecycle(ids[0]!, status({ state: 'warm' }));
    refreshBackendLifecycles({ BACKEND_LIFECYCLE: ns }, ctx, cfg, [cfg.backends.get(ids[0]!)!]);
    expect(work).toHaveLength(0); // fetched just now: nothing to re-read
    const p = plan(60_000);
    expect(p.candidates).toBe(candidates);
    expect(work).toHaveLength(0);
  });

  it('an unknown backend (no copy yet) is taken as warm', () => {
    const ids = [`a-${uid()}`];
    const { cfg } = setup(ids, [true]);
    expect(coldStateOf(cfg, cfg.backends.get(ids[0]!)!, false)).toBeNull();
  });

  it('waits when the deadline allows the start, avoids when it does not and a warm one exists, waits when none does', async () => {
    const [cold, warm] = [`c-${uid()}`, `w-${uid()}`];
    const s = setup([cold, warm], [true, false]);
    noteLifecycle(cold, status({ state: 'cold' }));
    const generous = s.plan(60_000);
    expect(generous.avoided).toBe(false);
    expect(generous.candidates.map((c) => [c.backend.id, c.coldStartWaitMs])).toEqual([[cold, 600], [warm, undefined]]);
    expect(coldStartHeader(generous, generous.candidates[0]!)).toBe('waited');
    expect(s.work).toHaveLength(0); // the attempt itself will be the wake-up

    const tight = s.plan(800); // 600 ms start + 500 ms allowance do not fit
    expect(tight.avoided).toBe(true);
    expect(tight.candidates.map((c) => [c.backend.id, c.coldStartWaitMs])).toEqual([[warm, undefined], [cold, 600]]);
    expect(coldStartHeader(tight, tight.candidates[0]!)).toBe('avoided');
    expect(coldStartHeader(tight, null)).toBeNull();
    expect(lifecycleView(cold)?.state).toBe('waking'); // woken in the background…
    await Promise.all(s.work);
    expect(lifecycleView(cold)?.state).toBe('cold'); // …and the ping was refused: cold again

    // A cold fallback behind a warm head is not the request's business: no wake, no header.
    const behind = setup([`w2-${uid()}`, `c2-${uid()}`], [false, true]);
    const c2 = behind.candidates[1]!.backend.id;
    noteLifecycle(c2, status({ state: 'cold' }));
    const fallback = behind.plan(800);
    expect(fallback.avoided).toBe(false);
    expect(fallback.candidates.map((c) => c.coldStartWaitMs)).toEqual([undefined, 600]);
    expect(coldStartHeader(fallback, fallback.candidates[0]!)).toBeNull();
    expect(behind.work).toHaveLength(0);
    expect(lifecycleView(c2)?.state).toBe('cold');

    const alone = setup([cold], [true]);
    const noChoice = alone.plan(800);
    expect(noChoice.candidates.map((c) => c.coldStartWaitMs)).toEqual([600]);
    expect(noChoice.avoided).toBe(false);
  });

  it('while a wake is under way, a warm backend serving the same model takes the request (no second wake)', () => {
    const [waking, warm] = [`k-${uid()}`, `w-${uid()}`];
    const s = setup([waking, warm], [true, false]);
    const now = Date.now();
    noteLifecycle(waking, status({ state: 'waking', since: now - 100 }), now);
    const p = s.plan(60_000);
    expect(p.avoided).toBe(true);
    expect(p.candidates.map((c) => c.backend.id)).toEqual([warm, waking]);
    expect(s.work).toHaveLength(0);
    expect(lifecycleView(waking)?.since).toBe(now - 100);
    // Only a warm backend of another model: the deadline rule decides (here: wait).
    const cfg = compiled({
      ...config([{ id: waking, url: 'http://127.0.0.1:9', cold_start_ms: 600 }, { id: warm, url: 'http://127.0.0.1:9' }]),
      models: [{ id: 'm' }, { id: 'n' }],
      backends: [
        { id: waking, kind: 'vllm', region: 'r0', url: 'http://127.0.0.1:9', models: ['m'], cold_start_ms: 600 },
        { id: warm, kind: 'vllm', region: 'r1', url: 'http://127.0.0.1:9', models: ['n'] },
      ],
      tiers: { fast: { models: ['m'], fallback_tier: 'slow' }, slow: { models: ['n'] } },
    });
    const chain: Candidate[] = [
      { backend: cfg.backends.get(waking)!, model: cfg.modelsByName.get('m')!, tier: 'fast', reason: 'single' },
      { backend: cfg.backends.get(warm)!, model: cfg.modelsByName.get('n')!, tier: 'slow', reason: 'tier-fallback' },
    ];
    const other = planColdStarts({ config: cfg, env: {}, ctx: s.ctx, candidates: chain, deadline: Date.now() + 60_000, stream: false });
    expect(other.avoided).toBe(false);
    expect(other.candidates.map((c) => [c.backend.id, c.coldStartWaitMs])).toEqual([[waking, expect.any(Number)], [warm, undefined]]);
  });

  it('a wake under way leaves only the rest of the expected start to wait for', () => {
    const [id] = [`c-${uid()}`];
    const { cfg } = setup([id], [true]);
    const now = Date.now();
    noteLifecycle(id, status({ state: 'waking', since: now - 400, expected_ms: 1000 }), now);
    expect(coldStateOf(cfg, cfg.backends.get(id)!, true, now)).toMatchObject({ state: 'waking', remainingMs: 600, allowanceMs: 500 });
    // Overdue: planned as warm again (normal timeouts).
    expect(coldStateOf(cfg, cfg.backends.get(id)!, true, now + 700)).toBeNull();
  });

  it('presumes a warm copy parked once its idle window has passed with nothing in flight', () => {
    const id = `p-${uid()}`;
    const cfg = compiled(config([{ id, url: 'http://127.0.0.1:9', cold_start_ms: 600, scaling: { driver: 'none', idle_minutes: 1 } }]));
    const now = Date.now();
    noteLifecycle(id, status({ state: 'warm', since: now - 120_000, last_request_at: now - 61_000 }), now);
    expect(coldStateOf(cfg, cfg.backends.get(id)!, false, now)).toMatchObject({ state: 'cold', remainingMs: 600 });
    // Kubernetes backends are parked only by the scale scripts, which say so.
    const k8s = `k-${uid()}`;
    const kcfg = compiled(config([{ id: k8s, url: 'http://127.0.0.1:9', cold_start_ms: 600, scaling: { driver: 'kubernetes', idle_minutes: 1, kubernetes: { deployment: 'x' } } }]));
    noteLifecycle(k8s, status({ state: 'warm', since: now - 120_000, last_request_at: now - 61_000 }), now);
    expect(coldStateOf(kcfg, kcfg.backends.get(k8s)!, false, now)).toBeNull();
  });
});

describe('cold-start-aware routing against simulators', () => {
  it('waits for a cold backend when the deadline allows: x-router-cold-start: waited, the start observed', async () => {
    const id = `cold-${uid()}`;
    const sim = await spawnSim({ name: id, models: ['m'], latency: FAST, cold_start_ms: 600, start_cold: true });
    // The backend's own timeouts are far below its cold start: only the planned wait lets it answer.
    const cfg = config([{ id, url: sim.url, cold_start_ms: 600, timeouts: { connect_ms: 200, ttft_ms: 200, total_ms: 300 } }]);
    const e = envWith(cfg);
    expect((await event(e, id, { type: 'scaled_down', replicas: 0 })).status).toBe(200); // the scale scripts parked it

    for (const stream of [false, true]) {
      if (stream) {
        await sim.state({ cold: true });
        await event(e, id, { type: 'scaled_down', replicas: 0 });
      }
      const res = await chat(key, { model: 'm', messages: HI, max_tokens: 4, stream }, { env: e });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-router-cold-start')).toBe('waited');
      expect(res.headers.get('x-router-backend')).toBe(id);
      expect(res.headers.get('x-router-attempts')).toBe('1');
      const text = await res.text();
      if (stream) expect(text).toContain('[DONE]');
    }
    expect((await sim.stats()).wakes).toBe(2);

    const s = await until('observed cold starts', () => statusOf(e, id), (x) => x.cold_start_ms.observed.length === 2 && x.state === 'warm');
    for (const ms of s.cold_start_ms.observed) {
      expect(ms).toBeGreaterThanOrEqual(550);
      expect(ms).toBeLessThan(5_000);
    }
    expect(s.cold_start_ms.configured).toBe(600);
    expect(s.pending_wakeups).toBe(0);
    expect(s.last_request_at).not.toBeNull();
    // Warm now: the next request is an ordinary one.
    const again = await chat(key, { model: 'm', messages: HI, max_tokens: 4 }, { env: e });
    expect(again.status).toBe(200);
    expect(again.headers.get('x-router-cold-start')).toBeNull();
  });

  it('a tight deadline with a warm alternative: served warm (avoided), the cold one woken in the background', async () => {
    const cold = `cold-${uid()}`;
    const warm = `warm-${uid()}`;
    // The simulator takes longer to start than configured: what the router learns must show it.
    const [coldSim, warmSim] = await Promise.all([
      spawnSim({ name: cold, models: ['m'], latency: FAST, cold_start_ms: 1_500, start_cold: true }),
      spawnSim({ name: warm, models: ['m'], latency: FAST }),
    ]);
    const e = envWith(config([{ id: cold, url: coldSim.url, cold_start_ms: 600 }, { id: warm, url: warmSim.url }]));
    await event(e, cold, { type: 'scaled_down', replicas: 0 });

    const ctx = createExecutionContext();
    const req = new Request('http://router.test/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-router-timeout-ms': '800' },
      body: JSON.stringify({ model: 'm', messages: HI, max_tokens: 4 }),
    });
    const res = await worker.fetch(req as Request<unknown, IncomingRequestCfProperties>, e, ctx);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-cold-start')).toBe('avoided');
    expect(res.headers.get('x-router-backend')).toBe(warm);
    expect(res.headers.get('x-router-attempts')).toBe('1');
    await res.text();

    // While the wake-up is under way: pending in the object, and the simulator is starting.
    const pending = await until('a pending wake-up', () => statusOf(e, cold), (x) => x.pending_wakeups >= 1);
    expect(pending.state).toBe('waking');
    expect(pending.wakeup_requested_at).not.toBeNull();
    await until('the simulator waking', async () => (await (await fetch(`${coldSim.url}/sim/state`)).json()) as { state: string }, (x) => x.state !== 'cold');

    await waitOnExecutionContext(ctx); // the wake-up answered
    expect((await coldSim.stats()).wakes).toBe(1);
    const woke = await until('warm after the wake-up', () => statusOf(e, cold), (x) => x.state === 'warm' && x.cold_start_ms.observed.length === 1);
    expect(woke.pending_wakeups).toBe(0);
    expect(woke.cold_start_ms.observed[0]).toBeGreaterThanOrEqual(1_400);
    expect(woke.cold_start_ms.expected).toBe(woke.cold_start_ms.observed[0]); // learnt: no longer the configured 600

    // Warm: the same tight deadline now goes to the first backend of the chain.
    const next = await chat(key, { model: 'm', messages: HI, max_tokens: 4 }, { env: e, headers: { 'x-router-timeout-ms': '800' } });
    expect(next.headers.get('x-router-backend')).toBe(cold);
    expect(next.headers.get('x-router-cold-start')).toBeNull();
  });

  it('scale events through the admin route change the state, at once on this isolate', async () => {
    const id = `ev-${uid()}`;
    const sim = await spawnSim({ name: id, models: ['m'], latency: FAST });
    const warmId = `w-${uid()}`;
    const warmSim = await spawnSim({ name: warmId, models: ['m'], latency: FAST });
    const e = envWith(config([{ id, url: sim.url, cold_start_ms: 2_000 }, { id: warmId, url: warmSim.url }]));
    const post = async (body: unknown) => {
      const res = await event(e, id, body);
      expect(res.status).toBe(200);
      return backendStatusSchema.parse(await res.json());
    };
    expect(await post({ type: 'scaled_down', replicas: 0 })).toMatchObject({ state: 'cold', replicas: 0 });
    expect(lifecycleView(id)?.state).toBe('cold');
    // Planned around: a 1 s deadline cannot hold a 2 s start.
    const avoided = await chat(key, { model: 'm', messages: HI, max_tokens: 4 }, { env: e, headers: { 'x-router-timeout-ms': '1000' } });
    expect(avoided.headers.get('x-router-cold-start')).toBe('avoided');
    expect(avoided.headers.get('x-router-backend')).toBe(warmId);

    await post({ type: 'scaled_down', replicas: 0 });
    const waking = await post({ type: 'waking', replicas: 1 });
    expect(waking).toMatchObject({ state: 'waking', pending_wakeups: 0, replicas: 1 });
    expect(lifecycleView(id)?.state).toBe('waking');
    const ready = await post({ type: 'ready', replicas: 2, cold_start_ms: 900 });
    expect(ready).toMatchObject({ state: 'warm', replicas: 2, pending_wakeups: 0, cold_start_ms: { configured: 2_000, expected: 900 } });
    expect(ready.cold_start_ms.observed).toContain(900);
    expect(lifecycleView(id)?.state).toBe('warm');
    const served = await chat(key, { model: 'm', messages: HI, max_tokens: 4 }, { env: e, headers: { 'x-router-timeout-ms': '1000' } });
    expect(served.headers.get('x-router-backend')).toBe(id);
    expect(served.headers.get('x-router-cold-start')).toBeNull();
  });

  it('counts requests in flight and the request rate, edge-wide through the object', async () => {
    const id = `busy-${uid()}`;
    // About 3 s per answer (15 tokens, 200 ms apart): long enough to be seen in flight.
    const sim: Sim = await spawnSim({ name: id, models: ['m'], latency: { ...FAST, itl_ms: 200 } });
    const e = envWith(config([{ id, url: sim.url, cold_start_ms: 1_000 }]));
    const requests = Array.from({ length: 3 }, () => chat(key, { model: 'm', messages: HI, max_tokens: 15, ignore_eos: true }, { env: e }));
    const busy = await until('3 in flight', () => statusOf(e, id), (x) => x.in_flight === 3);
    expect(busy.last_request_at).not.toBeNull();
    for (const r of await Promise.all(requests)) expect(r.status).toBe(200);
    const idle = await until('none in flight', () => statusOf(e, id), (x) => x.in_flight === 0);
    expect(idle.request_rate_per_min).toBeGreaterThanOrEqual(0.6); // 3 requests over 5 minutes
    expect(idle.state).toBe('warm');
  });
});

describe('/admin/backends', () => {
  it('lists every configured backend in the contract shape; untracked ones are known only from events', async () => {
    const tracked = `t-${uid()}`;
    const plain = `p-${uid()}`;
    const e = envWith(config([{ id: tracked, url: 'http://127.0.0.1:9', cold_start_ms: 600 }, { id: plain, url: 'http://127.0.0.1:9' }]));
    const res = await admin('/admin/backends', { env: e });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, any>;
    const list = backendListSchema.parse(body);
    expect(list.data.map((b) => b.id)).toEqual([tracked, plain]);
    expect(body.data.map((b: { tracked: boolean }) => b.tracked)).toEqual([true, false]);
    expect(list.data[1]).toMatchObject({ kind: 'vllm', region: 'r1', state: 'unknown', in_flight: 0, request_rate_per_min: 0, cold_start_ms: { configured: null, expected: null, observed: [] } });
    expect(Date.parse(list.now)).toBeGreaterThan(0);

    await event(e, plain, { type: 'scaled_down', replicas: 0 });
    expect((await statusOf(e, plain)).state).toBe('cold');
  });

  it('400 on a bad event body, 404 on an unknown backend, 401 without the admin token', async () => {
    const id = `v-${uid()}`;
    const e = envWith(config([{ id, url: 'http://127.0.0.1:9', cold_start_ms: 600 }]));
    const missing = await event(e, id, { type: 'scaled_down' });
    expect(missing.status).toBe(400);
    expect(await errorOf(missing)).toMatchObject({ type: 'invalid_request_error', code: 'invalid_value', param: 'replicas' });
    const unknownType = await event(e, id, { type: 'exploded' });
    expect(unknownType.status).toBe(400);
    const extra = await event(e, id, { type: 'ready', replicas: 1, surprise: true });
    expect(extra.status).toBe(400);
    const negative = await event(e, id, { type: 'ready', cold_start_ms: -5 });
    expect((await errorOf(negative)).param).toBe('cold_start_ms');
    const notJson = await admin(`/admin/backends/${id}/events`, { env: e, method: 'POST', body: '{nope' });
    expect(notJson.status).toBe(400);
    expect((await errorOf(notJson)).code).toBe('invalid_json');
    expect((await statusOf(e, id)).state).toBe('unknown'); // none of them did anything

    const nobody = await event(e, 'no-such-backend', { type: 'scaled_down', replicas: 0 });
    expect(nobody.status).toBe(404);
    expect((await errorOf(nobody)).code).toBe('backend_not_found');
    expect((await admin('/admin/backends/no-such-backend', { env: e })).status).toBe(404);
    expect((await call('/admin/backends', { env: e })).status).toBe(401);
  });
});
