import { guardAllows } from '../../protocol/rules/semantic-guard';
import { prepareQuery, rankNear, similarityAtLeast, sparseOf, tailsOf, type SparseVector } from '../../protocol/rules/semantic-scan';
import type { SemanticHotEntry } from '../../protocol/semantic-index';
import { registerIsolateState } from '../../isolate/registry';
import { SingleFlight } from '../../isolate/single-flight';

/**
 * The isolate's copy of each tenant's hottest semantic-index entries (README "Semantic cache",
 * `[cache.semantic].lookup = "local"`): vectors, prompt text, depth and answer, keyed by tenant, then
 * by the index's scope (which carries the embedder, model, system prompt, earlier turns and
 * parameters). A lookup here is the Durable Object's lookup (durable-objects/semantic-index.ts) on
 * the entries this isolate holds: the same scan (worker/protocol/rules/semantic-scan.ts: same
 * similarities, same ranking), same threshold, the top_k nearest above it offered to the same
 * guards in the same order, expired entries never answer.
 *
 * Bounded: `bytes` counts each entry's vector (4 bytes a float), its text, answer, id and scope (2
 * bytes a character) and 200 bytes of bookkeeping; the scan's own (semantic-scan.ts: 17 tail norms
 * for 512 dimensions, a sparse vector's non-zero dimensions) is not counted; above `maxBytes` the least recently used entry (any tenant) goes. Expired entries go
 * when a lookup passes them.
 */
export interface LocalEntry extends SemanticHotEntry {
  bytes: number;
  /** The vector's tail norms and sparse form, for the scan (semantic-scan.ts). */
  tails: Float64Array;
  sparse: SparseVector | null;
}

export interface LocalMatch {
  entry: LocalEntry;
  similarity: number;
}

/** Per tenant: its entries by scope and id, and its refresh state. */
export interface TenantCopy {
  readonly scopes: Map<string, Map<string, LocalEntry>>;
  /** The object's sequence number at the last refresh (SemanticIndex.hottest). */
  cursor: number;
  /** When the last refresh started (−∞: never: the copy is cold). */
  refreshedAt: number;
  readonly refresh: SingleFlight;
  /** Ids answered from this copy since the last refresh, reported with the next one. */
  readonly touched: Set<string>;
}

const OVERHEAD_BYTES = 200;

export class LocalSemanticCopy {
  private readonly tenants = new Map<string, TenantCopy>();
  /** Every entry, least recently used first (Map order), keyed tenant \0 id. */
  private readonly lru = new Map<string, { tenant: string; entry: LocalEntry }>();
  bytes = 0;

  constructor(public maxBytes: number) {}

  tenant(tenantId: string): TenantCopy {
    let t = this.tenants.get(tenantId);
    if (!t) this.tenants.set(tenantId, (t = { scopes: new Map(), cursor: 0, refreshedAt: -Infinity, refresh: new SingleFlight(), touched: new Set() }));
    return t;
  }

  /** Entries held for a tenant (tests). */
  size(tenantId: string): number {
    let n = 0;
    for (const m of this.tenants.get(tenantId)?.scopes.values() ?? []) n += m.size;
    return n;
  }

  /** The nearest entry of the tenant's scope at or above the threshold that the guards accept; null: a local miss. */
  lookup(q: { tenantId: string; scope: string; vector: Float32Array; text: string; depth: number; threshold: number; topK: number; now: number }): LocalMatch | null {
    const entries = this.tenants.get(q.tenantId)?.scopes.get(q.scope);
    if (!entries) return null;
    const near: (LocalMatch & { id: string })[] = [];
    const query = prepareQuery(q.vector);
    for (const entry of entries.values()) {
      if (entry.expiresAt <= q.now) {
        this.remove(q.tenantId, entry);
        continue;
      }
      if (entry.vector.length !== q.vector.length) continue;
      const similarity = similarityAtLeast(query, entry.vector, 0, entry.tails, 0, entry.sparse, q.threshold);
      if (similarity === similarity) near.push({ id: entry.id, entry, similarity }); // NaN: below the threshold
    }
    rankNear(near);
    for (let k = 0; k < near.length && k < q.topK; k++) {
      const m = near[k]!;
      if (!guardAllows({ text: q.text, depth: q.depth }, { text: m.entry.text, depth: m.entry.depth }).ok) continue;
      this.used(q.tenantId, m.entry);
      return { entry: m.entry, similarity: m.similarity };
    }
    return null;
  }

  /** Adds or replaces an entry (a newer copy of an id never gives way to an older one); expired ones are not kept. */
  put(tenantId: string, e: SemanticHotEntry, now: number): void {
    if (e.expiresAt <= now || this.maxBytes <= 0) return;
    const t = this.tenant(tenantId);
    const old = this.find(tenantId, e.id);
    if (old) {
      if (old.storedAt > e.storedAt) return;
      this.remove(tenantId, old);
    }
    const entry: LocalEntry = { ...e, bytes: e.vector.byteLength + 2 * (e.text.length + e.answer.length + e.id.length + e.scope.length) + OVERHEAD_BYTES, tails: tailsOf(e.vector), sparse: sparseOf(e.vector, 0, e.vector.length) };
    if (entry.bytes > this.maxBytes) return;
    let scope = t.scopes.get(e.scope);
    if (!scope) t.scopes.set(e.scope, (scope = new Map()));
    scope.set(e.id, entry);
    this.lru.set(`${tenantId}\0${e.id}`, { tenant: tenantId, entry });
    this.bytes += entry.bytes;
    while (this.bytes > this.maxBytes) {
      const oldest = this.lru.values().next().value;
      if (!oldest) break;
      this.remove(oldest.tenant, oldest.entry);
    }
  }

  /** Forgets everything (a fresh isolate; tests and the dev stack's forget-isolate). */
  clear(): void {
    this.tenants.clear();
    this.lru.clear();
    this.bytes = 0;
  }

  private find(tenantId: string, id: string): LocalEntry | undefined {
    return this.lru.get(`${tenantId}\0${id}`)?.entry;
  }

  private used(tenantId: string, entry: LocalEntry) {
    const key = `${tenantId}\0${entry.id}`;
    const slot = this.lru.get(key);
    if (!slot) return;
    this.lru.delete(key);
    this.lru.set(key, slot);
    this.tenant(tenantId).touched.add(entry.id);
  }

  private remove(tenantId: string, entry: LocalEntry) {
    const key = `${tenantId}\0${entry.id}`;
    if (this.lru.get(key)?.entry !== entry) return;
    this.lru.delete(key);
    this.bytes -= entry.bytes;
    const t = this.tenants.get(tenantId);
    const scope = t?.scopes.get(entry.scope);
    scope?.delete(entry.id);
    if (t && scope && scope.size === 0) t.scopes.delete(entry.scope);
  }
}

/** The isolate's one copy; its bound follows the config in use ([cache.semantic].local_bytes). */
export const localSemanticCopy = new LocalSemanticCopy(4 * 1024 * 1024);
registerIsolateState('semantic-local-copy', () => localSemanticCopy.clear());
