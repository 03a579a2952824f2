import type { InferenceRequest, Stage } from '../pipeline/types';
import { exactCache, type CacheLookupInput } from './exact';
import { semanticCache, type SemanticCache } from './semantic/semantic';

const lookupInput = (r: InferenceRequest): CacheLookupInput => ({
  config: r.config,
  env: r.env,
  ctx: r.ctx,
  tenantId: r.tenantId,
  endpoint: r.kind,
  body: r.body,
  route: r.route,
  headers: r.raw.headers,
});

/** The semantic layer of this request, once the exact layer missed (the exact layer's onAnswer feeds it). */
const semanticOf = new WeakMap<InferenceRequest, SemanticCache>();

/**
 * Exact response cache, before any budget reservation: a hit answers here, and nothing goes
 * upstream, is reserved or billed (r.cache.savings says what it saved). On a miss the cache is a
 * participant: it assembles a streamed answer from the relayed events and stores a complete answer
 * after the response (in the exact store, and through onAnswer in the semantic index).
 */
export const exactCacheStage: Stage = {
  name: 'exact-cache',
  async run(r) {
    const cache = await exactCache({ ...lookupInput(r), onAnswer: (answer) => semanticOf.get(r)?.store(answer) });
    r.cache.status = cache.status;
    if (cache.hit) {
      r.cache.savings = cache.hit.savings;
      return cache.hit.response;
    }
    if (cache.status === 'bypass') return;
    r.join({
      name: 'exact-cache',
      ...(cache.onStreamEvent ? { onStreamEvent: cache.onStreamEvent } : {}),
      finish: ({ response }) => {
        if (r.result) cache.settle({ response, servedModel: r.result.served?.model.id ?? null, degraded: r.degraded });
      },
    });
  },
};

/** Semantic cache, after an exact miss (tiers with `semantic = true`): a hit answers here. */
export const semanticCacheStage: Stage = {
  name: 'semantic-cache',
  async run(r) {
    if (r.cache.status !== 'miss') return;
    const semantic = await semanticCache(lookupInput(r));
    semanticOf.set(r, semantic);
    if (!semantic.hit) return;
    r.cache.status = 'semantic-hit';
    r.cache.savings = semantic.hit.savings;
    return semantic.hit.response;
  },
};
