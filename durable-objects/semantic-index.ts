import { DurableObject } from 'cloudflare:workers';
import { guardAllows, type GuardReason } from '../worker/protocol/rules/semantic-guard';
import { VectorTable } from '../worker/protocol/rules/semantic-scan';
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
// index). The scan (worker/protocol/rules/semantic-scan.ts, shared with the isolates' copies)
// reads a sparse entry only at its non-zero dimensions, a dense one at the query's, and abandons an
// entry as soon as Cauchy–Schwarz says it cannot reach the threshold, with the same similarities
// as the full dot product: ~7× faster than 5,000 × 512 multiply-adds for the local embedding, 5–8×
// for a dense one (measured in Node). SQLite is the record; the scan runs over a copy of each
// scope's vectors in a VectorTable (one contiguous Float32Array, with per-entry tail norms and
// packed sparse forms), built on the scope's first lookup and kept in step by store and eviction
// (reading and decoding 5,000 blobs per lookup was what cost, not the arithmetic). 5,000 × 2.5 KiB
// ≈ 13 MiB, at most twice that with the arrays' spare room.
//
// Bounded: expired rows (the cache tier's TTL) are dropped on every store, and above
// max_entries the least recently used go, a fiftieth of max_entries at once (EVICT_SLACK). Every
// method is synchronous (SQLite in a Durable Object is), so calls never interleave. `now` is
// injectable for tests.
//
// Isolate-local copies (worker/cache/semantic/local-copy.ts): every store and every use (a hit
// here, or a hit an isolate reports from its copy) gives the row the next sequence number (`seq`);
// `hottest` answers an isolate's background refresh with the rows changed since its cursor, most
// recent first, so a warm isolate answers lookups without calling here.

type Row = Record<string, SqlStorageValue>;

/** Above max_entries, the least recently used go until a fiftieth of it is free (floored: none below 50), so evictions come in batches. */
export const EVICT_SLACK = 50;

/** Stores per storeMany call at most (an isolate sends fewer: worker/cache/semantic/index-store.ts STORE_BATCH_MAX). */
export const MAX_STORE_BATCH = 256;

export class SemanticIndex extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;
  /** Each loaded scope's vectors, contiguous (VectorTable, semantic-scan.ts). */
  private readonly scopes = new Map<string, VectorTable>();
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
    const table = this.vectors(q.scope);
    const near = table.scan(q.vector, q.minSimilarity, now);
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
        const i = table.slotOf(id)!;
        const entry: SemanticHotEntry = { id, scope: q.scope, vector: table.vectorAt(i), text: match.text, depth: row.depth as number, answer: match.answer, storedAt: match.storedAt, expiresAt: table.expires[i]! };
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
    this.remember(e.scope, e.id, e.vector, now, expires);
    this.nextExpiry = Math.min(this.nextExpiry, expires);
    let gone: Row[] = [];
    if (this.nextExpiry <= now) {
      gone = this.sql.exec<Row>('DELETE FROM entries WHERE expires_at <= ? RETURNING id, scope', now).toArray();
      this.nextExpiry = this.sql.exec<{ next: number | null }>('SELECT MIN(expires_at) AS next FROM entries').one().next ?? Infinity;
    }
    this.rows -= gone.length;
    if (this.rows > e.maxEntries) {
      // A fiftieth of maxEntries at once: at 5,000, one eviction of ~100 rows every hundredth store, not one row per store.
      const keep = e.maxEntries - Math.floor(e.maxEntries / EVICT_SLACK);
      const lru = this.sql.exec<Row>('DELETE FROM entries WHERE id IN (SELECT id FROM entries ORDER BY used_at ASC, stored_at ASC LIMIT ?) RETURNING id, scope', this.rows - keep).toArray();
      this.rows -= lru.length;
      gone.push(...lru);
    }
    for (const row of gone) this.forget(row.scope as string, row.id as string);
    return { evicted: gone.length };
  }

  /**
   * An isolate's batch of stores (worker/cache/semantic/index-store.ts): one call and one implicit
   * transaction for what several requests stored, each as store() does it, in order.
   */
  storeMany(entries: SemanticEntry[]): { stored: number; evicted: number } {
    let evicted = 0;
    const batch = entries.slice(0, MAX_STORE_BATCH);
    for (const e of batch) evicted += this.store(e).evicted;
    return { stored: batch.length, evicted };
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
    const live = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM entries WHERE expires_at > ?', now).one().n;
    return { cursor: this.seq, entries, skipped, live };
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
  private vectors(scope: string): VectorTable {
    let table = this.scopes.get(scope);
    if (table) return table;
    table = new VectorTable();
    for (const row of this.sql.exec<Row>('SELECT id, vec, stored_at, expires_at FROM entries WHERE scope = ?', scope)) {
      table.set(row.id as string, new Float32Array(row.vec as ArrayBuffer), row.stored_at as number, row.expires_at as number, undefined);
    }
    // Many small scopes (multi-turn conversations) must not pile up: past a thousand, start over
    // (each is re-read on its next lookup, which for a small scope is cheap).
    if (this.scopes.size >= 1_000) this.scopes.clear();
    this.scopes.set(scope, table);
    return table;
  }

  private remember(scope: string, id: string, vector: Float32Array, storedAt: number, expires: number) {
    const table = this.scopes.get(scope);
    if (!table) return; // not loaded yet: the first lookup reads it from SQLite
    // Another size cannot happen within a scope; rebuilt from SQLite if it does.
    if (!table.set(id, vector, storedAt, expires, undefined)) this.scopes.delete(scope);
  }

  private forget(scope: string, id: string) {
    this.scopes.get(scope)?.delete(id);
  }
}
