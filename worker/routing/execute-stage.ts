import type { InferenceBody, Stage } from '../pipeline/types';
import { synthesize } from '../openai/synthesize';
import { COLD_START_HEADER, coldStartHeader } from './cold-start';
import { execute } from './execute';
import type { Candidate } from './plan';
import type { ResolvedRoute } from './resolve-model';
import type { ExecuteResult } from './types';

/**
 * Runs the plan (attempts, retries, fallbacks under one deadline); when every upstream failed,
 * answers the configured degraded answer instead. The run's settle() and stream-event fan-outs
 * reach every participant; a relayed stream settles when it ends.
 */
export const executeStage: Stage = {
  name: 'execute',
  async run(r) {
    const onStreamEvent = r.lifecycle.streamEvents();
    const result = await execute({
      config: r.config,
      env: r.env,
      endpoint: r.kind,
      body: r.body,
      candidates: r.candidates,
      requestId: r.requestId,
      clientSignal: r.signal,
      deadline: r.deadline,
      ctx: r.ctx,
      onSettled: r.lifecycle.settle,
      ...(onStreamEvent ? { onStreamEvent } : {}),
    });
    r.result = result;
    const degradedText = r.config.raw.degraded_answer;
    const response = result.upstreamFailed && r.kind !== 'embeddings' && degradedText ? degraded(degradedText, r.kind, r.body) : result.response;
    r.degraded = response !== result.response;
    if (r.body.stream === true && !r.degraded && result.served !== null && response.status === 200) r.lifecycle.relaying();
    setRouterHeaders(response.headers, r.route, result, r.degraded, r.candidates);
    const coldStart = r.cold ? coldStartHeader(r.cold, r.degraded ? null : result.served) : null;
    if (coldStart) response.headers.set(COLD_START_HEADER, coldStart);
    response.headers.set('x-router-cache', r.cache.status);
    return response;
  },
};

/** The last link of every chain: the configured static answer, marked degraded, never billed. */
function degraded(text: string, kind: 'chat' | 'completions', body: InferenceBody): Response {
  const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  return synthesize({
    endpoint: kind,
    model: body.model,
    text,
    stream: body.stream === true,
    includeUsage,
    usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  });
}

function setRouterHeaders(h: Headers, route: ResolvedRoute, result: ExecuteResult, isDegraded: boolean, candidates: readonly Candidate[]) {
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
  // The nearest region's backends skipped before the path, with why: "vllm-eu-west-8b(breaker-open)>vllm-us-east-8b".
  const skippedFrom = served ?? (isDegraded ? candidates.find((c) => c.passedOver) : undefined);
  const skipped = (skippedFrom?.passedOver ?? []).filter((p) => !result.path.includes(p.backendId)).map((p) => `${p.backendId}(${p.reason})`);
  if (result.path.length > 1 || isDegraded || skipped.length > 0) {
    h.set('x-router-fallback', [...skipped, ...result.path, ...(isDegraded ? ['degraded'] : [])].join('>'));
  }
  if (isDegraded) h.set('x-router-degraded', 'true');
}
