import type { Index } from '@upstash/vector/cloudflare';
import type { SemanticIndex } from '../../env';
import { upstashHealth, type UpstashHealth } from '../upstash-health';
import { guardAllows } from '../../protocol/rules/semantic-guard';
import type { SemanticEntry } from '../../protocol/semantic-index';
import { ReportLoop, type ReportLoopSpec } from '../../isolate/report-loop';

/**
 * Where the semantic cache keeps prompts and answers, behind one interface: the per-tenant
 * Durable Object (the embedded default), Upstash Vector (production), and the fallback from the
 * second to the first. Every implementation compares only prompts of the same tenant and scope,
 * answers only at or above the threshold, and only what the guards accept.
 */
export interface SemanticQuery {
  tenantId: string;
  /** Hash of everything but the embedded text (semantic.ts). */
  scope: string;
  text: string;
  depth: number;
  /** Cosine similarity needed for a hit. */
  threshold: number;
  topK: number;
  /** The prompt's vector for the embedded index, computed on first use (null: cannot be embedded, no lookup). */
  vector: () => Promise<Float32Array | null>;
  now: number;
  /** Hands work to the request's waitUntil (local-index.ts: the refresh and the remote lookup of a local miss). */
  background?: (work: Promise<unknown>) => void;
}

export interface SemanticHit {
  similarity: number;
  /** The stored prompt whose answer is replayed. */
  text: string;
  /** A serialized CachedAnswer. */
  answer: string;
  storedAt: number;
}

export interface SemanticEntryInput {
  tenantId: string;
  scope: string;
  /** Stable per scope and text, so a repeat replaces its entry. */
  id: string;
  text: string;
  depth: number;
  answer: string;
  ttlSeconds: number;
  vector: () => Promise<Float32Array | null>;
  now: number;
  /**
   * The request's waitUntil. With it, the embedded index batches the store with other requests'
   * (one call per tenant per STORE_BATCH_WAIT_MS); without it, the store is one call of its own.
   */
  background?: (work: Promise<unknown>) => void;
}

export interface SemanticIndexStore {
  /** "durable-object", "upstash-vector" or "fallback(upstash-vector→durable-object)": for logs. */
  readonly name: string;
  /** The best accepted match, or null. Throws when the index cannot be reached. */
  lookup(q: SemanticQuery): Promise<SemanticHit | null>;
  store(e: SemanticEntryInput): Promise<void>;
}

/** The embedded index: one SemanticIndex Durable Object per tenant; the guards run inside it (one call per lookup). */
export class DurableObjectSemanticIndex implements SemanticIndexStore {
  readonly name = 'durable-object';

  constructor(
    private readonly ns: DurableObjectNamespace<SemanticIndex>,
    /** The embedder's id is part of the scope: vectors of two embedders are never compared. */
    private readonly embedderId: string,
    private readonly maxEntries: number,
  ) {}

  async lookup(q: SemanticQuery): Promise<SemanticHit | null> {
    const vector = await q.vector();
    if (!vector) return null;
    const r = await this.stub(q.tenantId).lookup({ scope: this.scopeOf(q.scope), vector, text: q.text, depth: q.depth, minSimilarity: q.threshold, topK: q.topK, now: q.now });
    return r.match ? { similarity: r.match.similarity, text: r.match.text, answer: r.match.answer, storedAt: r.match.storedAt } : null;
  }

  async store(e: SemanticEntryInput): Promise<void> {
    const vector = await e.vector();
    if (!vector) return;
    const entry: SemanticEntry = { id: this.scopeOf(e.id), scope: this.scopeOf(e.scope), vector, text: e.text, depth: e.depth, answer: e.answer, ttlSeconds: e.ttlSeconds, maxEntries: this.maxEntries, now: e.now };
    if (!e.background) {
      await this.stub(e.tenantId).store(entry);
      return;
    }
    let b = this.batches.get(e.tenantId);
    if (!b) {
      if (this.batches.size >= MAX_BATCHED_TENANTS) this.dropIdleBatches();
      this.batches.set(e.tenantId, (b = { pending: [], firstAt: 0, dropped: 0, loop: new ReportLoop(STORES) }));
    }
    if (b.pending.length === 0) b.firstAt = Date.now();
    if (b.pending.length >= STORE_PENDING_MAX) {
      b.pending.shift(); // the object is behind: the oldest store goes (a cache entry, not a record)
      b.dropped++;
    }
    b.pending.push(entry);
    b.loop.pump({ waitUntil: e.background }, { index: this, tenantId: e.tenantId, batch: b });
  }

  /** Per tenant: the stores waiting for the next call, and the loop that sends them. */
  private readonly batches = new Map<string, TenantStores>();

  private dropIdleBatches(): void {
    for (const [tenant, b] of this.batches) if (b.pending.length === 0 && !b.loop.running(Date.now())) this.batches.delete(tenant);
  }

  /** The tenant's object (local-index.ts calls it too). */
  stub(tenantId: string) {
    return this.ns.get(this.ns.idFromName(tenantId));
  }

  /** Scopes and ids carry the embedder's id. */
  scopeOf(key: string) {
    return `${this.embedderId}:${key}`;
  }
}

/**
 * Stores batched per tenant: each request's store joins its tenant's pending batch, and the
 * isolate's report loop (worker/isolate/report-loop.ts, running in the waitUntil of the request
 * that started it) sends the batch in one storeMany call once the first store has waited
 * STORE_BATCH_WAIT_MS, or at once when STORE_BATCH_MAX are waiting. A store is data handed over, no
 * promise crosses requests (a cross-request hand-over lost stores before: README "Semantic cache").
 * What a request stored is already in its isolate's copy (local-index.ts); the wait only delays it
 * for other isolates.
 */
export const STORE_BATCH_WAIT_MS = 20;
export const STORE_BATCH_MAX = 64;
/** Waiting stores per tenant at most: past it the oldest goes (the object is not keeping up). */
const STORE_PENDING_MAX = 1_024;
/** Tenants with a batch object at most (idle ones are dropped first). */
const MAX_BATCHED_TENANTS = 1_000;

interface TenantStores {
  pending: SemanticEntry[];
  /** When the oldest pending store joined. */
  firstAt: number;
  /** Stores pushed out since the last batch left (logged with it). */
  dropped: number;
  loop: ReportLoop<StoreArgs, SemanticEntry[], unknown>;
}

interface StoreArgs {
  index: DurableObjectSemanticIndex;
  tenantId: string;
  batch: TenantStores;
}

const STORES: ReportLoopSpec<StoreArgs, SemanticEntry[], unknown> = {
  what: 'semantic stores',
  due: (now, { batch }) => (batch.pending.length === 0 ? 'idle' : batch.pending.length >= STORE_BATCH_MAX ? 0 : Math.max(0, batch.firstAt + STORE_BATCH_WAIT_MS - now)),
  take: (now, { batch, tenantId }) => {
    if (batch.dropped > 0) console.warn(JSON.stringify({ msg: 'semantic cache: the index object is behind; oldest stores dropped', tenant: tenantId, dropped: batch.dropped }));
    batch.dropped = 0;
    const sent = batch.pending.splice(0, STORE_BATCH_MAX);
    batch.firstAt = now;
    return sent;
  },
  send: (entries, { index, tenantId }) => index.stub(tenantId).storeMany(entries),
  apply: () => {},
  failed: (err, entries, { tenantId }) => console.warn(JSON.stringify({ msg: 'semantic cache error', op: 'store', tenant: tenantId, lost: entries.length, error: String(err) })),
  maxLoopMs: 10_000,
};

interface VectorMetadata {
  scope: string;
  depth: number;
  answer: string;
  stored_at: number;
  expires_at: number;
  [k: string]: unknown;
}

/**
 * Upstash Vector with the index's own (server-side) embedding model: prompts go in and out as
 * text (`upsert-data`, `query-data`), one namespace per tenant (`<key_prefix>sem:<tenant>`), and
 * the scope, depth, expiry and answer as metadata. A query asks for the top_k nearest of the
 * tenant's namespace filtered to the scope and to unexpired entries; the guards then run here.
 *
 * Scores: Upstash normalizes every score to [0, 1]; for a cosine index the score is
 * (1 + cosine) / 2, so the configured threshold (a cosine) is compared with 2·score − 1.
 * Upstash Vector has no TTL: entries carry their expiry, queries filter on it, and expired
 * entries of a namespace are deleted (delete by filter) at most once an hour per isolate.
 */
export class UpstashVectorSemanticIndex implements SemanticIndexStore {
  readonly name = 'upstash-vector';
  private readonly swept = new Map<string, number>();

  constructor(
    private readonly index: Index,
    private readonly keyPrefix: string,
    private readonly sweepIntervalMs = 3_600_000,
  ) {}

  async lookup(q: SemanticQuery): Promise<SemanticHit | null> {
    const results = await this.index.namespace(this.namespaceOf(q.tenantId)).query<VectorMetadata>({
      data: q.text,
      topK: q.topK,
      includeMetadata: true,
      includeData: true,
      filter: `scope = '${q.scope}' AND expires_at > ${q.now}`,
    });
    for (const r of results) {
      const m = r.metadata;
      const similarity = 2 * r.score - 1;
      // The filter already did this; checked again so that a filter Upstash reads differently can never widen a hit.
      if (!m || m.scope !== q.scope || !(m.expires_at > q.now) || typeof m.answer !== 'string' || typeof r.data !== 'string') continue;
      if (similarity < q.threshold) break; // sorted by score
      if (!guardAllows({ text: q.text, depth: q.depth }, { text: r.data, depth: m.depth }).ok) continue;
      return { similarity, text: r.data, answer: m.answer, storedAt: m.stored_at };
    }
    return null;
  }

  async store(e: SemanticEntryInput): Promise<void> {
    const ns = this.index.namespace(this.namespaceOf(e.tenantId));
    const metadata: VectorMetadata = { scope: e.scope, depth: e.depth, answer: e.answer, stored_at: e.now, expires_at: e.now + e.ttlSeconds * 1000 };
    await ns.upsert({ id: e.id, data: e.text, metadata });
    const last = this.swept.get(e.tenantId);
    if (last === undefined || e.now - last >= this.sweepIntervalMs) {
      this.swept.set(e.tenantId, e.now);
      // Housekeeping, not the write: its failure must not send the write to the fallback.
      await ns.delete({ filter: `expires_at <= ${e.now}` }).catch(() => {});
    }
  }

  private namespaceOf(tenantId: string) {
    return `${this.keyPrefix}sem:${tenantId}`;
  }
}

/**
 * Upstash Vector first, the Durable Object index when it fails, as FallbackStore does for the
 * response caches: the request never sees the error, the failure is logged at most once per
 * interval and counted (upstash-health.ts, component "semantic-cache"), and Upstash is left
 * alone for retry_after_ms. The two are not kept in sync: what is stored during an outage stays
 * in the Durable Object.
 */
export class FallbackSemanticIndex implements SemanticIndexStore {
  readonly name: string;

  constructor(
    private readonly primary: SemanticIndexStore,
    private readonly fallback: SemanticIndexStore,
    private readonly opts: { url: string; retryAfterMs: number; component?: string; health?: UpstashHealth },
  ) {
    this.name = `fallback(${primary.name}→${fallback.name})`;
  }

  lookup(q: SemanticQuery): Promise<SemanticHit | null> {
    return this.run('lookup', (s) => s.lookup(q));
  }

  store(e: SemanticEntryInput): Promise<void> {
    return this.run('store', (s) => s.store(e));
  }

  private async run<T>(op: string, call: (s: SemanticIndexStore) => Promise<T>): Promise<T> {
    const health = this.opts.health ?? upstashHealth;
    const component = this.opts.component ?? 'semantic-cache';
    if (health.available(this.opts.url)) {
      try {
        const result = await call(this.primary);
        health.succeeded(this.opts.url);
        return result;
      } catch (e) {
        health.failed(this.opts.url, component, op, e, this.opts.retryAfterMs);
      }
    }
    health.fellBack(component, op);
    return call(this.fallback);
  }
}
