import type { CompiledConfig } from '../config/compiled';
import type { EndpointKind } from '../openai/schemas';
import type { Usage } from '../openai/usage';
import type { ResolvedRoute } from '../routing/resolve-model';
import { background, type WaitUntil } from '../isolate/background';
import { answerFromBody, answerFromJson, replayAnswer, StreamAssembler, type CachedAnswer } from './answer';
import { assembledAnswerOf } from '../openai/assemble';
import { canonicalJson, sha256Hex } from './canonical';
import type { CacheStore } from './store';
import { responseCacheStore } from './stores';

/** `x-router-cache`: what the caches did for this request. */
export type CacheStatus = 'hit' | 'miss' | 'bypass' | 'semantic-hit';

/**
 * What a cache hit saved, for usage records and budgets. A hit is never billed and never
 * reserves budget (the lookup runs before the budget step and a hit returns at once).
 */
export interface CacheSavings {
  billable: false;
  source: 'exact' | 'semantic';
  /** The model id whose stored answer was replayed. */
  model: string;
  /** Tokens the original answer consumed (what this request did not spend). */
  saved_usage: Usage | null;
  /** What those tokens cost at today's [prices] (cached prompt tokens at cached_input); 0 without a price. */
  saved_cost_usd: number;
}

/** What every response-cache layer (exact, semantic) is asked with. */
export interface CacheLookupInput {
  config: CompiledConfig;
  env: Record<string, unknown>;
  ctx: WaitUntil;
  tenantId: string;
  endpoint: EndpointKind;
  /** The validated body as the client sent it. */
  body: Record<string, unknown>;
  /** The resolved route: its first model is part of the key (`auto` is resolved first). */
  route: ResolvedRoute;
  headers: Headers;
  now?: () => number;
}

export interface ExactCacheInput extends CacheLookupInput {
  /** Overrides the store (tests); by default the config's (stores.ts). */
  store?: CacheStore;
  /**
   * Called with each complete, successful answer this cache stores (for another cache layer, e.g.
   * the semantic index, to store the same canonical answer). Only for requests this cache judged
   * cacheable; never for hits, bypasses, failures or degraded answers. Must not throw.
   */
  onAnswer?: (answer: CachedAnswer) => void;
}

export interface ExactCache {
  readonly status: 'hit' | 'miss' | 'bypass';
  /** On a hit: the answer to send, with its headers (x-router-cache, age, x-router-*), and what it saved. */
  readonly hit: { response: Response; savings: CacheSavings } | null;
  /** For execute(): a streamed miss's SSE events, assembled into the stored form as they pass. */
  readonly onStreamEvent: ((data: string) => void) | undefined;
  /**
   * After execute(): stores the answer in the background once it is complete and successful (a
   * 200 from the key's own model, not degraded, every choice finished, no error event).
   */
  settle(outcome: { response: Response; servedModel: string | null; degraded: boolean }): void;
}

/** Fields that do not change the answer: left out of the key. `model` is replaced by the resolved model id. */
const NOT_IN_KEY = new Set(['model', 'stream', 'stream_options', 'user', 'metadata']);

const BYPASS: ExactCache = { status: 'bypass', hit: null, onStreamEvent: undefined, settle() {} };

/**
 * The exact response cache: a request that is deterministic (temperature 0, or a tenant whose
 * policy caches non-deterministic ones; embeddings always) is answered from an earlier
 * identical request of the same tenant. See README "Caching".
 */
export async function exactCache(input: ExactCacheInput): Promise<ExactCache> {
  const { config, tenantId, endpoint, body, route } = input;
  const policy = cachePolicy(input);
  const first = route.stages[0];
  const target = first?.targets[0];
  if (policy === 'bypass' || !first || !target) return BYPASS;

  const modelId = target.model.id;
  const tier = first.tier;
  const store = input.store ?? responseCacheStore(config, input.env);
  const key = `exact:${tenantId}:${await exactKeyHash(tenantId, endpoint, modelId, body)}`;
  const now = input.now ?? Date.now;
  const stream = body.stream === true;

  if (policy === 'lookup') {
    const found = await safely('get', () => store.get(key));
    const answer = found ? parseStored(found.value, endpoint) : null;
    if (found && answer) {
      const response = replayAnswer(answer, { stream, includeUsage: includeUsage(body) });
      const h = response.headers;
      h.set('x-router-cache', 'hit');
      h.set('age', String(Math.max(0, Math.floor((now() - found.storedAt) / 1000))));
      h.set('x-router-model', modelId);
      h.set('x-router-tier', tier ?? 'none');
      h.set('x-router-attempts', '0');
      if (target.split) h.set('x-router-split', `${target.split}=${modelId}`);
      if (route.complexity !== null) h.set('x-router-complexity', route.complexity.toFixed(2));
      const usage = answer.usage;
      return {
        status: 'hit',
        hit: { response, savings: { billable: false, source: 'exact', model: modelId, saved_usage: usage, saved_cost_usd: usage ? usdCost(config, modelId, usage) : 0 } },
        onStreamEvent: undefined,
        settle() {},
      };
    }
  }

  // A miss: store the answer once it is complete.
  const { cache } = config.raw;
  const ttl = (tier !== null ? cache.tiers[tier]?.ttl_seconds : undefined) ?? cache.ttl_seconds;
  const write = (answer: CachedAnswer | null) => {
    if (!answer) return;
    try {
      input.onAnswer?.(answer);
    } catch (e) {
      console.warn(JSON.stringify({ msg: 'response cache error', op: 'onAnswer', error: String(e) }));
    }
    const value = JSON.stringify(answer);
    if (value.length * 3 > cache.max_entry_bytes && new TextEncoder().encode(value).length > cache.max_entry_bytes) return; // UTF-8: ≤ 3 bytes per UTF-16 unit
    track(input.ctx, safely('put', () => store.put(key, value, ttl)));
  };
  const assembler = stream && endpoint !== 'embeddings' ? new StreamAssembler(endpoint) : null;
  let servedOk = false;
  let written = false;
  const maybeWriteStream = () => {
    if (!written && servedOk && assembler?.complete) {
      written = true;
      // A microtask later: the relay calls onStreamEvent('[DONE]') before it passes [DONE] on, so the
      // stored form (and the semantic layer's onAnswer) is built after the client's last chunk is queued.
      track(
        input.ctx,
        Promise.resolve()
          .then(() => write(assembler.result()))
          .catch((e) => console.warn(JSON.stringify({ msg: 'response cache error', op: 'store', error: String(e) }))),
      );
    }
  };
  return {
    status: 'miss',
    hit: null,
    onStreamEvent: assembler
      ? (data) => {
          try {
            assembler.onEvent(data);
            if (data === '[DONE]') maybeWriteStream();
          } catch (e) {
            console.warn(JSON.stringify({ msg: 'response cache error', op: 'assemble', error: String(e) })); // never the relay's problem
          }
        }
      : undefined,
    settle({ response, servedModel, degraded }) {
      if (degraded || response.status !== 200 || servedModel !== modelId) return;
      if (assembler) {
        servedOk = true;
        maybeWriteStream();
        return;
      }
      // An answer the router assembled from a stream is stored from the object it was built from.
      const assembled = endpoint === 'embeddings' ? undefined : assembledAnswerOf(response);
      if (assembled) {
        track(input.ctx, Promise.resolve().then(() => write(assembled.chars > cache.max_entry_bytes ? null : answerFromBody(endpoint as 'chat' | 'completions', assembled.answer))));
        return;
      }
      const copy = response.clone();
      track(
        input.ctx,
        copy.text().then(
          (text) => write(text.length > cache.max_entry_bytes ? null : answerFromJson(endpoint, text)), // too big: not even parsed
          () => {},
        ),
      );
    },
  };
}

/** bypass: neither read nor written; lookup: read, and written on a miss; refresh (`Cache-Control: no-cache`): written only. */
export function cachePolicy(input: Pick<ExactCacheInput, 'config' | 'tenantId' | 'endpoint' | 'body' | 'headers'>): 'bypass' | 'lookup' | 'refresh' {
  const { config, body, headers } = input;
  if (!config.raw.cache.enabled) return 'bypass';
  if ((headers.get('x-router-cache') ?? '').trim().toLowerCase() === 'bypass') return 'bypass';
  const directives = new Set((headers.get('cache-control') ?? '').split(',').map((d) => d.trim().toLowerCase()));
  if (directives.has('no-store')) return 'bypass';
  if (input.endpoint === 'embeddings') {
    if (!config.raw.cache.embeddings) return 'bypass';
  } else {
    // Logprobs are not kept in the stored form.
    if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false) return 'bypass';
    const deterministic = body.temperature === 0 || config.raw.tenants[input.tenantId]?.cache_nondeterministic === true;
    if (!deterministic) return 'bypass';
  }
  return directives.has('no-cache') ? 'refresh' : 'lookup';
}

/**
 * SHA-256 (hex) over the canonical JSON of: tenant, endpoint, resolved model id, and the request
 * body without the fields that do not change the answer (stream, stream_options, user,
 * metadata; `model` is replaced by the resolved id) and without null members at its top level.
 * Everything else counts, vLLM's extra sampling parameters included.
 */
export async function exactKeyHash(tenantId: string, endpoint: EndpointKind, modelId: string, body: Record<string, unknown>): Promise<string> {
  const request: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (!NOT_IN_KEY.has(k) && v !== null && v !== undefined) request[k] = v;
  return sha256Hex(canonicalJson({ v: 1, tenant: tenantId, endpoint, model: modelId, request }));
}

function parseStored(value: string, endpoint: EndpointKind): CachedAnswer | null {
  try {
    const a = JSON.parse(value) as CachedAnswer;
    return a && a.v === 1 && a.endpoint === endpoint ? a : null;
  } catch {
    return null;
  }
}

const includeUsage = (body: Record<string, unknown>) => (body.stream_options as { include_usage?: boolean } | null | undefined)?.include_usage === true;

/** What a usage costs at today's [prices] (cached prompt tokens at cached_input); 0 without a price. */
export function usdCost(config: CompiledConfig, modelId: string, usage: Usage): number {
  const p = config.raw.prices[modelId];
  if (!p) return 0;
  const cached = Math.min(usage.cached_tokens ?? 0, usage.prompt_tokens);
  return ((usage.prompt_tokens - cached) * p.input + cached * (p.cached_input ?? p.input) + usage.completion_tokens * p.output) / 1e6;
}

/** A cache that fails is a miss (or a write not made), never a failed request. */
async function safely<T>(op: string, fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (e) {
    console.warn(JSON.stringify({ msg: 'response cache error', op, error: String(e) }));
    return null;
  }
}

/** Runs a cache write in the background (waitUntil); tests wait for it with backgroundSettled(). */
export function track(ctx: WaitUntil, p: Promise<unknown>) {
  background(ctx, p, 'cache');
}
