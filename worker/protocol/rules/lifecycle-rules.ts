// Pure rules of a backend's lifecycle (warm, cold, waking), shared by its Durable Object
// (durable-objects/backend-lifecycle.ts) and each isolate's copy (backend-lifecycle-view.ts), so
// both sides presume and expect the same things.

import type { CompiledConfig } from '../../config/compiled';
import type { BackendConfig } from '../../config/schema';

/** What the object needs from the config; sent with every call (the object keeps the last seen). */
export interface LifecycleSettings {
  /** [[backends]].cold_start_ms; null when unset (the backend is not tracked by isolates). */
  configured_ms: number | null;
  /** Idle time after which the platform has parked the backend by itself; null: never presumed. */
  idle_ms: number | null;
}

/** Observed cold starts kept per backend (newest last). */
export const OBSERVED_KEPT = 20;
/** An isolate's in-flight count older than this no longer counts (the isolate may be gone). */
export const IN_FLIGHT_FRESH_MS = 60_000;

const settingsCache = new WeakMap<CompiledConfig, Map<string, LifecycleSettings>>();

/** Cold-start-aware routing applies only to backends with cold_start_ms: the others cost nothing. */
export const tracked = (backend: BackendConfig): boolean => backend.cold_start_ms !== undefined;

export function lifecycleSettings(config: CompiledConfig, backendId: string): LifecycleSettings {
  let byBackend = settingsCache.get(config);
  if (!byBackend) settingsCache.set(config, (byBackend = new Map()));
  let s = byBackend.get(backendId);
  if (!s) {
    const b = config.backends.get(backendId);
    s = { configured_ms: b?.cold_start_ms ?? null, idle_ms: b ? presumedIdleMs(b) : null };
    byBackend.set(backendId, s);
  }
  return s;
}

/**
 * When the router may presume a backend parked from silence alone: a platform that parks by
 * itself after idle_minutes (serverless, Modal's own scale-down; driver "none", "modal",
 * "replicate") with no floor (min_replicas 0, no keep-warm window, whose times the router does not
 * evaluate). Kubernetes deployments are parked only by the scale scripts, which say so with a
 * scaled_down event; presuming there would also restart the scripts' idle clock (state_since).
 */
function presumedIdleMs(b: BackendConfig): number | null {
  const s = b.scaling;
  if (!s || s.driver === 'kubernetes' || s.min_replicas > 0 || s.keep_warm.length > 0) return null;
  return s.idle_minutes * 60_000;
}

/** The cold start routing plans for: the median of observed starts once there are some, else the configured one. */
export function expectedColdStart(observed: readonly number[], configured: number | null): number | null {
  if (observed.length === 0) return configured;
  const sorted = [...observed].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return Math.round(sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2);
}

/**
 * A warm backend with nothing in flight and no request or state change for idle_ms is presumed
 * parked; returns since when (the moment it idled out), or null. Not while a scale event left it
 * replicas: a floor the scripts raised (a Modal or Replicate minimum) keeps the platform from parking it.
 */
export function idleSince(idleMs: number | null, lastActivity: number, inFlight: number, replicas: number | null, now: number): number | null {
  if (idleMs === null || inFlight > 0 || lastActivity <= 0 || (replicas ?? 0) > 0) return null;
  return now - lastActivity >= idleMs ? lastActivity + idleMs : null;
}
