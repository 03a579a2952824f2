// Fast non-cryptographic hashing for routing decisions (affinity, sticky splits): FNV-1a
// 32-bit, then a murmur3 finaliser so that nearby inputs spread over the whole range.
// Written here because it is ten lines and runs on every request; a library would be more.

export function hash32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A value in [0, 1) from a hash. */
export const unit = (h: number) => h / 0x1_0000_0000;
