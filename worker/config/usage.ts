import { z } from 'zod';

// Usage accounting ([usage]; worker/telemetry/). One record per request, written after the
// response (waitUntil) to every sink that is on: the UsageLedger Durable Objects (the embedded
// default, which also serves /admin/usage), Workers Analytics Engine (when the USAGE binding
// exists) and an HTTP collector (when collector_url is set).

export const usageSchema = z.strictObject({
  /** false: no record is built or written (and /admin/usage has nothing new to report). */
  enabled: z.boolean().default(true),
  /** Write records to the UsageLedger objects (one per tenant); /admin/usage reads them. */
  ledger: z.boolean().default(true),
  /** Write records to Analytics Engine when the USAGE binding is bound; no effect without it. */
  analytics_engine: z.boolean().default(true),
  /** POST batches of records as JSON ({"records": [...]}) to this collector; idempotent by request_id on its side. */
  collector_url: z.url({ protocol: /^https?$/ }).optional(),
  /** Name of a Worker secret sent as `authorization: Bearer <secret>` to the collector. */
  collector_secret: z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name').optional(),
  /** How long an isolate gathers records for one ledger (or the collector) before it writes them; 0: at once, and records that arrive while a write is in flight go in the next batch. */
  flush_interval_ms: z.number().int().min(0).max(10_000).default(25),
  /** A batch this large is written at once, without waiting for the interval. */
  max_batch: z.number().int().min(1).max(1_000).default(100),
  /** Failed writes are retried with exponential backoff (full jitter) from this base... */
  retry_base_ms: z.number().int().min(1).max(60_000).default(200),
  /** ...at most this many attempts in all; then the batch is logged (request ids) and dropped from that sink. */
  max_attempts: z.number().int().min(1).max(20).default(6),
  /** Ledger rows older than this are deleted (a daily alarm in each ledger). */
  retention_days: z.number().int().min(1).max(3_650).default(90),
});

export type UsageConfig = z.infer<typeof usageSchema>;
