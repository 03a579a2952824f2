/**
 * Deterministic embeddings: a unit vector derived from a hash of (model, input). Equal
 * inputs give equal vectors; similar inputs are NOT close (no semantics are simulated).
 */
import { hashString, prng } from './hash.js';

export function embedVector(model: string, key: string, dim: number): Float32Array {
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
