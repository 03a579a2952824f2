import type { CompiledConfig } from '../config/compiled';
import type { BackendConfig, ModelConfig, TenantConfig } from '../config/schema';
import { errors } from '../http/errors';
import type { ClientLocation } from './geo';
import { breakerAllows, breakerSettings } from './breaker-view';
import { isolateState } from './isolate-state';
import { providerGate } from './provider-throttle';
import { orderRegions } from './region-order';
import { replicaPolicies, type ReplicaOrder } from './replica-policies';
import type { ResolvedRoute } from './resolve-model';

/** One link of the fallback chain: a backend and the model to ask it for. */
export interface Candidate {
  backend: BackendConfig;
  model: ModelConfig;
  tier: string | null;
  split?: string;
  /** Why this backend: how the replica policy chose it, or which kind of fallback it is. */
  reason: ReplicaOrder['decision'] | 'replica-fallback' | 'region-fallback' | 'tier-fallback' | 'last-resort';
  /** The backend is believed cold: its attempt waits this long for the start (cold-start.ts), on top of its timeouts. */
  coldStartWaitMs?: number;
  /**
   * Outside the client's nearest region only: that region's backends (for the request's tier)
   * that were skipped, and why; `x-router-fallback` lists them before the path.
   */
  passedOver?: readonly PassedOver[];
}

/** Why a backend of the nearest region was not tried first. */
export type SkipReason = 'breaker-open' | 'max-concurrency' | 'recent-failures' | 'residency' | 'cold';
export interface PassedOver {
  backendId: string;
  reason: SkipReason;
}

/** The client's nearest region by distance (config order without a location), whatever its health or the tenant's residency. */
export function nearestRegionId(config: CompiledConfig, location: ClientLocation | null): string | null {
  return orderRegions(config, location, () => true)[0]?.id ?? null;
}

export interface PlanInput {
  config: CompiledConfig;
  route: ResolvedRoute;
  tenant: TenantConfig;
  location: ClientLocation | null;
  prefixKey: number | null;
  loadOf: (backend: BackendConfig) => number;
  now?: number;
}

/**
 * The fallback chain, in order: the request's tier in the nearest region that can serve it
 * (replicas ordered by the routing policy), the other regions (explicit failover first, then
 * by distance, never outside the tenant's allowed regions), then the tier's fallback tier the
 * same way. Backends this edge should avoid (recent failures, full) are not dropped but moved
 * to the end: a last resort beats a 503.
 */
export function planCandidates(input: PlanInput): Candidate[] {
  const { config, route, tenant } = input;
  const now = input.now ?? Date.now();
  const policy = replicaPolicies[config.raw.routing.policy];
  // The breaker is the authority on a backend's health (a half-open one decides through its
  // probe permit); this isolate's own failure memory stands in only where breakers are off,
  // so that the two do not fight (a local skip would starve the breaker of the failures it counts).
  const usable = (b: BackendConfig) =>
    (breakerSettings(config, b.id).enabled || isolateState.usable(b.id, now)) && isolateState.inFlight(b.id) < b.max_concurrency && providerGate(b.id, now) === 'ok';

  const chain: Candidate[] = [];
  const lastResort: Candidate[] = [];
  const seen = new Set<string>();
  route.stages.forEach((stage, stageIndex) => {
    // Once per region and stage: orderRegions' predicate and the loop below ask for the same lists.
    const replicasByRegion = new Map<string, { target: (typeof stage.targets)[number]; replicas: BackendConfig[] }[]>();
    const replicasIn = (regionId: string) => {
      let lists = replicasByRegion.get(regionId);
      if (!lists) {
        lists = stage.targets.map((t) => ({
          target: t,
          replicas: (config.backendsByModel.get(t.model.id) ?? []).filter(
            // An open breaker takes the backend out of the chain altogether (not even a last resort).
            (b) => b.region === regionId && (!t.backends || t.backends.includes(b.id)) && breakerAllows(b.id, now) !== 'open' && providerGate(b.id, now) !== 'throttled',
          ),
        }));
        replicasByRegion.set(regionId, lists);
      }
      return lists;
    };
    const regions = orderRegions(config, input.location, (r) => replicasIn(r.id).some((x) => x.replicas.some(usable)), tenant.allowed_regions);
    regions.forEach((region, regionIndex) => {
      for (const { target, replicas } of replicasIn(region.id)) {
        if (replicas.length === 0) continue;
        const ok = replicas.filter(usable);
        const { ordered, decision } = ok.length === 0 ? { ordered: [], decision: 'single' as const } : policy.order(ok, {
          prefixKey: input.prefixKey,
          loadOf: input.loadOf,
          pool: `${region.id}\u0000${target.model.id}`,
          routing: config.raw.routing,
        });
        ordered.forEach((backend, i) => {
          const key = `${backend.id}\u0000${target.model.id}`;
          if (seen.has(key)) return;
          seen.add(key);
          const reason: Candidate['reason'] =
            stageIndex > 0 ? 'tier-fallback' : regionIndex > 0 ? 'region-fallback' : i > 0 ? 'replica-fallback' : decision;
          chain.push({ backend, model: target.model, tier: stage.tier, ...(target.split ? { split: target.split } : {}), reason });
        });
        for (const backend of replicas) {
          if (ok.includes(backend)) continue;
          lastResort.push({ backend, model: target.model, tier: stage.tier, ...(target.split ? { split: target.split } : {}), reason: 'last-resort' });
        }
      }
    });
  });

  const nearest = nearestRegionId(config, input.location);
  const all = withPassedOver(
    [...chain, ...lastResort.filter((c) => !seen.has(`${c.backend.id}\u0000${c.model.id}`))],
    nearestSkips(input, now, nearest),
    nearest,
  );
  if (all.length === 0 && tenant.allowed_regions) {
    throw errors.unavailable(
      `No region this tenant may use (${tenant.allowed_regions.join(', ')}) can serve "${route.requested}".`,
      'no_region_available',
    );
  }
  return all;
}

/** The nearest region's backends for the request's own tier that this plan does not try first, with the reason. */
function nearestSkips(input: PlanInput, now: number, nearest: string | null): PassedOver[] {
  const { config, route, tenant } = input;
  const stage = route.stages[0];
  if (nearest === null || !stage) return [];
  const out: PassedOver[] = [];
  const outsideResidency = tenant.allowed_regions !== undefined && !tenant.allowed_regions.includes(nearest);
  for (const t of stage.targets) {
    for (const b of config.backendsByModel.get(t.model.id) ?? []) {
      if (b.region !== nearest || (t.backends && !t.backends.includes(b.id)) || out.some((x) => x.backendId === b.id)) continue;
      // Same order of checks as planCandidates' filters: the first that applies is the reason.
      const reason: SkipReason | null = outsideResidency
        ? 'residency'
        : breakerAllows(b.id, now) === 'open'
          ? 'breaker-open'
          : !breakerSettings(config, b.id).enabled && !isolateState.usable(b.id, now)
            ? 'recent-failures'
            : isolateState.inFlight(b.id) >= b.max_concurrency
              ? 'max-concurrency'
              : null;
      if (reason) out.push({ backendId: b.id, reason });
    }
  }
  return out;
}

function withPassedOver(candidates: Candidate[], skips: PassedOver[], nearest: string | null): Candidate[] {
  if (skips.length === 0) return candidates;
  return candidates.map((c) => (c.backend.region === nearest ? c : { ...c, passedOver: skips }));
}

/**
 * After cold-start planning (cold-start.ts moves cold backends behind warm ones): a candidate
 * outside the nearest region that now precedes one of the nearest region's cold backends passed
 * over it, reason "cold".
 */
export function withColdPassedOver(candidates: readonly Candidate[], nearest: string | null): readonly Candidate[] {
  if (nearest === null || !candidates.some((c) => c.coldStartWaitMs !== undefined && c.backend.region === nearest)) return candidates;
  return candidates.map((c, i) => {
    if (c.backend.region === nearest) return c;
    const cold = candidates
      .slice(i + 1)
      .filter((x) => x.backend.region === nearest && x.coldStartWaitMs !== undefined && !c.passedOver?.some((p) => p.backendId === x.backend.id))
      .map((x): PassedOver => ({ backendId: x.backend.id, reason: 'cold' }));
    const unique = cold.filter((x, j) => cold.findIndex((y) => y.backendId === x.backendId) === j);
    return unique.length === 0 ? c : { ...c, passedOver: [...(c.passedOver ?? []), ...unique] };
  });
}
