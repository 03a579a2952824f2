import type { CacheEntry, CacheStore } from '../store';
import type { MemoryStore } from './memory';

/**
 * The isolate's memory in front of a shared store (Cache API or Upstash): a hot answer is
 * served with no I/O at all, which matters because a lookup in the shared store costs a few
 * milliseconds on every miss and hit. Entries are immutable for their TTL (a deterministic
 * answer), so a copy in memory is as good as the shared one; it keeps the shared entry's
 * expiry, so it never outlives it. Writes go to both; a `no-cache` refresh replaces this
 * isolate's copy at once and other isolates' copies when they expire or are evicted.
 */
export class TieredStore implements CacheStore {
  readonly name: string;

  constructor(
    private readonly memory: MemoryStore,
    private readonly shared: CacheStore,
  ) {
    this.name = `tiered(memory→${shared.name})`;
  }

  async get(key: string): Promise<CacheEntry | null> {
    const hot = this.memory.getSync(key);
    if (hot) return hot;
    const found = await this.shared.get(key);
    if (found) this.memory.keep(key, found);
    return found;
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    await this.memory.put(key, value, ttlSeconds);
    await this.shared.put(key, value, ttlSeconds);
  }

  async delete(key: string): Promise<void> {
    await this.memory.delete(key);
    await this.shared.delete(key);
  }
}
