import type { CompiledConfig } from '../../config/compiled';
import type { BackendConfig } from '../../config/schema';

/**
 * Where the semantic cache may send a tenant's prompt text. A tenant with `allowed_regions`
 * keeps its prompts in those regions for the cache too:
 * - the embedding model's backends ([cache.semantic].embedding_model) are only those in an
 *   allowed region (the local lexical embedding makes no call at all);
 * - Upstash Vector (which embeds the text itself) only when [upstash].vector_region names an
 *   allowed region; else the tenant's entries go to the Durable Object index, which is the
 *   router's own state (README "Security model").
 * When no embedding backend is in an allowed region, the semantic cache is skipped for the tenant;
 * so it is with [cache.semantic.workers_ai] (Workers AI runs where Cloudflare places it, not in
 * one of the router's regions).
 */
export interface SemanticResidency {
  /** Backends that may embed this tenant's prompts; null: the local embedding (no call). */
  embeddingBackends: readonly BackendConfig[] | null;
  /** Upstash Vector may hold this tenant's prompts. */
  upstashVector: boolean;
  /** Why the semantic cache is off for this tenant (null: it is on). */
  skip: string | null;
}

const cache = new WeakMap<CompiledConfig, Map<string, SemanticResidency>>();

export function semanticResidency(config: CompiledConfig, tenantId: string): SemanticResidency {
  let byTenant = cache.get(config);
  if (!byTenant) cache.set(config, (byTenant = new Map()));
  let r = byTenant.get(tenantId);
  if (!r) byTenant.set(tenantId, (r = resolve(config, tenantId)));
  return r;
}

function resolve(config: CompiledConfig, tenantId: string): SemanticResidency {
  const allowed = config.raw.tenants[tenantId]?.allowed_regions;
  const { embedding_model } = config.raw.cache.semantic;
  const model = embedding_model === undefined ? null : config.modelsByName.get(embedding_model)!;
  const all = model ? (config.backendsByModel.get(model.id) ?? []) : null;
  const vectorRegion = config.raw.upstash?.vector_region;
  if (!allowed) return { embeddingBackends: all, upstashVector: true, skip: null };
  if (config.raw.cache.semantic.workers_ai) {
    return { embeddingBackends: null, upstashVector: false, skip: `the Workers AI embedding (cache.semantic.workers_ai) runs outside its allowed regions (${allowed.join(', ')})` };
  }
  const inRegion = all?.filter((b) => allowed.includes(b.region)) ?? null;
  const skip =
    inRegion !== null && inRegion.length === 0
      ? `the embedding model "${model!.id}" is served only in ${[...new Set(all!.map((b) => b.region))].join(', ')}, outside its allowed regions (${allowed.join(', ')})`
      : null;
  return { embeddingBackends: inRegion, upstashVector: vectorRegion !== undefined && allowed.includes(vectorRegion), skip };
}

/** config:check: tenants whose residency turns the semantic cache off, or moves it off Upstash Vector. */
export function semanticResidencyWarnings(config: CompiledConfig): string[] {
  const semanticTiers = Object.entries(config.raw.cache.tiers).filter(([, t]) => t.semantic).map(([name]) => name);
  if (!config.raw.cache.enabled || semanticTiers.length === 0) return [];
  const out: string[] = [];
  for (const [id, tenant] of Object.entries(config.raw.tenants)) {
    if (!tenant.allowed_regions) continue;
    const r = semanticResidency(config, id);
    if (r.skip) out.push(`router.tenants.${id}: the semantic cache is skipped for this tenant: ${r.skip}`);
    else if (config.raw.upstash?.vector_url && config.raw.cache.semantic.index !== 'durable-object' && !r.upstashVector) {
      out.push(`router.tenants.${id}: Upstash Vector is not in its allowed regions (set upstash.vector_region): its semantic cache uses the Durable Object index`);
    }
  }
  return out;
}
