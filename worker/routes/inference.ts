import type { Context } from 'hono';
import { exactCache } from '../cache/exact';
import { semanticCache, type SemanticCache } from '../cache/semantic/semantic';
import type { AppEnv } from '../env';
import { BUDGET_WARNING_HEADER, DOWNGRADED_HEADER, SOFT_LIMIT_CODE } from '../budget/errors';
import { budgetFor, type Reservation } from '../budget/lease';
import { FEATURE_HEADER } from '../budget/settings';
import { readJsonBody } from '../http/body';
import { errors, RouterError } from '../http/errors';
import { endpoints, type EndpointKind } from '../openai/schemas';
import { synthesize } from '../openai/synthesize';
import { execute, type ExecuteResult } from '../routing/execute';
import { clientLocation } from '../routing/geo';
import { loadOf } from '../routing/load';
import { refreshBreakers } from '../routing/breaker-view';
import { COLD_START_HEADER, coldStartHeader, planColdStarts } from '../routing/cold-start';
import { refreshLoad } from '../routing/load-snapshot';
import { planCandidates } from '../routing/plan';
import { servableChain } from '../routing/capabilities';
import { prefixKey } from '../routing/prefix-key';
import { settledBy } from '../routing/settled';
import { rateLimit } from '../ratelimit/request';
import { resolveRoute, type ResolvedRoute } from '../routing/resolve-model';

/** POST /v1/chat/completions, /v1/completions, /v1/embeddings: validate, then runInference(). */
export function inferenceRoute(kind: EndpointKind) {
  const spec = endpoints[kind];
  return async (c: Context<AppEnv>) => {
    const body = (await readJsonBody(c.req.raw, spec.schema, c.get('config').raw.max_body_bytes)) as Record<string, unknown> & { model: string };
    return runInference(c, kind, body);
  };
}

/**
 * Resolve, plan, execute a body already validated with `endpoints[kind].schema`. Also the entry
 * of the routes that speak other formats (worker/routes/responses.ts, anthropic-messages.ts).
 */
export async function runInference(c: Context<AppEnv>, kind: EndpointKind, body: Record<string, unknown> & { model: string }): Promise<Response> {
  const spec = endpoints[kind];
  { // (a block only so that this split left the body's indentation as it was)
    const config = c.get('config');
    const started = Date.now();
    const deadline = started + requestTimeout(c.req.header('x-router-timeout-ms'), config.raw.timeouts.total_ms);
    const tenantId = c.get('key').tenant;
    const user = (typeof body.user === 'string' && body.user) || c.req.header('x-router-user') || null;
    let route = resolveRoute(config, tenantId, body, spec.modelType, user);
    const usage = c.get('usage'); // the request's usage record (worker/middleware/usage.ts), [usage] on or off (/metrics counts it)
    usage?.noteRequest(body.model, user, route);
    // Rate limits (worker/ratelimit/): the request is taken and its tokens reserved in one call to
    // the limiter, before the budget and the cache; null, with no I/O, when no limit applies.
    // Throws 429 when a requests limit refuses; a tokens refusal waits for requireTokens() below.
    const limits = await rateLimit({
      config,
      env: c.env,
      ctx: c.executionCtx,
      key: c.get('key'),
      user,
      featureHeader: c.req.header(FEATURE_HEADER),
      endpoint: kind,
      body,
      models: route.stages.flatMap((s) => s.targets.map((t) => t.model)),
    });
    if (limits) c.set('rateLimit', limits); // headers on every answer from here; a reservation never used goes back
    // Budget soft limit (worker/budget/): null for a tenant without a budget, no further cost; else
    // from memory (a hop only on an isolate's first request or a new period). Before the cache, as
    // a downgrade changes the route the cache keys on. A soft-limit block waits for the caches: a
    // hit costs the tenant nothing, so a blocked tenant still gets its cached answers.
    const budget = budgetFor(config, tenantId, c.req.header(FEATURE_HEADER), c.env, c.executionCtx);
    let softBlock: RouterError | null = null;
    const downgradeTo = budget ? await budget.softLimit(tenantId, route.stages[0]?.tier ?? null, kind).catch((e: unknown) => deferSoftBlock(e, (b) => (softBlock = b))) : null;
    if (downgradeTo) route = resolveRoute(config, tenantId, { ...body, model: downgradeTo }, spec.modelType, user);
    if (downgradeTo) usage?.noteRequest(body.model, user, route);
    // Response cache (worker/cache/): keep it before any budget reservation. A hit answers here:
    // nothing goes upstream, nothing is reserved or billed (cacheSavings says what it saved).
    // An exact miss asks the semantic cache (tiers with `semantic = true`); every answer the exact
    // cache stores is stored in the semantic index too (onAnswer, after the response).
    let semantic: SemanticCache | null = null;
    const cacheInput = { config, env: c.env, ctx: c.executionCtx, tenantId, endpoint: kind, body, route, headers: c.req.raw.headers };
    const cache = await exactCache({ ...cacheInput, onAnswer: (answer) => semantic?.store(answer) });
    if (cache.hit) {
      c.set('cacheSavings', cache.hit.savings);
      return cache.hit.response;
    }
    if (cache.status === 'miss') semantic = await semanticCache(cacheInput);
    if (semantic?.hit) {
      c.set('cacheSavings', semantic.hit.savings);
      return semantic.hit.response;
    }
    // Every cache lookup missed: 429 now if the budget's soft limit blocks, or if the tokens did not fit (a hit above needed neither).
    if (softBlock) throw softBlock;
    limits?.requireTokens();
    refreshLoad(c.env, c.executionCtx, config); // background: never awaited here
    const candidates = servableChain(planCandidates({
      config,
      route,
      tenant: config.raw.tenants[tenantId]!,
      location: clientLocation(c.req.raw, config.raw),
      prefixKey: kind === 'embeddings' || config.raw.routing.policy !== 'prefix-affinity' ? null : prefixKey(body, config.raw.routing),
      loadOf,
    }), kind, body);
    refreshBreakers(c.env, c.executionCtx, config); // background: due reports, and copies older than refresh_ms
    // Cold backends (only those with cold_start_ms): wait for the start if the deadline allows, else behind warm ones.
    const cold = planColdStarts({ config, env: c.env, ctx: c.executionCtx, candidates, deadline, stream: body.stream === true });

    // The worst case is reserved before anything goes upstream; settled with the real usage, or released.
    const reservation: Reservation | null = budget && candidates.length > 0 ? await budget.admit(kind, body, candidates.map((x) => x.model)) : null;
    let result: ExecuteResult;
    try {
      result = await execute({
        config,
        env: c.env,
        endpoint: kind,
        body,
        candidates: cold.candidates,
        requestId: c.get('requestId'),
        clientSignal: c.req.raw.signal,
        deadline,
        ctx: c.executionCtx,
        onStreamEvent: cache.onStreamEvent,
        ...settledBy(reservation?.settle, limits?.settle, usage?.settle),
      });
    } catch (e) {
      reservation?.release();
      limits?.release();
      throw e;
    }

    const response = result.upstreamFailed && kind !== 'embeddings' && config.raw.degraded_answer ? degraded(config.raw.degraded_answer, kind, body) : result.response;
    const isDegraded = response !== result.response;
    // A relayed stream settles when it ends; anything else not settled by now used nothing.
    const relayed = body.stream === true && !isDegraded && result.served !== null && response.status === 200;
    usage?.executed(result, isDegraded, relayed);
    reservation?.finish(relayed);
    limits?.finish(relayed);
    setRouterHeaders(response.headers, route, result, isDegraded);
    const coldStart = coldStartHeader(cold, isDegraded ? null : result.served);
    if (coldStart) response.headers.set(COLD_START_HEADER, coldStart);
    response.headers.set('x-router-cache', cache.status);
    if (budget) {
      const warning = budget.warning();
      if (warning) response.headers.set(BUDGET_WARNING_HEADER, warning);
      if (downgradeTo) response.headers.set(DOWNGRADED_HEADER, 'true');
    }
    cache.settle({ response, servedModel: result.served?.model.id ?? null, degraded: isDegraded }); // stores a complete answer in the background
    return response;
  }
}

/** Keeps a soft-limit block (429 budget_exceeded) for after the cache lookups; anything else is thrown at once. */
function deferSoftBlock(e: unknown, keep: (block: RouterError) => void): null {
  if (!(e instanceof RouterError) || e.code !== SOFT_LIMIT_CODE) throw e;
  keep(e);
  return null;
}

/** x-router-timeout-ms may shorten the configured deadline, never lengthen it. */
function requestTimeout(header: string | undefined, configured: number): number {
  if (header === undefined) return configured;
  const ms = Number(header);
  if (!Number.isInteger(ms) || ms <= 0) throw errors.badRequest('x-router-timeout-ms must be a positive integer (milliseconds).', 'x-router-timeout-ms', 'invalid_header');
  return Math.min(ms, configured);
}

/** The last link of every chain: the configured static answer, marked degraded, never billed. */
function degraded(text: string, kind: 'chat' | 'completions', body: Record<string, unknown>): Response {
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  return synthesize({
    endpoint: kind,
    model: body.model as string,
    text,
    stream: body.stream === true,
    includeUsage,
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  });
}

function setRouterHeaders(h: Headers, route: ResolvedRoute, result: ExecuteResult, isDegraded: boolean) {
  const served = isDegraded ? null : result.served;
  if (served) {
    h.set('x-router-region', served.backend.region);
    h.set('x-router-backend', served.backend.id);
    h.set('x-router-model', served.model.id);
    if (served.split) h.set('x-router-split', `${served.split}=${served.model.id}`);
    if (served.reason === 'affinity' || served.reason === 'yielded') h.set('x-router-affinity', served.reason === 'affinity' ? 'hit' : 'yielded');
  }
  h.set('x-router-tier', served?.tier ?? route.stages[0]?.tier ?? 'none');
  if (route.complexity !== null) h.set('x-router-complexity', route.complexity.toFixed(2));
  h.set('x-router-attempts', String(result.attempts));
  if (result.path.length > 1 || isDegraded) h.set('x-router-fallback', [...result.path, ...(isDegraded ? ['degraded'] : [])].join('>'));
  if (isDegraded) h.set('x-router-degraded', 'true');
}
