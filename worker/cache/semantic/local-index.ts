import type { DurableObjectSemanticIndex, SemanticEntryInput, SemanticHit, SemanticIndexStore, SemanticQuery } from './index-store';
import type { LocalSemanticCopy } from './local-copy';

export interface LocalLookupSettings {
  /** [cache.semantic].local_bytes */
  maxBytes: number;
  /** [cache.semantic].refresh_ms */
  refreshMs: number;
  /** [cache.semantic].refresh_entries */
  refreshEntries: number;
}

/**
 * `[cache.semantic].lookup = "local"` on the Durable Object index: a lookup is answered from the
 * isolate's copy of the tenant's hottest entries (local-copy.ts), with no call to the object on the
 * request path.
 *
 * - A local hit answers. The ids it used are reported to the object with the next refresh.
 * - A local miss is a miss: the request goes upstream at once. While the object may hold entries
 *   the copy does not (the copy is cold, or behind: TenantCopy.behind), it is asked in the
 *   background (the same lookup as "remote" mode, with the match's vector), only to import what it
 *   would have answered, so the next similar request hits here. Otherwise it is not asked: the
 *   copy holds what the object held at the last refresh, and the copy's lookup is the object's
 *   lookup on those entries (the same scan, semantic-scan.ts), so the object would find nothing
 *   more, bar what other isolates stored since (the next refresh brings it).
 * - The tenant's copy is refreshed in the background at most every refresh_ms, while the tenant is
 *   looked up: the object's rows stored or used since the copy's cursor (SemanticIndex.hottest),
 *   most recent first, up to refresh_entries. A cold copy (a new isolate) starts with one.
 * - A store goes into the copy at once, then to the object (the store already runs after the answer).
 *
 * Without a waitUntil (no `background`), a lookup is the object's, as in "remote" mode.
 */
export class LocalFirstSemanticIndex implements SemanticIndexStore {
  readonly name = 'local-copy(durable-object)';

  constructor(
    private readonly remote: DurableObjectSemanticIndex,
    private readonly copy: LocalSemanticCopy,
    private readonly settings: LocalLookupSettings,
  ) {}

  async lookup(q: SemanticQuery): Promise<SemanticHit | null> {
    if (!q.background) return this.remote.lookup(q);
    this.copy.maxBytes = this.settings.maxBytes;
    const vector = await q.vector();
    if (!vector) return null;
    const scope = this.remote.scopeOf(q.scope);
    this.refresh(q.tenantId, q.now, q.background);
    const m = this.copy.lookup({ tenantId: q.tenantId, scope, vector, text: q.text, depth: q.depth, threshold: q.threshold, topK: q.topK, now: q.now });
    if (m) return { similarity: m.similarity, text: m.entry.text, answer: m.entry.answer, storedAt: m.entry.storedAt };
    // At most one learning lookup per tenant in flight: under load every miss would otherwise cost
    // the object a full scan (most of them learning the same thing); the refresh brings the rest.
    const t = this.copy.tenant(q.tenantId);
    if (t.behind && !t.learning) {
      t.learning = true;
      q.background(this.learn(q, scope, vector).finally(() => (t.learning = false)));
    }
    return null;
  }

  async store(e: SemanticEntryInput): Promise<void> {
    const vector = await e.vector();
    if (!vector) return;
    this.copy.maxBytes = this.settings.maxBytes;
    this.copy.put(e.tenantId, { id: this.remote.scopeOf(e.id), scope: this.remote.scopeOf(e.scope), vector, text: e.text, depth: e.depth, answer: e.answer, storedAt: e.now, expiresAt: e.now + e.ttlSeconds * 1000 }, e.now);
    await this.remote.store(e);
  }

  /** A local miss: what the object would have answered, imported for the next request. */
  private async learn(q: SemanticQuery, scope: string, vector: Float32Array): Promise<void> {
    const t = this.copy.tenant(q.tenantId);
    try {
      const r = await this.remote.stub(q.tenantId).lookup({ scope, vector, text: q.text, depth: q.depth, minSimilarity: q.threshold, topK: q.topK, now: q.now, withEntry: true });
      const entry = r.match?.entry;
      if (entry && this.copy.tenant(q.tenantId) === t) this.copy.put(q.tenantId, entry, q.now);
    } catch (e) {
      warn('learn', e);
    }
  }

  /** At most one refresh per tenant at a time, at most every refresh_ms. */
  private refresh(tenantId: string, now: number, background: (work: Promise<unknown>) => void): void {
    const t = this.copy.tenant(tenantId);
    if (now - t.refreshedAt < this.settings.refreshMs || t.refresh.running(now)) return;
    t.refreshedAt = now;
    const token = t.refresh.start(now);
    const touched = [...t.touched];
    t.touched.clear();
    const work = (async () => {
      try {
        const r = await this.remote.stub(tenantId).hottest({ after: t.cursor, limit: this.settings.refreshEntries, maxBytes: Math.floor(this.settings.maxBytes / 2), touched, now });
        // A copy forgotten meanwhile (a fresh isolate) or a refresh taken over lands nowhere.
        if (this.copy.tenant(tenantId) !== t || !t.refresh.holds(token)) return;
        t.behind = false;
        for (let i = r.entries.length - 1; i >= 0; i--) this.copy.put(tenantId, r.entries[i]!, now); // oldest first: the hottest end up most recently used
        t.cursor = r.cursor;
        // Fewer of the tenant's entries here than the object holds: some misses may have a match there.
        if (!(this.copy.liveSize(tenantId, now) >= r.live)) t.behind = true;
      } catch (e) {
        warn('refresh', e); // tried again after refresh_ms
      } finally {
        t.refresh.done(token);
      }
    })();
    background(work);
  }
}

function warn(op: string, e: unknown) {
  console.warn(JSON.stringify({ msg: 'semantic cache error', op, error: String(e) }));
}
