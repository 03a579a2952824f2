import { checkTtl, expiresAt, type CacheEntry, type CacheStore, type Clock } from '../store';

export interface MemoryStoreOptions {
  /** Total size of the values held (UTF-16 length × 2, roughly their heap cost). */
  maxBytes: number;
  now?: Clock;
}

/**
 * A bounded LRU in the isolate's memory: the fastest tier (no I/O at all). Written by hand
 * because it is twenty lines over a Map (which iterates in insertion order, so re-inserting
 * on access makes it an LRU) and a library would add weight to every Worker bundle.
 * Entries that alone exceed a quarter of the budget are not kept: one large answer must not
 * flush every small hot one.
 */
export class MemoryStore implements CacheStore {
  readonly name = 'memory';
  private readonly entries = new Map<string, CacheEntry>();
  private bytes = 0;
  private readonly now: Clock;

  constructor(private readonly opts: MemoryStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  async get(key: string): Promise<CacheEntry | null> {
    return this.getSync(key);
  }

  /** Synchronous read (the tiered store answers from memory without an await). */
  getSync(key: string): CacheEntry | null {
    const e = this.entries.get(key);
    if (!e) return null;
    this.entries.delete(key);
    if (!(e.expiresAt > this.now())) {
      this.bytes -= size(key, e);
      return null;
    }
    this.entries.set(key, e); // most recently used: last
    return e;
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    checkTtl(ttlSeconds);
    const now = this.now();
    this.keep(key, { value, storedAt: now, expiresAt: expiresAt(now, ttlSeconds) });
  }

  /** Keeps an entry as it is (a copy of a lower tier's, with that tier's times). */
  keep(key: string, entry: CacheEntry): void {
    this.drop(key);
    const n = size(key, entry);
    if (n > this.opts.maxBytes / 4 || !(entry.expiresAt > this.now())) return;
    this.entries.set(key, { value: entry.value, storedAt: entry.storedAt, expiresAt: entry.expiresAt });
    this.bytes += n;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.opts.maxBytes) break;
      this.entries.delete(k); // least recently used first
      this.bytes -= size(k, e);
    }
  }

  async delete(key: string): Promise<void> {
    this.drop(key);
  }

  /** For tests and metrics. */
  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  private drop(key: string) {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= size(key, e);
  }
}

const size = (key: string, e: CacheEntry) => (key.length + e.value.length) * 2 + 64;
