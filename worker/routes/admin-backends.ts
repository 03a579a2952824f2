import { Hono } from 'hono';
import type { LifecycleStatus } from '../protocol/lifecycle';
import { backendEventSchema, type BackendList, type BackendStatus } from '../protocol/backends-api';
import type { CompiledConfig } from '../config/compiled';
import type { BackendConfig } from '../config/schema';
import type { AppEnv, Env } from '../env';
import { readJsonBody } from '../http/body';
import { errors } from '../http/errors';
import { noteLifecycle } from '../routing/backend-lifecycle-view';
import { lifecycleSettings, tracked } from '../protocol/rules/lifecycle-rules';
import { objectCall } from '../http/object-call';

/**
 * /admin/backends (issue 6; wire contract in worker/protocol/backends-api.ts): each configured
 * backend's lifecycle as its BackendLifecycle object knows it, and the scale scripts' events.
 *
 * Backends without cold_start_ms are listed too, but isolates report no traffic for them (they cost
 * nothing on the hot path): their state comes from scale events alone (`unknown` until one), and
 * last_request_at, in_flight and request_rate_per_min stay empty. `tracked` says which is which.
 */
export const adminBackends = new Hono<AppEnv>();

const BODY_LIMIT = 4 * 1024;

const stub = (env: Env, id: string) => env.BACKEND_LIFECYCLE.get(env.BACKEND_LIFECYCLE.idFromName(id));

function backendOr404(config: CompiledConfig, id: string): BackendConfig {
  const backend = config.backends.get(id);
  if (!backend) throw errors.notFound(`No backend "${id}" in the router config.`, 'backend_not_found', 'backend');
  return backend;
}

const rpc = objectCall('backend lifecycle service', 'lifecycle_unavailable');

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function shape(b: BackendConfig, s: LifecycleStatus): BackendStatus & { object: 'backend'; tracked: boolean } {
  return {
    object: 'backend',
    id: b.id,
    kind: b.kind,
    region: b.region,
    tracked: tracked(b),
    state: s.state,
    state_since: iso(s.since),
    last_request_at: iso(s.last_request_at),
    in_flight: s.in_flight,
    request_rate_per_min: s.rate_per_min,
    pending_wakeups: s.pending_wakeups,
    wakeup_requested_at: iso(s.wakeup_requested_at),
    cold_start_ms: { configured: b.cold_start_ms ?? null, expected: s.expected_ms, observed: s.observed },
    replicas: s.replicas,
  };
}

const statusOf = (env: Env, config: CompiledConfig, b: BackendConfig) => rpc(() => stub(env, b.id).status({ backend: b.id, settings: lifecycleSettings(config, b.id) }));

adminBackends.get('/', async (c) => {
  const config = c.get('config');
  const statuses = await Promise.all(config.raw.backends.map((b) => statusOf(c.env, config, b)));
  const list: BackendList & { data: ReturnType<typeof shape>[] } = {
    object: 'list',
    now: new Date().toISOString(),
    data: config.raw.backends.map((b, i) => shape(b, statuses[i]!)),
  };
  return c.json(list);
});

adminBackends.get('/:backend', async (c) => {
  const config = c.get('config');
  const b = backendOr404(config, c.req.param('backend'));
  return c.json(shape(b, await statusOf(c.env, config, b)));
});

/** A scale event (backendEventSchema); applied at once on this isolate, elsewhere at their next refresh (about a second). */
adminBackends.post('/:backend/events', async (c) => {
  const config = c.get('config');
  const b = backendOr404(config, c.req.param('backend'));
  const event = await readJsonBody(c.req.raw, backendEventSchema, BODY_LIMIT);
  const status = await rpc(() => stub(c.env, b.id).event({ backend: b.id, settings: lifecycleSettings(config, b.id), event }));
  if (tracked(b)) noteLifecycle(b.id, status);
  return c.json(shape(b, status));
});
