import { describe, expect, it } from 'vitest';
import { localEmbedding } from '../../worker/cache/semantic/local-embedding';
import { packSparse, plainDot, prepareQuery, rankNear, SCAN_BLOCK, similarityAtLeast, sparseRoom, sparseSimilarityAtLeast, SPARSE_CHECK, tailCount, VectorTable, writeTails } from '../../worker/protocol/rules/semantic-scan';
import { embedVector } from '../../regional/sim/embeddings';
import { unitPrng } from '../../regional/sim/hash';
import pairsFixture from '../fixtures/semantic-pairs.json';

// The pruned scan (semantic-scan.ts) against the plain loop it replaces: for every query and
// threshold, the same entries reach the threshold, with the same similarities (bit for bit: the
// same products added in the same order), ranked the same.

interface Table {
  dim: number;
  ids: string[];
  vectors: Float32Array[];
  /** What the object and the copy scan. */
  table: VectorTable;
}

function table(vectors: Float32Array[], dim: number): Table {
  const ids = vectors.map((_, i) => `e${String(i).padStart(5, '0')}`);
  const t = new VectorTable();
  vectors.forEach((v, i) => expect(t.set(ids[i]!, v, 0, Infinity, undefined)).toBe(true));
  return { dim, ids, vectors, table: t };
}

/** What the object and the copy did before: the full dot product of every entry, then a sort. */
function naive(t: Table, q: Float32Array, threshold: number) {
  const near: { id: string; similarity: number; storedAt: number }[] = [];
  t.vectors.forEach((v, i) => {
    let s = 0;
    for (let j = 0; j < t.dim; j++) s += q[j]! * v[j]!;
    if (s >= threshold) near.push({ id: t.ids[i]!, similarity: s, storedAt: 0 });
  });
  return rankNear(near);
}

function pruned(t: Table, q: Float32Array, threshold: number) {
  return t.table.scan(q, threshold, 0);
}

const THRESHOLDS = [-1, -0.5, -1e-12, 0, 1e-12, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 1 - 1e-7, 1, 1 + 1e-7, 1.5];

let compared = 0;
let matched = 0;
/** Every query against the table at every threshold, plus thresholds exactly at some entry's similarity (the >= edge). */
function expectSame(t: Table, queries: Float32Array[], rand: () => number) {
  for (const q of queries) {
    const all = naive(t, q, -Infinity);
    const edges = [0, 1, 2].map(() => all[Math.floor(rand() * all.length)]?.similarity).filter((x): x is number => x !== undefined);
    for (const threshold of [...THRESHOLDS, ...edges]) {
      const want = naive(t, q, threshold);
      const got = pruned(t, q, threshold);
      expect(got.length).toBe(want.length);
      for (let k = 0; k < want.length; k++) {
        expect(got[k]!.id).toBe(want[k]!.id);
        expect(Object.is(got[k]!.similarity, want[k]!.similarity)).toBe(true); // identical, not just within 1e-6
      }
      compared++;
      matched += want.length;
    }
  }
}

function unit(v: Float32Array): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  if (n > 0) for (let j = 0; j < v.length; j++) v[j]! /= Math.sqrt(n);
  return v;
}

/** Random vectors: dense gaussian-ish, sparse, near-duplicates of one another, zero, or off the unit sphere. */
function randomVectors(rand: () => number, n: number, dim: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const kind = rand();
    const v = new Float32Array(dim);
    if (kind < 0.05) {
      // zero vector
    } else if (kind < 0.35 && out.length > 0) {
      // a near-duplicate of an earlier vector (similarities close to 1, and exactly 1)
      const base = out[Math.floor(rand() * out.length)]!;
      const noise = rand() < 0.3 ? 0 : rand() * 0.1;
      for (let j = 0; j < dim; j++) v[j] = base[j]! + (rand() - 0.5) * noise;
      unit(v);
    } else if (kind < 0.65) {
      const nz = 1 + Math.floor(rand() * Math.min(dim, 40));
      for (let k = 0; k < nz; k++) v[Math.floor(rand() * dim)] = rand() - 0.5;
      unit(v);
    } else {
      for (let j = 0; j < dim; j++) v[j] = rand() + rand() + rand() - 1.5;
      if (kind < 0.95) unit(v);
      else for (let j = 0; j < dim; j++) v[j]! *= 3; // not normalized: the bound must not assume it
    }
    out.push(v);
  }
  return out;
}

describe('pruned semantic scan', () => {
  it('matches the plain loop on random vectors: dims around and not multiples of the block, zero and duplicate vectors, every threshold', () => {
    const rand = unitPrng(16);
    let sparseEntries = 0;
    let denseEntries = 0;
    let sparseQueries = 0;
    for (const dim of [1, 2, 5, SCAN_BLOCK - 1, SCAN_BLOCK, SCAN_BLOCK + 1, 100, 2 * SCAN_BLOCK + 7, 384, 512, 513]) {
      const vectors = randomVectors(rand, 150, dim);
      const t = table(vectors, dim);
      // Queries: fresh random ones, stored ones (similarity 1 with themselves), and the zero vector.
      const queries = [...randomVectors(rand, 12, dim), ...vectors.slice(0, 6), new Float32Array(dim)];
      expectSame(t, queries, rand);
      // All three ways are taken: sparse entries, dense entries with a sparse query, dense with dense.
      for (let i = 0; i < t.table.size; i++) t.table.sparseCount[i]! >= 0 ? sparseEntries++ : denseEntries++;
      for (const q of queries) if (prepareQuery(q).index) sparseQueries++;
    }
    expect(sparseEntries).toBeGreaterThan(200);
    expect(denseEntries).toBeGreaterThan(300);
    expect(sparseQueries).toBeGreaterThan(50);
    expect(compared).toBeGreaterThan(1_000);
    expect(matched).toBeGreaterThan(10_000);
  });

  it('matches the plain loop on real embedder vectors: the local embedding and the simulator model, prompts of the labelled fixture', () => {
    const rand = unitPrng(17);
    const pairs = (pairsFixture as { pairs: { a: string; b: string }[] }).pairs;
    const texts = [...new Set(pairs.flatMap((p) => [p.a, p.b]))];
    const embedders: [string, (text: string) => Float32Array | null][] = [
      ['local', localEmbedding],
      ['sim-384', (text) => embedVector('bench-embed', text, 384)],
      ['sim-100', (text) => embedVector('bench-embed', text, 100)],
    ];
    for (const [, embed] of embedders) {
      const vectors = texts.map(embed).filter((v): v is Float32Array => v !== null);
      const t = table(vectors, vectors[0]!.length);
      const queries = pairs.slice(0, 25).map((p) => embed(p.b)).filter((v): v is Float32Array => v !== null);
      expectSame(t, queries, rand);
    }
  });

  it('an entry or a query with a non-finite value gets the plain loop\'s answer', () => {
    const rand = unitPrng(18);
    const dim = 70;
    const vectors = randomVectors(rand, 40, dim);
    vectors[3]![5] = Number.NaN;
    vectors[4]![69] = Number.POSITIVE_INFINITY;
    vectors[5]![0] = Number.NEGATIVE_INFINITY;
    const t = table(vectors, dim);
    const queries = randomVectors(rand, 5, dim);
    const sparse = new Float32Array(dim);
    sparse[69] = 1; // meets the +∞ of entry 4 with a non-zero: the plain loop says +∞ (or NaN: 0 × ∞ elsewhere)
    queries.push(sparse);
    const bad = new Float32Array(dim).fill(0.1);
    bad[10] = Number.POSITIVE_INFINITY;
    queries.push(bad);
    for (const q of queries) {
      for (const threshold of THRESHOLDS) {
        const want = naive(t, q, threshold);
        const got = pruned(t, q, threshold);
        expect(got.map((m) => m.id)).toEqual(want.map((m) => m.id));
        expect(got.map((m) => m.similarity)).toEqual(want.map((m) => m.similarity));
      }
    }
  });

  it('keeps the tail norms it says, and a sparse query (the local embedding) visits only its non-zero dimensions', () => {
    const v = localEmbedding('How do I reset my password for the billing portal?')!;
    const tails = new Float64Array(tailCount(v.length));
    writeTails(v, 0, v.length, tails, 0);
    expect(tails[0]).toBeCloseTo(1, 6); // the local embedding is unit-normalized
    expect(tails[tails.length - 1]).toBe(0);
    for (let b = 0; b < tails.length - 1; b++) {
      let s = 0;
      for (let j = b * SCAN_BLOCK; j < v.length; j++) s += v[j]! * v[j]!;
      expect(tails[b]).toBeCloseTo(Math.sqrt(s), 12);
    }
    // The sparse query visits only its non-zero dimensions, and the answer is the plain dot product.
    const q = prepareQuery(localEmbedding('how can i reset the password for the shipping portal')!);
    expect(q.index).not.toBeNull();
    expect(q.index!.length).toBeLessThan(100);
    const s = plainDot(q.vector, v, 0);
    expect(s).toBeGreaterThan(0.5);
    expect(s).toBeLessThan(0.95);
    expect(similarityAtLeast(q, v, 0, tails, 0, 0.5)).toBe(s);
    expect(similarityAtLeast(q, v, 0, tails, 0, s)).toBe(s);
    expect(similarityAtLeast(q, v, 0, tails, 0, 0.95)).toBeNaN();
    // The entry is sparse too: packed, its dot product reads only its non-zero dimensions.
    const room = sparseRoom(v.length);
    const index = new Uint16Array(room);
    const value = new Float32Array(room);
    const n = packSparse(v, 0, v.length, room, index, value, 0);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThanOrEqual(room);
    expect(sparseSimilarityAtLeast(q, index, value, 0, n, 0.5)).toBe(s);
    expect(sparseSimilarityAtLeast(q, index, value, 0, n, s)).toBe(s);
    expect(sparseSimilarityAtLeast(q, index, value, 0, n, 0.95)).toBeNaN();
    // A dense query (the simulator's model) takes the dense loop, same answer.
    const d = embedVector('bench-embed', 'reset the billing password', 384);
    const dq = prepareQuery(d);
    expect(dq.index).toBeNull();
    const dt = new Float64Array(tailCount(384));
    writeTails(d, 0, 384, dt, 0);
    expect(packSparse(d, 0, 384, sparseRoom(384), new Uint16Array(48), new Float32Array(48), 0)).toBe(-1);
    expect(similarityAtLeast(dq, d, 0, dt, 0, 1 - 1e-6)).toBe(plainDot(d, d, 0));
  });

  it('VectorTable: through adds, replacements and removals (growing and shrinking), its scan answers as the plain loop over what it holds', () => {
    const rand = unitPrng(19);
    const dim = 45;
    const table = new VectorTable<string>();
    const held = new Map<string, { vector: Float32Array; storedAt: number; expires: number }>();
    const pool = randomVectors(rand, 400, dim);
    for (let step = 0; step < 40; step++) {
      // Grow for 20 steps, then shrink back: removals outnumber additions.
      const adds = step < 20 ? 30 : 5;
      const removals = step < 20 ? 10 : 25;
      for (let k = 0; k < adds; k++) {
        const id = `id${Math.floor(rand() * 600)}`;
        const vector = pool[Math.floor(rand() * pool.length)]!;
        const expires = rand() < 0.1 ? 5 : 100;
        const storedAt = Math.floor(rand() * 3); // ties of identical vectors: the earlier stored first, then by id
        expect(table.set(id, vector, storedAt, expires, id)).toBe(true);
        held.set(id, { vector, storedAt, expires });
      }
      for (let k = 0; k < removals && held.size > 0; k++) {
        const id = [...held.keys()][Math.floor(rand() * held.size)]!;
        expect(table.delete(id)).toBe(true);
        held.delete(id);
      }
      expect(table.size).toBe(held.size);
      if (held.size > 0) expect(table.set('wrong-size', new Float32Array(dim + 1), 0, 100, 'x')).toBe(false); // an empty table takes the next size
      const q = pool[Math.floor(rand() * pool.length)]!;
      for (const threshold of [-1, 0, 0.5, 0.9, 1]) {
        const want = rankNear(
          [...held]
            .filter(([, h]) => h.expires > 10)
            .map(([id, h]) => ({ id, similarity: plainDot(q, h.vector, 0), storedAt: h.storedAt }))
            .filter((m) => m.similarity >= threshold),
        );
        const expired: string[] = [];
        const got = table.scan(q, threshold, 10, expired);
        expect(got.map((m) => [m.id, m.similarity])).toEqual(want.map((m) => [m.id, m.similarity]));
        for (const m of got) expect(table.payload[m.slot]).toBe(m.id);
        expect(expired.sort()).toEqual([...held].filter(([, h]) => h.expires <= 10).map(([id]) => id).sort());
      }
    }
    expect(table.size).toBeLessThan(100); // it shrank back
    expect(table.data.length).toBeLessThanOrEqual(4 * Math.max(8, table.size) * dim); // and gave the room back
  });

  it('ranks equal similarities the earlier stored first, then by id, whatever the order the entries were held in', () => {
    const a = [
      { id: 'b', similarity: 0.9, storedAt: 1 },
      { id: 'a', similarity: 0.9, storedAt: 1 },
      { id: 'd', similarity: 0.9, storedAt: 0 },
      { id: 'c', similarity: 0.95, storedAt: 2 },
    ];
    expect(rankNear([...a]).map((m) => m.id)).toEqual(['c', 'd', 'a', 'b']);
    expect(rankNear([...a].reverse()).map((m) => m.id)).toEqual(['c', 'd', 'a', 'b']);
  });

  it('abandons a sparse entry only when it cannot reach the threshold: each found at exactly its plain-loop similarity, through swap-removals', () => {
    const rand = unitPrng(23);
    const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa'];
    const prompt = () => Array.from({ length: 3 + Math.floor(rand() * 9) }, () => words[Math.floor(rand() * words.length)]!).join(' ');
    const table = new VectorTable();
    const held = new Map<string, Float32Array>();
    for (let i = 0; i < 300; i++) {
      const v = localEmbedding(prompt())!;
      table.set(`e${i}`, v, i, Infinity, undefined);
      held.set(`e${i}`, v);
      if (i % 3 === 2) {
        const gone = [...held.keys()][Math.floor(rand() * held.size)]!; // the last slot moves into its place
        table.delete(gone);
        held.delete(gone);
      }
    }
    let long = 0;
    for (let i = 0; i < table.size; i++) if (table.sparseCount[i]! > SPARSE_CHECK) long++;
    expect(long).toBeGreaterThan(100); // the bound is checked for most entries
    const queries = [...held.values()].slice(0, 40);
    for (const q of queries) {
      for (const [id, v] of held) {
        const s = plainDot(q, v, 0);
        if (s <= 0) continue;
        // At exactly its similarity the entry is in; a hair above, out.
        expect(table.scan(q, s, 0).find((m) => m.id === id)?.similarity).toBe(s);
        expect(table.scan(q, s + 1e-6, 0).find((m) => m.id === id)).toBeUndefined();
      }
    }
  });
});
