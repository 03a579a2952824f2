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
    const replicasIn = (regionId: string) =>
      stage.targets.map((t) => ({
        target: t,
        replicas: (config.backendsByModel.get(t.model.id) ?? []).filter(
          // An open breaker takes the backend out of the chain altogether (not even a last resort).
          (b) => b.region === regionId && (!t.backends || t.backends.includes(b.id)) && breakerAllows(b.id, now) !== 'open' && providerGate(b.id, now) !== 'throttled',
        ),
      }));
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

  const all = [...chain, ...lastResort.filter((c) => !seen.has(`${c.backend.id}\u0000${c.model.id}`))];
  if (all.length === 0 && tenant.allowed_regions) {
    throw errors.unavailable(
      `No region this tenant may use (${tenant.allowed_regions.join(', ')}) can serve "${route.requested}".`,
      'no_region_available',
    );
  }
  return all;
}
