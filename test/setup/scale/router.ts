/**
 * A stand-in for the router's backends admin API (worker/protocol/backends-api.ts), on loopback:
 * GET /admin/backends answers with backendListSchema (checked before sending), POST
 * /admin/backends/:id/events takes backendEventSchema bodies and moves the backend's state the
 * way the contract describes (scaled_down{0} → cold; waking → waking, wake-ups answered;
 * ready → warm). test/node/scale-real-router.test.ts runs the scripts against the real Worker;
 * this stand-in stays for what the real one cannot show within a test: a movable clock (hours of
 * idleness, keep-warm windows), backends the router reports but the config lacks, and failures on
 * purpose (events answered 500).
 */
import { backendEventSchema, backendListSchema, type BackendEvent, type BackendStatus } from '../../../worker/protocol/backends-api';
import { json, listen, type FakeServer } from './http';

export interface FakeRouter extends FakeServer {
  backends: Map<string, BackendStatus>;
  events: { id: string; event: BackendEvent }[];
  /** The router's clock; tests move it. */
  now: Date;
  /** Backend ids whose event POSTs answer 500. */
  failEventsFor: Set<string>;
  /** GET /admin/backends calls so far. */
  reads: number;
}

export function backendStatus(id: string, over: Partial<BackendStatus> = {}): BackendStatus {
  return {
    id,
    kind: 'vllm',
    region: 'us-east',
    state: 'warm',
    state_since: null,
    last_request_at: null,
    in_flight: 0,
    request_rate_per_min: 0,
    pending_wakeups: 0,
    wakeup_requested_at: null,
    cold_start_ms: { configured: null, expected: null, observed: [] },
    replicas: null,
    ...over,
  };
}

export async function startFakeRouter(token: string, initial: BackendStatus[], now = new Date()): Promise<FakeRouter> {
  const state = {
    backends: new Map(initial.map((b) => [b.id, b])),
    events: [] as { id: string; event: BackendEvent }[],
    now,
    failEventsFor: new Set<string>(),
    reads: 0,
  };
  const server = await listen((req, body, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) return json(res, 401, { error: { message: 'invalid admin token', type: 'invalid_request_error', param: null, code: 'invalid_admin_token' } });
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/admin/backends') {
      state.reads += 1;
      return json(res, 200, backendListSchema.parse({ object: 'list', now: state.now.toISOString(), data: [...state.backends.values()] }));
    }
    const m = /^\/admin\/backends\/([^/]+)\/events$/.exec(url.pathname);
    if (req.method === 'POST' && m) {
      const id = decodeURIComponent(m[1]!);
      const b = state.backends.get(id);
      if (!b) return json(res, 404, { error: { message: `unknown backend ${id}`, type: 'invalid_request_error', param: null, code: 'backend_not_found' } });
      if (state.failEventsFor.has(id)) return json(res, 500, { error: { message: 'event store unavailable', type: 'server_error', param: null, code: null } });
      const parsed = backendEventSchema.safeParse(JSON.parse(body || 'null'));
      if (!parsed.success || req.headers['content-type'] !== 'application/json') return json(res, 400, { error: { message: 'invalid event', type: 'invalid_request_error', param: null, code: 'invalid_value' } });
      const event = parsed.data;
      state.events.push({ id, event });
      const at = state.now.toISOString();
      if (event.type === 'scaled_down') {
        state.backends.set(id, { ...b, replicas: event.replicas, ...(event.replicas === 0 ? { state: 'cold', state_since: at } : {}) });
      } else if (event.type === 'waking') {
        state.backends.set(id, { ...b, state: 'waking', state_since: at, pending_wakeups: 0, wakeup_requested_at: null, replicas: event.replicas ?? b.replicas });
      } else {
        const observed = event.cold_start_ms === undefined ? b.cold_start_ms.observed : [...b.cold_start_ms.observed, event.cold_start_ms];
        state.backends.set(id, { ...b, state: 'warm', state_since: at, pending_wakeups: 0, wakeup_requested_at: null, replicas: event.replicas ?? b.replicas, cold_start_ms: { ...b.cold_start_ms, observed } });
      }
      res.writeHead(204).end();
      return;
    }
    json(res, 404, { error: { message: 'unknown route', type: 'invalid_request_error', param: null, code: 'unknown_route' } });
  });
  return Object.assign(state, server);
}
