// Dev-only Worker entry (the local stack bundles it instead of worker/index.ts when
// ROUTER_SIM_REMOTE_RTT_MS is set; wrangler.toml's `main` never names it, so it is never deployed).
// It runs the real Worker with the distance model of remote-rtt.ts and adds, to every answer:
//   x-router-debug-remote-calls: the remote calls the request waited for (see remote-rtt.ts)
//   x-router-debug-remote-calls-started: all it started, background work included
//   x-router-debug-remote-calls-max-in-flight: the most of them in flight at once (overlapped round trips)
//   x-router-debug-remote-calls-log: the calls waited for, binding.method:start-end on a logical clock
// and one route for the benchmark's cold-isolate runs:
//   POST /__dev/forget-isolate (admin token): forgets the isolate's views, leases and key cache,
//   as a fresh isolate would (compiled config and module state stay; they cost no remote call).

import worker from '../index';
import type { Env } from '../env';
import { resetBudgetView } from '../budget/lease';
import { secretsEqual } from '../auth/hash';
import { resetIsolate } from '../isolate/registry';
import { countingRemoteCalls, distantEnv, distantFetch, rttFrom, upstashOrigins } from './remote-rtt';

export * from '../index';

const FORGET_PATH = '/__dev/forget-isolate';

async function forgetIsolate(request: Request, env: Env): Promise<Response> {
  const token = request.headers.get('authorization')?.replace(/^Bearer /, '') ?? '';
  if (request.method !== 'POST' || !env.ADMIN_TOKEN || !(await secretsEqual(token, env.ADMIN_TOKEN))) {
    return Response.json({ error: { message: 'POST with the admin token.', type: 'invalid_request_error', code: 'unauthorized' } }, { status: 401 });
  }
  resetIsolate();
  resetBudgetView();
  return new Response(null, { status: 204 });
}

function distant(env: Env): Env {
  const rtt = rttFrom(env);
  distantFetch(upstashOrigins(env.ROUTER), rtt);
  return distantEnv(env, rtt);
}

export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === FORGET_PATH) return forgetIsolate(request, env);
    const wrapped = distant(env);
    const { value, calls } = await countingRemoteCalls(async () => worker.fetch!(request, wrapped, ctx));
    let response = value;
    try {
      response.headers.set('x-router-debug-remote-calls', String(calls.waited));
    } catch {
      response = new Response(response.body, response); // immutable headers (a fetched response)
      response.headers.set('x-router-debug-remote-calls', String(calls.waited));
    }
    response.headers.set('x-router-debug-remote-calls-started', String(calls.started));
    response.headers.set('x-router-debug-remote-calls-max-in-flight', String(calls.maxInFlight));
    response.headers.set('x-router-debug-remote-calls-log', calls.log.join(','));
    return response;
  },
  scheduled(controller, env, ctx) {
    return worker.scheduled!(controller, distant(env), ctx);
  },
} satisfies ExportedHandler<Env>;
