// The wire contract of AlertState (durable-objects/alert-state.ts): what the cron Worker
// (worker/alerts/scheduled.ts) sends it and what it answers.

export type Severity = 'critical' | 'warning';

/** A condition a detector found (worker/alerts/detectors.ts). */
export interface Alert {
  /** Stable while the condition lasts: dedupe and resolution key on it. */
  id: string;
  severity: Severity;
  summary: string;
  details: Record<string, string | number | null>;
}

export type AlertStatus = 'firing' | 'resolved';

export interface Delivery {
  delivery_id: string;
  /** The webhook's URL (config may change between runs: unknown targets are dropped). */
  target: string;
  status: AlertStatus;
  alert: Alert;
  started_at: number;
  resolved_at: number | null;
  attempt: number;
}

export interface EvaluateRequest {
  now: number;
  alerts: Alert[];
  targets: string[];
  resolve_after_runs: number;
  max_attempts: number;
  lease_ms: number;
}

export interface EvaluateReply {
  fired: string[];
  resolved: string[];
  /** Messages due now, oldest first. */
  deliveries: Delivery[];
}

export interface ActiveAlert {
  alert: Alert;
  started_at: number;
  last_seen: number;
  clear_runs: number;
}
