import { guardAllows } from '../../protocol/rules/semantic-guard';
import { VectorTable } from '../../protocol/rules/semantic-scan';
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
 * Each scope's vectors are held as the object holds them: in a VectorTable (semantic-scan.ts),
 * contiguous, with their tail norms and sparse forms, the entry (prompt, answer, …) as the slot's
 * payload.
 *
 * Bounded: `bytes` counts each entry's vector (4 bytes a float), its text, answer, id and scope (2
 * bytes a character) and 200 bytes of bookkeeping; above `maxBytes` the least recently used entry
 * (any tenant) goes. Not counted: the scan's own per entry (tail norms and a packed sparse form,
 * about 0.5 KiB for 512 dimensions) and a table's spare room (it grows by doubling and shrinks when
 * a quarter full). Expired entries go when a lookup passes them.
 */
export interface LocalEntry extends Omit<SemanticHotEntry, 'vector'> {
  bytes: number;
}

export interface LocalMatch {
  entry: LocalEntry;
  similarity: number;
}

/** Per tenant: its entries by scope and id, and its refresh state. */
export interface TenantCopy {
  readonly scopes: Map<string, VectorTable<LocalEntry>>;
  /** The object's sequence number at the last refresh (SemanticIndex.hottest). */
  cursor: number;
  /** When the last refresh started (−∞: never: the copy is cold). */
  refreshedAt: number;
  readonly refresh: SingleFlight;
  /** Ids answered from this copy since the last refresh, reported with the next one. */
  readonly touched: Set<string>;
  /**
   * The object may hold entries this copy does not: true until a refresh lands (cold), when a
   * refresh finds the object holding more unexpired rows than the copy, and when the copy drops an
   * entry of the tenant for room. local-index.ts asks the object on a local miss only then.
   */
  behind: boolean;
  /** A background lookup to learn from (LocalSemanticIndex.learn) is in flight: misses meanwhile do not start another. */
  learning: boolean;
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
    if (!t) this.tenants.set(tenantId, (t = { scopes: new Map(), cursor: 0, refreshedAt: -Infinity, refresh: new SingleFlight(), touched: new Set(), behind: true, learning: false }));
    return t;
  }

  /** Entries held for a tenant (tests). */
  size(tenantId: string): number {
    let n = 0;
    for (const table of this.tenants.get(tenantId)?.scopes.values() ?? []) n += table.size;
    return n;
  }

  /** Unexpired entries held for a tenant. */
  liveSize(tenantId: string, now: number): number {
    let n = 0;
    for (const table of this.tenants.get(tenantId)?.scopes.values() ?? []) for (const expires of table.expires) if (expires > now) n++;
    return n;
  }

  /** The nearest entry of the tenant's scope at or above the threshold that the guards accept; null: a local miss. */
  lookup(q: { tenantId: string; scope: string; vector: Float32Array; text: string; depth: number; threshold: number; topK: number; now: number }): LocalMatch | null {
    const table = this.tenants.get(q.tenantId)?.scopes.get(q.scope);
    if (!table) return null;
    const expired: string[] = [];
    const near = table.scan(q.vector, q.threshold, q.now, expired);
    let found: LocalMatch | null = null;
    for (let k = 0; k < near.length && k < q.topK; k++) {
      const entry = table.payload[near[k]!.slot]!;
      if (!guardAllows({ text: q.text, depth: q.depth }, { text: entry.text, depth: entry.depth }).ok) continue;
      this.used(q.tenantId, entry);
      found = { entry, similarity: near[k]!.similarity };
      break;
    }
    for (const id of expired) {
      const entry = this.find(q.tenantId, id);
      if (entry) this.remove(q.tenantId, entry);
    }
    return found;
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
    const { vector, ...rest } = e;
    const entry: LocalEntry = { ...rest, bytes: vector.byteLength + 2 * (e.text.length + e.answer.length + e.id.length + e.scope.length) + OVERHEAD_BYTES };
    if (entry.bytes > this.maxBytes) {
      t.behind = true;
      return;
    }
    let scope = t.scopes.get(e.scope);
    if (!scope) t.scopes.set(e.scope, (scope = new VectorTable<LocalEntry>()));
    if (!scope.set(e.id, vector, e.storedAt, e.expiresAt, entry)) return; // another size than the scope's: cannot happen (the scope carries the embedder)
    this.lru.set(`${tenantId}\0${e.id}`, { tenant: tenantId, entry });
    this.bytes += entry.bytes;
    while (this.bytes > this.maxBytes) {
      const oldest = this.lru.values().next().value;
      if (!oldest) break;
      this.remove(oldest.tenant, oldest.entry);
      this.tenant(oldest.tenant).behind = true; // the object still holds it
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
