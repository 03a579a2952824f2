// Per-minute aggregates the MetricsAggregator DO keeps (binding METRICS, instance "global").
// Shared contract: the metrics code writes these, the alert detectors (worker/alerts/) read them
// through the DO's RPC `minutes(sinceMs): Promise<MinuteBucket[]>`.

/** Histogram upper bounds (ms) for ttft_ms_buckets / latency_ms_buckets; one more bucket counts the rest (+Inf). */
export const LATENCY_BUCKETS_MS = [50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000];

export type MinuteBucket = {
  /** Epoch ms at the start of the minute. */
  minute: number;
  tenant: string;
  key_id: string | null;
  model: string | null;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  /** Counts per LATENCY_BUCKETS_MS bound (not cumulative); an extra last entry, if present, is the +Inf bucket. */
  ttft_ms_buckets: number[];
  latency_ms_buckets: number[];
};
