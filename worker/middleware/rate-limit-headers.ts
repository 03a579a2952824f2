import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env';
import { refusalHeaders } from '../ratelimit/headers';

/**
 * Every /v1 429 carries all six x-ratelimit-* headers, as OpenAI sends them: a budget refusal, or
 * one made before or without a limit check, gets the units it lacks (worker/ratelimit/headers.ts).
 * The headers of a request's own limits are set by its rate-limit participant (ratelimit/stage.ts).
 */
export const rateLimitRefusalHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  if (c.res.status !== 429) return;
  const present: Record<string, string> = {};
  c.res.headers.forEach((v, k) => {
    if (k.startsWith('x-ratelimit-')) present[k] = v;
  });
  for (const [k, v] of Object.entries(refusalHeaders(present))) {
    if (c.res.headers.has(k)) continue;
    try {
      c.res.headers.set(k, v);
    } catch {
      // Immutable headers (a response passed through as it came): copy it once.
      c.res = new Response(c.res.body, c.res);
      c.res.headers.set(k, v);
    }
  }
};
