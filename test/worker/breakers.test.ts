import { env as testEnv, evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { beforeEach, describe, expect, it } from 'vitest';
import type { CircuitBreaker } from '../../durable-objects/circuit-breaker';
import type { ReportBatch } from '../../worker/protocol/breaker';
import { TRANSITIONS_KEPT } from '../../worker/protocol/breaker';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import { breakerSchema } from '../../worker/config/schema';
import type { Env } from '../../worker/env';
import {
  acquireProbe,
  breakerAllows,
  breakerOutcomeOf,
  breakerSettings,
  breakerView,
  FAILURE_FLUSH_MS,
  PROBE_DENIED_MS,
  refreshBreakers,
  reportOutcome,
} from '../../worker/routing/breaker-view';
import { resetIsolate } from '../../worker/isolate/registry';
import { spawnSim } from './sims';
import { admin, baseConfig, call, chat, createKey, envWith, errorOf } from './support';
import { uid } from '../support/uid';
import { until } from '../support/until';

const env = testEnv as unknown as Env;
const ns = env.BREAKERS;
/** A breaker of this test's own: backend ids are unique per test, so no state leaks between tests. */
const fresh = (name = `b-${uid()}`) => ({ name, stub: ns.get(ns.idFromName(name)) });
const settings = (over: Record<string, unknown> = {}) => breakerSchema.parse(over);
const T0 = Date.UTC(2030, 0, 1);

beforeEach(() => resetIsolate());

describe('CircuitBreaker Durable Object', () => {
  it('opens after consecutive failures; a success in between starts the count again', async () => {
    const { name, stub } = fresh();
    const s = settings({ consecutive_failures: 5, min_requests: 1000 });
    const report = (outcomes: string, now: number) => stub.report({ backend: name, settings: s, outcomes, cause: 'HTTP 503', now });
    expect((await report('ffffsffff', T0)).state).toBe('closed');
    const opened = await report('f', T0 + 10);
    expect(opened).toMatchObject({ state: 'open', opened_until: T0 + 10 + 30_000, retry_in_ms: 30_000, version: 1 });
    const d = await stub.details({ now: T0 + 20 });
    expect(d).toMatchObject({ backend: name, state: 'open', consecutive_failures: 5, trips: 1, cooldown_ms: 30_000 });
    expect(d.window).toEqual({ window_ms: 60_000, requests: 10, failures: 9 });
    expect(d.opened_until).toBe(new Date(T0 + 10 + 30_000).toISOString());
    expect(d.transitions).toEqual([
      { at: new Date(T0 + 10).toISOString(), from: 'closed', to: 'open', cause: '5 consecutive failures (last: HTTP 503); open for 30 s' },
    ]);
  });

  it('opens on the failure share of a sliding window with enough requests', async () => {
    const s = settings({ min_requests: 20, failure_threshold: 0.5, consecutive_failures: 100 });
    const half = 'fs'.repeat(9); // 18 requests, 9 failures
    const run = async (gapMs: number, second: string) => {
      const { name, stub } = fresh();
      await stub.report({ backend: name, settings: s, outcomes: half, now: T0 });
      return stub.report({ backend: name, settings: s, outcomes: second, now: T0 + gapMs });
    };
    // 20 requests in the window, 10 failed: 50% reaches the threshold.
    expect((await run(30_000, 'sf')).state).toBe('open');
    // 20 requests, 9 failed: below it.
    expect((await run(30_000, 'ss')).state).toBe('closed');
    // The first 18 have slid out of the window: 2 requests are too few to judge.
    expect((await run(61_000, 'ff')).state).toBe('closed');
    // Too few requests (19, 10 of them failed), however bad.
    const { name, stub } = fresh();
    expect((await stub.report({ backend: name, settings: s, outcomes: `${half}f`, now: T0 })).state).toBe('closed');
    const d = await stub.details({ now: T0 });
    expect(d.window.requests).toBe(19);
  });

  it('cool-down: open until it ends, then half-open; grows on each failed probe up to the cap', async () => {
    const { name, stub } = fresh();
    const s = settings({ consecutive_failures: 1, cooldown_ms: 1_000, cooldown_multiplier: 2, cooldown_max_ms: 3_000 });
    const base = { backend: name, settings: s };
    expect((await stub.report({ ...base, outcomes: 'f', now: T0 })).opened_until).toBe(T0 + 1_000);
    const early = await stub.acquireProbe({ ...base, now: T0 + 999 });
    expect(early).toMatchObject({ permit: null, status: { state: 'open', retry_in_ms: 1 } });

    let at = T0 + 1_000;
    const cooldowns: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await stub.acquireProbe({ ...base, now: at });
      expect(p.status.state).toBe('half-open');
      expect(p.permit).toEqual(expect.any(String));
      const after = await stub.settleProbe({ ...base, permit: p.permit!, outcome: 'failure', cause: 'HTTP 502', now: at + 5 });
      expect(after.state).toBe('open');
      cooldowns.push(after.opened_until! - (at + 5));
      at = after.opened_until!;
    }
    expect(cooldowns).toEqual([2_000, 3_000, 3_000]); // doubled, then capped
    const d = await stub.details({ now: at - 1 });
    expect(d).toMatchObject({ trips: 4, trip_streak: 4, cooldown_ms: 3_000 });
    expect(d.transitions[0]!.cause).toBe('probe failed (HTTP 502); open for 3 s');
    expect(d.transitions[1]).toMatchObject({ from: 'open', to: 'half-open', cause: 'cool-down of 3 s elapsed' });
  });

  it('half-open: at most half_open_max_probes permits out; closes after close_after_successes successes', async () => {
    const { name, stub } = fresh();
    const s = settings({ consecutive_failures: 1, cooldown_ms: 1_000, half_open_max_probes: 2, close_after_successes: 3 });
    const base = { backend: name, settings: s };
    await stub.report({ ...base, outcomes: 'f', now: T0 });
    const at = T0 + 1_000;
    const [a, b, c] = [await stub.acquireProbe({ ...base, now: at }), await stub.acquireProbe({ ...base, now: at }), await stub.acquireProbe({ ...base, now: at })];
    expect([a.permit, b.permit, c.permit].map((p) => p !== null)).toEqual([true, true, false]);
    expect((await stub.settleProbe({ ...base, permit: a.permit!, outcome: 'success', now: at + 1 })).state).toBe('half-open');
    // A returned permit frees a slot; an 'ignore' (the client's own 4xx) returns it without counting.
    const d1 = await stub.acquireProbe({ ...base, now: at + 2 });
    expect(d1.permit).not.toBeNull();
    await stub.settleProbe({ ...base, permit: d1.permit!, outcome: 'ignore', now: at + 3 });
    expect((await stub.details({ now: at + 3 })).half_open).toEqual({ probes_in_flight: 1, successes: 1, needed: 3 });
    // Batched outcomes from isolates that had not heard of the trip do not move a half-open breaker.
    expect((await stub.report({ ...base, outcomes: 'ffffss', now: at + 4 })).state).toBe('half-open');
    expect((await stub.settleProbe({ ...base, permit: b.permit!, outcome: 'success', now: at + 5 })).state).toBe('half-open');
    const e = await stub.acquireProbe({ ...base, now: at + 6 });
    const closed = await stub.settleProbe({ ...base, permit: e.permit!, outcome: 'success', now: at + 7 });
    expect(closed).toMatchObject({ state: 'closed', opened_until: null });
    const d = await stub.details({ now: at + 8 });
    expect(d).toMatchObject({ state: 'closed', consecutive_failures: 0, window: { requests: 0, failures: 0 } }); // a fresh window
    expect(d.transitions[0]).toMatchObject({ from: 'half-open', to: 'closed', cause: '3 probes succeeded' });
    // Closed: no probe needed, no permit given.
    expect((await stub.acquireProbe({ ...base, now: at + 9 })).permit).toBeNull();
  });

  it('a failed probe opens it again; a probe permit nobody settles expires with its lease', async () => {
    const { name, stub } = fresh();
    const s = settings({ consecutive_failures: 2, cooldown_ms: 1_000 });
    const base = { backend: name, settings: s };
    await stub.report({ ...base, outcomes: 'ff', now: T0 });
    const p = await stub.acquireProbe({ ...base, lease_ms: 500, now: T0 + 1_000 });
    expect((await stub.acquireProbe({ ...base, now: T0 + 1_499 })).permit).toBeNull();
    const again = await stub.acquireProbe({ ...base, now: T0 + 1_500 }); // p's lease ran out
    expect(again.permit).not.toBeNull();
    // The lapsed permit settling late is counted, but moves nothing.
    expect((await stub.settleProbe({ ...base, permit: p.permit!, outcome: 'failure', now: T0 + 1_600 })).state).toBe('half-open');
    const reopened = await stub.settleProbe({ ...base, permit: again.permit!, outcome: 'failure', cause: 'timed out (first token)', now: T0 + 1_700 });
    expect(reopened).toMatchObject({ state: 'open', opened_until: T0 + 1_700 + 2_000 });
  });

  it('the cool-down starts afresh once the backend has stayed closed for the cap', async () => {
    const { name, stub } = fresh();
    const s = settings({ consecutive_failures: 1, cooldown_ms: 1_000, cooldown_max_ms: 10_000, close_after_successes: 1 });
    const base = { backend: name, settings: s };
    const recover = async (at: number) => {
      const p = await stub.acquireProbe({ ...base, now: at });
      return stub.settleProbe({ ...base, permit: p.permit!, outcome: 'success', now: at });
    };
    await stub.report({ ...base, outcomes: 'f', now: T0 });
    expect((await recover(T0 + 1_000)).state).toBe('closed');
    // Trips again soon after recovering: the cool-down grows.
    expect((await stub.report({ ...base, outcomes: 'f', now: T0 + 2_000 })).retry_in_ms).toBe(2_000);
    expect((await recover(T0 + 4_000)).state).toBe('closed');
    // Closed for longer than cooldown_max_ms: back to the base cool-down.
    expect((await stub.report({ ...base, outcomes: 'f', now: T0 + 20_000 })).retry_in_ms).toBe(1_000);
  });

  it('keeps the last transitions and its state across a restart; reset closes and forgets', async () => {
    const { name, stub } = fresh();
    const s = settings({ consecutive_failures: 1, cooldown_ms: 1_000, cooldown_max_ms: 1_000, close_after_successes: 1 });
    const base = { backend: name, settings: s };
    let at = T0;
    for (let i = 0; i < 12; i++) {
      await stub.report({ ...base, outcomes: 'f', now: at }); // closed → open
      const p = await stub.acquireProbe({ ...base, now: at + 1_000 }); // → half-open
      await stub.settleProbe({ ...base, permit: p.permit!, outcome: 'success', now: at + 1_000 }); // → closed
      at += 2_000;
    }
    await stub.report({ ...base, outcomes: 'f', now: at });
    await evictDurableObject(stub);
    const d = await stub.details({ now: at + 1 });
    expect(d.state).toBe('open');
    expect(d.trips).toBe(13);
    expect(d.transitions).toHaveLength(TRANSITIONS_KEPT);
    expect(d.transitions[0]).toMatchObject({ to: 'open', at: new Date(at).toISOString() });
    const rows = await runInDurableObject(stub, (_: CircuitBreaker, state) => state.storage.sql.exec('SELECT COUNT(*) AS n FROM transitions').one().n);
    expect(rows).toBe(TRANSITIONS_KEPT);

    const reset = await stub.reset({ now: at + 2 });
    expect(reset).toMatchObject({ state: 'closed', consecutive_failures: 0, trip_streak: 0, window: { requests: 0, failures: 0 } });
    expect(reset.transitions[0]).toMatchObject({ from: 'open', to: 'closed', cause: 'reset by admin' });
  });
});

describe('config', () => {
  it('defaults, per-backend overrides and the statuses that count as failures', () => {
    const cfg = baseConfig();
    cfg.breaker = { cooldown_ms: 10_000, failure_statuses: ['5xx'] };
    cfg.backends[0].breaker = { consecutive_failures: 2, failure_statuses: [502, '4xx'] };
    const r = compileConfig(cfg);
    if (!r.ok) throw new Error(r.errors.join('; '));
    const [first, second] = [cfg.backends[0].id as string, cfg.backends[1].id as string];
    expect(breakerSettings(r.config, first)).toMatchObject({ consecutive_failures: 2, cooldown_ms: 10_000, min_requests: 20, failure_threshold: 0.5 });
    expect(breakerSettings(r.config, second)).toMatchObject({ consecutive_failures: 5, cooldown_ms: 10_000, cooldown_max_ms: 300_000, half_open_max_probes: 1, close_after_successes: 3 });
    const outcome = (id: string, f: { kind: 'timeout' | 'connect' | 'status'; status?: number }) => breakerOutcomeOf(r.config, id, f);
    expect(outcome(second, { kind: 'timeout' })).toBe('failure');
    expect(outcome(second, { kind: 'connect' })).toBe('failure');
    expect(outcome(second, { kind: 'status' })).toBe('failure'); // no answer at all (empty body)
    expect(outcome(second, { kind: 'status', status: 503 })).toBe('failure');
    expect(outcome(second, { kind: 'status', status: 429 })).toBe('ignore'); // this config left 429 out
    expect(outcome(second, { kind: 'status', status: 400 })).toBe('ignore');
    expect(outcome(first, { kind: 'status', status: 503 })).toBe('ignore');
    expect(outcome(first, { kind: 'status', status: 401 })).toBe('failure');

    const defaults = compileConfig(baseConfig());
    if (!defaults.ok) throw new Error('base config');
    expect(breakerOutcomeOf(defaults.config, second, { kind: 'status', status: 429 })).toBe('failure');
    expect(breakerOutcomeOf(defaults.config, second, { kind: 'status', status: 422 })).toBe('ignore');

    const bad = baseConfig();
    bad.backends[1].breaker = { cooldown_ms: 600_000, nonsense: 1 };
    bad.breaker = { failure_threshold: 0 };
    const errors = compileConfig(bad);
    expect(errors.ok).toBe(false);
    const text = !errors.ok ? errors.errors.join('\n') : '';
    expect(text).toContain('router.breaker.failure_threshold');
    expect(text).toContain('router.backends[1].breaker');
  });
});

// ---------------------------------------------------------------- the isolate view

type Calls = { method: string; arg: any }[];

/**
 * A BREAKERS namespace that records every call and forwards it to the real object (or, with
 * `hold`, keeps report() answers back until released).
 */
function recording(opts: { hold?: boolean } = {}) {
  const calls: Calls = [];
  const held: (() => void)[] = [];
  const wrapped = {
    idFromName: (n: string) => ns.idFromName(n),
    get: (id: DurableObjectId) => {
      const real = ns.get(id);
      const forward =
        (method: 'report' | 'state' | 'acquireProbe' | 'settleProbe') =>
        async (arg: any): Promise<unknown> => {
          calls.push({ method, arg });
          if (opts.hold && method === 'report') await new Promise<void>((r) => held.push(r));
          return (real[method] as (a: unknown) => Promise<unknown>)(arg);
        };
      return { report: forward('report'), state: forward('state'), acquireProbe: forward('acquireProbe'), settleProbe: forward('settleProbe') };
    },
  };
  return { env: { ...env, BREAKERS: wrapped } as unknown as Record<string, unknown>, calls, release: () => held.splice(0).forEach((r) => r()) };
}

function configFor(ids: string[], breaker: Record<string, unknown>): CompiledConfig {
  const r = compileConfig({
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: ids.map((id) => ({ id, kind: 'vllm', region: 'here', url: 'http://127.0.0.1:9', models: ['m'] })),
    breaker,
  });
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config;
}

function collector() {
  const waits: Promise<unknown>[] = [];
  return { ctx: { waitUntil: (p: Promise<unknown>) => void waits.push(p) }, settle: () => Promise.all(waits.splice(0)) };
}

describe('the isolate view (breaker-view)', () => {
  it('batches successes: one report for report_max_batch outcomes, the tail after report_interval_ms', async () => {
    const id = `v-${uid()}`;
    // The isolate's clock is passed in (`now`) where time must pass: no sleeps, no windows.
    const config = configFor([id], { report_max_batch: 10, report_interval_ms: 60_000 });
    const { env: e, calls } = recording();
    const { ctx, settle } = collector();
    reportOutcome(ctx, e, config, id, 'success'); // nothing sent lately: goes at once
    await settle();
    expect(calls.map((c) => c.arg.outcomes)).toEqual(['s']);
    for (let i = 0; i < 9; i++) reportOutcome(ctx, e, config, id, 'success');
    await settle();
    expect(calls).toHaveLength(1); // 9 waiting
    expect(breakerView(id)!.pending).toBe('sssssssss');
    reportOutcome(ctx, e, config, id, 'success'); // the 10th: one RPC carries the batch
    await settle();
    expect(calls.map((c) => c.arg.outcomes)).toEqual(['s', 'ssssssssss']);
    expect(calls[1]!.arg).toMatchObject({ backend: id, settings: { report_max_batch: 10 } });

    // A tail of successes waits for later traffic: refreshBreakers sends it once the interval passed.
    reportOutcome(ctx, e, config, id, 'success');
    reportOutcome(ctx, e, config, id, 'ignore'); // the client's own 4xx: not reported
    refreshBreakers(e, ctx, config);
    await settle();
    expect(calls).toHaveLength(2);
    refreshBreakers(e, ctx, config, Date.now() + 60_001);
    await settle();
    expect(calls.filter((c) => c.method === 'report').map((c) => c.arg.outcomes)).toEqual(['s', 'ssssssssss', 's']);
  });

  it('a failure goes out without waiting for a batch, one report in flight at a time; the reply updates the copy', async () => {
    const id = `v-${uid()}`;
    const config = configFor([id], { consecutive_failures: 3, report_interval_ms: 60_000 });
    const { env: e, calls, release } = recording({ hold: true });
    const { ctx, settle } = collector();
    reportOutcome(ctx, e, config, id, 'failure', { cause: 'HTTP 503' });
    await until('the failure sent', () => calls.map((c) => c.arg.outcomes), (x) => x.length > 0);
    expect(calls.map((c) => c.arg.outcomes)).toEqual(['f']); // sent, answer held back
    reportOutcome(ctx, e, config, id, 'success');
    reportOutcome(ctx, e, config, id, 'failure');
    reportOutcome(ctx, e, config, id, 'failure', { cause: 'timed out (first token)' });
    // Even past the failure gap (by the clock passed in), nothing more goes while one is in flight.
    reportOutcome(ctx, e, config, id, 'failure', { now: Date.now() + FAILURE_FLUSH_MS + 20 });
    refreshBreakers(e, ctx, config, Date.now() + FAILURE_FLUSH_MS + 20);
    expect(calls).toHaveLength(1); // still one in flight: the rest waits for it
    expect(breakerAllows(id)).toBe('closed');
    const releasing = setInterval(release, 5);
    await settle();
    clearInterval(releasing);
    expect(calls.map((c) => c.arg.outcomes)).toEqual(['f', 'sfff']);
    expect(calls[1]!.arg.cause).toBe('timed out (first token)');
    // The object tripped on the third failure in a row, and said so in its reply.
    expect(breakerView(id)).toMatchObject({ state: 'open', pending: '' });
    expect(breakerAllows(id)).toBe('open');
  });

  it('skips an open breaker without any call, sees it half-open when the cool-down ends, and refreshes in the background', async () => {
    const id = `v-${uid()}`;
    // The view's clock is passed in where "not yet" is checked; real time passes only where the
    // object must agree (the cool-down's end), waited on as an event.
    const config = configFor([id], { consecutive_failures: 1, cooldown_ms: 150, refresh_ms: 60_000 });
    const { env: e, calls } = recording();
    const { ctx, settle } = collector();
    reportOutcome(ctx, e, config, id, 'failure');
    await settle();
    expect(calls).toHaveLength(1);
    const view = breakerView(id)!;
    for (let i = 1; i <= 100; i++) expect(breakerAllows(id, view.openUntil - i)).toBe('open');
    refreshBreakers(e, ctx, config, view.openUntil - 1); // the copy is fresh: nothing to ask
    await settle();
    expect(calls).toHaveLength(1);
    // The cool-down ends by this isolate's own clock: half-open, still without a call.
    expect(breakerAllows(id, view.openUntil)).toBe('half-open');
    await until('the cool-down over', () => breakerAllows(id), (s) => s === 'half-open');
    refreshBreakers(e, ctx, config, view.fetchedAt + 60_000 - 1);
    await settle();
    expect(calls).toHaveLength(1);
    // Older than refresh_ms: re-read in the background, once.
    refreshBreakers(e, ctx, config, view.fetchedAt + 60_001);
    refreshBreakers(e, ctx, config, view.fetchedAt + 60_002);
    await settle();
    expect(calls.map((c) => c.method)).toEqual(['report', 'state']);
    expect(breakerView(id)!.state).toBe('half-open'); // the object agrees
  });

  it('another isolate’s trip reaches this one within refresh_ms', async () => {
    const id = `v-${uid()}`;
    const config = configFor([id], { consecutive_failures: 2, refresh_ms: 5_000 });
    const { ctx, settle } = collector();
    expect(breakerAllows(id)).toBe('closed'); // consulted: kept fresh from now on
    refreshBreakers(env, ctx, config);
    await settle();
    // "Elsewhere": straight to the object.
    await ns.get(ns.idFromName(id)).report({ backend: id, settings: breakerSettings(config, id), outcomes: 'ff' });
    expect(breakerAllows(id)).toBe('closed');
    const fetchedAt = breakerView(id)!.fetchedAt;
    refreshBreakers(env, ctx, config, fetchedAt + 4_999); // not yet refresh_ms old: not re-read
    await settle();
    expect(breakerAllows(id)).toBe('closed');
    refreshBreakers(env, ctx, config, fetchedAt + 5_000);
    await settle();
    expect(breakerAllows(id)).toBe('open');
  });

  it('probe permits: one hop only when half-open; the permit is settled at once; a denial is remembered', async () => {
    const id = `v-${uid()}`;
    const config = configFor([id], { consecutive_failures: 1, cooldown_ms: 300, close_after_successes: 2 });
    const { env: e, calls } = recording();
    const { ctx, settle } = collector();
    reportOutcome(ctx, e, config, id, 'failure');
    await settle();
    await until('the cool-down over', () => breakerAllows(id), (s) => s === 'half-open');
    const permit = await acquireProbe(e, config, id, { leaseMs: 5_000 });
    expect(permit).toMatchObject({ backend: id, id: expect.any(String) });
    // This isolate holds the one probe allowed: others here skip the backend without asking.
    expect(breakerAllows(id)).toBe('open');
    // Another isolate (a fresh view) asks and is denied; it then skips without asking for a while.
    resetIsolate('breaker-view');
    expect(breakerAllows(id)).toBe('closed'); // a fresh isolate knows nothing yet …
    refreshBreakers(e, ctx, config);
    await settle();
    expect(breakerAllows(id)).toBe('half-open'); // … until its first refresh
    expect(await acquireProbe(e, config, id)).toBeNull();
    const n = calls.length;
    expect(breakerAllows(id)).toBe('open');
    expect(breakerAllows(id, Date.now() + PROBE_DENIED_MS + 1)).toBe('half-open');
    expect(calls).toHaveLength(n);

    // Settling is immediate (not batched): two successes close it.
    reportOutcome(ctx, e, config, id, 'success', { probe: permit as { backend: string; id: string } });
    await settle();
    expect(calls.at(-1)).toMatchObject({ method: 'settleProbe', arg: { outcome: 'success' } });
    const second = await acquireProbe(e, config, id);
    expect(second).not.toBeNull();
    reportOutcome(ctx, e, config, id, 'success', { probe: second as { backend: string; id: string } });
    await settle();
    expect(breakerAllows(id)).toBe('closed');
    expect(await acquireProbe(e, config, id)).toBe('closed'); // nothing to probe: go ahead
  });

  it('does nothing for a backend whose breaker is disabled', async () => {
    const id = `v-${uid()}`;
    const config = configFor([id], { enabled: false, consecutive_failures: 1 });
    const { env: e, calls } = recording();
    const { ctx, settle } = collector();
    for (let i = 0; i < 5; i++) reportOutcome(ctx, e, config, id, 'failure');
    refreshBreakers(e, ctx, config);
    await settle();
    expect(calls).toHaveLength(0);
    expect(breakerAllows(id)).toBe('closed');
  });
});

// ---------------------------------------------------------------- admin API


describe('/admin/breakers', () => {
  it('lists every configured backend: state, window counts, consecutive failures, opened_until, trips, transitions', async () => {
    const [a, b] = [`adm-${uid()}-a`, `adm-${uid()}-b`];
    const cfg = baseConfig();
    cfg.backends.push(
      { id: a, kind: 'vllm', region: 'us-east', url: 'http://127.0.0.1:9', models: ['llama-3.1-8b'], breaker: { consecutive_failures: 3 } },
      { id: b, kind: 'vllm', region: 'us-east', url: 'http://127.0.0.1:9', models: ['llama-3.1-8b'] },
    );
    const e = envWith(cfg);
    const s = compileConfig(cfg);
    if (!s.ok) throw new Error(s.errors.join('; '));
    await ns.get(ns.idFromName(a)).report({ backend: a, settings: breakerSettings(s.config, a), outcomes: 'sfff', cause: 'HTTP 503' } satisfies ReportBatch);

    expect((await call('/admin/breakers', { env: e })).status).toBe(401);
    const res = await admin('/admin/breakers', { env: e });
    expect(res.status).toBe(200);
    const list = (await res.json()) as { object: string; data: any[] };
    expect(list.object).toBe('list');
    expect(list.data.map((d) => d.backend)).toEqual(cfg.backends.map((x: { id: string }) => x.id));
    const open = list.data.find((d) => d.backend === a);
    expect(open).toMatchObject({
      object: 'breaker',
      state: 'open',
      enabled: true,
      window: { window_ms: 60_000, requests: 4, failures: 3 },
      consecutive_failures: 3,
      trips: 1,
      opened_until: expect.any(String),
      settings: { consecutive_failures: 3 },
    });
    expect(Date.parse(open.opened_until) - Date.now()).toBeGreaterThan(25_000);
    expect(open.transitions).toEqual([{ at: expect.any(String), from: 'closed', to: 'open', cause: '3 consecutive failures (last: HTTP 503); open for 30 s' }]);
    expect(list.data.find((d) => d.backend === b)).toMatchObject({ state: 'closed', window: { requests: 0, failures: 0 }, trips: 0, transitions: [] });

    const one = await admin(`/admin/breakers/${a}`, { env: e });
    expect(((await one.json()) as any).state).toBe('open');

    // This isolate has seen it open; the reset closes it here at once.
    const { ctx, settle } = collector();
    reportOutcome(ctx, e, s.config, a, 'failure');
    await settle();
    expect(breakerAllows(a)).toBe('open');
    const reset = await admin(`/admin/breakers/${a}/reset`, { method: 'POST', env: e });
    expect(reset.status).toBe(200);
    const body = (await reset.json()) as any;
    expect(body).toMatchObject({ backend: a, state: 'closed', consecutive_failures: 0, window: { requests: 0, failures: 0 } });
    expect(body.transitions[0]).toMatchObject({ from: 'open', to: 'closed', cause: 'reset by admin' });
    expect(breakerAllows(a)).toBe('closed');

    const unknown = await admin('/admin/breakers/no-such-backend/reset', { method: 'POST', env: e });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({ code: 'backend_not_found', param: 'backend', type: 'not_found_error' });
    expect((await admin('/admin/breakers/no-such-backend', { env: e })).status).toBe(404);
  });
});

// ---------------------------------------------------------------- end to end

// NOTE: this block needs the breaker wired into routing (plan.ts drops open backends, execute.ts
// reports outcomes and takes probe permits, inference.ts calls refreshBreakers and passes ctx).
// It fails until that wiring is in; everything above runs without it.
describe('wired into routing', () => {
  const hi = [{ role: 'user', content: 'Say hello.' }];

  it('a backend failing 100% opens its breaker, traffic moves on with no failed request, and a probe closes it after recovery', async () => {
    const [sa, sb] = await Promise.all([spawnSim({ name: 'brk-a', models: ['m'] }), spawnSim({ name: 'brk-b', models: ['m'] })]);
    const [a, b] = [`e2e-${uid()}-a`, `e2e-${uid()}-b`];
    const cfg = {
      max_attempts: 3,
      // Without a location, regions are tried in config order: a first, then b.
      regions: [
        { id: 'first', latitude: 0, longitude: 0 },
        { id: 'second', latitude: 10, longitude: 10 },
      ],
      models: [{ id: 'm' }],
      backends: [
        { id: a, kind: 'vllm', region: 'first', url: sa.url, models: ['m'] },
        { id: b, kind: 'vllm', region: 'second', url: sb.url, models: ['m'] },
      ],
      tiers: { fast: { models: ['m'] } },
      tenants: { demo: { models: ['*'] } },
      // Short cool-downs for the test.
      // (Long enough that the five requests while open fit in one on a busy machine; the ends of the
      // cool-downs are waited on, not slept through.)
      breaker: { window_ms: 10_000, consecutive_failures: 3, cooldown_ms: 1_500, cooldown_max_ms: 6_000, close_after_successes: 3 },
    };
    const e = envWith(cfg);
    const key = (await createKey('demo', e)).key;
    const ask = async () => {
      const res = await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: e });
      expect(res.status).toBe(200); // never a failed client request
      expect(res.headers.get('x-router-degraded')).toBeNull();
      return res;
    };
    const breaker = async () => ((await (await admin(`/admin/breakers/${a}`, { env: e })).json()) as any);

    expect((await ask()).headers.get('x-router-backend')).toBe(a);

    // a fails every request: the fallback answers, and the breaker opens within its window.
    await sa.faults({ error_rate: 1, status: 503 });
    let asked = 0;
    while (breakerAllows(a) !== 'open') {
      const res = await ask();
      expect(res.headers.get('x-router-backend')).toBe(b);
      if (++asked > 10) throw new Error('the breaker did not open');
    }
    expect(asked).toBe(3);
    const opened = await breaker();
    expect(opened).toMatchObject({ state: 'open', trips: 1 });
    expect(opened.transitions[0].cause).toMatch(/^3 consecutive failures \(last: 503/);

    // Open: a is not even tried; every request goes straight to b in one attempt.
    const reached = (await sa.stats()).requests.chat;
    for (let i = 0; i < 5; i++) {
      const res = await ask();
      expect(res.headers.get('x-router-backend')).toBe(b);
      expect(res.headers.get('x-router-attempts')).toBe('1');
    }
    expect((await sa.stats()).requests.chat).toBe(reached);

    // Still failing when the cool-down ends: the probe fails (b answers), the cool-down doubles.
    await until('the cool-down over', () => breakerAllows(a), (s) => s === 'half-open');
    const probed = await ask();
    expect(probed.headers.get('x-router-fallback')).toBe(`${a}>${b}`);
    const reopened = await breaker();
    expect(reopened).toMatchObject({ state: 'open', trips: 2, cooldown_ms: 3_000 });
    expect(reopened.transitions[0].cause).toMatch(/^probe failed/);

    // a recovers; after the cool-down, probes go to a one at a time and three successes close it.
    await sa.faults({});
    await until('the doubled cool-down over', () => breakerAllows(a), (s) => s === 'half-open');
    for (let i = 0; i < 3; i++) {
      const res = await ask();
      expect(res.headers.get('x-router-backend')).toBe(a);
      expect(res.headers.get('x-router-attempts')).toBe('1');
    }
    const closed = await breaker();
    expect(closed.state).toBe('closed');
    expect(closed.transitions.slice(0, 2).map((t: any) => `${t.from}>${t.to}: ${t.cause}`)).toEqual([
      'half-open>closed: 3 probes succeeded',
      'open>half-open: cool-down of 3 s elapsed',
    ]);
    expect(breakerAllows(a)).toBe('closed');
    expect((await ask()).headers.get('x-router-backend')).toBe(a);
  });
});
