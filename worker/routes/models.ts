import type { Context } from 'hono';
import type { AppEnv } from '../env';
import { errors } from '../http/errors';
import { modelNamesFor } from '../routing/resolve-model';

// A fixed `created` keeps the answer cacheable and identical across isolates.
const CREATED = 1_735_689_600; // 2025-01-01T00:00:00Z

/** GET /v1/models: every model, alias and tier the key may use, plus "auto". */
export function listModels(c: Context<AppEnv>) {
  const data = modelNamesFor(c.get('config'), c.get('key').tenant).map((m) => ({
    id: m.id,
    object: 'model' as const,
    created: CREATED,
    owned_by: m.owned_by,
  }));
  return c.json({ object: 'list', data });
}

/** GET /v1/models/{id}: one model the key may use; any other id is a 404, as OpenAI answers an unknown one. */
export function retrieveModel(c: Context<AppEnv>) {
  const id = c.req.param('id') ?? '';
  const m = modelNamesFor(c.get('config'), c.get('key').tenant).find((x) => x.id === id);
  if (!m) throw errors.notFound(`The model '${id}' does not exist or you do not have access to it.`, 'model_not_found', 'model');
  return c.json({ id: m.id, object: 'model' as const, created: CREATED, owned_by: m.owned_by });
}
