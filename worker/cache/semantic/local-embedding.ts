import { contentTokens } from '../../protocol/rules/semantic-text';

/**
 * The local embedding: what the embedded semantic cache uses when no embedding model is
 * configured. It is a LEXICAL similarity, not semantic understanding: a hashed bag of the
 * prompt's content words (unigrams), their adjacent pairs (bigrams, so word order counts a
 * little) and the character trigrams of each word (so "colour"/"color", typos and inflections
 * stemming missed stay close), after lower-casing, punctuation removal, contraction expansion,
 * a small stop-word list and crude suffix stemming (text.ts). The result is L2-normalized, so
 * the dot product of two vectors is their cosine similarity.
 *
 * What that means in practice: two prompts score high when they use (nearly) the same content
 * words: "How do I reset my password?" and "how can i reset the password" are ~1.0. A true
 * paraphrase with other words ("I forgot my login, what now?") scores low and misses: the cost
 * is hit rate, never a wrong answer. It knows nothing of synonyms, negation or numbers (the
 * guards in guard.ts handle the last two). Deterministic, no I/O, ~10 µs for a short prompt.
 */
export const LOCAL_EMBEDDING_ID = 'local-lexical-v1';
/** Feature-hashing width: 512 float32 = 2 KiB a vector; collisions at this width are rare for prompts of a few dozen words. */
export const LOCAL_DIMENSIONS = 512;

const WEIGHT = { unigram: 1, bigram: 0.6, trigrams: 0.4 } as const;

export function localEmbedding(text: string): Float32Array | null {
  const v = new Float32Array(LOCAL_DIMENSIONS);
  const tokens = contentTokens(text);
  if (tokens.length === 0) return null;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    add(v, `u:${t}`, WEIGHT.unigram);
    if (i > 0) add(v, `b:${tokens[i - 1]}_${t}`, WEIGHT.bigram);
    const padded = `#${t}#`;
    const n = padded.length - 2;
    // A word's trigrams share one word's worth of weight, so long words do not dominate.
    for (let j = 0; j < n; j++) add(v, `c:${padded.slice(j, j + 3)}`, WEIGHT.trigrams / Math.sqrt(n));
  }
  return normalize(v);
}

/** Cosine similarity of two L2-normalized vectors (their dot product); 0 when the sizes differ. */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function normalize(v: Float32Array): Float32Array | null {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i]! * v[i]!;
  if (!(n > 0)) return null;
  const inv = 1 / Math.sqrt(n);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * inv;
  return v;
}

/** Signed feature hashing: the sign bit keeps colliding features from only ever adding up. */
function add(v: Float32Array, feature: string, weight: number) {
  const h = fnv1a(feature);
  v[h & (LOCAL_DIMENSIONS - 1)]! += (h & 0x80000000 ? -1 : 1) * weight;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
