import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env';
import { refusalHeaders } from '../ratelimit/headers';

/**
 * x-ratelimit-* on every /v1 answer made after the rate-limit check (worker/ratelimit/request.ts),
 * all six on every 429,
 * errors thrown later included (they reach here as onError's response); then the hold is closed:
 * a token reservation never handed to the executor (a cache hit, an error before upstream) goes back.
 */
export const rateLimitHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const hold = c.get('rateLimit');
  hold?.close();
  // Every 429 (a budget refusal, or one made before or without a limit check) carries all six.
  const headers = c.res.status === 429 ? refusalHeaders(hold?.headers ?? {}) : (hold?.headers ?? {});
  const entries = Object.entries(headers);
  if (!entries.length) return;
  try {
    for (const [k, v] of entries) if (!c.res.headers.has(k)) c.res.headers.set(k, v);
  } catch {
    // Immutable headers (a response passed through as it came): copy it once.
    const res = new Response(c.res.body, c.res);
    for (const [k, v] of entries) if (!res.headers.has(k)) res.headers.set(k, v);
    c.res = res;
  }
};
