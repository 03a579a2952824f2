import type { Candidate } from '../routing/plan';
import { isolateState } from '../routing/isolate-state';
import { backendLoad } from '../routing/load-snapshot';
import { errors } from '../http/errors';

// Prefer: respond-async-on-overload decided before any backend is called (README "Async requests"):
// the middleware (respond-async.ts) marks the request, and the plan stage, once it has the
// candidates, refuses a marked request with 503 `overloaded` when every candidate is at capacity;
// the middleware turns that refusal into a queued job (202). A request that did not opt in pays
// one WeakSet lookup; the candidates are only looked at for marked requests.

const queueOnOverload = new WeakSet<Request>();

/** Marks the request (the Request object the route hands to the pipeline) as allowed to be queued on overload. */
export function allowQueueOnOverload(raw: Request): void {
  queueOnOverload.add(raw);
}

/**
 * A backend is at capacity when this isolate has max_concurrency requests in flight there, or its
 * last scraped vllm:num_requests_waiting is above [async].overload_waiting_requests (when set).
 */
export function atCapacity(c: Candidate, waitingAbove: number | undefined, now: number): boolean {
  if (isolateState.inFlight(c.backend.id) >= c.backend.max_concurrency) return true;
  if (waitingAbove === undefined) return false;
  const load = backendLoad(c.backend.id, now);
  return load !== undefined && load.waiting > waitingAbove;
}

/** The plan stage's check: throws 503 `overloaded` for a marked request whose every candidate is at capacity. */
export function refuseIfOverloaded(raw: Request, candidates: readonly Candidate[], waitingAbove: number | undefined): void {
  if (!queueOnOverload.has(raw) || candidates.length === 0) return;
  const now = Date.now();
  if (candidates.every((c) => atCapacity(c, waitingAbove, now))) {
    throw errors.unavailable('Every backend that could serve this request is at capacity.', 'overloaded');
  }
}
