import { Hono, type Context } from 'hono';
import type { KeyLimits } from '../config/limits';
import { keyLimitsSchema } from '../config/limits';
import { forgetKey, registry } from '../auth/key-cache';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { errors } from '../http/errors';
import { mergeKeyLimit, tenantLimits } from '../ratelimit/settings';
import { objectCall } from '../http/object-call';

/**
 * /admin/keys/:id/limits: a key's own rate limit, merged over its tenant's `key` limit
 * (README "Rate limits"). PUT replaces the override, DELETE removes it (back to the config).
 * Stored with the key in the KeyRegistry, so it travels with the key record the auth step
 * already caches: no extra lookup per request. Takes effect at once on the isolate that made
 * the change, and on the others when their cached copy of the key expires (within 30 s).
 */
export const adminKeyLimits = new Hono<AppEnv>();

const BODY_LIMIT = 4 * 1024;

function shape(c: Context<AppEnv>, id: string, found: { tenant: string; limits: KeyLimits | null }) {
  const config = c.get('config');
  const effective = config.raw.limits.enabled ? mergeKeyLimit(tenantLimits(config, found.tenant).key, found.limits) : undefined;
  return {
    object: 'key.limits',
    id,
    tenant: found.tenant,
    enabled: config.raw.limits.enabled,
    override: found.limits,
    /** What this key's requests count against on the key dimension (null: not limited). */
    effective: effective ? { requests: effective.requests, tokens: effective.tokens, window_s: effective.windowS } : null,
  };
}

const rpc = objectCall('key registry', 'key_registry_unavailable');

const notFound = (id: string) => errors.notFound(`No key with id "${id}".`, 'key_not_found', 'id');

adminKeyLimits.get('/:id/limits', async (c) => {
  const id = c.req.param('id');
  const found = await rpc(() => registry(c.env).getLimits(id));
  if (!found) throw notFound(id);
  return c.json(shape(c, id, found));
});

adminKeyLimits.put('/:id/limits', async (c) => {
  const id = c.req.param('id');
  const body = await readJsonBody(c.req.raw, keyLimitsSchema, BODY_LIMIT);
  const found = await rpc(() => registry(c.env).setLimits(id, body));
  if (!found) throw notFound(id);
  forgetKey(id);
  return c.json(shape(c, id, found));
});

adminKeyLimits.delete('/:id/limits', async (c) => {
  const id = c.req.param('id');
  const found = await rpc(() => registry(c.env).setLimits(id, null));
  if (!found) throw notFound(id);
  forgetKey(id);
  return c.json(shape(c, id, found));
});
