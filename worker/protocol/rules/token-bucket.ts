// The one rate-limit algorithm, shared by both stores: a token bucket holding one window's
// allowance, refilled in full at each window boundary (counted from the bucket's creation).
//
// It is, step for step, what @upstash/ratelimit 2.2 runs on Redis for
// `Ratelimit.tokenBucket(limit, window, limit)` (its single-region Lua script): the embedded
// Durable Object runs this module, Upstash runs the library, and both decide alike. Why this
// algorithm and not the library's slidingWindow: its script refuses only once the window is
// already full (`used >= limit`), so a request for N units with fewer than N but more than 0
// left is refused *and counted* (the script increments before it finds the overshoot). That
// is harmless for requests (N = 1) and wrong for tokens (N = a reservation). The token-bucket
// script checks `tokens < N` before taking anything, and it takes negative N (a refund).
//
// The price of the full refill: a client may spend a window's allowance just before a refill
// and another just after it (at most twice the limit over a short span), as with any fixed
// window. In exchange the arithmetic is exact in integers, and "when does it reset" has one
// answer (the next refill), which is what OpenAI's x-ratelimit-reset-* headers say.
//
// Corrections (refunds of an over-reservation, charges for an under-reservation) are our own:
// the library's negative rate is not capped at the bucket's size and lands in whatever period
// is current, so a refund arriving after a refill would hand out tokens twice. adjust() touches
// only the period the reservation was taken in, and never fills the bucket above its limit.
// The Lua twin of adjust() is ADJUST_SCRIPT in upstash.ts.

/** A bucket as stored. Redis: a hash {refilledAt, tokens} with a PEXPIRE; here the expiry is a field. */
export interface BucketRow {
  /** Start of the current period (epoch ms); the next refill is at refilledAt + window. */
  refilledAt: number;
  /** Units left in this period (may be negative after a charge for usage above a reservation). */
  tokens: number;
  /** Redis' key expiry: a row at or past it is as good as absent (a fresh, full bucket). */
  expiresAt: number | null;
}

export interface TakeResult {
  ok: boolean;
  /** Units left after this take; 0 when refused (the library reports no more than that). */
  remaining: number;
  /** The next refill: the bucket is full again then (epoch ms). */
  resetAt: number;
  /** The row to store when ok (a refusal writes nothing, as in the script). */
  next: BucketRow | null;
}

/** The bucket as of `now`: created full if absent or expired, refilled for every window boundary passed. */
export function current(row: BucketRow | undefined, limit: number, windowMs: number, now: number): { refilledAt: number; tokens: number } {
  if (!row || (row.expiresAt !== null && row.expiresAt <= now)) return { refilledAt: now, tokens: limit };
  let { refilledAt, tokens } = row;
  if (now >= refilledAt + windowMs) {
    const refills = Math.floor((now - refilledAt) / windowMs);
    tokens = Math.min(limit, tokens + refills * limit);
    refilledAt += refills * windowMs;
  }
  return { refilledAt, tokens };
}

/** Takes `cost` units if the bucket holds that many; otherwise takes nothing. */
export function take(row: BucketRow | undefined, limit: number, windowMs: number, cost: number, now: number): TakeResult {
  const b = current(row, limit, windowMs, now);
  const resetAt = b.refilledAt + windowMs;
  if (cost > 0 && b.tokens < cost) return { ok: false, remaining: 0, resetAt, next: null };
  const remaining = b.tokens - cost;
  // The script's PEXPIRE: ceil((limit - remaining) / refillRate) × interval, only when positive.
  const ttl = Math.ceil((limit - remaining) / limit) * windowMs;
  const expiresAt = ttl > 0 ? now + ttl : (row?.expiresAt ?? null);
  return { ok: true, remaining, resetAt, next: { refilledAt: b.refilledAt, tokens: remaining, expiresAt } };
}

/**
 * Gives back (delta > 0) or charges (delta < 0) units in the period that started at
 * `periodStart`, capped at the limit. Null (nothing to write) when the bucket is gone or that
 * period is over: a refill has made the reservation moot.
 */
export function adjust(row: BucketRow | undefined, limit: number, windowMs: number, periodStart: number, delta: number, now: number): BucketRow | null {
  if (!row || (row.expiresAt !== null && row.expiresAt <= now)) return null;
  if (row.refilledAt !== periodStart || now >= row.refilledAt + windowMs) return null;
  return { ...row, tokens: Math.min(limit, row.tokens + delta) };
}
