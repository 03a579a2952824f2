import { checkTtl, type CacheEntry, type CacheStore, type Clock } from '../store';
import { upstashHealth, type UpstashHealth } from '../upstash-health';

export interface FallbackStoreOptions {
  /** The Upstash URL the primary talks to: health is tracked per URL. */
  url: string;
  /** Who is asking, for logs and counters ("exact-cache", …). */
  component: string;
  /** After a failure, the primary is not tried again for this long. */
  retryAfterMs: number;
  health?: UpstashHealth;
  now?: Clock;
}

/**
 * Upstash first, the embedded store when Upstash fails: a failed or timed-out call is served by
 * the fallback store for that request (the caller never sees the error), logged at most once
 * per interval, and counted (upstash-health.ts). For `retryAfterMs` after a failure the primary
 * is not even tried, so an outage costs one timeout, not one per request.
 *
 * The two stores are not kept in sync: entries written during an outage live in the embedded
 * store only, and once Upstash is back they are simply misses there.
 */
export class FallbackStore implements CacheStore {
  readonly name: string;
  private readonly health: UpstashHealth;
  private readonly now: Clock;

  constructor(
    private readonly primary: CacheStore,
    private readonly fallback: CacheStore,
    private readonly opts: FallbackStoreOptions,
  ) {
    this.name = `fallback(${primary.name}→${fallback.name})`;
    this.health = opts.health ?? upstashHealth;
    this.now = opts.now ?? Date.now;
  }

  get(key: string): Promise<CacheEntry | null> {
    return this.run('get', (s) => s.get(key));
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    checkTtl(ttlSeconds); // the caller's mistake, not an Upstash failure
    return this.run('put', (s) => s.put(key, value, ttlSeconds));
  }

  delete(key: string): Promise<void> {
    return this.run('delete', (s) => s.delete(key));
  }

  private async run<T>(op: string, call: (store: CacheStore) => Promise<T>): Promise<T> {
    const { url, component } = this.opts;
    if (this.health.available(url, this.now())) {
      try {
        const result = await call(this.primary);
        this.health.succeeded(url);
        return result;
      } catch (e) {
        this.health.failed(url, component, op, e, this.opts.retryAfterMs, this.now());
      }
    }
    this.health.fellBack(component, op);
    return call(this.fallback);
  }
}
