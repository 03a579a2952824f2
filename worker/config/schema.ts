import { z } from 'zod';
import { anthropicSchema, azureSchema, bedrockSchema, modalSchema, openaiSchema, replicateSchema, tritonSchema, vertexSchema } from './backend-kinds';
import { scalingSchema } from './scaling';
import { limitsSchema, tenantLimitsSchema } from './limits';
import { usageSchema } from './usage';
import { alertsSchema, sloSchema } from './alerts';
import { deploymentsSchema } from './deployments';
import { metricsSchema } from './metrics';
import { batchSchema } from './batch';
import { asyncSchema, idempotencySchema } from './async';

// One schema for the router's whole configuration ([vars.ROUTER] in wrangler.toml).
// Types elsewhere come from it through z.infer; nothing is written twice.

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'must be letters, digits, ".", "_", ":" or "-"');
const positiveMs = z.number().int().positive();

export const timeoutsSchema = z.strictObject({
  /** Time allowed until response headers of a streamed upstream call (vLLM sends them once it accepts the request). */
  connect_ms: positiveMs.default(5_000),
  /** Time allowed until the first token of a streamed answer. */
  ttft_ms: positiveMs.default(30_000),
  /** Time allowed for the whole upstream call, streamed or not. */
  total_ms: positiveMs.default(300_000),
});

export const regionSchema = z.strictObject({
  id,
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  /** Explicit fallback order from this region; regions not listed follow by distance. */
  failover: z.array(id).default([]),
});

export const modelSchema = z.strictObject({
  id,
  type: z.enum(['chat', 'embedding']).default('chat'),
  aliases: z.array(id).default([]),
  /** The name the backends serve it under (vLLM's --served-model-name); defaults to id. */
  served_name: z.string().min(1).optional(),
  /** Context window in tokens (vLLM's --max-model-len): caps a request's budget reservation. Unknown: no cap. */
  max_model_len: z.number().int().positive().optional(),
});

/** A failure status for breakers: an HTTP status (400-599) or a whole class, "4xx" or "5xx". */
const failureStatus = z.union([z.number().int().min(400).max(599), z.enum(['4xx', '5xx'])]);

// Circuit breakers (durable-objects/circuit-breaker.ts, worker/routing/breaker-view.ts). Each key is
// declared once, without a default: [breaker] gives every key its default, a backend's `breaker` overrides any.
const breakerKeys = {
  /** false: the backend is never skipped for its breaker and no outcome is reported. */
  enabled: z.boolean(),
  /** Sliding window over which the failure share is measured. */
  window_ms: z.number().int().min(1_000),
  /** Requests the window must hold before the failure share can open the breaker. */
  min_requests: z.number().int().min(1),
  /** Failure share (0..1] of the window's requests that opens the breaker. */
  failure_threshold: z.number().gt(0).max(1),
  /** Consecutive failures that open the breaker, whatever the window says. */
  consecutive_failures: z.number().int().min(1),
  /** Open time after the first trip; each further trip without a lasting recovery multiplies it, up to the cap. */
  cooldown_ms: positiveMs,
  cooldown_multiplier: z.number().min(1),
  cooldown_max_ms: positiveMs,
  /** Probe requests let through at a time, edge-wide, while half-open. */
  half_open_max_probes: z.number().int().min(1),
  /** Consecutive successful probes that close it again. */
  close_after_successes: z.number().int().min(1),
  /** Upstream statuses that count as failures (connect errors and timeouts always do). */
  failure_statuses: z.array(failureStatus),
  /** Isolate batching: a batch of successes is reported after this long, or at report_max_batch outcomes. */
  report_interval_ms: z.number().int().min(10),
  report_max_batch: z.number().int().min(1).max(1_000),
  /** An isolate's copy of a breaker older than this is refreshed in the background. */
  refresh_ms: z.number().int().min(100),
};

export const breakerSchema = z.strictObject({
  enabled: breakerKeys.enabled.default(true),
  window_ms: breakerKeys.window_ms.default(60_000),
  min_requests: breakerKeys.min_requests.default(20),
  failure_threshold: breakerKeys.failure_threshold.default(0.5),
  consecutive_failures: breakerKeys.consecutive_failures.default(5),
  cooldown_ms: breakerKeys.cooldown_ms.default(30_000),
  cooldown_multiplier: breakerKeys.cooldown_multiplier.default(2),
  cooldown_max_ms: breakerKeys.cooldown_max_ms.default(300_000),
  half_open_max_probes: breakerKeys.half_open_max_probes.default(1),
  close_after_successes: breakerKeys.close_after_successes.default(3),
  failure_statuses: breakerKeys.failure_statuses.default(['5xx', 429]),
  report_interval_ms: breakerKeys.report_interval_ms.default(1_000),
  report_max_batch: breakerKeys.report_max_batch.default(50),
  refresh_ms: breakerKeys.refresh_ms.default(2_000),
});

/** A backend's own breaker thresholds: any key of [breaker], the rest inherited. */
export const breakerOverrideSchema = z.strictObject(breakerKeys).partial();

export const backendKinds = ['vllm', 'trtllm', 'openai', 'modal', 'replicate', 'triton', 'azure-openai', 'anthropic', 'bedrock', 'vertex'] as const;
/** Kinds whose backends serve chat (and legacy completions) only, through a translation (worker/backends/). */
export const chatOnlyKinds: readonly BackendKind[] = ['replicate', 'triton', 'anthropic', 'bedrock', 'vertex'];
/** Managed providers: outside credentials, no load metrics, and their 429s are rate-limit signals (worker/routing/provider-throttle.ts). */
export const managedKinds: readonly BackendKind[] = ['openai', 'azure-openai', 'anthropic', 'bedrock', 'vertex'];
/** Each kind-specific table and the kind it belongs to. */
const kindTables = { modal: 'modal', replicate: 'replicate', triton: 'triton', openai: 'openai', azure: 'azure-openai', anthropic: 'anthropic', bedrock: 'bedrock', vertex: 'vertex' } as const;
export type BackendKind = (typeof backendKinds)[number];

export const backendSchema = z.strictObject({
  id,
  kind: z.enum(backendKinds),
  region: id,
  url: z.url({ protocol: /^https?$/ }),
  models: z.array(id).min(1),
  /** Name of a Worker secret holding the backend's API key, sent in auth_header. */
  auth_secret: z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name').optional(),
  auth_header: z.string().min(1).default('authorization'),
  max_concurrency: z.number().int().positive().default(256),
  /** Overrides of the router's timeouts for this backend (no defaults here: unset keys keep the router's). */
  timeouts: z
    .strictObject({ connect_ms: positiveMs.optional(), ttft_ms: positiveMs.optional(), total_ms: positiveMs.optional() })
    .optional(),
  /** Circuit-breaker overrides for this backend (router's [breaker] otherwise). */
  breaker: breakerOverrideSchema.optional(),
  /** Expected time from cold (no replica) to answering; learnt from observed starts once there are some. Unset: never treated as cold-startable. */
  cold_start_ms: z.number().int().min(0).max(30 * 60_000).optional(),
  /** Scale-to-zero policy for the scale scripts (worker/config/scaling.ts). */
  scaling: scalingSchema.optional(),
  /**
   * Where the backend's load metrics are scraped (Prometheus text or trtllm-serve JSON). Default:
   * `<url>/metrics` for vllm, trtllm and openai; none for modal, replicate and triton (not
   * scraped). See README "Backends".
   */
  metrics_url: z.url({ protocol: /^https?$/ }).optional(),
  /**
   * Whether the scrape of metrics_url carries the backend's auth_secret: "same-origin" (default)
   * only when metrics_url has the scheme, host and port of `url`; "always"; "never".
   */
  metrics_auth: z.enum(['same-origin', 'always', 'never']).default('same-origin'),
  /** FinOps (`npm run finops`): the price of one GPU-hour of this backend, and the GPUs one replica holds (default 1). */
  usd_per_gpu_hour: z.number().nonnegative().optional(),
  gpus: z.number().int().positive().max(1024).optional(),
  /** Kind-specific settings (worker/config/backend-kinds.ts): each only on a backend of that kind. */
  modal: modalSchema.optional(),
  replicate: replicateSchema.optional(),
  triton: tritonSchema.optional(),
  openai: openaiSchema.optional(),
  azure: azureSchema.optional(),
  anthropic: anthropicSchema.optional(),
  bedrock: bedrockSchema.optional(),
  vertex: vertexSchema.optional(),
});

export const tierSchema = z.strictObject({
  /** Model ids or split names, best first. */
  models: z.array(id).min(1),
  /** `auto` picks the tier with the highest min_complexity not above the request's score. */
  min_complexity: z.number().min(0).max(1).default(0),
  /** The tier to fall back to when none of this tier's backends can answer. */
  fallback_tier: id.optional(),
});

export const splitSchema = z.strictObject({
  /** Traffic shares: a model (version) and optionally the only backends it may use for it. */
  targets: z
    .array(
      z.strictObject({
        model: id,
        weight: z.number().nonnegative(),
        backends: z.array(id).min(1).optional(),
      }),
    )
    .min(1)
    .refine((t) => t.some((x) => x.weight > 0), 'at least one target needs a weight above 0'),
});

/**
 * [routing.quality_feedback]: per tenant, tier and prompt kind, the share of a tier's `auto`
 * answers that were truncated (finish_reason "length") or refused over a sliding window moves that
 * tenant's boundary out of the tier down by at most max_offset (route up), and back as it recovers.
 * Isolate-local (each isolate learns from the answers it served).
 */
export const qualityFeedbackSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** The largest shift of a boundary (complexity score for "hand", probability for "learned"). */
  max_offset: z.number().min(0).max(0.1).default(0.1),
  /** Bad share (truncated or refused) above which the boundary starts to move; full shift at twice it. */
  bad_share: z.number().gt(0).max(0.5).default(0.2),
  /** Answers kept per tenant, tier and prompt kind, and the age past which one no longer counts. */
  window: z.number().int().min(4).max(1_000).default(50),
  window_seconds: z.number().int().min(10).max(86_400).default(900),
  /** Fewer answers than this in the window: no shift. */
  min_samples: z.number().int().min(1).max(1_000).default(10),
});

export const routingSchema = z.strictObject({
  /** How a backend is chosen among a region's replicas of a model. */
  policy: z.enum(['prefix-affinity', 'least-loaded', 'round-robin']).default('prefix-affinity'),
  /** Prompt prefix granularity for affinity: the first N characters of the conversation, in blocks. */
  prefix_block_chars: z.number().int().min(16).default(256),
  prefix_max_blocks: z.number().int().min(1).max(64).default(8),
  /** Affinity yields when the preferred replica's load exceeds the least-loaded one by more than this (in requests). */
  affinity_load_slack: z.number().min(0).default(8),
  /** Retry backoff: exponential from base, full jitter, capped. */
  retry_base_ms: z.number().int().min(0).default(50),
  retry_max_ms: z.number().int().min(0).default(2_000),
  /** Backend /metrics scrape period (a Durable Object alarm) and the age past which a snapshot is ignored. */
  scrape_interval_ms: z.number().int().min(500).default(5_000),
  load_stale_ms: z.number().int().min(1_000).default(30_000),
  /**
   * How `auto` scores a request: "hand" (complexity.ts, a score against the tiers' min_complexity)
   * or "learned" (learned-complexity.ts: a probability per tier boundary; tiers ranked by min_complexity).
   */
  complexity_scorer: z.enum(['hand', 'learned']).default('hand'),
  /** "learned" only: a tier is chosen once its probability reaches 0.5 - margin (route up near a boundary). */
  complexity_margin: z.number().min(0).max(0.49).default(0.35),
  /**
   * Hedging (README "Hedging"): an attempt with no first token after its backend's hedge delay
   * (multiplier × the p95 TTFT this isolate observed there, within [min_ms, max_ms]; max_ms until
   * min_samples are seen) starts the next candidate beside it; the first to answer wins, the other
   * is cancelled.
   */
  hedging: z
    .strictObject({
      enabled: z.boolean().default(false),
      multiplier: z.number().min(1).max(100).default(3),
      min_ms: z.number().int().min(10).default(250),
      max_ms: z.number().int().min(10).default(5_000),
      min_samples: z.number().int().min(1).max(1_000).default(20),
    })
    .prefault({})
    .refine((h) => h.max_ms >= h.min_ms, { message: 'max_ms must be at least min_ms', path: ['max_ms'] }),
  /** Quality feedback (worker/routing/quality-feedback.ts): truncated/refused answers of a tier shift `auto` up for that tenant. */
  quality_feedback: qualityFeedbackSchema.prefault({}),
});

// Budgets (durable-objects/tenant-quota.ts, worker/budget/). [budgets] holds the defaults and the
// machinery's knobs; a tenant has a budget only when it has a `budget` table (a tenant without one
// costs nothing on the hot path).
const secretName = z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name');
export const softLimitPolicies = ['block', 'downgrade'] as const;
/** Shares of a limit (1 = 100%) at which an alert webhook fires, once per period each. */
const alertThresholds = z
  .array(z.number().gt(0).max(10))
  .max(10)
  .refine((t) => new Set(t).size === t.length, 'thresholds must be distinct');

/** Per-period limits: tokens (prompt + completion) and money (USD, priced from [prices]). Unset: no limit. */
const tokenLimit = z.number().int().nonnegative().max(1e15);
const usdLimit = z.number().nonnegative().max(1_000_000); // counted in nano-USD integers
const budgetLimits = { monthly_tokens: tokenLimit, monthly_usd: usdLimit, daily_tokens: tokenLimit, daily_usd: usdLimit };

export const budgetsSchema = z.strictObject({
  /** false: no budget is enforced or counted anywhere (every tenant's `budget` is ignored). */
  enabled: z.boolean().default(true),
  /** At 100% of a limit: "block" answers 429 budget_exceeded, "downgrade" routes to the cheapest tier (until overage is approved). */
  soft_limit_policy: z.enum(softLimitPolicies).default('block'),
  /** The hard limit as a multiple of each limit: 429 insufficient_quota, always, never passed. */
  hard_limit_ratio: z.number().min(1).max(10).default(1.2),
  /** Share of a limit from which responses carry x-router-budget-warning. */
  warning_ratio: z.number().gt(0).max(1).default(0.8),
  alert_thresholds: alertThresholds.default([0.7, 0.9, 1]),
  /** Default alert webhook (a tenant's own overrides it) and the Worker secret holding its HMAC-SHA256 key. */
  alert_webhook_url: z.url({ protocol: /^https?$/ }).optional(),
  alert_webhook_secret: secretName.optional(),
  /** Webhook retries: exponential backoff from base (jittered), capped; dropped after max_attempts. */
  alert_retry_base_ms: z.number().int().min(10).default(1_000),
  alert_retry_max_ms: z.number().int().min(10).default(300_000),
  alert_max_attempts: z.number().int().min(1).max(50).default(10),
  /** Reserved (and sent upstream as max_tokens) for a chat request without max_tokens/max_completion_tokens. */
  default_max_tokens: z.number().int().positive().default(4_096),
  /** Reserved per non-text content part (image, audio, file): an upper bound for the models served. */
  non_text_part_tokens: z.number().int().nonnegative().default(4_096),
  /** A lease takes at most this share of the headroom to the next limit (generous far from it, small near it). */
  lease_fraction: z.number().gt(0).max(1).default(0.1),
  /** An isolate admits requests on a lease for this long, then renews it (in the background while busy). */
  lease_ttl_ms: z.number().int().min(100).max(300_000).default(10_000),
  /** Usage reports to the tenant's object are batched: sent after report_interval_ms or report_max_batch debits. */
  report_interval_ms: z.number().int().min(0).default(1_000),
  report_max_batch: z.number().int().min(1).max(1_000).default(500),
  /** An isolate's copy of a budget's usage older than this is refreshed in the background. */
  refresh_ms: z.number().int().min(100).default(2_000),
  /** One budget per tenant and feature (the x-router-feature header), instead of one per tenant. */
  per_feature: z.boolean().default(false),
});

export const tenantBudgetSchema = z.strictObject({
  monthly_tokens: budgetLimits.monthly_tokens.optional(),
  monthly_usd: budgetLimits.monthly_usd.optional(),
  daily_tokens: budgetLimits.daily_tokens.optional(),
  daily_usd: budgetLimits.daily_usd.optional(),
  soft_limit_policy: z.enum(softLimitPolicies).optional(),
  alert_webhook_url: z.url({ protocol: /^https?$/ }).optional(),
  alert_webhook_secret: secretName.optional(),
  alert_thresholds: alertThresholds.optional(),
  per_feature: z.boolean().optional(),
});

/** PUT /admin/tenants/:tenant/budget: any of these; null removes a limit. */
export const budgetPatchSchema = z
  .strictObject({
    monthly_tokens: budgetLimits.monthly_tokens.nullable().optional(),
    monthly_usd: budgetLimits.monthly_usd.nullable().optional(),
    daily_tokens: budgetLimits.daily_tokens.nullable().optional(),
    daily_usd: budgetLimits.daily_usd.nullable().optional(),
    soft_limit_policy: z.enum(softLimitPolicies).optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'give at least one of monthly_tokens, monthly_usd, daily_tokens, daily_usd, soft_limit_policy');

export const tenantSchema = z.strictObject({
  /** Data residency: the only regions this tenant's requests may go to, fallbacks included. */
  allowed_regions: z.array(id).optional(),
  /** Model ids, aliases or "*" for all. */
  models: z.array(z.string().min(1)).default(['*']),
  /** Tier names (usable as `model`, and reached through `auto`), or "*" for all. */
  tiers: z.array(z.string().min(1)).default(['*']),
  /** Cache answers to non-deterministic requests (temperature above 0) too: repeats get the same answer. */
  cache_nondeterministic: z.boolean().default(false),
  /** Token and money budget; absent: none (and no cost on the hot path). Unset keys take [budgets]. */
  budget: tenantBudgetSchema.optional(),
  /** The only x-router-feature names it may send (400 for any other; no header counts as "default"). Absent: any well-formed name. */
  features: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_", ":" or "-", starting with a letter or digit')).max(1_000).optional(),
  /** Rate limits of its own: each dimension's table replaces the [limits] one (worker/config/limits.ts). */
  limits: tenantLimitsSchema.optional(),
  /** Keep the text of /v1/feedback comments in the tenant's ledger (opt-in); otherwise only their length is kept. */
  store_feedback_comments: z.boolean().default(false),
});

export const priceSchema = z.strictObject({
  /** USD per million tokens. */
  input: z.number().nonnegative(),
  cached_input: z.number().nonnegative().optional(),
  output: z.number().nonnegative(),
});

// Response caches (worker/cache/): the Workers Cache API by default, Upstash Redis when
// [upstash] has a redis_url (and [cache].store allows it).
const cacheTtl = z.number().int().min(1).max(604_800, 'must be at most 7 days (604800 s)');

/** A tier's own cache settings (keyed by tier name in [cache.tiers]). */
export const cacheTierSchema = z.strictObject({
  /** How long this tier's answers stay cached; [cache].ttl_seconds otherwise. */
  ttl_seconds: cacheTtl.optional(),
  /** Semantic cache for this tier: answer from a similar earlier prompt (worker/cache/semantic/). Off by default. */
  semantic: z.boolean().default(false),
  /** Cosine similarity a stored prompt must reach to answer (guards apply on top). */
  semantic_threshold: z.number().min(0.5).max(1).default(0.95),
});

/** [cache.semantic]: how the semantic cache embeds and where its index lives (tiers opt in with `semantic = true`). */
export const semanticCacheSchema = z.strictObject({
  /** A model of type "embedding" in [[models]] whose backends embed prompts for the embedded index; unset: the local lexical embedding. */
  embedding_model: id.optional(),
  /**
   * Embed with the Workers AI binding instead (e.g. `@cf/baai/bge-small-en-v1.5`, 384 floats), from
   * the binding named here (wrangler.toml `[ai] binding = "AI"`). Exclusive with embedding_model.
   */
  workers_ai: z
    .strictObject({
      binding: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).max(64).default('AI'),
      model: z.string().regex(/^@cf\/[\w.\-]+\/[\w.\-]+$/, 'a Workers AI model name such as "@cf/baai/bge-small-en-v1.5"').default('@cf/baai/bge-small-en-v1.5'),
    })
    .optional(),
  /** "auto": Upstash Vector when [upstash].vector_url is set, else the per-tenant Durable Object index. */
  index: z.enum(['auto', 'durable-object', 'upstash']).default('auto'),
  /** The embedded index keeps at most this many prompts per tenant (least recently used go first). */
  max_entries_per_tenant: z.number().int().min(10).max(20_000).default(5_000), // the object keeps vectors in memory too: 20,000 × 2 KiB
  /** Nearest stored prompts (above the threshold) checked against the guards per lookup. */
  top_k: z.number().int().min(1).max(10).default(3),
  /** Last user messages longer than this are not semantically cached (a long document differing in one clause still looks similar). */
  max_prompt_chars: z.number().int().min(16).max(32_768).default(2_000),
  /** Answers larger than this (serialized) are not put in the semantic index (they stay in the exact cache). */
  max_answer_bytes: z.number().int().min(256).max(1024 * 1024).default(32 * 1024),
  /** Time allowed for the embedding backend's answer; slower: the lookup is skipped (a miss). */
  embedding_timeout_ms: z.number().int().min(10).max(30_000).default(1_000),
  /**
   * "local": the Durable Object index is read from the isolate's copy of the tenant's hottest
   * entries (no remote call on the request path; a local miss goes upstream at once and asks the
   * object in the background). "remote": one call to the index per lookup. README "Semantic cache".
   */
  lookup: z.enum(['local', 'remote']).default('local'),
  /** Bound of the isolate's local copy, all tenants together (least recently used go first); 0: "remote". */
  local_bytes: z.number().int().min(0).max(32 * 1024 * 1024).default(4 * 1024 * 1024),
  /** A tenant's local copy asks its object for what changed at most this often (in the background). */
  refresh_ms: z.number().int().min(100).max(600_000).default(5_000),
  /** Entries (most recently stored or used) one refresh brings at most. */
  refresh_entries: z.number().int().min(1).max(2_000).default(200),
});

export const cacheSchema = z.strictObject({
  /** false: nothing is looked up or stored (every answer says x-router-cache: bypass). */
  enabled: z.boolean().default(true),
  /** Where entries live: "auto" = Upstash Redis when [upstash].redis_url is set, else the Workers Cache API. */
  store: z.enum(['auto', 'cache-api', 'upstash']).default('auto'),
  /** The Cache API cache to use: a named one (caches.open), or "default" for caches.default. */
  cache_api_name: z.string().min(1).max(64).default('edge-router'),
  /** TTL of an entry, for models outside any tier and tiers without their own (24 h; at most 7 days). */
  ttl_seconds: cacheTtl.default(86_400),
  tiers: z.record(id, cacheTierSchema).default({}),
  /**
   * Each isolate keeps the hottest answers in memory too, up to this size (0: off), in front of
   * the Cache API or Upstash: a hit then costs no I/O. Copies expire with the shared entry.
   */
  memory_bytes: z.number().int().min(0).max(64 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Answers larger than this, serialized, are not stored. */
  max_entry_bytes: z.number().int().positive().max(16 * 1024 * 1024).default(1024 * 1024),
  /** Embeddings are deterministic, so they are cached like a temperature-0 request; false: never. */
  embeddings: z.boolean().default(true),
  semantic: semanticCacheSchema.prefault({}),
});

/** Upstash (production stores): Redis over its REST API. The token is a Worker secret, named here. */
export const upstashSchema = z.strictObject({
  /** The database's REST URL (UPSTASH_REDIS_REST_URL). Unset: no Upstash Redis, the embedded stores serve. */
  redis_url: z.url({ protocol: /^https?$/ }).optional(),
  /** Name of the Worker secret holding the REST token. */
  redis_token_secret: z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name').default('UPSTASH_REDIS_REST_TOKEN'),
  /** Time allowed per call; a slower or failed call is served by the embedded store instead. */
  timeout_ms: z.number().int().min(10).max(30_000).default(1_000),
  /** After a failed call, Upstash is left alone for this long (the embedded store serves meanwhile). */
  retry_after_ms: z.number().int().min(0).max(300_000).default(5_000),
  /** Prefix of every key the router writes, so a database can be shared. */
  key_prefix: z.string().max(64).default('er:'),
  /** Upstash Vector's REST URL (UPSTASH_VECTOR_REST_URL), an index created with an embedding model: the semantic cache's production index. */
  vector_url: z.url({ protocol: /^https?$/ }).optional(),
  /** Name of the Worker secret holding the Vector REST token. */
  vector_token_secret: z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name').default('UPSTASH_VECTOR_REST_TOKEN'),
  /** The [[regions]] id the Vector index lives in: a tenant with allowed_regions uses it only when that region is allowed (README "Security model"). */
  vector_region: id.optional(),
});

export const routerConfigSchema = z
  .strictObject({
    max_body_bytes: z.number().int().positive().max(100 * 1024 * 1024).default(1024 * 1024),
    max_attempts: z.number().int().min(1).max(10).default(3),
    debug_geo_header: z.boolean().default(false),
    /** Last link of every fallback chain: answered with x-router-degraded: true. Unset = no degraded answer. */
    degraded_answer: z.string().min(1).optional(),
    timeouts: timeoutsSchema.prefault({}),
    routing: routingSchema.prefault({}),
    breaker: breakerSchema.prefault({}),
    budgets: budgetsSchema.prefault({}),
    splits: z.record(id, splitSchema).default({}),
    regions: z.array(regionSchema).min(1),
    models: z.array(modelSchema).min(1),
    backends: z.array(backendSchema).min(1),
    tiers: z.record(id, tierSchema).default({}),
    tenants: z.record(id, tenantSchema).default({}),
    prices: z.record(z.string(), priceSchema).default({}),
    cache: cacheSchema.prefault({}),
    upstash: upstashSchema.optional(),
    limits: limitsSchema.prefault({}),
    usage: usageSchema.prefault({}),
    /** SLOs and the scheduled alert detectors (worker/config/alerts.ts, worker/alerts/). */
    slo: sloSchema.prefault({}),
    alerts: alertsSchema.prefault({}),
    /** GET /metrics and the isolates' metric flushes (worker/config/metrics.ts, worker/telemetry/metrics.ts). */
    metrics: metricsSchema.prefault({}),
    /** Versioned deployments, rollouts, A/B tests and the regression gate (worker/config/deployments.ts, worker/deployments/). */
    deployments: deploymentsSchema,
    /** The Files and Batches APIs and the batch queue (worker/config/batch.ts, worker/batch/). */
    batch: batchSchema.prefault({}),
    /** Prefer: respond-async jobs and Idempotency-Key records (worker/config/async.ts, worker/async/, worker/idempotency/). */
    async: asyncSchema.prefault({}),
    idempotency: idempotencySchema.prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const regionIds = new Set(cfg.regions.map((r) => r.id));
    const names = new Map<string, string>(); // model id or alias -> model id
    cfg.regions.forEach((r, i) => {
      if (cfg.regions.findIndex((o) => o.id === r.id) !== i) issue(['regions', i, 'id'], `duplicate region "${r.id}"`);
      r.failover.forEach((f, j) => {
        if (!regionIds.has(f)) issue(['regions', i, 'failover', j], `unknown region "${f}"`);
      });
    });
    cfg.models.forEach((m, i) => {
      for (const [j, name] of [m.id, ...m.aliases].entries()) {
        if (name === 'auto' || cfg.tiers[name]) issue(['models', i, j === 0 ? 'id' : 'aliases'], `"${name}" is reserved for a tier or auto`);
        else if (names.has(name)) issue(['models', i, j === 0 ? 'id' : 'aliases'], `duplicate model name "${name}"`);
        names.set(name, m.id);
      }
    });
    const modelIds = new Set(cfg.models.map((m) => m.id));
    const served = new Set<string>();
    cfg.backends.forEach((b, i) => {
      if (cfg.backends.findIndex((o) => o.id === b.id) !== i) issue(['backends', i, 'id'], `duplicate backend "${b.id}"`);
      if (!regionIds.has(b.region)) issue(['backends', i, 'region'], `unknown region "${b.region}"`);
      b.models.forEach((m, j) => {
        if (!modelIds.has(m)) issue(['backends', i, 'models', j], `unknown model "${m}" (models are declared in [[models]])`);
        else if (chatOnlyKinds.includes(b.kind) && cfg.models.find((x) => x.id === m)?.type !== 'chat') issue(['backends', i, 'models', j], `a ${b.kind} backend serves chat models only`);
        served.add(m);
      });
      // Kind-specific tables: each only on its own kind; replicate and triton cannot do without theirs.
      for (const [k, kind] of Object.entries(kindTables) as [keyof typeof kindTables, BackendKind][]) {
        if (b[k] !== undefined && b.kind !== kind) issue(['backends', i, k], `[${k}] settings on a backend of kind "${b.kind}"`);
      }
      if (b.kind === 'bedrock' && !b.bedrock) issue(['backends', i, 'bedrock'], 'kind "bedrock" needs a bedrock table (at least { region = "…" })');
      if (b.kind === 'vertex' && !b.vertex) issue(['backends', i, 'vertex'], 'kind "vertex" needs a vertex table ({ project = "…", location = "…" })');
      if ((b.kind === 'azure-openai' || b.kind === 'anthropic') && !b.auth_secret) issue(['backends', i, 'auth_secret'], `kind "${b.kind}" needs auth_secret (the Worker secret holding its API key)`);
      if (b.kind === 'replicate' && !b.replicate) issue(['backends', i, 'replicate'], 'kind "replicate" needs a replicate table (model or deployment)');
      if (b.kind === 'triton' && !b.triton) issue(['backends', i, 'triton'], 'kind "triton" needs a triton table (at least { model = "…" })');
      if (b.kind === 'replicate' && b.metrics_url) issue(['backends', i, 'metrics_url'], 'Replicate serves no load metrics');
      // The router tracks requests (last request, in flight, wake-ups) only for backends with
      // cold_start_ms; the scale scripts must not park one whose traffic nobody watches.
      if (b.scaling && b.scaling.driver !== 'none' && b.cold_start_ms === undefined) issue(['backends', i, 'cold_start_ms'], `scaling with driver "${b.scaling.driver}" needs cold_start_ms (the router tracks traffic only for backends that have it)`);
    });
    if (cfg.breaker.cooldown_max_ms < cfg.breaker.cooldown_ms) issue(['breaker', 'cooldown_max_ms'], 'must be at least cooldown_ms');
    cfg.backends.forEach((b, i) => {
      if (!b.breaker) return;
      const merged = { ...cfg.breaker, ...b.breaker };
      if (merged.cooldown_max_ms < merged.cooldown_ms) issue(['backends', i, 'breaker', 'cooldown_max_ms'], 'must be at least cooldown_ms');
    });
    cfg.models.forEach((m, i) => {
      if (!served.has(m.id)) issue(['models', i, 'id'], `no backend serves model "${m.id}"`);
    });
    for (const [name, split] of Object.entries(cfg.splits)) {
      if (names.has(name) || cfg.tiers[name] || name === 'auto') issue(['splits', name], `"${name}" is already a model, alias or tier`);
      split.targets.forEach((t, j) => {
        if (!modelIds.has(t.model)) issue(['splits', name, 'targets', j, 'model'], `unknown model "${t.model}"`);
        t.backends?.forEach((b, k) => {
          const backend = cfg.backends.find((x) => x.id === b);
          if (!backend) issue(['splits', name, 'targets', j, 'backends', k], `unknown backend "${b}"`);
          else if (!backend.models.includes(t.model)) issue(['splits', name, 'targets', j, 'backends', k], `backend "${b}" does not serve "${t.model}"`);
        });
      });
    }
    for (const [name, tier] of Object.entries(cfg.tiers)) {
      tier.models.forEach((m, j) => {
        if (cfg.splits[m]) return;
        const model = cfg.models.find((x) => x.id === m);
        if (!model) issue(['tiers', name, 'models', j], `unknown model "${m}"`);
        else if (model.type !== 'chat') issue(['tiers', name, 'models', j], `"${m}" is not a chat model`);
      });
      if (tier.fallback_tier !== undefined && (!cfg.tiers[tier.fallback_tier] || tier.fallback_tier === name)) {
        issue(['tiers', name, 'fallback_tier'], `unknown tier "${tier.fallback_tier}"`);
      }
    }
    for (const [name, tenant] of Object.entries(cfg.tenants)) {
      tenant.allowed_regions?.forEach((r, j) => {
        if (!regionIds.has(r)) issue(['tenants', name, 'allowed_regions', j], `unknown region "${r}"`);
      });
      tenant.models.forEach((m, j) => {
        if (m !== '*' && !names.has(m) && !cfg.splits[m] && !cfg.deployments[m]) issue(['tenants', name, 'models', j], `unknown model "${m}"`);
      });
      tenant.tiers.forEach((t, j) => {
        if (t !== '*' && !cfg.tiers[t]) issue(['tenants', name, 'tiers', j], `unknown tier "${t}"`);
      });
    }
    if (cfg.budgets.alert_retry_max_ms < cfg.budgets.alert_retry_base_ms) issue(['budgets', 'alert_retry_max_ms'], 'must be at least alert_retry_base_ms');
    for (const name of Object.keys(cfg.cache.tiers)) {
      if (!cfg.tiers[name]) issue(['cache', 'tiers', name], `unknown tier "${name}"`);
    }
    if (cfg.cache.store === 'upstash' && !cfg.upstash?.redis_url) issue(['cache', 'store'], '"upstash" needs [upstash].redis_url');
    const semantic = cfg.cache.semantic;
    if (semantic.embedding_model !== undefined) {
      const m = cfg.models.find((x) => x.id === names.get(semantic.embedding_model!));
      if (!m) issue(['cache', 'semantic', 'embedding_model'], `unknown model "${semantic.embedding_model}"`);
      else if (m.type !== 'embedding') issue(['cache', 'semantic', 'embedding_model'], `"${semantic.embedding_model}" is not an embedding model (type = "embedding")`);
    }
    if (semantic.workers_ai && semantic.embedding_model !== undefined) issue(['cache', 'semantic', 'workers_ai'], 'set either workers_ai or embedding_model, not both');
    if (semantic.index === 'upstash' && !cfg.upstash?.vector_url) issue(['cache', 'semantic', 'index'], '"upstash" needs [upstash].vector_url');
    if (cfg.upstash?.vector_region !== undefined && !regionIds.has(cfg.upstash.vector_region)) issue(['upstash', 'vector_region'], `unknown region "${cfg.upstash.vector_region}"`);
    if (cfg.limits.store === 'upstash' && !cfg.upstash?.redis_url) issue(['limits', 'store'], '"upstash" needs [upstash].redis_url');
    for (const name of Object.keys(cfg.prices)) {
      if (!modelIds.has(name)) issue(['prices', name], `price for unknown model "${name}"`);
    }
    for (const [name, d] of Object.entries(cfg.deployments)) {
      if (names.has(name) || cfg.tiers[name] || cfg.splits[name] || name === 'auto') issue(['deployments', name], `"${name}" is already a model, alias, tier or split`);
      if (!d.versions[d.serving]) issue(['deployments', name, 'serving'], `unknown version "${d.serving}"`);
      for (const [v, version] of Object.entries(d.versions)) if (!names.has(version.model)) issue(['deployments', name, 'versions', v, 'model'], `unknown model "${version.model}"`);
    }
  });

export type RouterConfig = z.infer<typeof routerConfigSchema>;
export type RouterConfigInput = z.input<typeof routerConfigSchema>;
export type Region = RouterConfig['regions'][number];
export type ModelConfig = RouterConfig['models'][number];
export type BackendConfig = RouterConfig['backends'][number];
export type TenantConfig = RouterConfig['tenants'][string];
export type Timeouts = z.infer<typeof timeoutsSchema>;
export type Price = z.infer<typeof priceSchema>;
export type TierConfig = RouterConfig['tiers'][string];
export type SplitConfig = RouterConfig['splits'][string];
export type RoutingConfig = RouterConfig['routing'];
export type BreakerConfig = RouterConfig['breaker'];
export type BreakerOverride = z.infer<typeof breakerOverrideSchema>;
export type BudgetsConfig = RouterConfig['budgets'];
export type TenantBudget = z.infer<typeof tenantBudgetSchema>;
export type BudgetPatch = z.infer<typeof budgetPatchSchema>;
export type SoftLimitPolicy = (typeof softLimitPolicies)[number];
export type CacheConfig = RouterConfig['cache'];
export type SemanticCacheConfig = CacheConfig['semantic'];
export type UpstashConfig = z.infer<typeof upstashSchema>;
