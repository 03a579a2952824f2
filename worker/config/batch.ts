import { z } from 'zod';

// [batch] (README "Batch and async"): the Files and Batches APIs (worker/routes/files.ts,
// worker/routes/batches.ts), the batch queue's consumer (worker/batch/consumer.ts) and its alert.

export const batchSchema = z.strictObject({
  /** Largest file POST /v1/files accepts (bytes); OpenAI's limit is 200 MB. */
  max_file_bytes: z.number().int().positive().max(512 * 1024 * 1024).default(100 * 1024 * 1024),
  /** Most lines (requests) in one batch input file; OpenAI's limit is 50,000. */
  max_lines: z.number().int().positive().max(100_000).default(50_000),
  /** Largest single line (bytes): one queue message carries one line (Queues' message limit is 128 KB). */
  max_line_bytes: z.number().int().positive().max(120_000).default(100_000),
  /** Length of the "24h" completion window in seconds (the only window OpenAI offers); dev and tests may shorten it to see expiry. */
  completion_window_seconds: z.number().int().min(1).max(86_400).default(86_400),
  /** Share of the price a batch line pays (0.5: half price, OpenAI's batch discount). Budgets and cost_usd use it. */
  price_factor: z.number().min(0).max(1).default(0.5),
  /** Retries of a retryable failure (429, 5xx, timeouts): delays retry_base_seconds × 2^n (1, 2, 4, 8 s). Then the error file and the dead-letter queue. */
  max_retries: z.number().int().min(0).max(10).default(4),
  retry_base_seconds: z.number().int().min(1).max(300).default(1),
  /** Lines the consumer runs at once per invocation when every warm backend has headroom… */
  max_concurrency: z.number().int().min(1).max(256).default(64),
  /** …and backends whose own queue (vllm:num_requests_waiting) is above this get no more batch lines until it drains. */
  max_backend_waiting: z.number().int().min(0).default(0),
  /** Share of a backend's max_concurrency that batch lines may fill together with interactive traffic (the rest is kept for interactive). */
  max_backend_share: z.number().gt(0).max(1).default(0.8),
  /** A saturated consumer waits at most this long (ms) for headroom before handing the line back to the queue. */
  headroom_wait_ms: z.number().int().min(0).max(60_000).default(5_000),
  /** Wake a cold backend for batch lines only when less than this share of the completion window is left. */
  wake_cold_when_window_left: z.number().gt(0).max(1).default(0.25),
  /** How long a line may stay claimed by one delivery before another may take it over (a consumer that died). */
  claim_ms: z.number().int().min(1_000).max(900_000).default(300_000),
  /** Alert (queue_backlog) when the oldest unfinished batch line is older than this. */
  alert_oldest_age_seconds: z.number().int().positive().default(3_600),
  /**
   * Dev and tests only: the consumer throws once per isolate after this many lines of one
   * invocation were done (the "consumer dies mid-batch" fault). Unset in production.
   */
  debug_crash_after_lines: z.number().int().min(1).optional(),
});

export type BatchConfig = z.infer<typeof batchSchema>;
