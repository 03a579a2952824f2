import { Redis } from '@upstash/redis/cloudflare';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CacheApiStore } from '../../worker/cache/adapters/cache-api';
import { cacheStoreContract } from '../../worker/cache/adapters/contract';
import { FallbackStore } from '../../worker/cache/adapters/fallback';
import { MemoryStore } from '../../worker/cache/adapters/memory';
import { TieredStore } from '../../worker/cache/adapters/tiered';
import { UpstashStore } from '../../worker/cache/adapters/upstash';
import type { CacheStore } from '../../worker/cache/store';
import { UpstashHealth } from '../../worker/cache/upstash-health';
import { ownBridge, upstash } from './upstash-support';

const prefix = `test:${crypto.randomUUID()}:`;
const upstashStore = (now?: () => number, o: { url?: string; token?: string } = {}) =>
  new UpstashStore({ url: o.url ?? upstash().url, token: o.token ?? upstash().token, timeoutMs: 2_000, keyPrefix: prefix, ...(now ? { now } : {}) });

// The same contract against every adapter; Upstash's through the REST bridge to a real redis-server.
cacheStoreContract('Cache API (named cache)', ({ now }) => new CacheApiStore({ cacheName: 'contract', now }), { realTimeExpiry: true });
cacheStoreContract('Cache API (caches.default)', ({ now }) => new CacheApiStore({ cacheName: 'default', now }));
cacheStoreContract('Upstash Redis (bridge → redis-server)', ({ now }) => upstashStore(now), { realTimeExpiry: true });
cacheStoreContract('memory (isolate LRU)', ({ now }) => new MemoryStore({ maxBytes: 64 * 1024 * 1024, now }));
cacheStoreContract('tiered: memory → Cache API', ({ now }) => new TieredStore(new MemoryStore({ maxBytes: 64 * 1024 * 1024, now }), new CacheApiStore({ cacheName: 'tiered', now })));
cacheStoreContract('fallback wrapper, Upstash up', ({ now }) => new FallbackStore(upstashStore(now), new CacheApiStore({ now }), { url: upstash().url, component: 'contract', retryAfterMs: 0, health: new UpstashHealth() }));

describe('what each adapter asks of its backend', () => {
  it('Upstash: SET … EX ttl under the key prefix', async () => {
    await upstashStore().put('ex-check', 'v', 120);
    const raw = new Redis({ url: upstash().url, token: upstash().token, enableTelemetry: false });
    const ttl = await raw.ttl(`${prefix}ex-check`);
    expect(ttl).toBeGreaterThan(110);
    expect(ttl).toBeLessThanOrEqual(120);
    expect(await raw.exists('ex-check')).toBe(0);
  });

  it('Cache API: a synthetic URL per key and Cache-Control max-age', async () => {
    await new CacheApiStore({ cacheName: 'shape' }).put('tenant:a/b', 'v', 300);
    const res = await (await caches.open('shape')).match('https://cache.edge-router.internal/tenant%3Aa%2Fb');
    expect(res?.headers.get('cache-control')).toBe('public, max-age=300');
    expect(await res?.text()).toBe('v');
  });
});

/** Counts calls, so a test can tell which store answered. */
function counting(store: CacheStore) {
  const calls = { get: 0, put: 0, delete: 0 };
  const wrapped: CacheStore = {
    name: store.name,
    get: (k) => (calls.get++, store.get(k)),
    put: (k, v, t) => (calls.put++, store.put(k, v, t)),
    delete: (k) => (calls.delete++, store.delete(k)),
  };
  return { store: wrapped, calls };
}

describe('fallback when Upstash is unreachable', () => {
  afterEach(() => vi.restoreAllMocks());

  it('an Upstash URL on a closed port: the embedded store serves, logged once per interval, counted', async () => {
    const bridge = await ownBridge();
    await bridge.stop(); // nothing listens on its port now
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const health = new UpstashHealth();
    const primary = counting(upstashStore(undefined, bridge));
    const embedded = new CacheApiStore({ cacheName: 'fallback-closed' });
    let clock = Date.now();
    const store = new FallbackStore(primary.store, embedded, { url: bridge.url, component: 'test-cache', retryAfterMs: 5_000, health, now: () => clock });

    await store.put('k', 'v', 60); // fails on Upstash → lands in the embedded store
    expect(await embedded.get('k')).toMatchObject({ value: 'v' });
    expect(await store.get('k')).toMatchObject({ value: 'v' }); // Upstash resting: not even tried
    expect(primary.calls).toEqual({ get: 0, put: 1, delete: 0 });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(JSON.parse(warn.mock.calls[0]![0] as string)).toMatchObject({ msg: expect.stringMatching(/upstash unavailable/), component: 'test-cache', op: 'put' });

    clock += 5_000; // retry window over: tried again, fails again, not logged again within the interval
    expect(await store.get('k')).toMatchObject({ value: 'v' });
    expect(primary.calls.get).toBe(1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(health.snapshot()).toEqual([
      { component: 'test-cache', op: 'get', errors: 1, fallbacks: 2 },
      { component: 'test-cache', op: 'put', errors: 1, fallbacks: 1 },
    ]);
    expect(health.fallbackCount('test-cache')).toBe(3);

    clock += health.logIntervalMs; // a new interval: logged again, with the count of unlogged failures
    await store.delete('k');
    expect(warn).toHaveBeenCalledTimes(2);
    expect(JSON.parse(warn.mock.calls[1]![0] as string)).toMatchObject({ op: 'delete', failures_not_logged: 1 });
    expect(await embedded.get('k')).toBeNull();
  });

  it('an Upstash that accepts and never answers: the call times out (timeout_ms) and the embedded store serves', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const bridge = await ownBridge();
    await bridge.hang();
    const health = new UpstashHealth();
    const embedded = new CacheApiStore({ cacheName: 'fallback-hang' });
    await embedded.put('k', 'embedded', 60);
    const slow = new UpstashStore({ url: bridge.url, token: bridge.token, timeoutMs: 150, keyPrefix: prefix });
    const store = new FallbackStore(slow, embedded, { url: bridge.url, component: 'hang', retryAfterMs: 5_000, health });
    const t0 = Date.now();
    expect(await store.get('k')).toMatchObject({ value: 'embedded' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(Date.now() - t0).toBeLessThan(1_500);
    const t1 = Date.now();
    expect(await store.get('k')).toMatchObject({ value: 'embedded' }); // resting: no second timeout
    expect(Date.now() - t1).toBeLessThan(100);
    expect(health.snapshot()).toEqual([{ component: 'hang', op: 'get', errors: 1, fallbacks: 2 }]);
    await bridge.start();
  });

  it('the bridge stopped mid-test: reads and writes keep working on the embedded store, and go back to Upstash once it is up', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const bridge = await ownBridge();
    const health = new UpstashHealth();
    const direct = upstashStore(undefined, bridge);
    const embedded = new CacheApiStore({ cacheName: 'fallback-midtest' });
    const store = new FallbackStore(upstashStore(undefined, bridge), embedded, { url: bridge.url, component: 'midtest', retryAfterMs: 0, health });

    await store.put('a', 'on upstash', 60);
    expect(await direct.get('a')).toMatchObject({ value: 'on upstash' });
    expect(await embedded.get('a')).toBeNull();

    await bridge.stop();
    expect(await store.get('a')).toBeNull(); // Upstash down: the embedded store answers (a miss), no error
    await store.put('b', 'during the outage', 60);
    expect(await embedded.get('b')).toMatchObject({ value: 'during the outage' });
    expect(health.fallbackCount('midtest')).toBe(2);

    await bridge.start();
    expect(await store.get('a')).toMatchObject({ value: 'on upstash' });
    await store.put('c', 'after', 60);
    expect(await direct.get('c')).toMatchObject({ value: 'after' });
    expect(health.fallbackCount('midtest')).toBe(2);
  });
});

describe('memory tier', () => {
  it('evicts the least recently used entries past its size, never one just read', async () => {
    const m = new MemoryStore({ maxBytes: 10_000 });
    const v = 'x'.repeat(1_000); // ~2 KB each with its key
    for (const k of ['a', 'b', 'c', 'd']) await m.put(k, v, 60);
    await m.get('a'); // a is now the most recently used
    await m.put('e', v, 60); // over 10 KB: b, the least recently used, goes
    expect(await m.get('b')).toBeNull();
    for (const k of ['a', 'c', 'd', 'e']) expect((await m.get(k))?.value).toBe(v);
    expect(m.size.bytes).toBeLessThanOrEqual(10_000);
  });

  it('does not keep an entry larger than a quarter of its size (one answer must not flush the rest)', async () => {
    const m = new MemoryStore({ maxBytes: 10_000 });
    await m.put('small', 'v', 60);
    await m.put('huge', 'y'.repeat(2_000), 60);
    expect(await m.get('huge')).toBeNull();
    expect((await m.get('small'))?.value).toBe('v');
  });

  it("tiered: a hot key is answered from memory without asking the shared store; the copy expires with the shared entry", async () => {
    let clock = Date.now();
    const now = () => clock;
    const shared = counting(new CacheApiStore({ cacheName: `tiered-${crypto.randomUUID()}`, now }));
    const otherIsolate = new TieredStore(new MemoryStore({ maxBytes: 1e6, now }), shared.store);
    await shared.store.put('k', 'answer', 30); // written by some other isolate
    expect((await otherIsolate.get('k'))?.value).toBe('answer');
    expect(shared.calls.get).toBe(1);
    expect((await otherIsolate.get('k'))?.value).toBe('answer');
    expect(shared.calls.get).toBe(1); // from memory
    clock += 30_001; // past the shared entry's TTL: the memory copy is gone too
    expect(await otherIsolate.get('k')).toBeNull();
    expect(shared.calls.get).toBe(2);
  });
});
