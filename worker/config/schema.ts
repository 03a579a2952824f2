import { z } from 'zod';

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

export const backendKinds = ['vllm', 'trtllm', 'openai'] as const;

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
});

export const tenantSchema = z.strictObject({
  /** Data residency: the only regions this tenant's requests may go to, fallbacks included. */
  allowed_regions: z.array(id).optional(),
  /** Model ids, aliases or "*" for all. */
  models: z.array(z.string().min(1)).default(['*']),
  /** Tier names (usable as `model`, and reached through `auto`), or "*" for all. */
  tiers: z.array(z.string().min(1)).default(['*']),
});

export const priceSchema = z.strictObject({
  /** USD per million tokens. */
  input: z.number().nonnegative(),
  cached_input: z.number().nonnegative().optional(),
  output: z.number().nonnegative(),
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
    splits: z.record(id, splitSchema).default({}),
    regions: z.array(regionSchema).min(1),
    models: z.array(modelSchema).min(1),
    backends: z.array(backendSchema).min(1),
    tiers: z.record(id, tierSchema).default({}),
    tenants: z.record(id, tenantSchema).default({}),
    prices: z.record(z.string(), priceSchema).default({}),
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
        served.add(m);
      });
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
        if (m !== '*' && !names.has(m) && !cfg.splits[m]) issue(['tenants', name, 'models', j], `unknown model "${m}"`);
      });
      tenant.tiers.forEach((t, j) => {
        if (t !== '*' && !cfg.tiers[t]) issue(['tenants', name, 'tiers', j], `unknown tier "${t}"`);
      });
    }
    for (const name of Object.keys(cfg.prices)) {
      if (!modelIds.has(name)) issue(['prices', name], `price for unknown model "${name}"`);
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
