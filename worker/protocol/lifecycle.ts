// The wire contract of BackendLifecycle (durable-objects/backend-lifecycle.ts): what isolates
// (worker/routing/backend-lifecycle-view.ts) and the admin route send it and what it answers.

import type { BackendEvent, BackendState } from './backends-api';
import type { LifecycleSettings } from './rules/lifecycle-rules';

/** The object's answer to every call: enough for an isolate's copy and for /admin/backends. Times are epoch ms. */
export interface LifecycleStatus {
  backend: string | null;
  state: BackendState;
  since: number | null;
  last_request_at: number | null;
  /** Sum of the in-flight counts isolates reported within IN_FLIGHT_FRESH_MS. */
  in_flight: number;
  /** Requests per minute over the last 5 minutes. */
  rate_per_min: number;
  pending_wakeups: number;
  wakeup_requested_at: number | null;
  /** Newest last, at most OBSERVED_KEPT. */
  observed: number[];
  /** Median of observed, else the configured cold start (null: neither). */
  expected_ms: number | null;
  replicas: number | null;
  /** Bumped on every change of state or of the observed starts: an isolate ignores older answers. */
  version: number;
  /** This object's clock when it answered. */
  at: number;
}

/** What every call may carry. */
export interface Base {
  backend?: string;
  settings?: LifecycleSettings;
  now?: number;
}

/** What one isolate saw since its last report. */
export interface LifecycleReport extends Base {
  /** A random id per isolate: its in-flight count replaces its previous one. */
  isolate: string;
  in_flight: number;
  /** Requests started since the last report. */
  requests: number;
  last_request_at: number | null;
  /** When the backend last answered successfully (null: no success in this batch). */
  warm_at: number | null;
  /** When a wake-up or a request planned on a cold start failed to connect or got 503. */
  cold_at: number | null;
  /** Cold starts measured from answers (ms). */
  observed: number[];
}

export interface WakeRequest extends Base {
  /** The isolate sent the backend a wake-up request itself (it wakes serverless platforms): waking from now. */
  ping: boolean;
}

export interface EventRequest extends Base {
  event: BackendEvent;
}
