import { DurableObject } from 'cloudflare:workers';
import { guardAllows, type GuardReason } from '../worker/protocol/rules/semantic-guard';
import { prepareQuery, rankNear, similarityAtLeast, sparseOf, tailCount, writeTails, type SparseVector } from '../worker/protocol/rules/semantic-scan';
import type { SemanticEntry, SemanticHotEntry, SemanticHotRequest, SemanticHotResult, SemanticLookup, SemanticLookupResult } from '../worker/protocol/semantic-index';

// The embedded semantic index: one per tenant (`SEMANTIC_INDEX.idFromName(tenant)`), prompts and
// their answers in SQLite, vectors as Float32 blobs. worker/cache/semantic/ computes the vector in
// the Worker (the local embedding, or an embedding backend) and makes ONE call per lookup.
//
// Why the embedding is not computed here: a backend embedding is a network call, and this object
// is single-threaded per tenant; embedding in the Worker keeps the object busy only for the scan,
// and the same vector is reused for the store after the answer (no second embedding).
//
// Why a brute-force scan: an index holds at most max_entries_per_tenant prompts (5,000 by default),
// and a lookup scans only the rows of its scope (same model, system prompt, earlier turns and
// parameters), with exact results and nothing to rebuild or tune; an ANN structure (HNSW, IVF)
// pays off from hundreds of thousands of vectors, which is Upstash Vector's job (the production
// index). The scan (worker/protocol/rules/semantic-scan.ts, shared with the isolates' copies) skips
// the query's zero dimensions and abandons an entry as soon as Cauchy–Schwarz says it cannot reach
// the threshold, with the same similarities as the full dot product: about 10× fewer operations
// than 5,000 × 512 multiply-adds for the local embedding, 5–8× for a dense one. SQLite is the
// record; the scan runs over a copy of each scope's vectors in one contiguous Float32Array (and
// their tail norms in a Float64Array), built on the scope's first lookup and kept in step by store
// and eviction (reading and decoding 5,000 blobs per lookup was what cost, not the arithmetic).
// 5,000 × 2 KiB = 10 MiB, at most twice that with the arrays' spare room.
//
// Bounded: expired rows (the cache tier's TTL) are dropped on every store, and above
// max_entries the least recently used go. Every method is synchronous (SQLite in a Durable Object
// is), so calls never interleave. `now` is injectable for tests.
//
// Isolate-local copies (worker/cache/semantic/local-copy.ts): every store and every use (a hit
// here, or a hit an isolate reports from its copy) gives the row the next sequence number (`seq`);
// `hottest` answers an isolate's background refresh with the rows changed since its cursor, most
// recent first, so a warm isolate answers lookups without calling here.

type Row = Record<string, SqlStorageValue>;

/** One scope's vectors, contiguous: slot i is ids[i], data[i*dim … (i+1)*dim), its tail norms tails[i*stride … (i+1)*stride). */
interface ScopeVectors {
  dim: number;
  /** tailCount(dim) */
  stride: number;
  ids: string[];
  expires: number[];
  data: Float32Array;
  tails: Float64Array;
  /** The sparse form of slot i's vector, when it has one (semantic-scan.ts). */
  sparse: (SparseVector | null)[];
  slot: Map<string, number>;
}

export class SemanticIndex extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;
  private readonly scopes = new Map<string, ScopeVectors>();
  /** The last sequence number given to a row (stored or used). */
  private seq: number;
  /** Rows held, kept in step by store and clear (a COUNT(*) per store was a scan of the table). */
  private rows: number;
  /** No row expires before this (a lower bound): a store skips the expiry sweep until then. */
  private nextExpiry: number;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS entries (
      id TEXT PRIMARY KEY,
      scope TEXT NOT NULL,
      vec BLOB NOT NULL,
      text TEXT NOT NULL,
      depth INTEGER NOT NULL,
      answer TEXT NOT NULL,
      stored_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      used_at INTEGER NOT NULL
    )`);
    this.sql.exec('CREATE INDEX IF NOT EXISTS entries_scope ON entries (scope)');
    this.sql.exec('CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at)');
    this.sql.exec('CREATE INDEX IF NOT EXISTS entries_used ON entries (used_at)');
    // Added for the isolates' local copies: objects created before it get the column here.
    if (!this.sql.exec('SELECT * FROM entries LIMIT 0').columnNames.includes('seq')) this.sql.exec('ALTER TABLE entries ADD COLUMN seq INTEGER NOT NULL DEFAULT 0');
    this.sql.exec('CREATE INDEX IF NOT EXISTS entries_seq ON entries (seq)');
    const held = this.sql.exec<{ seq: number; n: number; next: number | null }>('SELECT COALESCE(MAX(seq), 0) AS seq, COUNT(*) AS n, MIN(expires_at) AS next FROM entries').one();
    this.seq = held.seq;
    this.rows = held.n;
    this.nextExpiry = held.next ?? Infinity;
  }

  /** The most similar stored prompt of the scope that reaches the threshold and passes the guards, with its answer. */
  lookup(q: SemanticLookup): SemanticLookupResult {
    const now = q.now ?? Date.now();
    const near: { id: string; similarity: number }[] = [];
    const sv = this.vectors(q.scope);
    if (sv.dim === q.vector.length && sv.ids.length > 0) {
      const { dim, stride, data, tails, sparse, ids, expires } = sv;
      const query = prepareQuery(q.vector);
      for (let i = 0; i < ids.length; i++) {
        if (expires[i]! <= now) continue;
        const similarity = similarityAtLeast(query, data, i * dim, tails, i * stride, sparse[i]!, q.minSimilarity);
        if (similarity === similarity) near.push({ id: ids[i]!, similarity }); // NaN: below the threshold
      }
    }
    rankNear(near);
    const refused: GuardReason[] = [];
    for (const { id, similarity } of near.slice(0, q.topK)) {
      const row = this.sql.exec<Row>('SELECT text, depth, answer, stored_at FROM entries WHERE id = ? AND scope = ?', id, q.scope).toArray()[0];
      if (!row) continue;
      const verdict = guardAllows({ text: q.text, depth: q.depth }, { text: row.text as string, depth: row.depth as number });
      if (!verdict.ok) {
        refused.push(verdict.reason);
        continue;
      }
      this.sql.exec('UPDATE entries SET used_at = ?, seq = ? WHERE id = ?', now, ++this.seq, id);
      const match = { id, similarity, text: row.text as string, answer: row.answer as string, storedAt: row.stored_at as number };
      if (q.withEntry) {
        const i = sv.slot.get(id)!;
        const entry: SemanticHotEntry = { id, scope: q.scope, vector: sv.data.slice(i * sv.dim, (i + 1) * sv.dim), text: match.text, depth: row.depth as number, answer: match.answer, storedAt: match.storedAt, expiresAt: sv.expires[i]! };
        return { match: { ...match, entry }, above: near.length, refused };
      }
      return { match, above: near.length, refused };
    }
    return { match: null, above: near.length, refused };
  }

  /** Stores (or replaces) a prompt and its answer, then drops expired rows and the least recently used above maxEntries. */
  store(e: SemanticEntry): { evicted: number } {
    const now = e.now ?? Date.now();
    const vec = e.vector.buffer.slice(e.vector.byteOffset, e.vector.byteOffset + e.vector.byteLength) as ArrayBuffer;
    const expires = now + e.ttlSeconds * 1000;
    if (this.sql.exec('SELECT 1 FROM entries WHERE id = ?', e.id).toArray().length === 0) this.rows++;
    this.sql.exec(
      `INSERT INTO entries (id, scope, vec, text, depth, answer, stored_at, expires_at, used_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET scope = excluded.scope, vec = excluded.vec, text = excluded.text, depth = excluded.depth,
         answer = excluded.answer, stored_at = excluded.stored_at, expires_at = excluded.expires_at, used_at = excluded.used_at, seq = excluded.seq`,
      e.id,
      e.scope,
      vec,
      e.text,
      e.depth,
      e.answer,
      now,
      expires,
      now,
      ++this.seq,
    );
    this.remember(e.scope, e.id, e.vector, expires);
    this.nextExpiry = Math.min(this.nextExpiry, expires);
    let gone: Row[] = [];
    if (this.nextExpiry <= now) {
      gone = this.sql.exec<Row>('DELETE FROM entries WHERE expires_at <= ? RETURNING id, scope', now).toArray();
      this.nextExpiry = this.sql.exec<{ next: number | null }>('SELECT MIN(expires_at) AS next FROM entries').one().next ?? Infinity;
    }
    this.rows -= gone.length;
    if (this.rows > e.maxEntries) {
      const lru = this.sql.exec<Row>('DELETE FROM entries WHERE id IN (SELECT id FROM entries ORDER BY used_at ASC, stored_at ASC LIMIT ?) RETURNING id, scope', this.rows - e.maxEntries).toArray();
      this.rows -= lru.length;
      gone.push(...lru);
    }
    for (const row of gone) this.forget(row.scope as string, row.id as string);
    return { evicted: gone.length };
  }

  /**
   * An isolate's background refresh (worker/cache/semantic/local-copy.ts): first counts the ids it
   * answered from its copy as used, then returns the unexpired rows stored or used since `after`,
   * most recent first, up to `limit` rows and about `maxBytes`. A cursor ahead of this object's
   * (the object was cleared) starts over from 0.
   */
  hottest(r: SemanticHotRequest): SemanticHotResult {
    const now = r.now ?? Date.now();
    for (const id of (r.touched ?? []).slice(0, 1_000)) this.sql.exec('UPDATE entries SET used_at = ?, seq = ? WHERE id = ?', now, ++this.seq, id);
    const after = r.after > this.seq ? 0 : r.after;
    const entries: SemanticHotEntry[] = [];
    let bytes = 0;
    const rows = this.sql.exec<Row>('SELECT id, scope, vec, text, depth, answer, stored_at, expires_at FROM entries WHERE seq > ? AND expires_at > ? ORDER BY seq DESC LIMIT ?', after, now, r.limit);
    for (const row of rows) {
      const size = (row.vec as ArrayBuffer).byteLength + 2 * ((row.text as string).length + (row.answer as string).length);
      if (bytes + size > r.maxBytes) continue;
      bytes += size;
      entries.push({
        id: row.id as string,
        scope: row.scope as string,
        vector: new Float32Array(row.vec as ArrayBuffer),
        text: row.text as string,
        depth: row.depth as number,
        answer: row.answer as string,
        storedAt: row.stored_at as number,
        expiresAt: row.expires_at as number,
      });
    }
    const changed = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM entries WHERE seq > ? AND expires_at > ?', after, now).one().n;
    const skipped = changed - entries.length;
    return { cursor: this.seq, entries, skipped };
  }

  /** Rows held (expired ones not yet dropped included). */
  size(): number {
    return this.rows;
  }

  /** Drops every row (admin and tests). */
  clear(): void {
    this.sql.exec('DELETE FROM entries');
    this.scopes.clear();
    this.rows = 0;
    this.nextExpiry = Infinity;
  }

  /** The scope's vectors in memory, read from SQLite on first use. A scope holds one embedder's vectors, so one size. */
  private vectors(scope: string): ScopeVectors {
    let sv = this.scopes.get(scope);
    if (sv) return sv;
    const rows = this.sql.exec<Row>('SELECT id, vec, expires_at FROM entries WHERE scope = ?', scope).toArray();
    const dim = rows.length ? (rows[0]!.vec as ArrayBuffer).byteLength / 4 : 0;
    const stride = tailCount(dim);
    sv = { dim, stride, ids: [], expires: [], data: new Float32Array(rows.length * dim), tails: new Float64Array(rows.length * stride), sparse: [], slot: new Map() };
    for (const row of rows) {
      const blob = row.vec as ArrayBuffer;
      if (blob.byteLength !== dim * 4) continue;
      const i = sv.ids.length;
      sv.data.set(new Float32Array(blob), i * dim);
      writeTails(sv.data, i * dim, dim, sv.tails, i * stride);
      sv.sparse.push(sparseOf(sv.data, i * dim, dim));
      sv.slot.set(row.id as string, i);
      sv.ids.push(row.id as string);
      sv.expires.push(row.expires_at as number);
    }
    // Many small scopes (multi-turn conversations) must not pile up: past a thousand, start over
    // (each is re-read on its next lookup, which for a small scope is cheap).
    if (this.scopes.size >= 1_000) this.scopes.clear();
    this.scopes.set(scope, sv);
    return sv;
  }

  private remember(scope: string, id: string, vector: Float32Array, expires: number) {
    const sv = this.scopes.get(scope);
    if (!sv) return; // not loaded yet: the first lookup reads it from SQLite
    if (sv.ids.length === 0 && sv.dim !== vector.length) {
      sv.dim = vector.length;
      sv.stride = tailCount(sv.dim);
      sv.data = new Float32Array(0);
      sv.tails = new Float64Array(0);
    }
    if (vector.length !== sv.dim) {
      this.scopes.delete(scope); // cannot happen within a scope; rebuilt from SQLite if it does
      return;
    }
    let i = sv.slot.get(id);
    if (i === undefined) {
      i = sv.ids.length;
      if ((i + 1) * sv.dim > sv.data.length || (i + 1) * sv.stride > sv.tails.length) {
        const slots = Math.max(4, (i + 1) * 2);
        const data = new Float32Array(slots * sv.dim);
        data.set(sv.data.subarray(0, i * sv.dim));
        sv.data = data;
        const tails = new Float64Array(slots * sv.stride);
        tails.set(sv.tails.subarray(0, i * sv.stride));
        sv.tails = tails;
      }
      sv.slot.set(id, i);
      sv.ids.push(id);
      sv.expires.push(expires);
      sv.sparse.push(null);
    }
    sv.expires[i] = expires;
    sv.data.set(vector, i * sv.dim);
    writeTails(sv.data, i * sv.dim, sv.dim, sv.tails, i * sv.stride);
    sv.sparse[i] = sparseOf(sv.data, i * sv.dim, sv.dim);
  }

  /** Swap-remove: the last slot moves into the freed one. */
  private forget(scope: string, id: string) {
    const sv = this.scopes.get(scope);
    const i = sv?.slot.get(id);
    if (!sv || i === undefined) return;
    const last = sv.ids.length - 1;
    if (i !== last) {
      const moved = sv.ids[last]!;
      sv.ids[i] = moved;
      sv.expires[i] = sv.expires[last]!;
      sv.data.copyWithin(i * sv.dim, last * sv.dim, (last + 1) * sv.dim);
      sv.tails.copyWithin(i * sv.stride, last * sv.stride, (last + 1) * sv.stride);
      sv.sparse[i] = sv.sparse[last]!;
      sv.slot.set(moved, i);
    }
    sv.ids.pop();
    sv.expires.pop();
    sv.sparse.pop();
    sv.slot.delete(id);
  }
}
