/**
 * Small, fast, deterministic hashes and a PRNG (no crypto needed: these only seed the
 * simulated output and key the prefix cache).
 */

/** cyrb53: a 53-bit string hash, returned as a safe integer. `seed` chains hashes. */
export function hashString(str: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < str.length; i++) {
    const ch = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  return finish(h1, h2);
}

function finish(h1: number, h2: number): number {
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * Hash of a block of tokens chained on its parent block's hash, like vLLM's
 * `hash_block_tokens(parent_block_hash, curr_block_token_ids, extra_keys)`.
 */
export function hashBlock(parent: number, tokens: readonly string[], start: number, end: number): number {
  // Fold the 53-bit parent into both lanes so equal token runs under different parents differ.
  const lo = parent >>> 0;
  const hi = Math.floor(parent / 4294967296) >>> 0;
  let h1 = 0xdeadbeef ^ lo;
  let h2 = 0x41c6ce57 ^ hi;
  for (let t = start; t < end; t++) {
    const s = tokens[t] as string;
    for (let i = 0; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    // Token separator (a code unit that never starts a real token boundary ambiguity).
    h1 = Math.imul(h1 ^ 0x1f, 2654435761);
    h2 = Math.imul(h2 ^ 0x1f, 1597334677);
  }
  return finish(h1, h2);
}

/** mulberry32: a tiny 32-bit PRNG. Returns a function yielding uint32 values. */
export function prng(seed: number): () => number {
  let a = (seed >>> 0) ^ (Math.floor(seed / 4294967296) >>> 0);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** The same generator as numbers in [0, 1) (seeded simulations in tests and benches). */
export function unitPrng(seed: number): () => number {
  const next = prng(seed);
  return () => next() / 4294967296;
}
