// OpenAI's rate-limit headers: x-ratelimit-{limit,remaining,reset}-{requests,tokens}. A request
// counts against several limits (key, user, feature, tenant, global); like OpenAI, the headers
// describe one per unit: the tightest (fewest units left; on a refusal, the limit that refused).

import type { Bucket, BucketState, Unit } from './store';

export const RATE_LIMIT_HEADERS = [
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
] as const;

/**
 * A duration as OpenAI writes it (Go's time.Duration format): "0s", "250ms", "1s", "1.5s",
 * "6m0s", "1h0m0s". Whole milliseconds; under a second in ms, else h/m/s with up to three
 * decimals of seconds.
 */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  if (total === 0) return '0s';
  if (total < 1_000) return `${total}ms`;
  const h = Math.floor(total / 3_600_000);
  const m = Math.floor((total % 3_600_000) / 60_000);
  const s = (total % 60_000) / 1_000;
  const sec = `${Number.isInteger(s) ? s : s.toFixed(3).replace(/0+$/, '')}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

/** Retry-After in whole seconds, at least 1 (a refused bucket refills at resetAt). */
export function retryAfterSeconds(resetAt: number, now = Date.now()): number {
  return Math.max(1, Math.ceil((resetAt - now) / 1_000));
}

export interface Described {
  bucket: Bucket;
  state: BucketState;
}

/** The bucket the headers describe for one unit: a refusing one first, else the one with the fewest units left. */
export function tightest(items: readonly Described[], unit: Unit): Described | null {
  let best: Described | null = null;
  for (const x of items) {
    if (x.bucket.unit !== unit) continue;
    if (!best) best = x;
    else if (x.state.ok !== best.state.ok) best = x.state.ok ? best : x;
    else if (x.state.remaining < best.state.remaining || (x.state.remaining === best.state.remaining && x.state.resetAt > best.state.resetAt)) best = x;
  }
  return best;
}

/** x-ratelimit-* for the units that have a limit on this request. */
export function rateLimitHeaders(items: readonly Described[], now = Date.now()): Record<string, string> {
  const h: Record<string, string> = {};
  for (const unit of ['requests', 'tokens'] as const) {
    const t = tightest(items, unit);
    if (!t) continue;
    h[`x-ratelimit-limit-${unit}`] = String(t.state.limit);
    h[`x-ratelimit-remaining-${unit}`] = String(Math.max(0, t.state.remaining));
    h[`x-ratelimit-reset-${unit}`] = formatDuration(t.state.resetAt - now);
  }
  return h;
}

/** What a 429 reports for a unit no limit applies to: nothing of it is spent, so "as much as there is" (Number.MAX_SAFE_INTEGER). */
export const UNLIMITED = String(Number.MAX_SAFE_INTEGER);

/**
 * A 429 carries all six headers, as OpenAI's do (clients read both units from it). A unit not
 * decided for this request is filled in: one with limits that were not evaluated (tokens after
 * a requests refusal) reports its smallest limit, with what is left as last seen when the store
 * looked (else the whole limit) and that reset; a unit without any limit reports UNLIMITED, "0s".
 */
export function refusalHeaders(headers: Record<string, string>, undecided: readonly { bucket: Bucket; state: BucketState | null }[] = [], now = Date.now()): Record<string, string> {
  const h = { ...headers };
  for (const unit of ['requests', 'tokens'] as const) {
    if (h[`x-ratelimit-limit-${unit}`] !== undefined) continue;
    const smallest = undecided.filter((x) => x.bucket.unit === unit).sort((a, b) => a.bucket.limit - b.bucket.limit)[0];
    h[`x-ratelimit-limit-${unit}`] = smallest ? String(smallest.bucket.limit) : UNLIMITED;
    h[`x-ratelimit-remaining-${unit}`] = smallest ? String(Math.max(0, smallest.state?.remaining ?? smallest.bucket.limit)) : UNLIMITED;
    h[`x-ratelimit-reset-${unit}`] = smallest?.state ? formatDuration(smallest.state.resetAt - now) : '0s';
  }
  return h;
}
