/**
 * The one storage interface behind the response caches, in the manner of Hono's cache
 * middleware adapters: a key-value store with a TTL, nothing more. Three adapters implement it
 * (adapters/cache-api.ts: the Workers Cache API, the embedded default; adapters/upstash.ts:
 * Upstash Redis; adapters/memory.ts: a bounded LRU in the isolate), adapters/fallback.ts wraps
 * the Upstash one so that an outage falls back to the embedded store, and adapters/tiered.ts
 * puts the isolate's memory in front of either. adapters/contract.ts is the shared test suite
 * every adapter passes.
 *
 * Values are strings (a serialized answer, UTF-8). Keys are opaque strings; an adapter must map
 * distinct keys to distinct entries (no escaping collisions). Callers put the tenant in the key.
 */
export interface CacheStore {
  /** "cache-api", "upstash", or "fallback(upstash→cache-api)": for logs. */
  readonly name: string;
  /** The entry, or null when absent or expired. Throws when the store cannot be reached. */
  get(key: string): Promise<CacheEntry | null>;
  /** Stores (or replaces) the entry for ttlSeconds (a whole number ≥ 1). */
  put(key: string, value: string, ttlSeconds: number): Promise<void>;
  delete(key: string): Promise<void>;
}

export interface CacheEntry {
  value: string;
  /** Epoch ms when it was stored (for the `age` header). */
  storedAt: number;
  /** Epoch ms when it expires (a tier above may keep a copy until then, not longer). */
  expiresAt: number;
}

/** A clock, injectable so that tests can expire entries without waiting. */
export type Clock = () => number;

/**
 * Expiry is kept in the entry as well as given to the backend (max-age, EX), and checked on
 * read: an entry never outlives its TTL, whatever the backend's own eviction does.
 */
export interface StoredEnvelope {
  storedAt: number;
  expiresAt: number;
}

export function expiresAt(now: number, ttlSeconds: number): number {
  return now + ttlSeconds * 1000;
}

export function checkTtl(ttlSeconds: number): number {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new RangeError(`cache TTL must be a whole number of seconds ≥ 1, got ${ttlSeconds}`);
  return ttlSeconds;
}
