import type { MiddlewareHandler } from 'hono';
import { loadConfig } from '../config/compiled';
import type { AppEnv } from '../env';
import { errors } from '../http/errors';

/** Every route needs a valid config: an invalid one answers 503 with its problems, never a crash. */
export const requireConfig: MiddlewareHandler<AppEnv> = async (c, next) => {
  const result = loadConfig(c.env.ROUTER);
  if (!result.ok) {
    throw errors.unavailable(`The router's configuration is invalid: ${result.errors.join('; ')}`, 'invalid_config');
  }
  c.set('config', result.config);
  await next();
};
