import type { BackendConfig } from '../config/schema';
import { isolateState } from './isolate-state';
import { backendLoad } from './load-snapshot';

/** KV-cache pressure above this makes a replica look busier: vLLM starts preempting near full. */
const KV_PRESSURE = 0.9;

/**
 * A backend's load as the planner compares it, in requests: those this edge has in flight
 * there, or the backend's own running + waiting from the last scrape if that is larger (it
 * counts every edge's traffic, but is seconds old), plus a penalty near a full KV cache.
 */
export function loadOf(backend: BackendConfig): number {
  const local = isolateState.inFlight(backend.id);
  const scraped = backendLoad(backend.id);
  if (!scraped) return local;
  const pressure = scraped.kvCacheUsage > KV_PRESSURE ? (scraped.kvCacheUsage - KV_PRESSURE) * 100 : 0;
  return Math.max(local, scraped.running + scraped.waiting) + pressure;
}
