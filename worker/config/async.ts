import { z } from 'zod';

// [async] and [idempotency] (README "Async requests", "Idempotency"): Prefer: respond-async jobs
// (worker/async/) and Idempotency-Key records (worker/idempotency/), both in the tenant's
// RequestStore (durable-objects/request-store.ts).

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** A webhook target: the URL and the name of the secret (env var) that signs its deliveries. */
const webhookTargetSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  /** Name of the Worker secret holding the HMAC key (never the key itself). */
  secret: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/),
});

export const asyncSchema = z.strictObject({
  /** How long a job and its answer are kept (GET /v1/async/{id} answers 404 after). */
  ttl_seconds: z.number().int().min(60).max(7 * 86_400).default(86_400),
  /** Largest answer kept for GET /v1/async/{id}; a larger one fails the job (code result_too_large). */
  max_result_bytes: z.number().int().min(1_024).max(10 * 1024 * 1024).default(1024 * 1024),
  /** Retries of a retryable failure (429 other than the tenant's own rate limit, 502, 503, 504): delays retry_base_seconds × 2^n. */
  max_retries: z.number().int().min(0).max(10).default(4),
  retry_base_seconds: z.number().int().min(1).max(300).default(1),
  /** How long a delivery holds a job before another may take it over (a consumer that died). */
  claim_ms: z.number().int().min(1_000).max(900_000).default(300_000),
  /** Webhook targets by tenant and name: a request opts in with `Prefer: respond-async, webhook=<name>`. */
  webhooks: z.record(z.string().regex(NAME), z.record(z.string().regex(NAME), webhookTargetSchema)).default({}),
  webhook_attempts: z.number().int().min(1).max(10).default(3),
  webhook_timeout_ms: z.number().int().min(100).max(60_000).default(10_000),
  /**
   * Jobs a tenant may have queued or running at once; past it a new one is 429 async_queue_full.
   * Queueing is not rate limited (the job is, when it runs), so this bounds what a client can pile up.
   */
  max_pending_per_tenant: z.number().int().min(1).max(1_000_000).default(1_000),
  /** The queue_backlog alert fires when a job not yet done is older than this (GET /admin/queues oldest_age_seconds). */
  alert_oldest_age_seconds: z.number().int().positive().default(600),
  /**
   * Prefer: respond-async-on-overload also counts a backend as at capacity when its last scraped
   * vllm:num_requests_waiting is above this (unset: only this isolate's in-flight against max_concurrency).
   */
  overload_waiting_requests: z.number().int().min(0).max(100_000).optional(),
});

export const idempotencySchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** How long a key's first answer is kept and replayed (24 h, as Stripe and OpenAI's clients expect). */
  ttl_seconds: z.number().int().min(60).max(7 * 86_400).default(86_400),
  /** Longest Idempotency-Key accepted (characters, printable ASCII). */
  max_key_length: z.number().int().min(8).max(1_024).default(255),
  /** Largest answer stored for replay; a larger one is not replayed (a retry gets 409 idempotent_result_unavailable, never a second run). */
  max_response_bytes: z.number().int().min(1_024).max(10 * 1024 * 1024).default(1024 * 1024),
  /** A first request still running after this long is taken as dead: the next retry runs it. */
  lock_seconds: z.number().int().min(1).max(3_600).default(600),
});

export type AsyncConfig = z.infer<typeof asyncSchema>;
export type IdempotencyConfig = z.infer<typeof idempotencySchema>;
