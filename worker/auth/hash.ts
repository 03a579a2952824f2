// Hashing and comparison for secrets: API keys are stored and looked up by SHA-256
// (they are 256-bit random, so a fast hash is the right one), compared in constant time.
// The hash and encodings themselves are worker/protocol/rules/hash.ts (the KeyRegistry uses them).

import { sha256 } from '../protocol/rules/hash';

const encoder = new TextEncoder();

/** Constant-time equality of two secrets: both are hashed first, so lengths never leak either. */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([sha256(a), sha256(b)]);
  return crypto.subtle.timingSafeEqual(ha, hb);
}

/** Constant-time equality of two equal-length hex digests. */
export function digestsEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return crypto.subtle.timingSafeEqual(encoder.encode(a), encoder.encode(b));
}
