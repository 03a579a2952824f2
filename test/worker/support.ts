import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import worker from '../../worker/index';
import type { Env } from '../../worker/env';
import { flushMetricsSoon } from '../../worker/telemetry/metrics';
import { ADMIN_TOKEN, withAdmin } from '../support/admin';

export { ADMIN_TOKEN };

/** The wrangler.toml config (top level) as the Worker receives it, deep-copied for patching. */
export function baseConfig(): Record<string, any> {
  return structuredClone((env as unknown as Env).ROUTER) as Record<string, any>;
}

/** An env with its own ROUTER config; the Durable Object bindings are the real ones. */
export function envWith(router: unknown): Env {
  return { ...(env as unknown as Env), ROUTER: router };
}

export async function call(path: string, init: RequestInit & { env?: Env; cf?: Record<string, unknown> } = {}): Promise<Response> {
  const { env: e = env as unknown as Env, cf, ...rest } = init;
  const request = new Request(`http://router.test${path}`, rest) as Request<unknown, IncomingRequestCfProperties>;
  if (cf) Object.defineProperty(request, 'cf', { value: cf });
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, e, ctx);
  if (!res.body || !res.headers.get('content-type')?.includes('text/event-stream')) {
    await drain(ctx);
    return res;
  }
  // A relayed stream keeps its request's waitUntil open until it ends (worker/pipeline/run.ts), as in
  // production: the test reads it first, and its last read waits for the background work to drain.
  const drained = res.body.pipeThrough(new TransformStream({ flush: () => drain(ctx) }));
  return new Response(drained, res);
}

/**
 * Waits for the request's background work. The metrics flush timer would hold it for
 * flush_interval_ms, and a usage record may be emitted late (after the answer's verdict is read,
 * worker/quality/answer-signals.ts), arming the timer again: so it is woken until the work is done.
 */
async function drain(ctx: ExecutionContext): Promise<void> {
  flushMetricsSoon();
  const timer = setInterval(flushMetricsSoon, 5);
  try {
    await waitOnExecutionContext(ctx);
  } finally {
    clearInterval(timer);
  }
}

/** An admin API call with the admin token (and a JSON content type). */
export function admin(path: string, init: RequestInit & { env?: Env } = {}): Promise<Response> {
  return call(path, withAdmin(init));
}

export async function createKey(tenant: string, e?: Env): Promise<{ id: string; key: string }> {
  const res = await call('/admin/keys', {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant, name: `test-${tenant}` }),
    env: e,
  });
  if (res.status !== 201) throw new Error(`createKey: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; key: string };
}

export function chat(key: string, body: Record<string, unknown>, init: { env?: Env; headers?: Record<string, string> } = {}) {
  return call('/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
    body: JSON.stringify(body),
    env: init.env,
  });
}

export async function errorOf(res: Response): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  const body = (await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } };
  return body.error;
}
