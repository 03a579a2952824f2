import type { Context, MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { errors, RouterError } from '../http/errors';
import { endpoints } from '../openai/schemas';
import { responsesRequestSchema } from '../openai/responses/request';
import { FEATURE_HEADER, checkFeatureAllowed } from '../budget/settings';
import type { JobRequest, JobView } from '../protocol/async-jobs';
import { parsePrefer } from './prefer';
import { randomHex, requestStore } from './store';
import { webhookTarget } from './webhook';
import { objectCall } from '../http/object-call';
import { allowQueueOnOverload } from './overload';

const viaStore = objectCall('async job store', 'async_unavailable');

// Prefer: respond-async on the inference endpoints (README "Async requests"): the body is validated
// as the sync call would (a bad body is the sync 400, never a failed job), then the job is stored in
// the tenant's RequestStore and put on the async queue, and the answer is 202 with the job and
// Location: /v1/async/{id}. `respond-async-on-overload` queues the request when every candidate is
// at capacity before the attempt (503 overloaded from the plan stage, worker/async/overload.ts), or
// when the attempt shows it (502 upstream_error: every backend refused or failed; 503
// no_backend_available: none usable). Streaming cannot be
// answered later: `"stream": true` with respond-async is refused (400 async_stream_unsupported).

export const ASYNC_QUEUE_NAME = 'edge-router-async';

/** The sync answers that mean "no capacity now": a request that allows it is queued instead. */
const OVERLOAD_CODES = new Set(['overloaded', 'upstream_error', 'no_backend_available']);

export function respondAsync(kind: JobRequest['endpoint']): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const prefer = parsePrefer(c.req.header('prefer'));
    if (!prefer.async && !prefer.onOverload) return next();
    const config = c.get('config');
    const key = c.get('key');
    if (prefer.webhook !== null && !webhookTarget(config.raw.async.webhooks, key.tenant, prefer.webhook)) {
      throw errors.badRequest(`No webhook named "${prefer.webhook.slice(0, 64)}" is configured for this tenant ([async].webhooks).`, null, 'unknown_webhook');
    }
    const schema = kind === 'responses' ? responsesRequestSchema : endpoints[kind].schema;
    const body = (await readJsonBody(c.req.raw.clone(), schema, config.raw.max_body_bytes)) as Record<string, unknown>;
    if (body.stream === true && prefer.async) {
      throw errors.badRequest('Prefer: respond-async cannot answer a stream later: send "stream": false (or no Prefer: respond-async).', 'stream', 'async_stream_unsupported');
    }
    checkFeatureAllowed(config, key.tenant, c.req.header(FEATURE_HEADER));
    if (prefer.async) return enqueue(c, kind, body, prefer.webhook, 'requested');
    // respond-async-on-overload: served now when it can be; streams are never queued. When every
    // candidate is at capacity already, the plan stage refuses it (503 overloaded, overload.ts) before
    // any backend is called, and it is queued below.
    if (body.stream !== true) allowQueueOnOverload(c.req.raw);
    await next();
    if (body.stream === true || !(c.res.status === 502 || c.res.status === 503)) return;
    const code = await c.res.clone().json().then((j: any) => j?.error?.code, () => null);
    if (!OVERLOAD_CODES.has(code)) return;
    c.res = undefined; // Hono: replace the refusal rather than merge into it
    c.res = await enqueue(c, kind, body, prefer.webhook, 'overload');
  };
}

async function enqueue(c: Context<AppEnv>, kind: JobRequest['endpoint'], body: Record<string, unknown>, webhook: string | null, reason: 'requested' | 'overload'): Promise<Response> {
  const config = c.get('config');
  const key = c.get('key');
  const queue = c.env.ROUTER_ASYNC;
  if (!queue) throw errors.unavailable('Async requests need the ROUTER_ASYNC queue binding (wrangler.toml).', 'async_unavailable');
  const store = requestStore(c.env, key.tenant);
  const now = Date.now();
  const id = `async_${randomHex(16)}`;
  const feature = c.req.header(FEATURE_HEADER) ?? null;
  const created = await viaStore(() => store.createJob({
    id,
    endpoint: kind,
    body: JSON.stringify(body),
    key: { ...key, limits: key.limits ?? null },
    webhook,
    feature: feature?.slice(0, 128) ?? null,
    user: c.req.header('x-router-user')?.slice(0, 256) ?? null,
    created_at_ms: now,
    expires_at_ms: now + config.raw.async.ttl_seconds * 1000,
    reason,
  }, config.raw.async.max_pending_per_tenant));
  if (created.full !== null) {
    throw new RouterError(429, `Your tenant already has ${created.full} async jobs queued or running (the limit is ${config.raw.async.max_pending_per_tenant}); retry when some are done.`, 'async_queue_full', null, { 'retry-after': '5' });
  }
  try {
    await queue.send({ tenant: key.tenant, id }, { contentType: 'json' });
  } catch (e) {
    await store.completeJob(id, 'failed', 503, JSON.stringify({ error: { message: 'The async queue was unreachable.', type: 'server_error', param: null, code: 'async_queue_unavailable' } }), Date.now());
    console.error(JSON.stringify({ msg: 'async: queue send failed', id, error: String(e) }));
    throw errors.unavailable('The async queue is unreachable; retry shortly.', 'async_queue_unavailable');
  }
  const job = (await viaStore(() => store.getJob(id, Date.now()))) as unknown as JobView;
  return c.json(job, 202, { location: `/v1/async/${id}`, 'preference-applied': 'respond-async' });
}
