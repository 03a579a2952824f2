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
