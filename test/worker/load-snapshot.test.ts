import {
  createExecutionContext,
  env as testEnv,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  waitOnExecutionContext,
} from 'cloudflare:test';
import { beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { IDLE_INTERVALS, SCRAPE_TIMEOUT_MS, scrapeOne, type BackendMetrics } from '../../durable-objects/backend-metrics';
import type { LoadSnapshot, ScrapeTarget } from '../../worker/protocol/backend-metrics';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { resetIsolate } from '../../worker/isolate/registry';
import { backendLoad, refreshLoad } from '../../worker/routing/load-snapshot';
import { FAST, spawnSim, type Sim } from './sims';
import { baseConfig } from './support';
import { until } from '../support/until';

const env = testEnv as unknown as Env;
const ns = env.BACKEND_METRICS;
/** A Durable Object of this test's own (the router's is "global"). */
const freshStub = () => ns.get(ns.idFromName(`test-${crypto.randomUUID()}`));

/** What the object keeps privately, reached through runInDurableObject. */
interface Internals {
  last: LoadSnapshot | null;
  lastAskedAt: number;
  targets(): ScrapeTarget[];
}
const internals = (o: BackendMetrics) => o as unknown as Internals;

const INTERVAL = 60_000; // long enough that no alarm fires by itself during a test

let idle: Sim;
let busy: Sim;
let targets: ScrapeTarget[];

/**
 * Long streamed generations held open at the simulator until stopped. Started inside each test:
 * workerd cancels a test's outbound requests when the test (its request context) ends.
 */
async function makeBusy(sim: Sim, n: number): Promise<() => void> {
  // The previous test's requests are aborted when it ends, but the simulator may still count them
  // for a moment: counted here, they would pass the check below and then vanish (a flake under load).
  await until('the simulator to drop the previous requests', async () => {
    const s = await sim.stats();
    return s.running + s.waiting === 0;
  });
  const ctrl = new AbortController();
  for (let i = 0; i < n; i++) {
    fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sim-model', messages: [{ role: 'user', content: `Count to a thousand, #${i}.` }], max_tokens: 2000, ignore_eos: true, stream: true }),
      signal: ctrl.signal,
    }).catch(() => undefined);
  }
  await until('the simulator to hold the requests', async () => {
    const s = await sim.stats();
    return s.running + s.waiting >= n;
  });
  return () => ctrl.abort();
}

function configWith(routing: Record<string, number>): CompiledConfig {
  const result = compileConfig({ ...baseConfig(), routing });
  if (!result.ok) throw new Error(result.errors.join('; '));
  return result.config;
}

beforeAll(async () => {
  [idle, busy] = await Promise.all([
    spawnSim({ name: 'metrics-idle', latency: FAST }),
    // Two sequences at a time, one token every 200 ms: three requests = 2 running + 1 waiting for minutes.
    spawnSim({ name: 'metrics-busy', latency: { ...FAST, itl_ms: 200, max_num_seqs: 2 } }),
  ]);
  targets = [
    { id: 'idle', url: idle.url, kind: 'vllm' },
    { id: 'busy', url: `${busy.url}/`, kind: 'vllm' },
  ];
});

describe('BackendMetrics Durable Object', () => {
  it('scrapes every backend and shows the busy one busier; failures are entries, not throws', async () => {
    const stopLoad = await makeBusy(busy, 3);
    onTestFinished(stopLoad);
    const stub = freshStub();
    await stub.configure({
      backends: [
        ...targets,
        { id: 'down', url: 'http://127.0.0.1:1', kind: 'vllm' },
        { id: 'not-trtllm', url: idle.url, kind: 'trtllm' },
      ],
      scrape_interval_ms: INTERVAL,
    });
    const snap = await stub.snapshot();
    expect(Object.keys(snap.backends).sort()).toEqual(['busy', 'down', 'idle', 'not-trtllm']);
    expect(snap.backends.idle).toMatchObject({ running: 0, waiting: 0, kvCacheUsage: 0 });
    expect(snap.backends.busy).toMatchObject({ running: 2, waiting: 1 });
    expect((snap.backends.busy as { kvCacheUsage: number }).kvCacheUsage).toBeGreaterThan(0);
    expect(snap.backends.down).toMatchObject({ error: expect.any(String), scrapedAt: expect.any(Number) });
    expect(snap.backends['not-trtllm']).toMatchObject({ error: 'no load metrics in the /metrics answer' });
    // (No second read of the simulator's own gauge here: the held streams are outbound requests
    // of this test's context, which workerd may cut once the DO call returns; the snapshot above
    // already is that gauge, read by the object.)
    await runInDurableObject(stub, (_, state) => state.storage.deleteAlarm());
  });

  it('without configure(), scrapes the backends of its own env.ROUTER, with their secrets', async () => {
    const list = await runInDurableObject(freshStub(), (o: BackendMetrics) => internals(o).targets());
    const cfg = baseConfig();
    expect(list.map((t) => t.id)).toEqual(cfg.backends.map((b: { id: string }) => b.id));
    const trt = list.find((t) => t.kind === 'trtllm')!;
    expect(trt).toMatchObject({ auth_header: 'authorization', secret: 'test-backend-key' });
    expect(list.find((t) => t.kind === 'vllm')!.secret).toBeUndefined();
  });

  it('runs on an alarm, stops after IDLE_INTERVALS idle intervals, restarts on the next snapshot()', async () => {
    const stopLoad = await makeBusy(busy, 3);
    onTestFinished(stopLoad);
    const stub = freshStub();
    await stub.configure({ backends: targets, scrape_interval_ms: INTERVAL });
    const alarm = () => runInDurableObject(stub, (_, state) => state.storage.getAlarm());
    const held = () => runInDurableObject(stub, (o: BackendMetrics) => internals(o).last);

    expect(await alarm()).toBeNull();
    const first = await stub.snapshot(); // nothing held yet: scrapes before answering
    expect(first.backends.busy).toMatchObject({ running: 2 });
    expect(await alarm()).toBeGreaterThan(first.takenAt);

    // The alarm scrapes and schedules the next one.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const second = (await held())!;
    expect(second.takenAt).toBeGreaterThanOrEqual(first.takenAt);
    expect(second.backends.idle).toMatchObject({ running: 0 });
    expect(await alarm()).not.toBeNull();

    // Nobody asked for IDLE_INTERVALS intervals: one more scrape, then no next alarm.
    await runInDurableObject(stub, (o: BackendMetrics) => {
      internals(o).lastAskedAt = Date.now() - (IDLE_INTERVALS + 1) * INTERVAL;
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await alarm()).toBeNull();
    expect(await runDurableObjectAlarm(stub)).toBe(false);
    const lastScraped = (await held())!;

    // The next snapshot() restarts it, answering from memory since what it holds is fresh.
    const third = await stub.snapshot();
    expect(third.takenAt).toBe(lastScraped.takenAt);
    expect(await alarm()).not.toBeNull();

    // Held for more than two intervals: scraped once before answering.
    await runInDurableObject(stub, (o: BackendMetrics) => {
      internals(o).last!.takenAt = Date.now() - 3 * INTERVAL;
    });
    const fourth = await stub.snapshot();
    expect(fourth.takenAt).toBeGreaterThan(Date.now() - INTERVAL);

    // A restarted object answers with the last snapshot from SQLite, and keeps its targets.
    await evictDurableObject(stub);
    const restored = await runInDurableObject(stub, (o: BackendMetrics) => ({ last: internals(o).last, targets: internals(o).targets() }));
    expect(restored.last).toEqual(fourth);
    expect(restored.targets.map((t) => t.id)).toEqual(['idle', 'busy']);
    expect(await stub.snapshot()).toEqual(fourth);
    await runInDurableObject(stub, (_, state) => state.storage.deleteAlarm());
  });
});

describe('scrapeOne', () => {
  const trtBody = JSON.stringify([{ iter: 9, numActiveRequests: 4, numQueuedRequests: 2, kvCacheStats: { maxNumBlocks: 100, usedNumBlocks: 30, freeNumBlocks: 70 } }]);

  it("sends the backend's key like the adapter does and reads trtllm-serve's JSON", async () => {
    const seen: { url: string; headers: Headers }[] = [];
    const fake = (async (input: RequestInfo | URL, init?: RequestInit) => {
      seen.push({ url: String(input), headers: new Headers(init?.headers) });
      return new Response(trtBody, { headers: { 'content-type': 'application/json' } });
    }) as typeof fetch;
    const bearer = await scrapeOne({ id: 't', url: 'http://127.0.0.1:9/base/', kind: 'trtllm', secret: 's3cret' }, fake);
    expect(bearer).toMatchObject({ running: 4, waiting: 2, kvCacheUsage: 0.3 });
    expect(seen[0]!.url).toBe('http://127.0.0.1:9/base/metrics');
    expect(seen[0]!.headers.get('authorization')).toBe('Bearer s3cret');
    await scrapeOne({ id: 't', url: 'http://127.0.0.1:9', kind: 'trtllm', auth_header: 'x-api-key', secret: 's3cret' }, fake);
    expect(seen[1]!.headers.get('x-api-key')).toBe('s3cret');
    expect(seen[1]!.headers.get('authorization')).toBeNull();
  });

  it('turns HTTP errors, huge bodies and timeouts into error entries', async () => {
    const status = await scrapeOne({ id: 'x', url: 'http://127.0.0.1:9', kind: 'vllm' }, (async () => new Response('no', { status: 401 })) as typeof fetch);
    expect(status).toMatchObject({ error: 'HTTP 401 from /metrics' });
    const huge = await scrapeOne(
      { id: 'x', url: 'http://127.0.0.1:9', kind: 'vllm' },
      (async () => new Response('x', { headers: { 'content-length': String(64 * 1024 * 1024) } })) as typeof fetch,
    );
    expect(huge).toMatchObject({ error: expect.stringContaining('larger than') });
    const started = Date.now();
    const hung = await scrapeOne({ id: 'x', url: 'http://127.0.0.1:9', kind: 'vllm' }, ((_: unknown, init?: RequestInit) =>
      new Promise((_resolve, reject) => init!.signal!.addEventListener('abort', () => reject(init!.signal!.reason)))) as typeof fetch);
    expect(hung).toMatchObject({ error: `timeout after ${SCRAPE_TIMEOUT_MS} ms` });
    expect(Date.now() - started).toBeLessThan(SCRAPE_TIMEOUT_MS + 1_000);
  });
});

describe('the isolate view (load-snapshot)', () => {
  beforeEach(() => resetIsolate());

  it('refreshLoad returns at once; the waitUntil promise fills the snapshot; stale entries are ignored', async () => {
    const config = configWith({ scrape_interval_ms: 1_000, load_stale_ms: 5_000 });
    const waits: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void waits.push(p) };
    const answers: { resolve: (s: LoadSnapshot) => void; reject: (e: Error) => void }[] = [];
    const fakeNs = {
      idFromName: (name: string) => name,
      get: (name: string) => ({
        snapshot: () => {
          expect(name).toBe('global');
          return new Promise<LoadSnapshot>((resolve, reject) => answers.push({ resolve, reject }));
        },
      }),
    };
    const e = { ...env, BACKEND_METRICS: fakeNs } as unknown as Env;
    const t0 = 1_000_000;

    expect(refreshLoad(e, ctx, config, t0)).toBeUndefined(); // synchronous, nothing to await
    expect(waits).toHaveLength(1);
    expect(answers).toHaveLength(1);
    expect(backendLoad('a', t0)).toBeUndefined();
    refreshLoad(e, ctx, config, t0 + 2_000); // one in flight already: no second call
    expect(answers).toHaveLength(1);

    const a = { running: 3, waiting: 1, kvCacheUsage: 0.5, scrapedAt: t0 };
    answers[0]!.resolve({ takenAt: t0, backends: { a, b: { error: 'HTTP 503 from /metrics', scrapedAt: t0 } } });
    await Promise.all(waits);
    expect(backendLoad('a', t0 + 100)).toEqual(a);
    expect(backendLoad('b', t0 + 100)).toBeUndefined(); // a failed scrape is no load
    expect(backendLoad('constructor', t0 + 100)).toBeUndefined();
    expect(backendLoad('a', t0 + 5_000)).toEqual(a);
    expect(backendLoad('a', t0 + 5_001)).toBeUndefined(); // older than load_stale_ms

    // The next refresh waits one interval after the last one started; a failure is logged, not thrown.
    refreshLoad(e, ctx, config, t0 + 500);
    expect(answers).toHaveLength(1);
    refreshLoad(e, ctx, config, t0 + 1_000);
    expect(answers).toHaveLength(2);
    answers[1]!.reject(new Error('Durable Object reset'));
    await expect(Promise.all(waits)).resolves.toBeDefined();
    expect(backendLoad('a', t0 + 1_100)).toEqual(a); // the last good snapshot stays
    refreshLoad(e, ctx, config, t0 + 1_500); // failures back off one interval too
    expect(answers).toHaveLength(2);
    refreshLoad(e, ctx, config, t0 + 2_000);
    expect(answers).toHaveLength(3);
  });

  it('end to end: the request returns before the Durable Object answers; the busy backend shows busier', async () => {
    const stopLoad = await makeBusy(busy, 3);
    onTestFinished(stopLoad);
    // The real BackendMetrics, under a name of this test's own instead of "global".
    const name = `test-e2e-${crypto.randomUUID()}`;
    await ns.get(ns.idFromName(name)).configure({ backends: targets, scrape_interval_ms: INTERVAL });
    const renamed = { idFromName: () => ns.idFromName(name), get: (id: DurableObjectId) => ns.get(id) };
    const e = { ...env, BACKEND_METRICS: renamed } as unknown as Env;

    const ctx = createExecutionContext();
    refreshLoad(e, ctx, configWith({ scrape_interval_ms: 1_000, load_stale_ms: 30_000 }));
    expect(backendLoad('busy')).toBeUndefined(); // nothing yet: refreshLoad did not wait
    await waitOnExecutionContext(ctx);
    const b = backendLoad('busy')!;
    const i = backendLoad('idle')!;
    expect(b.running + b.waiting).toBe(3);
    expect(i.running + i.waiting).toBe(0);
    expect(b.kvCacheUsage).toBeGreaterThan(i.kvCacheUsage);
    await runInDurableObject(ns.get(ns.idFromName(name)), (_, state) => state.storage.deleteAlarm());
  });
});
