import { beforeEach, describe, expect, it } from 'vitest';
import type { CacheStore, Clock } from '../store';

export interface StoreContractOptions {
  /** Also check expiry against the real clock (waits a little over a second). */
  realTimeExpiry?: boolean;
}

/**
 * The contract every CacheStore adapter passes (in the manner of Hono's cache adapters): call it
 * from a test file with a factory; it registers the tests. The factory gets the clock the store
 * must use (tests move it to expire entries) and should give each call a fresh namespace or
 * store; keys here are random per run anyway.
 */
export function cacheStoreContract(name: string, factory: (ctx: { now: Clock }) => CacheStore | Promise<CacheStore>, opts: StoreContractOptions = {}) {
  describe(`CacheStore contract: ${name}`, () => {
    let clock = 0;
    const now = () => clock;
    let store: CacheStore;
    let run = '';
    const k = (s: string) => `${run}:${s}`;

    beforeEach(async () => {
      clock = Date.now();
      run = `contract-${crypto.randomUUID()}`;
      store = await factory({ now });
    });

    it('round-trips a value, with the time it was stored', async () => {
      await store.put(k('a'), 'hello', 60);
      expect(await store.get(k('a'))).toEqual({ value: 'hello', storedAt: clock, expiresAt: clock + 60_000 });
    });

    it('misses a key never stored', async () => {
      expect(await store.get(k('never'))).toBeNull();
    });

    it('expires an entry after its TTL (injected clock)', async () => {
      await store.put(k('ttl'), 'v', 60);
      clock += 59_000;
      expect((await store.get(k('ttl')))?.value).toBe('v');
      clock += 1_001;
      expect(await store.get(k('ttl'))).toBeNull();
    });

    if (opts.realTimeExpiry) {
      it('expires an entry after its TTL (real clock: the backend drops it too)', async () => {
        const real = await factory({ now: Date.now });
        await real.put(k('rt'), 'v', 1);
        expect((await real.get(k('rt')))?.value).toBe('v');
        await new Promise((r) => setTimeout(r, 1_100));
        expect(await real.get(k('rt'))).toBeNull();
      });
    }

    it('overwrites: the last put wins, with its own time and TTL', async () => {
      await store.put(k('o'), 'first', 5);
      clock += 3_000;
      await store.put(k('o'), 'second', 60);
      expect(await store.get(k('o'))).toEqual({ value: 'second', storedAt: clock, expiresAt: clock + 60_000 });
      clock += 10_000; // past the first TTL, within the second
      expect((await store.get(k('o')))?.value).toBe('second');
    });

    it('deletes; deleting a missing key is fine', async () => {
      await store.put(k('d'), 'v', 60);
      await store.delete(k('d'));
      expect(await store.get(k('d'))).toBeNull();
      await expect(store.delete(k('d'))).resolves.toBeUndefined();
    });

    it('holds large values (1 MiB, multi-byte) and odd ones exactly', async () => {
      const big = 'ab€😀'.repeat(1024 * 1024 / 10);
      await store.put(k('big'), big, 60);
      expect((await store.get(k('big')))?.value).toBe(big);
      for (const [i, v] of ['', '1:2:3', 'line\nbreak\r\n', '{"json":[1,"x"]}', ' padded ', 'OK'].entries()) {
        await store.put(k(`odd${i}`), v, 60);
        expect((await store.get(k(`odd${i}`)))?.value).toBe(v);
      }
    });

    it("keeps two tenants' entries apart", async () => {
      const hash = 'f'.repeat(64);
      await store.put(k(`exact:tenant-a:${hash}`), 'answer for a', 60);
      await store.put(k(`exact:tenant-b:${hash}`), 'answer for b', 60);
      expect((await store.get(k(`exact:tenant-a:${hash}`)))?.value).toBe('answer for a');
      expect((await store.get(k(`exact:tenant-b:${hash}`)))?.value).toBe('answer for b');
      await store.delete(k(`exact:tenant-a:${hash}`));
      expect((await store.get(k(`exact:tenant-b:${hash}`)))?.value).toBe('answer for b');
    });

    it('maps distinct keys to distinct entries (no escaping collisions)', async () => {
      const keys = ['a/b', 'a%2Fb', 'a%252Fb', 'a b', 'a+b', 'A/B', 'a:b', 'a::b', 'ü', 'u\u0308', 'a?b', 'a#b', '../x', 'a\\b'];
      for (const [i, key] of keys.entries()) await store.put(k(key), `v${i}`, 60);
      for (const [i, key] of keys.entries()) expect((await store.get(k(key)))?.value).toBe(`v${i}`);
    });

    it('refuses a TTL that is not a whole number of seconds ≥ 1', async () => {
      await expect(store.put(k('bad'), 'v', 0)).rejects.toThrow(RangeError);
      await expect(store.put(k('bad'), 'v', 1.5)).rejects.toThrow(RangeError);
    });
  });
}
