import type { EndpointKind } from '../../openai/schemas';
import { replayAnswer, type CachedAnswer } from '../answer';
import { sha256Hex } from '../canonical';
import { cachePolicy, exactKeyHash, track, usdCost, type CacheLookupInput, type CacheSavings } from '../exact';
import { embedderFor, type Embedder } from './embedder';
import type { SemanticIndexStore } from './index-store';
import { semanticIndexFor } from './indexes';
import { semanticPrompt } from './prompt';
import { semanticResidency } from './residency';

export interface SemanticCacheInput extends CacheLookupInput {
  /** Overrides (tests); by default the config's (indexes.ts, embedder.ts). */
  index?: SemanticIndexStore | null;
  embedder?: Embedder;
}

export interface SemanticCache {
  /** On a hit: the answer to send (x-router-cache: semantic-hit, age, x-router-similarity, …) and what it saved. */
  readonly hit: { response: Response; savings: CacheSavings } | null;
  /** Stores a complete answer to this request in the semantic index, in the background (exactCache's onAnswer). */
  store(answer: CachedAnswer): void;
}

const NONE: SemanticCache = { hit: null, store() {} };

/**
 * The semantic response cache (README "Semantic cache"): after an exact-cache miss, a request
 * of a tier with `semantic = true` is answered from the most similar earlier request of the same
 * tenant whose everything-but-the-last-message is identical (same model, system prompt, earlier
 * turns, parameters: the scope), when the last messages reach the tier's similarity threshold
 * and the guards (guard.ts) find no differing number, entity, code, unit or negation. Cacheable
 * means what it means for the exact cache (cachePolicy): deterministic, not bypassed;
 * `Cache-Control: no-cache` skips the lookup but stores the fresh answer.
 *
 * A lookup that fails for any reason (index unreachable, embedding backend down) is a miss:
 * the cache never fails a request.
 */
export async function semanticCache(input: SemanticCacheInput): Promise<SemanticCache> {
  const { config, tenantId, endpoint, body, route } = input;
  if (endpoint === 'embeddings') return NONE;
  const policy = cachePolicy(input);
  const first = route.stages[0];
  const target = first?.targets[0];
  if (policy === 'bypass' || !first || !target || first.tier === null) return NONE;
  const tier = first.tier;
  const { cache } = config.raw;
  const tierCache = cache.tiers[tier];
  if (!tierCache?.semantic) return NONE;
  const settings = cache.semantic;
  const prompt = semanticPrompt(endpoint, body, settings.max_prompt_chars);
  if (!prompt) return NONE;
  // Residency: the prompt goes only where the tenant's allowed regions permit (residency.ts); nowhere: no semantic cache.
  const residency = semanticResidency(config, tenantId);
  if (residency.skip) return NONE;
  const index = input.index !== undefined ? input.index : semanticIndexFor(config, input.env, { upstashVector: residency.upstashVector });
  if (!index) return NONE;

  const modelId = target.model.id;
  const now = input.now ?? Date.now;
  const scope = await exactKeyHash(tenantId, endpoint, modelId, { ...prompt.rest, semantic_scope: 1 });
  const embedder = input.embedder ?? embedderFor(config, input.env, residency.embeddingBackends ?? undefined);
  let vector: Promise<Float32Array | null> | null = null;
  const embed = () => (vector ??= embedder.embed(prompt.text).catch(() => null)); // once per request: the lookup's vector serves the store

  if (policy === 'lookup') {
    const t = now();
    const found = await safely('lookup', () =>
      index.lookup({ tenantId, scope, text: prompt.text, depth: prompt.depth, threshold: tierCache.semantic_threshold, topK: settings.top_k, vector: embed, now: t, background: (work) => track(input.ctx, work) }),
    );
    const answer = found ? parseAnswer(found.answer, endpoint) : null;
    if (found && answer) {
      const response = replayAnswer(answer, { stream: body.stream === true, includeUsage: (body.stream_options as { include_usage?: boolean } | null | undefined)?.include_usage === true });
      const h = response.headers;
      h.set('x-router-cache', 'semantic-hit');
      h.set('age', String(Math.max(0, Math.floor((t - found.storedAt) / 1000))));
      h.set('x-router-similarity', found.similarity.toFixed(3));
      h.set('x-router-model', modelId);
      h.set('x-router-tier', tier);
      h.set('x-router-attempts', '0');
      if (target.split) h.set('x-router-split', `${target.split}=${modelId}`);
      if (route.complexity !== null) h.set('x-router-complexity', route.complexity.toFixed(2));
      const usage = answer.usage;
      return {
        hit: { response, savings: { billable: false, source: 'semantic', model: modelId, saved_usage: usage, saved_cost_usd: usage ? usdCost(config, modelId, usage) : 0 } },
        store() {},
      };
    }
  }

  const ttlSeconds = tierCache.ttl_seconds ?? cache.ttl_seconds;
  return {
    hit: null,
    store(answer) {
      if (answer.endpoint !== endpoint) return;
      const value = JSON.stringify(answer);
      if (value.length > settings.max_answer_bytes || new TextEncoder().encode(value).length > settings.max_answer_bytes) return;
      const t = now();
      track(
        input.ctx,
        safely('store', async () =>
          index.store({ tenantId, scope, id: await sha256Hex(`${scope}\n${prompt.text}`), text: prompt.text, depth: prompt.depth, answer: value, ttlSeconds, vector: embed, now: t, background: (work) => track(input.ctx, work) }),
        ),
      );
    },
  };
}

function parseAnswer(value: string, endpoint: EndpointKind): CachedAnswer | null {
  try {
    const a = JSON.parse(value) as CachedAnswer;
    return a && a.v === 1 && a.endpoint === endpoint ? a : null;
  } catch {
    return null;
  }
}

/** A semantic cache that fails is a miss (or a write not made), never a failed request. */
async function safely<T>(op: string, fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    console.warn(JSON.stringify({ msg: 'semantic cache error', op, error: String(e) }));
    return null;
  }
}
