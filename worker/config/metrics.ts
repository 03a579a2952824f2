import { z } from 'zod';

// [metrics]: GET /metrics (worker/routes/metrics.ts) and how isolates feed the MetricsAggregator
// (worker/telemetry/metrics.ts, durable-objects/metrics-aggregator.ts).

export const metricsSchema = z.strictObject({
  /** Name of a Worker secret holding a scrape token (`Authorization: Bearer <token>`); the admin token works too. */
  token_secret: z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name').optional(),
  /** An isolate sends what it counted at most this often (ms; 0: after every request, unless a send is in flight)… */
  flush_interval_ms: z.number().int().min(0).max(60_000).default(1_000),
  /** …or as soon as this many requests piled up. */
  flush_max_records: z.number().int().min(1).max(10_000).default(200),
  /**
   * Aggregator objects ("global", "shard-1", …): each isolate writes to one, chosen at random;
   * /metrics and the minute series read them all and add them up. Raise it only when one object
   * cannot keep up with the isolates' flushes (about a thousand a second).
   */
  shards: z.number().int().min(1).max(32).default(1),
});

export type MetricsConfig = z.infer<typeof metricsSchema>;
