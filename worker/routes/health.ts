import { Hono } from 'hono';
import type { AppEnv } from '../env';
import { errors } from '../http/errors';
import { isolateState } from '../routing/isolate-state';

export const health = new Hono<AppEnv>();

/** Liveness: the Worker runs and its config is valid (requireConfig answered 503 otherwise). */
health.get('/healthz', (c) => c.json({ status: 'ok' }));

/** Readiness: config valid and at least one backend this isolate does not currently skip. */
health.get('/readyz', (c) => {
  const backends = c.get('config').raw.backends;
  const usable = backends.filter((b) => isolateState.usable(b.id)).map((b) => b.id);
  if (usable.length === 0) throw errors.unavailable('No backend is usable.', 'no_backend_available');
  return c.json({ status: 'ready', backends: backends.length, usable: usable.length });
});
