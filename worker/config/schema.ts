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
});

export const modelSchema = z.strictObject({
  id,
  type: z.enum(['chat', 'embedding']).default('chat'),
  aliases: z.array(id).default([]),
  /** The name the backends serve it under (vLLM's --served-model-name); defaults to id. */
  served_name: z.string().min(1).optional(),
});

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
  timeouts: timeoutsSchema.partial().optional(),
});

export const tierSchema = z.strictObject({
  models: z.array(id).min(1),
});

export const tenantSchema = z.strictObject({
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
    default_tier: z.string().optional(),
    max_attempts: z.number().int().min(1).max(10).default(3),
    debug_geo_header: z.boolean().default(false),
    timeouts: timeoutsSchema.prefault({}),
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
    cfg.models.forEach((m, i) => {
      if (!served.has(m.id)) issue(['models', i, 'id'], `no backend serves model "${m.id}"`);
    });
    for (const [name, tier] of Object.entries(cfg.tiers)) {
      tier.models.forEach((m, j) => {
        const model = cfg.models.find((x) => x.id === m);
        if (!model) issue(['tiers', name, 'models', j], `unknown model "${m}"`);
        else if (model.type !== 'chat') issue(['tiers', name, 'models', j], `"${m}" is not a chat model`);
      });
    }
    if (cfg.default_tier !== undefined && !cfg.tiers[cfg.default_tier]) {
      issue(['default_tier'], `unknown tier "${cfg.default_tier}"`);
    }
    for (const [name, tenant] of Object.entries(cfg.tenants)) {
      tenant.models.forEach((m, j) => {
        if (m !== '*' && !names.has(m)) issue(['tenants', name, 'models', j], `unknown model "${m}"`);
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
