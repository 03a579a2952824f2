/**
 * The semantic index's scan, shared by the SemanticIndex object (durable-objects/semantic-index.ts)
 * and the isolate's local copy (worker/cache/semantic/local-copy.ts), so that both compute the
 * same similarities and rank them the same way: their decisions stay identical.
 *
 * Exact: every similarity equals the plain loop `s = 0; for j: s += q[j] * e[j]`, bit for bit,
 * because the same products (float32 × float32, exact in a double) are added in the same order. A
 * product with a 0 factor is ±0 and leaves the sum unchanged (for finite values), so dimensions
 * where either vector is 0 can be skipped. Three ways, cheapest first:
 *
 * - a sparse entry (at most an eighth of its dimensions set: the local embedding of a short
 *   prompt sets a few dozen of 512) is kept as its non-zero dimensions and values too, packed next
 *   to its neighbours', and its dot product reads only those (a few hundred contiguous bytes, not
 *   the 2 KiB vector: memory is what costs when thousands of entries do not fit in the caches), and
 *   is abandoned as below (every SPARSE_CHECK terms, against the norms of the query's dimensions
 *   from the next term's on and of the entry's remaining values);
 * - a sparse query visits only its own non-zero dimensions of a dense entry;
 * - otherwise every dimension.
 *
 * In all three, the scan abandons an entry as soon as it cannot reach the threshold
 * (Cauchy–Schwarz): each entry carries the norms of its tails (the norm of its dimensions from
 * block b on, b = 0 … blocks, blocks of SCAN_BLOCK dimensions; tails[0] is its norm,
 * tails[blocks] is 0), the query the same, and after each block the rest of the dot is at most
 * |q_tail|·|e_tail|: when `partial + |q_tail|·|e_tail|` is below the threshold, the entry is out.
 * The vectors are L2-normalized by every embedder (so the dot is the cosine); nothing here relies
 * on it. Rounding: partial sums and norms are rounded; the abandon test adds a slack of
 * SLACK · |q| · |e|, far above the rounding error of sums over up to MAX_PRUNED_DIM dimensions
 * (about dim · 2⁻⁵³ · |q| · |e|), so no entry whose plain-loop similarity reaches the threshold is
 * ever abandoned. A vector with a non-finite value (0 × ∞ is NaN), or beyond MAX_PRUNED_DIM
 * dimensions, takes the plain loop.
 */

/** Dimensions per block: the bound is checked after each (32: measured against 16, 64 and 128 on the local and the simulator's embeddings). */
export const SCAN_BLOCK = 32;
const SLACK = 1e-9;
const MAX_PRUNED_DIM = 1 << 20;

/** How many tail norms an entry of `dim` dimensions carries: its norm, one after each block (the last is 0). */
export function tailCount(dim: number): number {
  return Math.ceil(dim / SCAN_BLOCK) + 1;
}

/**
 * Writes the tail norms of `v[from … from + dim)` into `out[at … at + tailCount(dim))`:
 * out[at + b] = the norm of dimensions b·SCAN_BLOCK … dim − 1.
 */
export function writeTails(v: ArrayLike<number>, from: number, dim: number, out: Float64Array, at: number): void {
  const blocks = tailCount(dim) - 1;
  let sum = 0;
  out[at + blocks] = 0;
  for (let b = blocks - 1; b >= 0; b--) {
    const end = Math.min(dim, (b + 1) * SCAN_BLOCK);
    for (let j = b * SCAN_BLOCK; j < end; j++) {
      const x = v[from + j]!;
      sum += x * x;
    }
    out[at + b] = Math.sqrt(sum);
  }
}

/** A vector's tail norms in an array of their own (the local copy keeps one per entry). */
export function tailsOf(v: Float32Array): Float64Array {
  const out = new Float64Array(tailCount(v.length));
  writeTails(v, 0, v.length, out, 0);
  return out;
}

/** How many non-zero dimensions a sparse entry may have (its packed room): an eighth of them; none past 65,536 dimensions (16-bit indices). */
export function sparseRoom(dim: number): number {
  return dim <= 65_536 ? Math.floor(dim / 8) : 0;
}

/**
 * Packs the non-zero dimensions (ascending) and values of `v[from … from + dim)` into
 * `index`/`value` from `at` when there are at most `room` and every value is finite: returns how
 * many, or −1 (the entry is dense).
 */
export function packSparse(v: Float32Array, from: number, dim: number, room: number, index: Uint16Array, value: Float32Array, at: number): number {
  let n = 0;
  for (let j = 0; j < dim; j++) {
    const x = v[from + j]!;
    if (x !== 0) {
      if (n === room || !Number.isFinite(x)) return -1;
      index[at + n] = j;
      value[at + n++] = x;
    }
  }
  return n;
}

/** Terms of a sparse entry between two checks of the bound (sparseSimilarityAtLeast). */
export const SPARSE_CHECK = 8;

/** How many suffix norms a sparse entry of `room` packed values carries: one every SPARSE_CHECK values. */
export function sparseCheckCount(room: number): number {
  return Math.ceil(room / SPARSE_CHECK);
}

/** out[outAt + c] = the norm of value[at + c·SPARSE_CHECK … at + n) for every c·SPARSE_CHECK < n. */
export function writeSparseTails(value: Float32Array, at: number, n: number, out: Float64Array, outAt: number): void {
  let sum = 0;
  for (let k = n - 1; k >= 0; k--) {
    const x = value[at + k]!;
    sum += x * x;
    if (k % SPARSE_CHECK === 0) out[outAt + k / SPARSE_CHECK] = Math.sqrt(sum);
  }
}

/**
 * The similarity of the query and a packed sparse entry when it reaches `threshold`, else NaN.
 * Needs a finite query (q.pruned). With the entry's suffix norms (writeSparseTails), it abandons the
 * entry as the dense loop does (Cauchy–Schwarz, with the same slack): every SPARSE_CHECK terms, the
 * rest of the dot is at most |q over the dimensions from the next term's on| · |the entry's rest|.
 */
export function sparseSimilarityAtLeast(q: ScanQuery, index: Uint16Array, value: Float32Array, at: number, n: number, threshold: number, tails?: Float64Array, tailsAt = 0): number {
  // Ascending dimensions where the entry is set: the plain loop's non-zero terms, in its order.
  const qv = q.vector;
  let s = 0;
  if (tails && n > SPARSE_CHECK) {
    const dimTails = q.dimTails;
    const slack = SLACK * dimTails[0]! * tails[tailsAt]!;
    for (let k = 0, c = 0; k < n; k += SPARSE_CHECK, c++) {
      if (c > 0 && s + dimTails[index[at + k]!]! * tails[tailsAt + c]! + slack < threshold) return NaN;
      for (let j = at + k, end = at + Math.min(n, k + SPARSE_CHECK); j < end; j++) s += qv[index[j]!]! * value[j]!;
    }
    return s >= threshold ? s : NaN;
  }
  for (let k = at, end = at + n; k < end; k++) s += qv[index[k]!]! * value[k]!;
  return s >= threshold ? s : NaN;
}

/** A query prepared once per lookup: its non-zero dimensions by block, and its tail norms. */
export interface ScanQuery {
  readonly vector: Float32Array;
  readonly dim: number;
  /** False: a non-finite value, or too many dimensions: every entry takes the plain loop. */
  readonly pruned: boolean;
  /** Non-zero dimensions, ascending, and their values (sparse); or null: every dimension (dense). */
  readonly index: Int32Array | null;
  readonly value: Float64Array | null;
  /** blockEnd[b]: how many of `index` lie in blocks 0 … b. */
  readonly blockEnd: Int32Array;
  readonly tails: Float64Array;
  /** Blocks after this one hold no non-zero dimension of the query. */
  readonly lastBlock: number;
  /** dimTails[j]: the norm of the query's dimensions j … dim − 1 (dimTails[dim] = 0), for sparse entries' bound. */
  readonly dimTails: Float64Array;
}

export function prepareQuery(vector: Float32Array): ScanQuery {
  const dim = vector.length;
  const tails = tailsOf(vector);
  const blocks = tails.length - 1;
  const blockEnd = new Int32Array(blocks);
  let nonZero = 0;
  let lastBlock = -1;
  for (let j = 0; j < dim; j++) {
    if (vector[j] !== 0) {
      nonZero++;
      lastBlock = Math.floor(j / SCAN_BLOCK);
    }
  }
  const pruned = Number.isFinite(tails[0]!) && dim <= MAX_PRUNED_DIM;
  const dimTails = new Float64Array(dim + 1);
  for (let j = dim - 1, sum = 0; j >= 0; j--) {
    const x = vector[j]!;
    sum += x * x;
    dimTails[j] = Math.sqrt(sum);
  }
  // Sparse when at most half the dimensions are set: a gather per non-zero beats the dense loop.
  if (nonZero * 2 > dim) {
    for (let b = 0; b < blocks; b++) blockEnd[b] = Math.min(dim, (b + 1) * SCAN_BLOCK);
    return { vector, dim, pruned, index: null, value: null, blockEnd, tails, lastBlock, dimTails };
  }
  const index = new Int32Array(nonZero);
  const value = new Float64Array(nonZero);
  let k = 0;
  for (let b = 0; b < blocks; b++) {
    const end = Math.min(dim, (b + 1) * SCAN_BLOCK);
    for (let j = b * SCAN_BLOCK; j < end; j++) {
      if (vector[j] !== 0) {
        index[k] = j;
        value[k++] = vector[j]!;
      }
    }
    blockEnd[b] = k;
  }
  return { vector, dim, pruned, index, value, blockEnd, tails, lastBlock, dimTails };
}

/**
 * The similarity of the query and the entry `data[from … from + q.dim)` (tail norms at
 * `tails[at …]`) when it reaches `threshold`, else NaN. The caller checks that the sizes match.
 */
export function similarityAtLeast(q: ScanQuery, data: Float32Array, from: number, tails: Float64Array, at: number, threshold: number): number {
  const norm = tails[at]!;
  if (!q.pruned || !(norm < Infinity)) {
    const s = plainDot(q.vector, data, from);
    return s >= threshold ? s : NaN;
  }
  const qt = q.tails;
  const slack = SLACK * qt[0]! * norm;
  if (qt[0]! * norm + slack < threshold) return NaN;
  let s = 0;
  const { index, value, blockEnd } = q;
  if (index && value) {
    let k = 0;
    for (let b = 0; b <= q.lastBlock; b++) {
      const end = blockEnd[b]!;
      for (; k < end; k++) s += value[k]! * data[from + index[k]!]!;
      if (s + qt[b + 1]! * tails[at + b + 1]! + slack < threshold) return NaN;
    }
  } else {
    const qv = q.vector;
    for (let b = 0, j = 0; b <= q.lastBlock; b++) {
      const end = blockEnd[b]!;
      for (; j < end; j++) s += qv[j]! * data[from + j]!;
      if (s + qt[b + 1]! * tails[at + b + 1]! + slack < threshold) return NaN;
    }
  }
  // The query is 0 past lastBlock: the rest of the dot adds nothing.
  return s >= threshold ? s : NaN;
}

/** The plain loop: what every similarity here equals. */
export function plainDot(q: Float32Array, data: Float32Array, from: number): number {
  let s = 0;
  for (let j = 0; j < q.length; j++) s += q[j]! * data[from + j]!;
  return s;
}

/**
 * Most similar first; equal similarities (identical vectors) the earlier stored first, then by id,
 * so that the object and a copy that hold the same entries in another order rank them alike.
 */
export function rankNear<T extends { id: string; similarity: number; storedAt: number }>(near: T[]): T[] {
  return near.sort((a, b) => b.similarity - a.similarity || a.storedAt - b.storedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** An entry the scan found at or above the threshold: its id, its slot in the table, its similarity. */
export interface Near {
  id: string;
  slot: number;
  similarity: number;
  storedAt: number;
}

/**
 * One scope's vectors, contiguous, for the scan: slot i holds ids[i], its vector data[i·dim …
 * (i+1)·dim), its tail norms tails[i·stride …], its packed sparse form (sparseIndex/sparseValue
 * from i·room, sparseCount[i] of them, −1: dense), when it was stored, its expiry and a payload
 * (the local copy's entry). Removal moves the last slot into the freed one; the arrays grow by doubling
 * and shrink by half when a quarter full, so a table holds at most about twice its vectors. All
 * vectors of a table have one size, set by the first.
 */
export class VectorTable<T = undefined> {
  dim = -1;
  stride = 0;
  data = new Float32Array(0);
  tails = new Float64Array(0);
  readonly ids: string[] = [];
  readonly expires: number[] = [];
  readonly stored: number[] = [];
  room = 0;
  sparseIndex = new Uint16Array(0);
  sparseValue = new Float32Array(0);
  sparseCount = new Int32Array(0);
  /** Per slot, sparseChecks suffix norms of its packed values (writeSparseTails). */
  sparseChecks = 0;
  sparseTails = new Float64Array(0);
  readonly payload: T[] = [];
  private readonly slots = new Map<string, number>();

  get size(): number {
    return this.ids.length;
  }

  slotOf(id: string): number | undefined {
    return this.slots.get(id);
  }

  /** A copy of slot i's vector. */
  vectorAt(i: number): Float32Array {
    return this.data.slice(i * this.dim, (i + 1) * this.dim);
  }

  /** Adds or replaces `id`. False (nothing changed) when the vector's size is not the table's. */
  set(id: string, vector: Float32Array, storedAt: number, expires: number, payload: T): boolean {
    if (this.ids.length === 0 && this.dim !== vector.length) {
      this.dim = vector.length;
      this.stride = tailCount(this.dim);
      this.room = sparseRoom(this.dim);
      this.data = new Float32Array(0);
      this.tails = new Float64Array(0);
      this.sparseIndex = new Uint16Array(0);
      this.sparseValue = new Float32Array(0);
      this.sparseCount = new Int32Array(0);
      this.sparseChecks = sparseCheckCount(this.room);
      this.sparseTails = new Float64Array(0);
    }
    if (vector.length !== this.dim) return false;
    let i = this.slots.get(id);
    if (i === undefined) {
      i = this.ids.length;
      if (i + 1 > this.sparseCount.length) this.resize(Math.max(1, (i + 1) * 2));
      this.slots.set(id, i);
      this.ids.push(id);
      this.expires.push(expires);
      this.stored.push(storedAt);
      this.payload.push(payload);
    }
    this.expires[i] = expires;
    this.stored[i] = storedAt;
    this.payload[i] = payload;
    this.data.set(vector, i * this.dim);
    writeTails(this.data, i * this.dim, this.dim, this.tails, i * this.stride);
    const n = (this.sparseCount[i] = packSparse(this.data, i * this.dim, this.dim, this.room, this.sparseIndex, this.sparseValue, i * this.room));
    if (n > 0) writeSparseTails(this.sparseValue, i * this.room, n, this.sparseTails, i * this.sparseChecks);
    return true;
  }

  /** Removes `id` (the last slot moves into its place). */
  delete(id: string): boolean {
    const i = this.slots.get(id);
    if (i === undefined) return false;
    const last = this.ids.length - 1;
    if (i !== last) {
      const moved = this.ids[last]!;
      this.ids[i] = moved;
      this.expires[i] = this.expires[last]!;
      this.stored[i] = this.stored[last]!;
      this.sparseCount[i] = this.sparseCount[last]!;
      this.sparseIndex.copyWithin(i * this.room, last * this.room, (last + 1) * this.room);
      this.sparseValue.copyWithin(i * this.room, last * this.room, (last + 1) * this.room);
      this.sparseTails.copyWithin(i * this.sparseChecks, last * this.sparseChecks, (last + 1) * this.sparseChecks);
      this.payload[i] = this.payload[last]!;
      this.data.copyWithin(i * this.dim, last * this.dim, (last + 1) * this.dim);
      this.tails.copyWithin(i * this.stride, last * this.stride, (last + 1) * this.stride);
      this.slots.set(moved, i);
    }
    this.ids.pop();
    this.expires.pop();
    this.stored.pop();
    this.payload.pop();
    this.slots.delete(id);
    const capacity = this.sparseCount.length;
    if (capacity >= 8 && last * 4 <= capacity) this.resize(capacity / 2);
    return true;
  }

  /**
   * The unexpired entries at or above the threshold, ranked (rankNear). A query of another size
   * finds nothing. `expired` collects the ids of expired entries passed (for callers that drop them).
   */
  scan(vector: Float32Array, threshold: number, now: number, expired?: string[]): Near[] {
    const near: Near[] = [];
    if (vector.length !== this.dim || this.ids.length === 0) return near;
    const query = prepareQuery(vector);
    const { dim, stride, data, tails, room, sparseIndex, sparseValue, sparseCount, sparseTails, sparseChecks, ids, expires } = this;
    const sparseOk = query.pruned; // a non-finite query takes the plain loop
    for (let i = 0; i < ids.length; i++) {
      if (expires[i]! <= now) {
        expired?.push(ids[i]!);
        continue;
      }
      const n = sparseCount[i]!;
      const similarity = n >= 0 && sparseOk ? sparseSimilarityAtLeast(query, sparseIndex, sparseValue, i * room, n, threshold, sparseTails, i * sparseChecks) : similarityAtLeast(query, data, i * dim, tails, i * stride, threshold);
      if (similarity === similarity) near.push({ id: ids[i]!, slot: i, similarity, storedAt: this.stored[i]! }); // NaN: below the threshold
    }
    return rankNear(near);
  }

  /** Room for `slots` entries (at least the ones held). */
  private resize(slots: number) {
    const n = this.ids.length;
    const grow = <A extends Float32Array | Float64Array | Uint16Array | Int32Array>(old: A, make: (size: number) => A, per: number): A => {
      const next = make(slots * per);
      next.set(old.subarray(0, n * per) as never);
      return next;
    };
    this.data = grow(this.data, (k) => new Float32Array(k), this.dim);
    this.tails = grow(this.tails, (k) => new Float64Array(k), this.stride);
    this.sparseIndex = grow(this.sparseIndex, (k) => new Uint16Array(k), this.room);
    this.sparseValue = grow(this.sparseValue, (k) => new Float32Array(k), this.room);
    this.sparseCount = grow(this.sparseCount, (k) => new Int32Array(k), 1);
    this.sparseTails = grow(this.sparseTails, (k) => new Float64Array(k), this.sparseChecks);
  }
}
