import type { CompiledConfig } from '../config/compiled';
import type { BackendConfig } from '../config/schema';
import { coldStateOf } from '../routing/backend-lifecycle-view';
import { loadOf } from '../routing/load';
import { backendLoad } from '../routing/load-snapshot';

/**
 * How much room batch lines have right now on the backends that could serve `model`: the sum over
 * warm backends of (max_concurrency × [batch].max_backend_share − their load), where load is the
 * larger of this edge's in-flight and the backend's own scraped running + waiting (so interactive
 * traffic from every edge counts), and a backend whose own queue (vllm:num_requests_waiting) is
 * above [batch].max_backend_waiting has none. Cold (parked) backends are counted apart: batch
 * lines wake one only when their completion window requires it (consumer.ts).
 */
export function batchHeadroom(config: CompiledConfig, model: string, now = Date.now()): { slots: number; warm: number; cold: number } {
  const cfg = config.raw.batch;
  let slots = 0;
  let warm = 0;
  let cold = 0;
  for (const b of candidatesOf(config, model)) {
    if (coldStateOf(config, b, false, now) !== null) {
      cold++;
      continue;
    }
    warm++;
    const waiting = backendLoad(b.id, now)?.waiting ?? 0;
    if (waiting > cfg.max_backend_waiting) continue;
    slots += Math.max(0, Math.floor(b.max_concurrency * cfg.max_backend_share - loadOf(b)));
  }
  return { slots, warm, cold };
}

const byModel = new WeakMap<CompiledConfig, Map<string, readonly BackendConfig[]>>();

/** Backends that may serve a request for `model` (a model or alias, a split, a tier; anything else: all). */
function candidatesOf(config: CompiledConfig, model: string): readonly BackendConfig[] {
  let m = byModel.get(config);
  if (!m) byModel.set(config, (m = new Map()));
  let list = m.get(model);
  if (!list) {
    const ids = new Set<string>();
    const named = config.modelsByName.get(model);
    // Own keys only: a line's "model": "__proto__" names no split or tier.
    const split = Object.hasOwn(config.raw.splits, model) ? config.raw.splits[model] : undefined;
    const tier = Object.hasOwn(config.raw.tiers, model) ? config.raw.tiers[model] : undefined;
    const models = named ? [named.id] : split ? split.targets.map((t) => t.model) : tier ? tier.models : config.raw.models.map((x) => x.id);
    for (const id of models) for (const b of config.backendsByModel.get(id) ?? []) ids.add(b.id);
    list = config.raw.backends.filter((b) => ids.has(b.id));
    if (m.size < 1000) m.set(model, list);
  }
  return list;
}
