import { Hono } from 'hono';
import type { CompiledConfig } from '../config/compiled';
import type { AppEnv, Env } from '../env';
import { errors } from '../http/errors';
import { breakerSettings, noteBreakerStatus } from '../routing/breaker-view';
import type { BreakerDetails } from '../protocol/breaker';

/** /admin/breakers: every configured backend's circuit breaker; reset one. */
export const adminBreakers = new Hono<AppEnv>();

const stub = (env: Env, backendId: string) => env.BREAKERS.get(env.BREAKERS.idFromName(backendId));

function backendOr404(config: CompiledConfig, id: string) {
  const backend = config.backends.get(id);
  if (!backend) throw errors.notFound(`No backend "${id}" in the router config.`, 'backend_not_found', 'backend');
  return backend;
}

const shape = (config: CompiledConfig, id: string, d: BreakerDetails) => {
  const settings = breakerSettings(config, id);
  return { object: 'breaker', ...d, backend: id, enabled: settings.enabled, settings };
};

adminBreakers.get('/', async (c) => {
  const config = c.get('config');
  const ids = config.raw.backends.map((b) => b.id);
  const data = await Promise.all(ids.map((id) => stub(c.env, id).details({ backend: id, settings: breakerSettings(config, id) })));
  return c.json({ object: 'list', data: data.map((d, i) => shape(config, ids[i]!, d)) });
});

adminBreakers.get('/:backend', async (c) => {
  const config = c.get('config');
  const id = backendOr404(config, c.req.param('backend')).id;
  return c.json(shape(config, id, await stub(c.env, id).details({ backend: id, settings: breakerSettings(config, id) })));
});

/** Closes the breaker and clears its window; at once on this isolate, elsewhere on their next refresh (seconds). */
adminBreakers.post('/:backend/reset', async (c) => {
  const config = c.get('config');
  const id = backendOr404(config, c.req.param('backend')).id;
  const breaker = stub(c.env, id);
  const details = await breaker.reset({ backend: id, settings: breakerSettings(config, id), cause: 'reset by admin' });
  noteBreakerStatus(id, await breaker.state({ backend: id }));
  return c.json(shape(config, id, details));
});
