/**
 * Automatic prefix caching, the way vLLM's KV-cache manager does it:
 *
 * - a prompt's tokens are cut into blocks of `blockTokens`; only full blocks are cacheable;
 * - block i is keyed by a hash chained over blocks 0..i (parent hash + this block's tokens),
 *   so a block only matches when the whole prefix before it matches too;
 * - a lookup walks the blocks from the start and stops at the first miss; the hit count is
 *   (leading blocks found) × block size. Like vLLM, at least the last prompt token is
 *   always recomputed, so a fully cached prompt reports `floor((n-1)/B)·B` cached tokens;
 * - after a request's prefill, all its full blocks are inserted (LRU, `capacityBlocks`).
 */
import { hashBlock, hashString } from './hash.js';

export class PrefixCache {
  /** Insertion-ordered map used as an LRU: oldest first. */
  private readonly lru = new Map<number, true>();

  constructor(
    public blockTokens: number,
    public capacityBlocks: number,
  ) {}

  get size(): number {
    return this.lru.size;
  }

  /**
   * The chained hashes of every full block of `tokens`. `root` separates caches
   * (model name, `cache_salt`, multimodal inputs are already inside the tokens).
   */
  blockHashes(tokens: readonly string[], root: number): number[] {
    const b = this.blockTokens;
    const full = Math.floor(tokens.length / b);
    const out = new Array<number>(full);
    let parent = root;
    for (let i = 0; i < full; i++) {
      parent = hashBlock(parent, tokens, i * b, (i + 1) * b);
      out[i] = parent;
    }
    return out;
  }

  /** Number of prompt tokens served from the cache (touches the hit blocks). */
  lookup(hashes: readonly number[], promptTokens: number): number {
    if (hashes.length === 0 || promptTokens <= 1) return 0;
    const maxBlocks = Math.min(hashes.length, Math.floor((promptTokens - 1) / this.blockTokens));
    let hit = 0;
    for (; hit < maxBlocks; hit++) {
      const h = hashes[hit] as number;
      if (!this.lru.has(h)) break;
      // Touch: move to the most-recently-used end.
      this.lru.delete(h);
      this.lru.set(h, true);
    }
    return hit * this.blockTokens;
  }

  /** Inserts (or refreshes) all blocks; evicts the least recently used beyond capacity. */
  insert(hashes: readonly number[]): void {
    if (hashes.length === 0) return;
    const lru = this.lru;
    for (let i = 0; i < hashes.length; i++) {
      const h = hashes[i] as number;
      if (lru.has(h)) lru.delete(h);
      lru.set(h, true);
    }
    let over = lru.size - this.capacityBlocks;
    if (over > 0) {
      for (const k of lru.keys()) {
        lru.delete(k);
        if (--over <= 0) break;
      }
    }
  }

  clear(): void {
    this.lru.clear();
  }
}

/** Root hash of a model's prefix-cache namespace (plus an optional `cache_salt`). */
export function cacheRoot(model: string, salt?: string): number {
  return hashString(salt === undefined ? model : `${model}\u0000${salt}`);
}
