import { RouterError } from '../http/errors';
import { formatDuration, retryAfterSeconds } from './headers';
import type { Bucket, BucketState } from './store';

const WHO: Record<Bucket['dimension'], string> = {
  key: 'API key',
  user: 'user',
  feature: 'feature',
  tenant: 'tenant',
  global: 'the router',
};

/**
 * 429 in OpenAI's format (type rate_limit_error, code rate_limit_exceeded), naming the limit
 * that refused: dimension, unit and window, e.g. "Rate limit reached for requests per 1m0s on
 * API key key_…: limit 10. Retry in 37s." Carries Retry-After and the x-ratelimit-* headers.
 */
export function rateLimitError(bucket: Bucket, state: BucketState, headers: Record<string, string>, now = Date.now()): RouterError {
  const retry = retryAfterSeconds(state.resetAt, now);
  const per = formatDuration(bucket.windowMs);
  const on = bucket.dimension === 'global' ? WHO.global : `${WHO[bucket.dimension]} ${bucket.subject}`;
  const message =
    bucket.unit === 'tokens' && bucket.cost > bucket.limit
      ? `Request too large for the tokens per ${per} limit on ${on}: it may use up to ${bucket.cost} tokens (prompt + max_tokens), the limit is ${bucket.limit}. Lower max_tokens or shorten the prompt.`
      : bucket.unit === 'tokens'
        ? `Rate limit reached for tokens per ${per} on ${on}: limit ${bucket.limit}, this request may use up to ${bucket.cost} (prompt + max_tokens) and that is more than is left. Retry in ${retry}s.`
        : `Rate limit reached for requests per ${per} on ${on}: limit ${bucket.limit}. Retry in ${retry}s.`;
  return new RouterError(429, message, 'rate_limit_exceeded', null, { ...headers, 'retry-after': String(retry) });
}
