import type { CompiledConfig } from '../config/compiled';
import type { BackendConfig, ModelConfig, Region } from '../config/schema';
import { distanceKm, type ClientLocation } from './geo';
import { isolateState } from './isolate-state';

export interface Candidate {
  backend: BackendConfig;
  model: ModelConfig;
}

/** Regions nearest first from the client; without a location, in config order. */
export function regionsByDistance(config: CompiledConfig, location: ClientLocation | null): Region[] {
  const regions = config.raw.regions;
  if (!location) return regions;
  return regions
    .map((r, i) => ({ r, i, d: distanceKm(location, r) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.r);
}

/**
 * The ordered list of (backend, model) pairs to try: the nearest region that serves one of
 * the models first, then the others by distance; inside a region the tier's models in order,
 * and for each model the least loaded backend first. Backends this isolate saw failing, or
 * that are at their concurrency limit, go to the end rather than away: a last resort beats a 503.
 */
export function planCandidates(config: CompiledConfig, models: readonly ModelConfig[], location: ClientLocation | null, now = Date.now()): Candidate[] {
  const preferred: Candidate[] = [];
  const lastResort: Candidate[] = [];
  for (const region of regionsByDistance(config, location)) {
    for (const model of models) {
      const backends = (config.backendsByModel.get(model.id) ?? []).filter((b) => b.region === region.id);
      const byLoad = backends
        .map((b, i) => ({ b, i, load: isolateState.inFlight(b.id) / b.max_concurrency }))
        .sort((x, y) => x.load - y.load || x.i - y.i);
      for (const { b } of byLoad) {
        const ok = isolateState.usable(b.id, now) && isolateState.inFlight(b.id) < b.max_concurrency;
        (ok ? preferred : lastResort).push({ backend: b, model });
      }
    }
  }
  return [...preferred, ...lastResort];
}
