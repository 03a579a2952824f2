import type { LimitName } from '../protocol/quota';
import { errors, RouterError, type ErrorBody } from '../http/errors';

/**
 * A 429 for a budget, typed as OpenAI types its quota errors ("insufficient_quota", not
 * "rate_limit_error"): retrying soon does not help.
 */
export class QuotaError extends RouterError {
  override body(): ErrorBody {
    const b = super.body();
    b.error.type = 'insufficient_quota';
    return b;
  }
}

const WARNING = 'x-router-budget-warning';

/** What is left below the hard limit over settled usage, and what the request may use, in the refusing limit's unit. */
export interface HardShortfall {
  /** Tokens, or nano-dollars for the *_usd limits. */
  left: number;
  need: number;
}

/**
 * Hard limit (limit × hard_limit_ratio): always refused, whatever the policy or approvals, when
 * settled usage leaves no room for the request's worst case; waiting for requests in flight does
 * not help (that is budgetReservedError). `short`: usage has not quite reached the hard limit,
 * but what is left is less than this request may use.
 */
export function hardLimitError(scope: string, limit: LimitName | null, warning: string | null, short?: HardShortfall): QuotaError {
  const what = limit ? ` (${limit})` : '';
  const message =
    short && short.left > 0
      ? `You exceeded your current quota: the budget of "${scope}" has ${amount(limit, short.left)} left before its hard limit${what}, less than this request may use (${amount(limit, short.need)}). Lower max_tokens, or wait for the next period.`
      : `You exceeded your current quota: the budget of "${scope}" has reached its hard limit${what}. It resets with the next period.`;
  return new QuotaError(429, message, 'insufficient_quota', null, warning ? { [WARNING]: warning } : {});
}

/** The error code when in-flight reservations, not usage, fill a budget. */
export const RESERVED_CODE = 'budget_reserved';

/**
 * Settled usage leaves room for the request, but requests in flight (and other isolates' unspent
 * slices) hold it: a 429 of the rate-limit kind, with Retry-After (whole seconds, at least 1)
 * until enough of it is expected back.
 */
export function budgetReservedError(scope: string, limit: LimitName | null, warning: string | null, retryAfterMs: number): RouterError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1_000));
  const what = limit ? ` (${limit})` : '';
  return new RouterError(
    429,
    `The budget of "${scope}" is held by requests in flight${what}: it has room for this request once they settle. Retry in ${seconds} s.`,
    RESERVED_CODE,
    null,
    { 'retry-after': String(seconds), ...(warning ? { [WARNING]: warning } : {}) },
  );
}

function amount(limit: LimitName | null, v: number): string {
  return limit?.endsWith('_usd') ? `$${(v / 1e9).toFixed(6)}` : `${Math.max(0, Math.floor(v))} tokens`;
}

/** Soft limit (100%) under policy "block", until an admin approves overage or the period ends. */
/** The error code of a soft-limit block (the route lets cache hits through it). */
export const SOFT_LIMIT_CODE = 'budget_exceeded';

export function softLimitError(scope: string, limit: LimitName | null, warning: string | null): QuotaError {
  const what = limit ? ` (${limit})` : '';
  return new QuotaError(
    429,
    `The budget of "${scope}" is used up${what}: requests are blocked until the next period or until an admin approves overage.`,
    SOFT_LIMIT_CODE,
    null,
    warning ? { [WARNING]: warning } : {},
  );
}

/** The tenant's budget object could not be reached when the request needed it: fail closed. */
export function budgetUnavailable(): RouterError {
  return errors.unavailable('The budget service is unreachable; retry shortly.', 'budget_unavailable');
}

export const BUDGET_WARNING_HEADER = WARNING;
export const DOWNGRADED_HEADER = 'x-router-downgraded';
