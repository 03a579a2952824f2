import type { MiddlewareHandler } from 'hono';
import { authenticateKey } from '../auth/key-cache';
import { secretsEqual } from '../auth/hash';
import { hasValidSession } from '../dashboard/session';
import type { AppEnv } from '../env';
import { errors } from '../http/errors';

function bearer(header: string | undefined): string | null {
  const m = header?.match(/^Bearer\s+(\S+)\s*$/i);
  return m?.[1] ?? null;
}

/** Routes in Anthropic's format, whose clients send the key as `x-api-key`. */
const X_API_KEY_PATHS = new Set(['/v1/messages']);

/**
 * `Authorization: Bearer <key>` (or, on Anthropic's routes, `x-api-key: <key>`) → the key's
 * record (tenant) from the registry, via the isolate cache.
 */
export const requireApiKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  const xApiKey = X_API_KEY_PATHS.has(c.req.path);
  const key = bearer(c.req.header('authorization')) ?? (xApiKey ? c.req.header('x-api-key')?.trim() || null : null);
  if (!key) throw errors.unauthorized(xApiKey ? 'Missing API key: send "x-api-key: <key>" or "Authorization: Bearer <key>".' : 'Missing API key: send "Authorization: Bearer <key>".', 'missing_api_key');
  const record = await authenticateKey(c.env, key);
  if (!record) throw errors.unauthorized('Incorrect or revoked API key.');
  c.set('key', record);
  await next();
};

/**
 * Admin routes: `Authorization: Bearer <ADMIN_TOKEN>` (a Worker secret), compared in constant time.
 * Without an Authorization header, a GET/HEAD may instead carry the dashboard's session cookie
 * (worker/dashboard/session.ts: HttpOnly, SameSite=Strict, signed with the token): the browser
 * page reads the admin API with it, and read-only is all it can do.
 */
export const requireAdminToken: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = c.env.ADMIN_TOKEN;
  if (!expected) throw errors.unauthorized('The admin API is disabled: the ADMIN_TOKEN secret is not set.', 'admin_disabled');
  const header = c.req.header('authorization');
  if (header === undefined && (c.req.method === 'GET' || c.req.method === 'HEAD') && (await hasValidSession(c.req.header('cookie'), expected))) return next();
  const token = bearer(header);
  if (!token || !(await secretsEqual(token, expected))) throw errors.unauthorized('Missing or incorrect admin token.', 'invalid_admin_token');
  await next();
};
