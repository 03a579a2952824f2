// The wire contract of CircuitBreaker (durable-objects/circuit-breaker.ts): what isolates
// (worker/routing/breaker-view.ts) and the admin route send it and what it answers.

import type { BreakerConfig } from '../config/schema';

export type BreakerState = 'closed' | 'open' | 'half-open';
/** The router's resolved [breaker] settings for this backend; each call carries them. */
export type BreakerSettings = BreakerConfig;

/** What every reply carries: enough for an isolate to update its copy. */
export interface BreakerStatus {
  state: BreakerState;
  /** While open: when the cool-down ends (this object's clock). Otherwise null. */
  opened_until: number | null;
  /** While open: ms left of the cool-down at `at` (clock-skew-free for the isolate). Otherwise 0. */
  retry_in_ms: number;
  /** This object's clock when it answered. */
  at: number;
  /** Bumped on every transition: an isolate ignores a reply older than what it holds. */
  version: number;
}

export interface BreakerTransition {
  at: string;
  from: BreakerState;
  to: BreakerState;
  cause: string;
}

/** GET /admin/breakers: one backend's breaker in full. */
export interface BreakerDetails {
  backend: string | null;
  state: BreakerState;
  window: { window_ms: number; requests: number; failures: number };
  consecutive_failures: number;
  opened_at: string | null;
  opened_until: string | null;
  /** Cool-down of the current (or last) trip. */
  cooldown_ms: number | null;
  /** Trips since this object was created or reset. */
  trips: number;
  /** Trips without a lasting recovery in between: the cool-down grows with it. */
  trip_streak: number;
  half_open: { probes_in_flight: number; successes: number; needed: number };
  /** Newest first, at most TRANSITIONS_KEPT. */
  transitions: BreakerTransition[];
  updated_at: string | null;
}

/** What every call may carry. */
export interface Base {
  /** The backend this object is for; kept for the admin view. */
  backend?: string;
  /** The router's settings for it; the last ones seen are kept. */
  settings?: BreakerSettings;
  now?: number;
}

export interface ReportBatch extends Base {
  backend: string;
  settings: BreakerSettings;
  /** Outcomes in the order they happened: "s" success, "f" failure. */
  outcomes: string;
  /** The last failure's cause ("HTTP 503", "timeout", …), for the transition log. */
  cause?: string;
}

export interface ProbeRequest extends Base {
  /** How long the permit holds if never settled (the probe's deadline); capped at MAX_PROBE_LEASE_MS. */
  lease_ms?: number;
}

export interface ProbeReply {
  /** A permit id to settle, or null: no probe now (open, or enough probes in flight; or closed: go ahead). */
  permit: string | null;
  status: BreakerStatus;
}

export interface ProbeSettlement extends Base {
  permit: string;
  outcome: 'success' | 'failure' | 'ignore';
  cause?: string;
}

export const TRANSITIONS_KEPT = 20;
export const DEFAULT_PROBE_LEASE_MS = 30_000;
export const MAX_PROBE_LEASE_MS = 10 * 60_000;
