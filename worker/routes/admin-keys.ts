import { Hono } from 'hono';
import { z } from 'zod';
import { forgetKey, registry } from '../auth/key-cache';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { errors } from '../http/errors';

const createKeySchema = z.strictObject({
  tenant: z.string().min(1).max(128),
  name: z.string().min(1).max(128),
});

const ADMIN_BODY_LIMIT = 64 * 1024;

/** /admin/keys: create (the key is shown once), list (no secrets), revoke. */
export const adminKeys = new Hono<AppEnv>();

adminKeys.post('/', async (c) => {
  const body = await readJsonBody(c.req.raw, createKeySchema, ADMIN_BODY_LIMIT);
  if (!c.get('config').raw.tenants[body.tenant]) {
    throw errors.badRequest(`Unknown tenant "${body.tenant}": tenants are declared in [vars.ROUTER.tenants].`, 'tenant', 'unknown_tenant');
  }
  const created = await registry(c.env).create(body.tenant, body.name);
  return c.json(created, 201);
});

adminKeys.get('/', async (c) => {
  const tenant = c.req.query('tenant');
  return c.json({ object: 'list', data: await registry(c.env).list(tenant) });
});

adminKeys.delete('/:id', async (c) => {
  const id = c.req.param('id');
  const revoked = await registry(c.env).revoke(id);
  if (!revoked) throw errors.notFound(`No key with id "${id}".`, 'key_not_found', 'id');
  forgetKey(id);
  return c.json(revoked);
});
