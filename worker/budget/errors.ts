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

/** Hard limit (limit × hard_limit_ratio): always refused, whatever the policy or approvals. */
export function hardLimitError(scope: string, limit: LimitName | null, warning: string | null): QuotaError {
  const what = limit ? ` (${limit})` : '';
  return new QuotaError(
    429,
    `You exceeded your current quota: the budget of "${scope}" has reached its hard limit${what}. It resets with the next period.`,
    'insufficient_quota',
    null,
    warning ? { [WARNING]: warning } : {},
  );
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
