import { env as testEnv, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { LocalSemanticCopy } from '../../worker/cache/semantic/local-copy';
import type { Env } from '../../worker/env';
import { rankNear } from '../../worker/protocol/rules/semantic-scan';
import { unitPrng } from '../../regional/sim/hash';
import { uid } from '../support/uid';

// The SemanticIndex object's pruned scan over its in-memory vectors (grown, replaced, swap-removed
// on eviction and expiry, with their tail norms) answers what the plain dot product over its
// SQLite rows answers, and the isolate's copy holding the same entries answers the same.

const env = testEnv as unknown as Env;
const DIM = 77; // not a multiple of the scan's block

function randomVector(rand: () => number, earlier: Float32Array[]): Float32Array {
  const v = new Float32Array(DIM);
  const kind = rand();
  if (kind < 0.05) return v; // zero
  if (kind < 0.4 && earlier.length > 0) {
    const base = earlier[Math.floor(rand() * earlier.length)]!;
    const noise = rand() < 0.3 ? 0 : rand() * 0.15; // exact duplicates too: ties, ranked by id
    for (let j = 0; j < DIM; j++) v[j] = base[j]! + (rand() - 0.5) * noise;
  } else if (kind < 0.7) {
    for (let k = 0; k < 8; k++) v[Math.floor(rand() * DIM)] = rand() - 0.5;
  } else {
    for (let j = 0; j < DIM; j++) v[j] = rand() - 0.5;
  }
  let n = 0;
  for (const x of v) n += x * x;
  if (n > 0) for (let j = 0; j < DIM; j++) v[j]! /= Math.sqrt(n);
  return v;
}

describe('SemanticIndex scan', () => {
  it('answers as the plain dot product over its rows, through growth, replacement, eviction and expiry; a copy with the same entries answers the same', async () => {
    const rand = unitPrng(42);
    const stub = env.SEMANTIC_INDEX.get(env.SEMANTIC_INDEX.idFromName(`scan-${uid()}`));
    const copy = new LocalSemanticCopy(1 << 30);
    const vectors: Float32Array[] = [];
    const text = 'same prompt'; // the guards accept every pair: the match is the nearest
    let now = 1_000;
    let checked = 0;
    let matched = 0;
    for (let round = 0; round < 12; round++) {
      for (let k = 0; k < 25; k++) {
        now += 10;
        const vector = randomVector(rand, vectors);
        vectors.push(vector);
        // Some ids come back (a replacement), some entries live 1 s (expired by later stores and lookups), at most 120 held (LRU eviction).
        const id = rand() < 0.15 && vectors.length > 10 ? `id-${Math.floor(rand() * (vectors.length - 1))}` : `id-${vectors.length}`;
        const ttlSeconds = rand() < 0.2 ? 1 : 3_600;
        await stub.store({ id, scope: 's', vector, text, depth: 1, answer: id, ttlSeconds, maxEntries: 120, now });
      }
      // The reference: every unexpired row in SQLite, the plain loop, the same ranking.
      const rows = await runInDurableObject(stub, (_: unknown, state: DurableObjectState) =>
        state.storage.sql
          .exec<{ id: string; vec: ArrayBuffer; stored_at: number; expires_at: number }>('SELECT id, vec, stored_at, expires_at FROM entries WHERE scope = ?', 's')
          .toArray()
          .map((r) => ({ id: r.id, vector: new Float32Array(r.vec.slice(0)), storedAt: r.stored_at, expiresAt: r.expires_at })),
      );
      expect(await stub.size()).toBe(rows.length); // the in-memory row count stays in step
      const live = rows.filter((r) => r.expiresAt > now);
      copy.clear();
      for (const r of live) copy.put('t', { id: r.id, scope: 's', vector: r.vector, text, depth: 1, answer: r.id, storedAt: r.storedAt, expiresAt: r.expiresAt }, now);
      for (let k = 0; k < 8; k++) {
        const q = k < 4 ? randomVector(rand, vectors) : vectors[Math.floor(rand() * vectors.length)]!;
        for (const threshold of [-1, 0, 0.3, 0.6, 0.9, 0.99, 1]) {
          const near = rankNear(
            live
              .map((r) => {
                let s = 0;
                for (let j = 0; j < DIM; j++) s += q[j]! * r.vector[j]!;
                return { id: r.id, similarity: s, storedAt: r.storedAt };
              })
              .filter((m) => m.similarity >= threshold),
          );
          // topK 1: the guards accept everything, so the match is the first ranked (its use does not change later rankings).
          const got = await stub.lookup({ scope: 's', vector: q, text, depth: 1, minSimilarity: threshold, topK: 1, now });
          expect(got.above).toBe(near.length);
          expect(got.match?.id ?? null).toBe(near[0]?.id ?? null);
          if (got.match) expect(Object.is(got.match.similarity, near[0]!.similarity)).toBe(true);
          const local = copy.lookup({ tenantId: 't', scope: 's', vector: q, text, depth: 1, threshold, topK: 1, now });
          expect(local?.entry.id ?? null).toBe(near[0]?.id ?? null);
          if (local) expect(Object.is(local.similarity, near[0]!.similarity)).toBe(true);
          checked++;
          if (near.length) matched++;
        }
      }
    }
    expect(checked).toBe(12 * 8 * 7);
    expect(matched).toBeGreaterThan(300);
  });
});
