import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env';

/** Router decisions every /v1 answer carries; an answer decided before routing says "none". */
export const ROUTER_HEADERS = ['x-router-region', 'x-router-backend', 'x-router-tier'] as const;

export const routerHeaderDefaults: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const h = c.res.headers;
  for (const name of ROUTER_HEADERS) if (!h.has(name)) h.set(name, 'none');
  if (!h.has('x-router-attempts')) h.set('x-router-attempts', '0');
  if (!h.has('x-request-id')) h.set('x-request-id', c.get('requestId'));
};
