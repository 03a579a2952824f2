import { checkTtl, expiresAt, type CacheEntry, type CacheStore, type Clock } from '../store';

export interface CacheApiStoreOptions {
  /** A named cache (caches.open), or "default" for caches.default. Default "edge-router". */
  cacheName?: string;
  /** Origin of the synthetic URLs entries are keyed by. */
  baseUrl?: string;
  now?: Clock;
}

const STORED_AT = 'x-edge-router-stored-at';
const EXPIRES_AT = 'x-edge-router-expires-at';

/**
 * The embedded store: the Workers Cache API. Each entry is a Response keyed by a synthetic GET
 * URL, `https://cache.edge-router.internal/<encodeURIComponent(key)>` (injective: distinct keys,
 * distinct URLs), with `Cache-Control: max-age=<ttl>` so the cache drops it on time by itself.
 *
 * What the Cache API is and is not: per data centre (entries are not replicated: another
 * location misses), best effort (an entry may be evicted before its max-age; a cache is not a
 * database), and a no-op on workers.dev and in the dashboard preview: only a Worker on a custom
 * domain (or Upstash) caches for real. The expiry is also written into the entry and checked
 * on read, so an entry never outlives its TTL whatever the cache's own eviction does (and tests
 * can expire entries with an injected clock).
 *
 * The Cache object is opened once per store (so once per config in the isolate: stores.ts) and
 * reused by every request: a workerd Cache holds nothing but its name and takes the current
 * request's I/O context on each match/put/delete (workerd src/workerd/api/cache.c++), so unlike a
 * stream or a fetch() body it is not bound to the request that opened it. This saves a promise
 * and an await per call; the calls themselves are subrequests to the data centre's cache (I/O,
 * not CPU, on Cloudflare; under Miniflare a simulation on the same thread, README "Exact cache: CPU").
 */
export class CacheApiStore implements CacheStore {
  readonly name = 'cache-api';
  private readonly cacheName: string;
  private readonly baseUrl: string;
  private readonly now: Clock;

  constructor(opts: CacheApiStoreOptions = {}) {
    this.cacheName = opts.cacheName ?? 'edge-router';
    this.baseUrl = (opts.baseUrl ?? 'https://cache.edge-router.internal').replace(/\/$/, '');
    this.now = opts.now ?? Date.now;
  }

  private cache: Cache | null = null;

  /** The Cache, opened on first use (a failed open is not kept: the next call tries again). */
  private async open(): Promise<Cache> {
    return (this.cache ??= this.cacheName === 'default' ? caches.default : await caches.open(this.cacheName));
  }

  private url(key: string): string {
    return `${this.baseUrl}/${encodeURIComponent(key)}`;
  }

  async get(key: string): Promise<CacheEntry | null> {
    const cache = this.cache ?? (await this.open());
    const res = await cache.match(this.url(key));
    if (!res) return null;
    const storedAt = Number(res.headers.get(STORED_AT));
    const expires = Number(res.headers.get(EXPIRES_AT));
    if (!Number.isFinite(storedAt) || !(expires > this.now())) {
      await res.body?.cancel();
      return null;
    }
    return { value: await res.text(), storedAt, expiresAt: expires };
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    checkTtl(ttlSeconds);
    const now = this.now();
    const cache = this.cache ?? (await this.open());
    await cache.put(
      this.url(key),
      new Response(value, {
        headers: {
          'content-type': 'text/plain; charset=utf-8',
          'cache-control': `public, max-age=${ttlSeconds}`,
          [STORED_AT]: String(now),
          [EXPIRES_AT]: String(expiresAt(now, ttlSeconds)),
        },
      }),
    );
  }

  async delete(key: string): Promise<void> {
    const cache = this.cache ?? (await this.open());
    await cache.delete(this.url(key));
  }
}
