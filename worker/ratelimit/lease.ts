// Rate limits by leases (the embedded store), as budgets do (worker/budget/lease.ts): this isolate
// takes a slice of each bucket from its RateLimiter object and spends it locally, so a warm request
// decides its limits from memory, with no remote call.
//
// - A request is admitted from the slices this isolate holds: each of its buckets must hold its
//   cost (1 request, or the token reservation); groups stay all-or-nothing and in order (requests,
//   then tokens), as LimiterStore says. Only a bucket whose slice cannot cover the cost makes the
//   request wait for one lease call per object (RateLimiter.lease), which takes the missing units
//   (or refuses) plus a slice for the requests to come.
// - Slices size themselves from this isolate's recent rate on the bucket (units per second, a
//   moving average): about SLICE_MS of traffic, and never more than LEASE_SHARE of what the bucket
//   holds beyond the need (the object caps it). When a slice falls below REFILL_MS of traffic, it is
//   topped up in the background, so a steady stream of requests never waits.
// - Exactness: units are taken from the bucket when leased, so the total admitted never exceeds
//   the limit, whatever the isolates do. A refusal is decided by the object's answer to a call made
//   during the refused request (its own, or one it waited for), never from an older copy.
// - Under-admission: units sitting in other isolates' slices are not available here; a request may
//   be refused while they are unspent. It is bounded: a slice is at most ~SLICE_MS of that
//   isolate's traffic and at most LEASE_SHARE of what was left; an unused slice goes back after
//   IDLE_RETURN_MS without use (or is moot at the period's end). It is reported: each lease answer
//   says how many units the object has lent beyond needs (`lent`); refusals while others hold
//   some are counted (rateLimitLeaseStats) and logged at most once a minute.
// - Corrections (a token reservation corrected to the real usage, a request given back) go to the
//   local slice: no call. A charge beyond what the slice holds is sent to the object at once
//   (background), so usage above a reservation is never hidden in one isolate.
// - The x-ratelimit-remaining-* headers say what the object held at its last answer plus what this
//   isolate holds: exact while one isolate serves a bucket, an upper bound otherwise.

import type { RateLimiter } from '../env';
import { background, type WaitUntil } from '../isolate/background';
import { registerIsolateState } from '../isolate/registry';
import type { LeaseGrant, LeaseSpec } from '../protocol/rate-limiter';
import { adjustByShard, limiterCall } from './embedded';
import type { Adjustment, Bucket, BucketState, GroupResult, LimiterStore, LimitRequest, LimitResult } from './store';

/** A slice holds about this much of the isolate's recent traffic on its bucket. */
const SLICE_MS = 2_000;
/** A slice holding less than this much traffic is topped up in the background. */
const REFILL_MS = 1_000;
/** A slice unused this long goes back to its object (checked as requests and corrections pass). */
const IDLE_RETURN_MS = 2_000;
/** Time constant of the rate's moving average. */
const RATE_TAU_MS = 1_000;
/** Idle slices are looked for at most this often. */
const SWEEP_EVERY_MS = 500;
/** Lease rounds one request may make before what still lacks is refused (concurrent takers). */
const MAX_ROUNDS = 8;
const LOG_INTERVAL_MS = 60_000;

interface Lease {
  readonly shard: string;
  readonly key: string;
  readonly limit: number;
  readonly windowMs: number;
  /** The object's period the slice belongs to (null: none held). */
  periodStart: number | null;
  /** Units held here (negative: a charge not yet sent). */
  left: number;
  /** What the object held at its last answer. */
  available: number;
  /** When that answer arrived (a refusal needs one from during the request). */
  answeredAt: number;
  /** Units per second taken here, moving average. */
  rate: number;
  rateAt: number;
  usedAt: number;
  syncing: Promise<void> | null;
}

const book = new Map<string, Lease>();
let lastSweep = 0;
const stats = { decidedLocally: 0, leaseCalls: 0, refusals: 0, refusalsWhileLent: 0, returnedUnits: 0 };
let lastLentLog = Number.NEGATIVE_INFINITY;

registerIsolateState('ratelimit-leases', () => {
  book.clear();
  lastSweep = 0;
});

/** This isolate's lease counters (metrics, tests, the README's numbers). */
export const rateLimitLeaseStats = () => ({ ...stats, leases: book.size });

/** A bucket's slice as held here (tests, debugging). */
export function rateLimitLease(shard: string, key: string) {
  const l = book.get(`${shard}|${key}`);
  return l && { periodStart: l.periodStart, left: l.left, available: l.available, rate: l.rate };
}

export class LeasedLimiter implements LimiterStore {
  readonly name = 'embedded';

  constructor(
    private readonly ns: DurableObjectNamespace<RateLimiter>,
    private readonly timeoutMs: number,
  ) {}

  async limit(req: LimitRequest): Promise<LimitResult> {
    const started = Date.now();
    const ctx = req.ctx;
    for (let round = 0; ; round++) {
      const now = Date.now();
      const leases = req.groups.map((g) => g.map((b) => leaseOf(b, now)));
      // Buckets to ask the object about: those that cannot cover their cost here and were not
      // answered for during this request; a request refused by a requests bucket asks no more.
      const ask: { bucket: Bucket; lease: Lease }[] = [];
      const waits = new Set<Promise<void>>();
      let open = true;
      req.groups.forEach((group, g) => {
        if (!open) return;
        let covered = true;
        group.forEach((bucket, i) => {
          const l = leases[g]![i]!;
          if (covers(l, bucket.cost)) return;
          covered = false;
          if (l.syncing) waits.add(l.syncing);
          else if (!shortNow(l, bucket.cost, started)) ask.push({ bucket, lease: l });
        });
        // A group that certainly cannot be admitted (short after a fresh answer) closes the later ones.
        if (!covered && group.every((b, i) => covers(leases[g]![i]!, b.cost) || shortNow(leases[g]![i]!, b.cost, started))) open = false;
      });
      if ((ask.length === 0 && waits.size === 0) || round >= MAX_ROUNDS) {
        if (round === 0) stats.decidedLocally++;
        return this.decide(req, leases, now, ctx);
      }
      if (ask.length) await this.sync(ask, now);
      else await Promise.all(waits);
    }
  }

  /**
   * Corrections land in the local slice (no call) when it holds the period they were taken in; a
   * charge beyond what the slice holds is sent to the object (the caller hands this to waitUntil).
   */
  async adjust(items: Adjustment[]): Promise<void> {
    const now = Date.now();
    const send: { lease: Lease; delta: number; periodStart: number }[] = [];
    for (const a of items) {
      const l = book.get(`${a.bucket.shard}|${a.bucket.key}`);
      if (!l || l.periodStart !== a.periodStart || now >= a.periodStart + l.windowMs) {
        // The slice it came from is gone (returned idle and forgotten) or of another period: the
        // object applies it if its period is still current, and drops it otherwise.
        send.push({ lease: l ?? leaseOf(a.bucket, now), delta: a.delta, periodStart: a.periodStart });
        continue;
      }
      l.left += a.delta;
      if (l.left < 0) {
        send.push({ lease: l, delta: l.left, periodStart: l.periodStart });
        l.available += l.left;
        l.left = 0;
      }
    }
    send.push(...idleReturns(now));
    await this.give(send);
  }

  /** The decision from the slices as they are now (the object has answered for every bucket that lacked). */
  private decide(req: LimitRequest, leases: Lease[][], now: number, ctx: WaitUntil | undefined): LimitResult {
    const groups: GroupResult[] = [];
    let open = true;
    req.groups.forEach((group, g) => {
      if (!open) {
        groups.push({ admitted: false, states: group.map(() => null) });
        return;
      }
      const ls = leases[g]!;
      const admitted = group.every((b, i) => covers(ls[i]!, b.cost));
      if (admitted) {
        group.forEach((b, i) => take(ls[i]!, b.cost, now));
      } else {
        stats.refusals++;
        noteRefusal(group, ls);
      }
      groups.push({ admitted, states: group.map((b, i) => stateOf(ls[i]!, b, admitted ? 'taken' : covers(ls[i]!, b.cost) ? 'room' : 'short')) });
      open = admitted;
    });
    // Top up slices running low, and return idle ones, after the decision (never on its path).
    const refills: { bucket: Bucket; lease: Lease }[] = [];
    for (const group of req.groups) {
      for (const b of group) {
        const l = book.get(`${b.shard}|${b.key}`)!;
        if (!l.syncing && l.periodStart !== null && l.rate > 0 && l.left < (l.rate * REFILL_MS) / 1_000 && l.available > 0) refills.push({ bucket: { ...b, cost: 0 }, lease: l });
      }
    }
    const returns = idleReturns(now);
    if (ctx && (refills.length || returns.length)) {
      const work = Promise.all([refills.length ? this.sync(refills, now) : null, returns.length ? this.give(returns) : null]).catch((e) =>
        console.warn(JSON.stringify({ msg: 'ratelimit: lease refill or return failed', error: String(e) })),
      );
      background(ctx, work, 'ratelimit-lease');
    }
    return { store: this.name, groups };
  }

  /** One lease call per object for these buckets; every slice involved is marked busy until it lands. */
  private async sync(items: { bucket: Bucket; lease: Lease }[], now: number): Promise<void> {
    const byShard = new Map<string, { bucket: Bucket; lease: Lease }[]>();
    for (const it of items) {
      const list = byShard.get(it.bucket.shard) ?? [];
      list.push(it);
      byShard.set(it.bucket.shard, list);
    }
    const run = Promise.all(
      [...byShard].map(async ([shard, list]) => {
        const specs: LeaseSpec[] = list.map(({ bucket, lease }) => {
          const held = lease.periodStart !== null && now < lease.periodStart + lease.windowMs ? lease.left : 0;
          const need = Math.max(0, bucket.cost - held);
          const want = Math.min(bucket.limit, need + Math.ceil((lease.rate * SLICE_MS) / 1_000));
          return { key: bucket.key, limit: bucket.limit, window_ms: bucket.windowMs, need, want };
        });
        stats.leaseCalls++;
        const grants = await this.call(shard, (stub) => stub.lease({ items: specs }));
        const at = Date.now();
        list.forEach(({ lease }, i) => {
          const g = grants[i];
          if (g) apply(lease, g, at);
        });
      }),
    ).then(() => undefined);
    const done = run.finally(() => {
      for (const { lease } of items) if (lease.syncing === done) lease.syncing = null;
    });
    for (const { lease } of items) lease.syncing = done;
    return done;
  }

  /** Units back to (or charged to) their objects, per object in one call. */
  private async give(items: { lease: Lease; delta: number; periodStart: number }[]): Promise<void> {
    if (!items.length) return;
    await adjustByShard(items.map((it) => ({ shard: it.lease.shard, key: it.lease.key, limit: it.lease.limit, windowMs: it.lease.windowMs, periodStart: it.periodStart, delta: it.delta })), (shard, fn) => this.call(shard, fn));
  }

  private call<T>(shard: string, fn: (stub: DurableObjectStub<RateLimiter>) => Promise<T>): Promise<T> {
    return limiterCall(this.ns, this.timeoutMs, shard, fn);
  }
}

function leaseOf(b: Bucket, now: number): Lease {
  const id = `${b.shard}|${b.key}`;
  let l = book.get(id);
  if (!l) {
    l = { shard: b.shard, key: b.key, limit: b.limit, windowMs: b.windowMs, periodStart: null, left: 0, available: b.limit, answeredAt: 0, rate: 0, rateAt: now, usedAt: now, syncing: null };
    book.set(id, l);
  } else if (l.periodStart !== null && now >= l.periodStart + l.windowMs) {
    // The period is over: the object has refilled the bucket; what was held here is moot.
    l.periodStart = null;
    l.left = 0;
    l.available = l.limit;
  }
  return l;
}

const covers = (l: Lease, cost: number) => l.periodStart !== null && l.left >= cost;

/** The object answered during this request, and it and the slice together do not hold the cost. */
const shortNow = (l: Lease, cost: number, since: number) => l.answeredAt >= since && l.periodStart !== null && l.left + Math.max(0, l.available) < cost;

function apply(l: Lease, g: LeaseGrant, at: number): void {
  if (l.periodStart !== g.period_start) {
    l.periodStart = g.period_start;
    l.left = 0;
  }
  l.left += g.granted;
  l.available = g.available;
  l.answeredAt = at;
  // What the object has lent beyond needs and this isolate does not hold: others may.
  lentElsewhere.set(l, Math.max(0, g.lent - Math.max(0, l.left)));
}

const lentElsewhere = new WeakMap<Lease, number>();

function take(l: Lease, cost: number, now: number): void {
  l.left -= cost;
  const dt = Math.max(0, now - l.rateAt);
  l.rate = l.rate * Math.exp(-dt / RATE_TAU_MS) + (cost * 1_000) / RATE_TAU_MS;
  l.rateAt = now;
  l.usedAt = now;
}

/** As the object's limit() reports a bucket: taken (what is left), room in a refused group (what would be left), short (0). */
function stateOf(l: Lease, b: Bucket, how: 'taken' | 'room' | 'short'): BucketState {
  const resetAt = (l.periodStart ?? Date.now()) + l.windowMs;
  const held = Math.max(0, l.available) + l.left;
  const remaining = how === 'taken' ? held : how === 'room' ? held - b.cost : 0;
  return { ok: how !== 'short', limit: b.limit, remaining: Math.max(0, remaining), resetAt };
}

function noteRefusal(group: Bucket[], ls: Lease[]): void {
  const owed = ls.reduce((n, l, i) => (covers(l, group[i]!.cost) ? n : n + (lentElsewhere.get(l) ?? 0)), 0);
  if (owed <= 0) return;
  stats.refusalsWhileLent++;
  const now = Date.now();
  if (now - lastLentLog >= LOG_INTERVAL_MS) {
    lastLentLog = now;
    console.warn(JSON.stringify({ msg: 'ratelimit: refused while other isolates may hold unspent slices', units_lent_elsewhere_at_most: owed, refusals_while_lent_so_far: stats.refusalsWhileLent }));
  }
}

/** Slices unused for IDLE_RETURN_MS, taken out of the book's view to go back to their objects. */
function idleReturns(now: number): { lease: Lease; delta: number; periodStart: number }[] {
  if (now - lastSweep < SWEEP_EVERY_MS) return [];
  lastSweep = now;
  const out: { lease: Lease; delta: number; periodStart: number }[] = [];
  for (const [id, l] of book) {
    if (l.syncing || now - l.usedAt < IDLE_RETURN_MS) continue;
    // Idle and holding nothing that counts (none, or of a past period): forgotten (one lease per
    // user bucket would otherwise grow without bound).
    if (l.periodStart === null || now >= l.periodStart + l.windowMs) {
      book.delete(id);
      continue;
    }
    if (l.left !== 0) {
      out.push({ lease: l, delta: l.left, periodStart: l.periodStart });
      if (l.left > 0) stats.returnedUnits += l.left;
      l.available += l.left;
      l.left = 0;
    }
    l.rate = 0;
  }
  return out;
}
