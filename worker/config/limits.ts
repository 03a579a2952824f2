import { z } from 'zod';

// Rate limits ([limits] and [tenants.<id>.limits]; worker/ratelimit/). A limit counts requests,
// tokens or both per window, for one dimension: each API key, each end user (`user` or
// x-router-user), each feature (x-router-feature), each tenant, or everything (global).
// A dimension without a table is not limited; with no table at all, rate limits cost nothing.

const MAX_WINDOW_S = 31 * 86_400;

/** One dimension's limit: requests and/or tokens (prompt bound + max_tokens, corrected to real usage) per window. */
export const rateLimitSchema = z
  .strictObject({
    requests: z.number().int().positive().max(1e9).optional(),
    tokens: z.number().int().positive().max(1e13).optional(),
    /** The window, in seconds; the allowance refills in full at each window boundary. */
    window_s: z.number().int().min(1).max(MAX_WINDOW_S).default(60),
  })
  .refine((l) => l.requests !== undefined || l.tokens !== undefined, 'set requests, tokens or both');

/**
 * The `user` dimension: the same limit, and `required`. Per-user limits count whatever `user`
 * (or x-router-user) the key holder sends: the key is the trust boundary. `required = true`
 * refuses a request without one (400), so a client cannot escape them by sending none.
 */
export const userLimitSchema = z
  .strictObject({
    requests: z.number().int().positive().max(1e9).optional(),
    tokens: z.number().int().positive().max(1e13).optional(),
    window_s: z.number().int().min(1).max(MAX_WINDOW_S).default(60),
    required: z.boolean().default(false),
  })
  .refine((l) => l.requests !== undefined || l.tokens !== undefined || l.required, 'set requests, tokens, required or a combination');

/** A tenant's own limits: each dimension's table replaces the [limits] one for that tenant's requests. */
export const tenantLimitsSchema = z.strictObject({
  key: rateLimitSchema.optional(),
  user: userLimitSchema.optional(),
  feature: rateLimitSchema.optional(),
  tenant: rateLimitSchema.optional(),
});

export const limitsSchema = z.strictObject({
  /** false: no rate limit anywhere (tenant tables and per-key overrides included). */
  enabled: z.boolean().default(true),
  /** "auto": Upstash Redis when [upstash].redis_url is set, else the embedded Durable Objects. */
  store: z.enum(['auto', 'embedded', 'upstash']).default('auto'),
  /** Time allowed for the embedded limiter's answer; past it (or on an error) the request is let through, logged. */
  timeout_ms: z.number().int().min(10).max(30_000).default(1_000),
  /**
   * Embedded store: isolates lease slices of the buckets and decide warm requests locally (README
   * "Remote hops"). false: one call to the objects per request, as before leases.
   */
  leases: z.boolean().default(true),
  key: rateLimitSchema.optional(),
  user: userLimitSchema.optional(),
  feature: rateLimitSchema.optional(),
  tenant: rateLimitSchema.optional(),
  /** All requests of all tenants together (one more Durable Object call per request on the embedded path). */
  global: rateLimitSchema.optional(),
});

/**
 * PUT /admin/keys/:id/limits: a key's own limit, merged over its tenant's `key` limit. A unit
 * set to null is not limited for this key; keys left out keep the config's value.
 */
export const keyLimitsSchema = z
  .strictObject({
    requests: z.number().int().positive().max(1e9).nullable().optional(),
    tokens: z.number().int().positive().max(1e13).nullable().optional(),
    window_s: z.number().int().min(1).max(MAX_WINDOW_S).optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'give at least one of requests, tokens, window_s');

export type RateLimitConfig = z.infer<typeof rateLimitSchema>;
export type TenantLimitsConfig = z.infer<typeof tenantLimitsSchema>;
export type LimitsConfig = z.infer<typeof limitsSchema>;
export type KeyLimits = z.infer<typeof keyLimitsSchema>;
