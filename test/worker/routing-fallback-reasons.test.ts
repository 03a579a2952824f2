import { beforeEach, describe, expect, it } from 'vitest';
import { resetIsolate } from '../../worker/isolate/registry';
import { breakerAllows } from '../../worker/routing/breaker-view';
import { isolateState } from '../../worker/routing/isolate-state';
import { compileConfig } from '../../worker/config/compiled';
import { noteLifecycle } from '../../worker/routing/backend-lifecycle-view';
import { planColdStarts } from '../../worker/routing/cold-start';
import { withColdPassedOver, type Candidate } from '../../worker/routing/plan';
import { spawnSim } from './sims';
import { chat, createKey, envWith } from './support';
import { uid } from '../support/uid';
import { until } from '../support/until';

// Issue 15 §3: when the nearest region's backends were skipped, x-router-fallback says which and
// why, before the path: "a(breaker-open)>b". Without a client location the nearest region is the
// first in config order.

const hi = [{ role: 'user', content: 'Say hello.' }];

async function twoRegions(extra: { a?: Record<string, unknown>; cfg?: Record<string, unknown> } = {}) {
  const [sa, sb] = await Promise.all([spawnSim({ name: 'why-a', models: ['m'] }), spawnSim({ name: 'why-b', models: ['m'] })]);
  const [a, b] = [`why-${uid()}-a`, `why-${uid()}-b`];
  const cfg = {
    max_attempts: 3,
    regions: [
      { id: 'near', latitude: 0, longitude: 0 },
      { id: 'far', latitude: 10, longitude: 10 },
    ],
    models: [{ id: 'm' }],
    backends: [
      { id: a, kind: 'vllm', region: 'near', url: sa.url, models: ['m'], ...extra.a },
      { id: b, kind: 'vllm', region: 'far', url: sb.url, models: ['m'] },
    ],
    tiers: { fast: { models: ['m'] } },
    tenants: { demo: { models: ['*'] }, pinned: { models: ['*'], allowed_regions: ['far'] } },
    breaker: { window_ms: 10_000, consecutive_failures: 3, cooldown_ms: 60_000, cooldown_max_ms: 120_000, close_after_successes: 3 },
    ...extra.cfg,
  };
  const e = envWith(cfg);
  const key = (await createKey('demo', e)).key;
  const ask = (k = key) => chat(k, { model: 'm', messages: hi, max_tokens: 2 }, { env: e });
  return { a, b, sa, e, key, ask };
}

beforeEach(() => resetIsolate());

describe('x-router-fallback says why the nearest region was skipped', () => {
  it('an open breaker: "a(breaker-open)>b"; a failed attempt keeps the plain path', async () => {
    const { a, b, sa, ask } = await twoRegions();
    const healthy = await ask();
    expect([healthy.headers.get('x-router-backend'), healthy.headers.get('x-router-fallback')]).toEqual([a, null]);
    await sa.faults({ error_rate: 1, status: 503 });
    const failedOver = await ask();
    expect(failedOver.headers.get('x-router-fallback')).toBe(`${a}>${b}`); // tried and failed: the path says it
    await until('the breaker open in this isolate', async () => (await ask(), breakerAllows(a)), (s) => s === 'open');
    const res = await ask();
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe(b);
    expect(res.headers.get('x-router-attempts')).toBe('1');
    expect(res.headers.get('x-router-fallback')).toBe(`${a}(breaker-open)>${b}`);
  });

  it('max_concurrency reached in this isolate: "a(max-concurrency)>b", and nothing once a has room', async () => {
    const { a, b, ask } = await twoRegions({ a: { max_concurrency: 1 } });
    const release = isolateState.begin(a);
    try {
      const res = await ask();
      expect(res.headers.get('x-router-backend')).toBe(b);
      expect(res.headers.get('x-router-fallback')).toBe(`${a}(max-concurrency)>${b}`);
    } finally {
      release();
    }
    const after = await ask();
    expect([after.headers.get('x-router-backend'), after.headers.get('x-router-fallback')]).toEqual([a, null]);
  });

  it('residency: a tenant kept out of the nearest region sees "a(residency)>b"; others are served nearby', async () => {
    const { a, b, e, ask } = await twoRegions();
    const pinnedKey = (await createKey('pinned', e)).key;
    const pinned = await ask(pinnedKey);
    expect(pinned.headers.get('x-router-backend')).toBe(b);
    expect(pinned.headers.get('x-router-fallback')).toBe(`${a}(residency)>${b}`);
    const other = await ask();
    expect([other.headers.get('x-router-backend'), other.headers.get('x-router-fallback')]).toEqual([a, null]);
  });

  it('this isolate\'s failure memory, where breakers are off: "a(recent-failures)>b"', async () => {
    const { a, b, sa, ask } = await twoRegions({ cfg: { breaker: { enabled: false } } });
    await sa.faults({ error_rate: 1, status: 503 });
    await until('a skipped by this isolate', async () => (await ask(), isolateState.usable(a)), (u) => !u);
    const res = await ask();
    expect(res.headers.get('x-router-backend')).toBe(b);
    expect(res.headers.get('x-router-fallback')).toBe(`${a}(recent-failures)>${b}`);
  });
});

describe('withColdPassedOver', () => {
  const backend = (id: string, region: string) => ({ id, region }) as unknown as Candidate['backend'];
  const cand = (id: string, region: string, extra: Partial<Candidate> = {}): Candidate =>
    ({ backend: backend(id, region), model: { id: 'm' }, tier: 'fast', reason: 'single', ...extra }) as Candidate;

  it('a candidate outside the nearest region ahead of a cold nearest one passed over it ("cold"), once', () => {
    const out = withColdPassedOver(
      [cand('b', 'far', { passedOver: [{ backendId: 'a2', reason: 'breaker-open' }] }), cand('a', 'near', { coldStartWaitMs: 30_000 }), cand('c', 'other')],
      'near',
    );
    expect(out[0]!.passedOver).toEqual([
      { backendId: 'a2', reason: 'breaker-open' },
      { backendId: 'a', reason: 'cold' },
    ]);
    expect(out[1]!.passedOver).toBeUndefined();
    expect(out[2]!.passedOver).toBeUndefined(); // after the cold one: it did not pass over it
  });

  it('with cold-start planning: a cold nearest backend avoided for a tight deadline is named "cold" on the warm one', () => {
    const [cold, warm] = [`c-${uid()}`, `w-${uid()}`];
    const r = compileConfig({
      regions: [{ id: 'near', latitude: 0, longitude: 0 }, { id: 'far', latitude: 0, longitude: 10 }],
      models: [{ id: 'm' }],
      backends: [
        { id: cold, kind: 'vllm', region: 'near', url: 'http://127.0.0.1:9', models: ['m'], cold_start_ms: 600 },
        { id: warm, kind: 'vllm', region: 'far', url: 'http://127.0.0.1:9', models: ['m'] },
      ],
      tiers: { fast: { models: ['m'] } },
      tenants: { demo: { models: ['*'] } },
    });
    if (!r.ok) throw new Error(r.errors.join('; '));
    const cfg = r.config;
    noteLifecycle(cold, { backend: null, state: 'cold', since: Date.now(), last_request_at: null, in_flight: 0, rate_per_min: 0, pending_wakeups: 0, wakeup_requested_at: null, observed: [], expected_ms: 600, replicas: null, version: 100, at: Date.now() });
    const candidates: Candidate[] = [cold, warm].map((id) => ({ backend: cfg.backends.get(id)!, model: cfg.modelsByName.get('m')!, tier: 'fast', reason: 'single' }));
    const work: Promise<unknown>[] = [];
    const plan = planColdStarts({ config: cfg, env: {}, ctx: { waitUntil: (p: Promise<unknown>) => void work.push(p) }, candidates, deadline: Date.now() + 800, stream: false });
    expect(plan.avoided).toBe(true);
    const out = withColdPassedOver(plan.candidates, 'near');
    expect(out.map((c) => c.backend.id)).toEqual([warm, cold]);
    expect(out[0]!.passedOver).toEqual([{ backendId: cold, reason: 'cold' }]);
  });

  it('a cold nearest candidate still first (waited for) is not a skip', () => {
    const list = [cand('a', 'near', { coldStartWaitMs: 5_000 }), cand('b', 'far')];
    expect(withColdPassedOver(list, 'near')[1]!.passedOver).toBeUndefined();
  });
});
