// The wire contract of RateLimiter (durable-objects/rate-limiter.ts): the bucket groups the
// embedded limiter store (worker/ratelimit/embedded.ts) sends and what it answers.

export interface BucketSpec {
  key: string;
  limit: number;
  window_ms: number;
  cost: number;
}

export interface BucketReply {
  ok: boolean;
  limit: number;
  remaining: number;
  reset_at: number;
}

export interface GroupReply {
  /** False when an earlier group was refused: nothing of this group was looked at. */
  evaluated: boolean;
  admitted: boolean;
  buckets: (BucketReply | null)[];
}

export interface AdjustSpec {
  key: string;
  limit: number;
  window_ms: number;
  /** Start of the period the units were taken in. */
  period_start: number;
  delta: number;
}

/**
 * A lease (RateLimiter.lease): take a slice of a bucket for an isolate to spend locally. `need`
 * units or nothing (refused); on top of them up to `want − need` more, at most LEASE_SHARE of
 * what the bucket holds beyond the need (so one isolate never holds most of what is left).
 */
export interface LeaseSpec {
  key: string;
  limit: number;
  window_ms: number;
  need: number;
  want: number;
}

export interface LeaseGrant {
  ok: boolean;
  /** Units taken for the isolate (0 when refused). */
  granted: number;
  /** What the bucket holds after the grant (its real count, also when refused). */
  available: number;
  /** Start of the period the grant belongs to (its units are moot after period_start + window). */
  period_start: number;
  reset_at: number;
  /**
   * Units this object has granted beyond needs in this period and not had back: an upper bound of
   * what isolates hold unspent (what a refusal elsewhere may be owed to).
   */
  lent: number;
}

/** The share of a bucket's units beyond the need that one lease may take. */
export const LEASE_SHARE = 0.5;
