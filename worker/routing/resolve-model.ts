import type { CompiledConfig } from '../config/compiled';
import type { ModelConfig, SplitConfig, TenantConfig } from '../config/schema';
import { errors } from '../http/errors';
import { scoreComplexity, tierForScore } from './complexity';
import { lastUserText, learnedComplexity, learnedTier } from './learned-complexity';
import { boundaryOffset, promptKind } from './quality-feedback';
import { pickSplitTarget } from './split';

/** A concrete model to run, optionally restricted to some backends (a split target's). */
export interface Target {
  model: ModelConfig;
  backends?: readonly string[];
  /** The split it was picked from, if any. */
  split?: string;
}

/** One link of the chain: a tier (or none, for an explicit model) and its targets, best first. */
export interface Stage {
  tier: string | null;
  targets: Target[];
}

export interface ResolvedRoute {
  /** What the client asked for: a model id, an alias, a split, a tier name or "auto". */
  requested: string;
  /** The first stage is the request's own tier; a tier's `fallback_tier` follows it. */
  stages: Stage[];
  /** The complexity score, when the request went through a tier. */
  complexity: number | null;
}

/**
 * Turns the request's `model` into the stages the planner walks. An explicit model is honoured
 * as asked; a split picks one target (sticky per user); `auto` scores the request and picks the
 * tier by `min_complexity`; a tier name runs in that tier (scored too, for the header).
 */
export function resolveRoute(
  config: CompiledConfig,
  tenantId: string,
  body: Record<string, unknown> & { model: string },
  modelType: 'chat' | 'embedding',
  user: string | null,
  /** The model is a deployment version's (worker/deployments/assign.ts): the tenant was allowed the deployment. */
  viaDeployment = false,
): ResolvedRoute {
  const requested = body.model;
  const tenant = config.raw.tenants[tenantId];
  if (!tenant) throw errors.forbidden(`Tenant "${tenantId}" is not configured on this router.`, 'tenant_not_configured');
  const tiers = config.raw.tiers;

  if (requested === 'auto' || tiers[requested]) {
    if (modelType !== 'chat') throw errors.badRequest(`"${requested}" names a tier of chat models; embeddings need an embedding model.`, 'model', 'model_not_supported');
    const named = allowedTiers(config, tenant);
    if (named.length === 0) {
      throw requested === 'auto' && Object.keys(tiers).length === 0
        ? errors.notFound('No tiers are configured, so "auto" cannot be routed.', 'model_not_found', 'model')
        : errors.forbidden(`Your key may not use tier "${requested}".`, 'model_not_allowed', 'model');
    }
    if (requested !== 'auto' && !named.includes(requested)) throw errors.forbidden(`Your key may not use tier "${requested}".`, 'model_not_allowed', 'model');
    // The tenant's `models` bounds tiers too: a tier none of whose models it may use is no route for it.
    const allowed = named.filter((t) => tierReachable(config, tenant, t));
    const { score, wanted } = scoreRequest(config, body, tenantId);
    const tier = requested === 'auto' ? (allowed.length ? nearestAllowed(config, wanted, allowed) : null) : requested;
    const fallback = tier ? tiers[tier]!.fallback_tier : undefined;
    const stages: Stage[] = [tier, fallback && named.includes(fallback) ? fallback : null]
      .filter((t): t is string => t !== null)
      .map((t) => ({ tier: t, targets: tierTargets(config, tenant, t, user) }))
      .filter((s) => s.targets.length > 0);
    if (stages.length === 0) throw errors.forbidden(`Your key may use none of the models tier "${requested}" routes to.`, 'model_not_allowed', 'model');
    return { requested, stages, complexity: score };
  }

  const split = config.raw.splits[requested];
  if (split) {
    if (!tenantMayUse(tenant, [requested])) throw errors.forbidden(`Your key may not use model "${requested}".`, 'model_not_allowed', 'model');
    const target = pickSplitTarget(requested, split, user);
    const model = config.modelsByName.get(target.model)!;
    checkType(model, requested, modelType);
    if (modelType === 'embedding') checkEmbeddingContext(model, body.input);
    return { requested, stages: [{ tier: config.tierOfModel.get(model.id) ?? null, targets: [toTarget(requested, target, model)] }], complexity: null };
  }

  const model = config.modelsByName.get(requested);
  if (!model) throw errors.notFound(`The model "${requested}" does not exist.`, 'model_not_found', 'model');
  if (!viaDeployment && !tenantMayUse(tenant, [model.id, ...model.aliases])) throw errors.forbidden(`Your key may not use model "${requested}".`, 'model_not_allowed', 'model');
  checkType(model, requested, modelType);
  if (modelType === 'embedding') checkEmbeddingContext(model, body.input);
  return { requested, stages: [{ tier: config.tierOfModel.get(model.id) ?? null, targets: [{ model }] }], complexity: null };
}

function checkType(model: ModelConfig, requested: string, modelType: 'chat' | 'embedding') {
  if (model.type === modelType) return;
  const what = model.type === 'embedding' ? 'an embedding model; use /v1/embeddings' : 'not an embedding model';
  throw errors.badRequest(`The model "${requested}" is ${what}.`, 'model', 'model_not_supported');
}

/** Token-id embedding inputs longer than the model's context (when the config knows it) are refused here, not by every backend in turn. */
function checkEmbeddingContext(model: ModelConfig, input: unknown) {
  const max = model.max_model_len;
  if (max === undefined || !Array.isArray(input) || input.length === 0) return;
  const items = (Array.isArray(input[0]) ? input : [input]) as unknown[][];
  const i = items.findIndex((ids) => ids.length > max);
  if (i < 0) return;
  throw errors.badRequest(`Input ${i} has ${items[i]!.length} tokens; the context of "${model.id}" is ${max} tokens.`, 'input', 'context_length_exceeded');
}

const tenantMayUse = (tenant: TenantConfig, names: string[]) => tenant.models.includes('*') || names.some((n) => tenant.models.includes(n));

function allowedTiers(config: CompiledConfig, tenant: TenantConfig): string[] {
  return Object.keys(config.raw.tiers).filter((t) => tenant.tiers.includes('*') || tenant.tiers.includes(t));
}

/**
 * The request's complexity score and the tier it wants. "learned": the scorer's rank (0 fast, 1
 * balanced, 2 advanced, risk-aware by complexity_margin) picks among the tiers ranked by
 * min_complexity (the top one when fewer); the score is the mean of its two probabilities.
 */
function scoreRequest(config: CompiledConfig, body: Record<string, unknown>, tenantId: string): { score: number; wanted: string } {
  const typed = body as Parameters<typeof scoreComplexity>[0];
  const ranked = thresholds(config).sort((a, b) => a.min_complexity - b.min_complexity);
  // Quality feedback: the boundary above a tier whose answers this tenant saw truncated or refused moves down.
  const qf = config.raw.routing.quality_feedback;
  const kind = qf.enabled ? promptKind(lastUserText(typed)) : 'text';
  const offsetAbove = (i: number) => (qf.enabled && i > 0 && i < ranked.length ? boundaryOffset(qf, tenantId, ranked[i - 1]!.tier, kind) : 0);
  if (config.raw.routing.complexity_scorer === 'learned') {
    const r = learnedComplexity(typed);
    const rank = ['fast', 'balanced', 'advanced'].indexOf(learnedTier(r, config.raw.routing.complexity_margin, [offsetAbove(1), offsetAbove(2)]));
    return { score: Math.round(((r.pBalanced + r.pAdvanced) / 2) * 1e4) / 1e4, wanted: ranked[Math.min(rank, ranked.length - 1)]!.tier };
  }
  const { score } = scoreComplexity(typed);
  const shifted = ranked.map((t, i) => ({ tier: t.tier, min_complexity: t.min_complexity - offsetAbove(i) }));
  return { score, wanted: tierForScore(shifted, score) };
}

function thresholds(config: CompiledConfig) {
  return Object.entries(config.raw.tiers).map(([tier, t]) => ({ tier, min_complexity: t.min_complexity }));
}

/** The tier asked for if allowed; else the closest allowed one by threshold, preferring a stronger one. */
function nearestAllowed(config: CompiledConfig, wanted: string, allowed: string[]): string {
  if (allowed.includes(wanted)) return wanted;
  const level = config.raw.tiers[wanted]!.min_complexity;
  const byLevel = allowed.map((t) => ({ t, d: config.raw.tiers[t]!.min_complexity - level }));
  const stronger = byLevel.filter((x) => x.d >= 0).sort((a, b) => a.d - b.d)[0];
  return (stronger ?? byLevel.sort((a, b) => b.d - a.d)[0])!.t;
}

/** The tier's targets the tenant may use, best first: a disallowed model is skipped, a split picks among its allowed targets. */
function tierTargets(config: CompiledConfig, tenant: TenantConfig, tier: string, user: string | null): Target[] {
  return config.raw.tiers[tier]!.models.flatMap((name) => {
    const split = config.raw.splits[name];
    if (!split) {
      const model = config.modelsByName.get(name)!;
      return mayUseModel(tenant, model) ? [{ model }] : [];
    }
    const usable = usableSplit(config, tenant, name, split);
    if (!usable) return [];
    const target = pickSplitTarget(name, usable, user);
    return [toTarget(name, target, config.modelsByName.get(target.model)!)];
  });
}

/**
 * A tier's split for this tenant: whole when the tenant may use the split by name, else only the
 * targets whose model it may use (null when none with weight is left).
 */
function usableSplit(config: CompiledConfig, tenant: TenantConfig, name: string, split: SplitConfig): SplitConfig | null {
  if (tenantMayUse(tenant, [name])) return split;
  const targets = split.targets.filter((t) => t.weight > 0 && mayUseModel(tenant, config.modelsByName.get(t.model)!));
  return targets.length ? { targets } : null;
}

/** True when the tier routes to at least one model the tenant may use. */
export function tierReachable(config: CompiledConfig, tenant: TenantConfig, tier: string): boolean {
  return config.raw.tiers[tier]!.models.some((name) => {
    const split = config.raw.splits[name];
    return split ? usableSplit(config, tenant, name, split) !== null : mayUseModel(tenant, config.modelsByName.get(name)!);
  });
}

const mayUseModel = (tenant: TenantConfig, model: ModelConfig) => tenantMayUse(tenant, [model.id, ...model.aliases]);

/**
 * config:check's warnings for tenants whose routes lead nowhere: a tier it may name but whose
 * models it may not use (403 for it), or no tier at all reachable while tiers are allowed.
 */
export function tenantRouteWarnings(config: CompiledConfig): string[] {
  const out: string[] = [];
  for (const [id, tenant] of Object.entries(config.raw.tenants)) {
    const named = allowedTiers(config, tenant);
    const dead = named.filter((t) => !tierReachable(config, tenant, t));
    if (named.length > 0 && dead.length === named.length) out.push(`router.tenants.${id}: none of its tiers (${named.join(', ')}) reaches a model in its models list: tier names and "auto" answer 403`);
    else if (dead.length) out.push(`router.tenants.${id}: tier${dead.length > 1 ? 's' : ''} ${dead.join(', ')} reach${dead.length > 1 ? '' : 'es'} no model in its models list (403 for ${dead.length > 1 ? 'them' : 'it'}; "auto" skips ${dead.length > 1 ? 'them' : 'it'})`);
  }
  return out;
}

function toTarget(split: string, target: { backends?: readonly string[] }, model: ModelConfig): Target {
  return { model, split, ...(target.backends ? { backends: target.backends } : {}) };
}

/** Every name the tenant may put in `model`, for GET /v1/models. */
export function modelNamesFor(config: CompiledConfig, tenantId: string): { id: string; owned_by: string }[] {
  const tenant = config.raw.tenants[tenantId];
  if (!tenant) return [];
  const out: { id: string; owned_by: string }[] = [];
  for (const m of config.raw.models) {
    const names = [m.id, ...m.aliases];
    if (tenantMayUse(tenant, names)) for (const n of names) out.push({ id: n, owned_by: 'edge-router' });
  }
  for (const name of Object.keys(config.raw.splits)) if (tenantMayUse(tenant, [name])) out.push({ id: name, owned_by: 'edge-router:split' });
  for (const name of Object.keys(config.raw.deployments)) if (tenantMayUse(tenant, [name])) out.push({ id: name, owned_by: 'edge-router:deployment' });
  const tiers = allowedTiers(config, tenant).filter((t) => tierReachable(config, tenant, t));
  for (const t of tiers) out.push({ id: t, owned_by: 'edge-router:tier' });
  if (tiers.length) out.push({ id: 'auto', owned_by: 'edge-router:tier' });
  return out;
}
