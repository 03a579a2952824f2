import type { CompiledConfig } from '../config/compiled';
import type { ModelConfig } from '../config/schema';
import { errors } from '../http/errors';

export interface ResolvedModel {
  /** What the client asked for: a model id, an alias, a tier name or "auto". */
  requested: string;
  /** The tier the request runs in, or null for a model outside every tier. */
  tier: string | null;
  /** Concrete models that may serve it, best first. */
  models: ModelConfig[];
}

/** Turns the request's `model` into concrete models, checking the tenant may use them. */
export function resolveModel(
  config: CompiledConfig,
  tenantId: string,
  requested: string,
  modelType: 'chat' | 'embedding',
): ResolvedModel {
  const tenant = config.raw.tenants[tenantId];
  if (!tenant) throw errors.forbidden(`Tenant "${tenantId}" is not configured on this router.`, 'tenant_not_configured');
  const tiers = config.raw.tiers;

  const tierName = requested === 'auto' ? defaultTier(config) : tiers[requested] ? requested : undefined;
  if (requested === 'auto' || tierName) {
    if (modelType !== 'chat') throw errors.badRequest(`"${requested}" names a tier of chat models; embeddings need an embedding model.`, 'model', 'model_not_supported');
    if (!tierName) throw errors.notFound('No tiers are configured, so "auto" cannot be routed.', 'model_not_found', 'model');
    if (!tenant.tiers.includes('*') && !tenant.tiers.includes(tierName)) {
      throw errors.forbidden(`Your key may not use tier "${tierName}".`, 'model_not_allowed', 'model');
    }
    const models = tiers[tierName]!.models.map((id) => config.modelsByName.get(id)!);
    return { requested, tier: tierName, models };
  }

  const model = config.modelsByName.get(requested);
  if (!model) throw errors.notFound(`The model "${requested}" does not exist.`, 'model_not_found', 'model');
  const allowed = tenant.models.includes('*') || [model.id, ...model.aliases].some((n) => tenant.models.includes(n));
  if (!allowed) throw errors.forbidden(`Your key may not use model "${requested}".`, 'model_not_allowed', 'model');
  if (model.type !== modelType) {
    const what = model.type === 'embedding' ? 'an embedding model; use /v1/embeddings' : 'not an embedding model';
    throw errors.badRequest(`The model "${requested}" is ${what}.`, 'model', 'model_not_supported');
  }
  return { requested, tier: config.tierOfModel.get(model.id) ?? null, models: [model] };
}

export function defaultTier(config: CompiledConfig): string | undefined {
  return config.raw.default_tier ?? Object.keys(config.raw.tiers)[0];
}

/** Every name the tenant may put in `model`, for GET /v1/models. */
export function modelNamesFor(config: CompiledConfig, tenantId: string): { id: string; owned_by: string }[] {
  const tenant = config.raw.tenants[tenantId];
  if (!tenant) return [];
  const out: { id: string; owned_by: string }[] = [];
  for (const m of config.raw.models) {
    const names = [m.id, ...m.aliases];
    if (tenant.models.includes('*') || names.some((n) => tenant.models.includes(n))) {
      for (const n of names) out.push({ id: n, owned_by: 'edge-router' });
    }
  }
  const tiers = Object.keys(config.raw.tiers).filter((t) => tenant.tiers.includes('*') || tenant.tiers.includes(t));
  for (const t of tiers) out.push({ id: t, owned_by: 'edge-router:tier' });
  const auto = defaultTier(config);
  if (auto && tiers.includes(auto)) out.push({ id: 'auto', owned_by: 'edge-router:tier' });
  return out;
}
