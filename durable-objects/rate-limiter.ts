import { DurableObject } from 'cloudflare:workers';
import { adjust, current, take, type BucketRow } from '../worker/protocol/rules/token-bucket';
import { LEASE_SHARE, type AdjustSpec, type BucketSpec, type GroupReply, type LeaseGrant, type LeaseSpec } from '../worker/protocol/rate-limiter';

// The embedded rate limiter: one object per tenant (`RATE_LIMITER.idFromName("tenant:<id>")`)
// holds every bucket of that tenant (its keys, users, features and the tenant itself), and one
// named "global" holds the global limit's. A request makes one call to its tenant's object (two
// in parallel when a global limit is configured), and the object decides all its buckets at
// once: decisions are made in memory, synchronously, so they never interleave and a limit of N
// admits exactly N, however many isolates ask together.
//
// Buckets are token buckets (worker/protocol/rules/token-bucket.ts), the same arithmetic
// @upstash/ratelimit runs on Redis, so both stores decide alike.
//
// Durability is write-behind: changed buckets are written at most FLUSH_MS later, without
// holding any answer for the write (allowUnconfirmed). A write the answer waited for (the SQL
// API's, or a confirmed put) costs every request a storage commit: measured locally, the check
// added 5.8 ms at p50 that way, 0.3 to 1 ms this way (README "Rate limits", Overhead). The
// price: an object that crashes loses at most its last FLUSH_MS of counting (clients get that
// much allowance again); one evicted when idle has flushed everything and reloads it. Expired
// buckets are dropped on load and swept while busy; an alarm after the last expiry empties an
// idle object's storage.

/** Changed buckets are written this long after the first change (write-behind). */
const FLUSH_MS = 1_000;
/** Expired buckets are swept at most this often while busy. */
const SWEEP_EVERY_MS = 60_000;
/** The clean-up alarm is moved only when the last expiry moves by more than this. */
const ALARM_SLACK_MS = 60_000;
/** Keys per storage.put / delete call (the API's limit). */
const BATCH = 128;
const PREFIX = 'b:';

export class RateLimiter extends DurableObject<Record<string, unknown>> {
  private readonly rows = new Map<string, BucketRow>();
  private readonly dirty = new Set<string>();
  /** Units leased beyond needs and not given back, per bucket and period (memory only: a report, not a count). */
  private readonly lent = new Map<string, { periodStart: number; units: number }>();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private lastSweep = 0;
  private alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      const now = Date.now();
      const stored = await ctx.storage.list<BucketRow>({ prefix: PREFIX });
      for (const [k, row] of stored) if (row.expiresAt === null || row.expiresAt > now) this.rows.set(k.slice(PREFIX.length), row);
    });
  }

  /**
   * Decides groups of buckets in order, each all-or-nothing: a group takes its units only if
   * every bucket in it has room, and only if every earlier group was admitted. `now` is for
   * tests; the router never passes it.
   */
  limit(req: { groups: BucketSpec[][]; now?: number }): GroupReply[] {
    const now = req.now ?? Date.now();
    this.sweep(now);
    const replies: GroupReply[] = [];
    let open = true;
    let lastExpiry = 0;
    for (const group of req.groups) {
      if (!open) {
        replies.push({ evaluated: false, admitted: false, buckets: group.map(() => null) });
        continue;
      }
      const results = group.map((b) => take(this.row(b.key), b.limit, b.window_ms, b.cost, now));
      const admitted = results.every((r) => r.ok);
      if (admitted) {
        group.forEach((b, i) => {
          const next = results[i]!.next!;
          this.write(b.key, next);
          lastExpiry = Math.max(lastExpiry, next.expiresAt ?? 0);
        });
      }
      replies.push({
        evaluated: true,
        admitted,
        buckets: group.map((b, i) => ({ ok: results[i]!.ok, limit: b.limit, remaining: results[i]!.remaining, reset_at: results[i]!.resetAt })),
      });
      open = admitted;
    }
    if (lastExpiry > 0) this.scheduleCleanup(lastExpiry);
    return replies;
  }

  /**
   * Leases (worker/ratelimit/lease.ts): each item independently takes its `need` (or nothing:
   * refused) plus up to `want − need` more, at most LEASE_SHARE of what the bucket holds beyond the
   * need. Units leased are taken like any others, so the limit holds whatever the isolates do with
   * them; what an isolate does not spend comes back through adjust() in the same period.
   */
  lease(req: { items: LeaseSpec[]; now?: number }): LeaseGrant[] {
    const now = req.now ?? Date.now();
    this.sweep(now);
    let lastExpiry = 0;
    const grants = req.items.map((item): LeaseGrant => {
      const row = this.row(item.key);
      const b = current(row, item.limit, item.window_ms, now);
      const resetAt = b.refilledAt + item.window_ms;
      let lent = this.lent.get(item.key);
      if (!lent || lent.periodStart !== b.refilledAt) this.lent.set(item.key, (lent = { periodStart: b.refilledAt, units: 0 }));
      const need = Math.max(0, item.need);
      if (b.tokens < need) return { ok: false, granted: 0, available: b.tokens, period_start: b.refilledAt, reset_at: resetAt, lent: lent.units };
      const extra = Math.max(0, Math.min(item.want - need, Math.floor((b.tokens - need) * LEASE_SHARE)));
      const granted = need + extra;
      if (granted > 0) {
        const next = take(row, item.limit, item.window_ms, granted, now).next!;
        this.write(item.key, next);
        lastExpiry = Math.max(lastExpiry, next.expiresAt ?? 0);
        lent.units += extra;
      }
      return { ok: true, granted, available: b.tokens - granted, period_start: b.refilledAt, reset_at: resetAt, lent: lent.units };
    });
    if (lastExpiry > 0) this.scheduleCleanup(lastExpiry);
    return grants;
  }

  /** Corrections: units given back (delta > 0) or charged (delta < 0) in the period they were taken in. */
  adjust(req: { items: AdjustSpec[]; now?: number }): void {
    const now = req.now ?? Date.now();
    for (const item of req.items) {
      const next = adjust(this.row(item.key), item.limit, item.window_ms, item.period_start, item.delta, now);
      if (next) this.write(item.key, next);
      const lent = this.lent.get(item.key);
      if (next && item.delta > 0 && lent?.periodStart === item.period_start) lent.units = Math.max(0, lent.units - item.delta);
    }
  }

  /** A bucket as held (tests, debugging): null when absent or expired. */
  peek(key: string, now = Date.now()): BucketRow | null {
    const row = this.rows.get(key);
    return row && (row.expiresAt === null || row.expiresAt > now) ? { ...row } : null;
  }

  /** Tests: write what is pending now, as the timer would. */
  async flush(): Promise<void> {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const keys = [...this.dirty];
    this.dirty.clear();
    const puts: Record<string, BucketRow>[] = [];
    const deletes: string[][] = [];
    for (const key of keys) {
      const row = this.rows.get(key);
      if (row) {
        if (!puts.length || Object.keys(puts.at(-1)!).length >= BATCH) puts.push({});
        puts.at(-1)![PREFIX + key] = row;
      } else {
        if (!deletes.length || deletes.at(-1)!.length >= BATCH) deletes.push([]);
        deletes.at(-1)!.push(PREFIX + key);
      }
    }
    await Promise.all([
      ...puts.map((entries) => this.ctx.storage.put(entries, { allowUnconfirmed: true })),
      ...deletes.map((batch) => this.ctx.storage.delete(batch, { allowUnconfirmed: true })),
    ]);
  }

  override async alarm(): Promise<void> {
    this.alarmAt = null;
    this.lastSweep = 0;
    this.sweep(Date.now());
    await this.flush();
    let last = 0;
    for (const row of this.rows.values()) last = Math.max(last, row.expiresAt ?? 0);
    if (last > 0) this.scheduleCleanup(last);
  }

  private row(key: string): BucketRow | undefined {
    return this.rows.get(key);
  }

  private write(key: string, row: BucketRow): void {
    this.rows.set(key, row);
    this.dirty.add(key);
    this.flushTimer ??= setTimeout(() => void this.flush().catch((e) => console.warn(`rate limiter: flush failed: ${String(e)}`)), FLUSH_MS);
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    for (const [key, row] of this.rows) {
      if (row.expiresAt !== null && row.expiresAt <= now) {
        this.rows.delete(key);
        this.lent.delete(key);
        this.dirty.add(key); // deleted from storage with the next flush
      }
    }
  }

  /** An alarm just after the last expiry clears what is left; moved rarely, as each write would move it. */
  private scheduleCleanup(expiresAt: number): void {
    if (this.alarmAt !== null && expiresAt <= this.alarmAt + ALARM_SLACK_MS) return;
    const at = expiresAt + ALARM_SLACK_MS;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at, { allowUnconfirmed: true });
  }
}
