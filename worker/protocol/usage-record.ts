import { z } from 'zod';

/**
 * One usage record per request, written when the request ends (for a stream: when the stream
 * ends, the client leaving included). Never the prompt or the answer text. The one definition
 * shared by every sink (ledger Durable Object, Analytics Engine, HTTP collector), the reports
 * (/admin/usage), the metrics aggregation (/metrics) and the alerts.
 */
export const usageRecordSchema = z.object({
  v: z.literal(1),
  /** The router's id for the request (x-router-request-id): unique, the idempotency key of every sink. */
  request_id: z.string().min(1),
  /** The client's own x-request-id, as it sent it (it may repeat: it never merges records). */
  client_request_id: z.string().nullable().optional(),
  /** Epoch ms when the request arrived. */
  ts: z.number().int(),
  tenant: z.string(),
  key_id: z.string().nullable(),
  user: z.string().nullable(),
  feature: z.string().nullable(),
  endpoint: z.enum(['chat', 'completions', 'embeddings']),
  /** What the client asked for (a model id, alias, tier, split or `auto`). */
  requested_model: z.string(),
  /** The concrete model that answered (or whose cached answer was replayed); null when none did. */
  model: z.string().nullable(),
  backend: z.string().nullable(),
  region: z.string().nullable(),
  tier: z.string().nullable(),
  prompt_tokens: z.number().int().nonnegative(),
  cached_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  /** True when any token count was estimated (the backend did not report usage, or the stream was cut). */
  tokens_estimated: z.boolean(),
  /** Priced from [prices]; 0 for cache hits and failures. */
  cost_usd: z.number().nonnegative(),
  /** What a cache hit saved (the original answer's cost at today's prices); 0 otherwise. */
  saved_usd: z.number().nonnegative(),
  latency_ms: z.number().nonnegative(),
  ttft_ms: z.number().nonnegative().nullable(),
  /** Completion tokens per second after the first token; null when not measurable. */
  tokens_per_s: z.number().nonnegative().nullable(),
  /** The HTTP status the client got (200 for a stream that started, even if it was cut later). */
  status: z.number().int(),
  /** How the request ended. */
  outcome: z.enum(['ok', 'error', 'client_closed', 'stream_error', 'rate_limited', 'degraded']),
  /** x-router-cache. */
  cache: z.enum(['hit', 'semantic-hit', 'miss', 'bypass']),
  attempts: z.number().int().nonnegative(),
  /** Backend ids tried, in order (x-router-fallback). */
  path: z.array(z.string()),
  /** Error code given to the client (OpenAI error `code`), when any. */
  error_code: z.string().nullable(),
  /** The deployment the client's `model` named (README "Rollouts and quality"), and the version that was assigned. */
  deployment: z.string().nullable().optional(),
  deployment_version: z.string().nullable().optional(),
  /** The first choice's finish_reason of a served answer (null: none, e.g. an error or a cache hit). */
  finish_reason: z.string().nullable().optional(),
  /** The answer's first sentences read as a refusal (worker/quality/refusal.ts); null when not judged. Never the text. */
  refused: z.boolean().nullable().optional(),
  /** A batch line's batch (README "Batch and async"); absent or null for interactive requests. */
  batch_id: z.string().nullable().optional(),
});
export type UsageRecord = z.infer<typeof usageRecordSchema>;
