import type { BackendConfig } from '../config/schema';
import { isolateState } from './isolate-state';

/**
 * A backend's load as the planner compares it: requests this edge has in flight there.
 * (The scraped backend metrics join this once the load snapshot lands.)
 */
export function loadOf(backend: BackendConfig): number {
  return isolateState.inFlight(backend.id);
}
