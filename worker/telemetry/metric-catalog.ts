// Every metric GET /metrics exposes: name, type, help and label names (in order). The isolates'
// deltas and the aggregator key series by [name, ...label values] in this order, so a label is
// never written twice. README "Metrics" lists the same table for operators.
//
// Cardinality: every label value comes from the config (tenants, models, regions, backends, tiers)
// or a small fixed set (status, outcome, code, result); never a user, key or request id.
// Deployment versions may also be added at run time by the admin API (few). A feature label is
// the x-router-feature name only for a tenant that lists its features (config), else "other";
// a feedback metric label is a name some deployment's [ab].metric configures, else "custom".

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDef {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
  /** A histogram's upper bounds in its own unit (12 of them, as LATENCY_BUCKETS_MS); absent: the latency bounds in seconds. */
  readonly bounds?: readonly number[];
}

const def = <const L extends readonly string[]>(name: string, type: MetricType, help: string, labels: L, bounds?: readonly number[]) =>
  ({ name, type, help, labels, ...(bounds ? { bounds } : {}) }) as const;

/** Upper bounds (tokens) of router_output_tokens: as many as the latency bounds, so the aggregator's bucket arrays fit both. */
export const OUTPUT_TOKEN_BUCKETS: readonly number[] = [4, 8, 16, 32, 64, 128, 256, 512, 1_024, 2_048, 4_096, 8_192];

const QUALITY_LABELS = ['tenant', 'model', 'deployment', 'version'] as const;

/** Counted per request (from its usage record) in the isolates, summed by the aggregator. */
export const REQUEST_METRICS = {
  requests: def('router_requests_total', 'counter', 'Requests answered, by the HTTP status the client got and how the request ended.', ['tenant', 'model', 'region', 'backend', 'status', 'outcome']),
  errors: def('router_errors_total', 'counter', 'Requests that ended with an OpenAI error code, by code.', ['tenant', 'model', 'code']),
  duration: def('router_request_duration_seconds', 'histogram', 'Total request latency, arrival to last byte.', ['tenant', 'model', 'region', 'backend']),
  ttft: def('router_ttft_seconds', 'histogram', 'Time to first token (streams) or to the answer (non-streamed).', ['tenant', 'model', 'region', 'backend']),
  tokens: def('router_tokens_total', 'counter', 'Tokens in (prompt) and out (completion).', ['tenant', 'model', 'direction']),
  cachedTokens: def('router_cached_prompt_tokens_total', 'counter', 'Prompt tokens the backend served from its prefix cache (part of direction="in").', ['tenant', 'model']),
  cost: def('router_cost_usd_total', 'counter', 'Cost in USD, priced from [prices].', ['tenant', 'model']),
  saved: def('router_cache_saved_usd_total', 'counter', 'Cost in USD that response-cache hits saved.', ['tenant', 'model']),
  cache: def('router_cache_requests_total', 'counter', 'Response-cache lookups by result (hit, semantic-hit, miss, bypass).', ['tenant', 'tier', 'result']),
  rateLimited: def('router_rate_limited_total', 'counter', 'Requests refused with 429 by a rate limit or a budget, by code.', ['tenant', 'code']),
  retries: def('router_retries_total', 'counter', 'Attempts that retried a backend already tried for the same request.', ['model', 'backend']),
  fallbacks: def('router_fallbacks_total', 'counter', 'Moves from one backend to another (or to the degraded answer) within a request.', ['model', 'from', 'to']),
  attemptFailures: def('router_attempt_failures_total', 'counter', 'Backend attempts that failed, by cause: the causes of retries and fallbacks.', ['backend', 'cause']),
  upstashErrors: def('router_upstash_errors_total', 'counter', 'Upstash calls that failed (error or timeout).', ['component', 'op']),
  upstashFallbacks: def('router_upstash_fallbacks_total', 'counter', 'Operations the embedded store served because Upstash failed or was resting.', ['component', 'op']),
  // Quality signals (README "Quality signals and drift"): over answered requests, i.e. served
  // chat/completions answers that missed the caches and were judged (usage record `refused` not null).
  answers: def('router_answers_total', 'counter', 'Answered requests (served chat/completions answers judged for refusal and truncation).', QUALITY_LABELS),
  refusals: def('router_refusals_total', 'counter', 'Answered requests whose first sentences read as a refusal (worker/quality/refusal.ts).', QUALITY_LABELS),
  truncations: def('router_truncations_total', 'counter', 'Answered requests cut by the token limit (finish_reason "length").', QUALITY_LABELS),
  outputTokens: def('router_output_tokens', 'histogram', 'Completion tokens per answered request.', QUALITY_LABELS, OUTPUT_TOKEN_BUCKETS),
  feedback: def('router_feedback_total', 'counter', 'Feedback received (POST /v1/feedback), by sentiment: positive (score > 0), negative (< 0), neutral (0).', [...QUALITY_LABELS, 'feature', 'metric', 'sentiment']),
  feedbackScore: def('router_feedback_score_total', 'counter', 'Sum of feedback scores (divide by router_feedback_total for the mean).', [...QUALITY_LABELS, 'feature', 'metric']),
} as const;

/** Read at scrape time from the objects that own them. */
export const STATE_METRICS = {
  breaker: def('router_breaker_state', 'gauge', 'Circuit breaker state per backend: 1 for the current state, 0 for the others.', ['backend', 'state']),
  breakerTrips: def('router_breaker_trips', 'gauge', 'Trips of the backend\'s breaker since it was created or reset.', ['backend']),
  backend: def('router_backend_state', 'gauge', 'Backend lifecycle state (warm, cold, waking, unknown): 1 for the current state, 0 for the others.', ['backend', 'region', 'state']),
  backendInFlight: def('router_backend_in_flight', 'gauge', 'Requests in flight to the backend, as isolates last reported (backends with cold_start_ms only).', ['backend']),
  scrapeErrors: def('router_metrics_source_errors', 'gauge', 'Sources this scrape could not read (their metrics are missing from it).', ['source']),
  // The batch queue, from the per-line ledger (worker/batch/queue-report.ts, README "Batch and async").
  batchDepth: def('router_batch_queue_depth', 'gauge', 'Batch lines enqueued and not yet done (waiting or running).', ['queue']),
  batchOldest: def('router_batch_queue_oldest_age_seconds', 'gauge', 'Age of the oldest batch line not yet done (0 when none).', ['queue']),
  batchRetries: def('router_batch_queue_retries_total', 'counter', 'Batch lines handed back to the queue after a retryable failure.', ['queue']),
  batchDeadLetters: def('router_batch_queue_dead_letters_total', 'counter', 'Batch lines that exhausted their retries (error file and dead-letter queue).', ['queue']),
  batchDone: def('router_batch_lines_total', 'counter', 'Batch lines done (output or error file).', ['queue']),
  // The async queue (Prefer: respond-async), from the tenants' RequestStores (worker/async/queue-report.ts, README "Async requests").
  asyncDepth: def('router_async_queue_depth', 'gauge', 'Async jobs not yet done (queued or running).', ['queue']),
  asyncRunning: def('router_async_queue_running', 'gauge', 'Async jobs a delivery is running now.', ['queue']),
  asyncOldest: def('router_async_queue_oldest_age_seconds', 'gauge', 'Age of the oldest async job not yet done (0 when none).', ['queue']),
  asyncRetries: def('router_async_queue_retries_total', 'counter', 'Async jobs handed back to the queue after a retryable failure.', ['queue']),
  asyncDeadLetters: def('router_async_queue_dead_letters_total', 'counter', 'Async jobs that failed after their last retry (dead letters).', ['queue']),
  asyncDone: def('router_async_jobs_total', 'counter', 'Async jobs done (completed or failed).', ['queue']),
} as const;

export type RequestMetric = (typeof REQUEST_METRICS)[keyof typeof REQUEST_METRICS];

/** The identity of one series: [name, ...label values], as the deltas and the aggregator store it. */
export const seriesKey = (name: string, values: readonly string[]): string => JSON.stringify([name, ...values]);

export function parseSeriesKey(key: string): { name: string; values: string[] } {
  const [name, ...values] = JSON.parse(key) as string[];
  return { name: name!, values };
}
