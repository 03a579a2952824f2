import { z } from 'zod';

// [slo] and [alerts] (README "Alerts and SLOs"): what the scheduled detectors (worker/alerts/)
// compare the per-minute metrics with, and where their alerts go.

const secretName = z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name');

export const sloSchema = z.strictObject({
  /** Share of requests that must succeed over [alerts].slo_window_minutes. */
  availability: z.number().gt(0).lt(1).default(0.999),
  /** p95 time to first token; breached when every one of the last [alerts].ttft_minutes minutes is above it. */
  p95_ttft_ms: z.number().positive().default(2_000),
  /** p95 total latency over [alerts].slo_window_minutes. */
  p95_latency_ms: z.number().positive().default(30_000),
  /** Mean cost per request over [alerts].slo_window_minutes; unset: not checked. */
  cost_per_request_usd: z.number().positive().optional(),
});

export const alertWebhookSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  /** Name of the Worker secret holding the HMAC-SHA256 key; unset: sent unsigned. */
  secret: secretName.optional(),
});

export const alertsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  webhooks: z.array(alertWebhookSchema).max(10).default([]),
  /** A key's window (the last N complete minutes) against its trailing baseline (the baseline_minutes before it). */
  key_window_minutes: z.number().int().min(1).max(30).default(5),
  key_baseline_minutes: z.number().int().min(10).max(240).default(60),
  /** Tokens per request: window mean above ratio × baseline mean, both with at least min_requests requests. */
  key_tokens_ratio: z.number().gt(1).default(3),
  key_tokens_min_requests: z.number().int().min(1).default(10),
  /** Requests per minute: window rate above ratio × baseline rate (at least 1/min) and at least min_per_minute. */
  key_requests_ratio: z.number().gt(1).default(5),
  key_requests_min_per_minute: z.number().min(1).default(30),
  /** Cost per request (all traffic): the last window vs the baseline before it. */
  cost_window_minutes: z.number().int().min(1).max(60).default(15),
  cost_baseline_minutes: z.number().int().min(5).max(240).default(45),
  /** Fires when cost per request rose by more than this share (0.5 = +50%)… */
  cost_increase: z.number().gt(0).default(0.5),
  /** …while the request rate rose by no more than this share. */
  cost_traffic_tolerance: z.number().min(0).default(0.1),
  cost_min_requests: z.number().int().min(1).default(50),
  /** Error rate above this in each of the last error_minutes minutes (each with at least error_min_requests). */
  error_rate: z.number().gt(0).lt(1).default(0.01),
  error_minutes: z.number().int().min(1).max(60).default(5),
  error_min_requests: z.number().int().min(1).default(20),
  /** p95 TTFT above [slo].p95_ttft_ms in each of the last ttft_minutes minutes (each with at least ttft_min_samples). */
  ttft_minutes: z.number().int().min(1).max(60).default(15),
  ttft_min_samples: z.number().int().min(1).default(20),
  /** Window of the availability, p95 latency and cost-per-request SLO checks. */
  slo_window_minutes: z.number().int().min(5).max(240).default(60),
  slo_min_requests: z.number().int().min(1).default(100),
  /**
   * Quality drift (worker/alerts/drift.ts): per deployment version (or model, for traffic on no
   * deployment), each signal of the last drift_window_minutes against the drift_baseline_minutes
   * before: refusal rate, truncation rate, mean output tokens, negative feedback rate.
   */
  drift_enabled: z.boolean().default(true),
  drift_window_minutes: z.number().int().min(1).max(30).default(15),
  drift_baseline_minutes: z.number().int().min(5).max(240).default(45),
  /** Fires when a signal moved (up or down) by more than this share of its baseline (0.05 = 5%)… */
  drift_change: z.number().gt(0).default(0.05),
  /** …and by more than this absolute amount: rates in points of 1 (0.01 = one percentage point)… */
  drift_rate_floor: z.number().min(0).max(1).default(0.01),
  /** …mean output length in tokens… */
  drift_tokens_floor: z.number().min(0).default(8),
  /** …with at least this many answered requests (for the feedback rate: feedback) in the window and in the baseline each. */
  drift_min_samples: z.number().int().min(1).default(100),
  /** A firing alert resolves after this many consecutive runs without its condition (flap damping). */
  resolve_after_runs: z.number().int().min(1).max(60).default(2),
  /** An undelivered message is retried on later runs, at most this many attempts per webhook. */
  max_attempts: z.number().int().min(1).max(100).default(10),
  webhook_timeout_ms: z.number().int().min(100).max(30_000).default(5_000),
  /**
   * Where the runbooks (docs/runbooks/*.md) are read: every alert webhook (these and the budget
   * ones) carries `runbook_url` = this + "/<runbook>.md", and the dashboard links them. An http(s)
   * URL (e.g. the repository's blob URL on your Git host) or a path; default the repository path.
   */
  runbook_base_url: z
    .union([z.url({ protocol: /^https?$/ }), z.string().regex(/^[A-Za-z0-9._~/-]+$/, 'must be an http(s) URL or a path')])
    .transform((s) => s.replace(/\/+$/, ''))
    .default('docs/runbooks'),
});

export type SloConfig = z.infer<typeof sloSchema>;
export type AlertsConfig = z.infer<typeof alertsSchema>;
