// What a rate-limit store does, whatever holds the counters: the embedded Durable Objects
// (embedded.ts) or Upstash Redis through @upstash/ratelimit (upstash.ts). Both pass the same
// contract (contract.ts) and run the same algorithm (token-bucket.ts). On the embedded path the
// router decides from leased slices of the objects' buckets (lease.ts).

import type { WaitUntil } from '../isolate/background';

export const UNITS = ['requests', 'tokens'] as const;
export type Unit = (typeof UNITS)[number];
export const DIMENSIONS = ['key', 'user', 'feature', 'tenant', 'global'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/** One counter a request takes from. */
export interface Bucket {
  dimension: Dimension;
  /** Who it counts: the key id, user, feature, tenant id, or "global" (for messages). */
  subject: string;
  unit: Unit;
  limit: number;
  windowMs: number;
  /** Units to take: 1 request, or the token reservation. */
  cost: number;
  /** Which Durable Object holds it on the embedded path ("tenant:<id>" or "global"); Upstash ignores it. */
  shard: string;
  /** Its identity in the store. Includes the limit and window, so changing either starts a fresh bucket. */
  key: string;
}

/**
 * Groups are decided in order, each all-or-nothing: a group is admitted only if every one of
 * its buckets has room, and only if the groups before it were admitted. The router sends two:
 * requests, then tokens.
 */
export interface LimitRequest {
  groups: Bucket[][];
  /** The request's waitUntil, for work a store does after deciding (lease top-ups and returns). */
  ctx?: WaitUntil;
}

export interface BucketState {
  /** This bucket had room (a group is admitted only when all of its buckets had). */
  ok: boolean;
  limit: number;
  /** Units left after this request (0 on a refusal). */
  remaining: number;
  /** Next refill, epoch ms: the bucket is full again then. */
  resetAt: number;
}

export interface GroupResult {
  admitted: boolean;
  /** Per bucket, null when the group was not evaluated (an earlier group was refused). */
  states: (BucketState | null)[];
}

export interface LimitResult {
  /** The store that decided (a correction must go to the same one). */
  store: string;
  groups: GroupResult[];
}

/** A correction of what was taken: +units back, −units more; only within the period it was taken in. */
export interface Adjustment {
  bucket: Bucket;
  /** Start of the period the units were taken in (resetAt − windowMs of the decision). */
  periodStart: number;
  delta: number;
}

export interface LimiterStore {
  readonly name: string;
  /** Decides a request. Throws when the store cannot be reached (the caller falls back or fails open). */
  limit(req: LimitRequest): Promise<LimitResult>;
  /** Applies corrections. `store`: the LimitResult.store they belong to (for stores that wrap others). */
  adjust(items: Adjustment[], store?: string): Promise<void>;
}

/** What a store found for one bucket: its state (null: not evaluated) and whether it kept the units. */
export interface BucketOutcome {
  state: BucketState | null;
  consumed: boolean;
}

/**
 * Combines per-bucket outcomes from several independent deciders (Durable Objects, or Redis
 * calls) into the all-or-nothing, in-order result, and lists what must be given back: units a
 * decider kept for a group that, taken as a whole, was refused. The refund follows at once, so
 * the only cost of deciding in pieces is that a concurrent request may briefly see those units
 * taken (it may be refused where a single atomic decision would have let it through; never the
 * other way round).
 */
export function combine(req: LimitRequest, outcomes: BucketOutcome[][], store: string): { result: LimitResult; refunds: Adjustment[] } {
  const groups: GroupResult[] = [];
  const refunds: Adjustment[] = [];
  let open = true;
  req.groups.forEach((group, g) => {
    const out = outcomes[g] ?? [];
    const admitted = open && group.every((_, i) => out[i]?.state?.ok === true);
    open = admitted;
    groups.push({ admitted, states: group.map((_, i) => out[i]?.state ?? null) });
    if (admitted) return;
    group.forEach((bucket, i) => {
      const o = out[i];
      if (o?.consumed && o.state) refunds.push({ bucket, periodStart: o.state.resetAt - bucket.windowMs, delta: bucket.cost });
    });
  });
  return { result: { store, groups }, refunds };
}
