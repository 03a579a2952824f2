import { usdCost, type CacheSavings } from '../cache/exact';
import type { CompiledConfig } from '../config/compiled';
import type { EndpointKind } from '../openai/schemas';
import type { ExecuteResult, Settled } from '../routing/types';
import type { ResolvedRoute } from '../routing/resolve-model';
import type { UsageRecord } from '../protocol/usage-record';

export interface DraftBase {
  requestId: string;
  /** The client's x-request-id, kept apart from the router's id (it may repeat). */
  clientRequestId: string | null;
  /** Epoch ms when the request arrived. */
  started: number;
  tenant: string;
  keyId: string | null;
  feature: string | null;
  endpoint: EndpointKind;
  /** A batch line's batch id (worker/batch/consumer.ts); absent for interactive requests. */
  batchId?: string;
}

type CacheResult = UsageRecord['cache'];

/**
 * One request's usage record while it is being answered. The route fills in what it decides
 * (requested model, route, the executor's result); the executor's onSettled brings the served
 * backend's usage and timings; the pipeline's usage participant (worker/pipeline/inference.ts) brings the status the
 * client got. The record is emitted exactly once, when both the response is made and, for a
 * relayed stream, the stream has ended (completed, failed, or the client left): whichever comes last.
 */
export class UsageDraft {
  requestedModel = '';
  user: string | null = null;
  private tier: string | null = null;
  private result: { served: ExecuteResult['served']; attempts: number; path: string[]; degraded: boolean; relayed: boolean } | null = null;
  private settled: (Settled & { at: number }) | null = null;
  private response: { status: number; errorCode: string | null; cache: CacheResult; savings: CacheSavings | null; at: number } | null = null;
  private emitted = false;
  private deployment: { name: string; version: string } | null = null;
  private answer: { finishReason: string | null; refused: boolean } | null = null;
  private awaitingAnswer = false;

  constructor(
    private readonly base: DraftBase,
    private readonly config: CompiledConfig,
    private readonly emit: (record: UsageRecord) => void,
  ) {}

  /** The request as the route resolved it (again after a budget downgrade). */
  noteRequest(requestedModel: string, user: string | null, route: ResolvedRoute): void {
    this.requestedModel = requestedModel;
    this.user = user === null ? null : user.slice(0, 256);
    this.tier = route.stages[0]?.tier ?? null;
  }

  /** The deployment version the request was assigned. */
  noteDeployment(name: string, version: string): void {
    this.deployment = { name, version };
  }

  /** The answer-signals stage will bring the served answer's verdict: the record waits for it. */
  expectAnswer(): void {
    if (!this.answer) this.awaitingAnswer = true;
  }

  /** The served answer's verdict (null: none to give); always comes once the stage ran. */
  answered(s: { finishReason: string | null; refused: boolean } | null): void {
    this.answer = s ? { finishReason: s.finishReason, refused: s.refused } : null;
    this.awaitingAnswer = false;
    this.tryEmit();
  }

  /** For settledBy(): the served attempt's usage and timings (for a stream: when it ends). */
  readonly settle = (s: Settled): void => {
    if (this.settled) return;
    this.settled = { ...s, at: Date.now() };
    this.tryEmit();
  };

  /** After execute(): who served, how, and whether a relayed stream is still to settle. */
  executed(result: ExecuteResult, degraded: boolean, relayed: boolean): void {
    this.result = { served: result.served, attempts: result.attempts, path: result.path, degraded, relayed };
  }

  /** The response the client got (an error thrown anywhere below included). */
  responded(status: number, errorCode: string | null, cache: CacheResult, savings: CacheSavings | null): void {
    if (this.response) return;
    this.response = { status, errorCode, cache, savings, at: Date.now() };
    this.tryEmit();
  }

  private tryEmit(): void {
    if (this.emitted || !this.response || this.awaitingAnswer) return;
    if (this.result?.relayed && !this.settled) return; // the stream is still running
    this.emitted = true;
    this.emit(this.build());
  }

  private build(): UsageRecord {
    const { base, result, response } = this;
    const res = response!;
    const served = result && !result.degraded ? result.served : null;
    const settled = served && this.settled ? this.settled : null;
    const usage = settled?.usage ?? null;
    const hit = res.savings;
    const streamStatus = result?.relayed ? settled?.status : undefined;
    const endAt = result?.relayed && settled ? settled.at : res.at;
    const completion = usage?.completion_tokens ?? 0;
    let ttft: number | null = null;
    let tps: number | null = null;
    if (settled && settled.ttftMs !== null) {
      const attemptStart = settled.at - settled.totalMs;
      ttft = Math.max(0, attemptStart + settled.ttftMs - base.started);
      const genMs = settled.totalMs - settled.ttftMs;
      if (completion > 0 && genMs > 0) tps = (completion * 1000) / genMs;
    }
    let outcome: UsageRecord['outcome'];
    let errorCode = res.errorCode;
    if (res.status === 429) outcome = 'rate_limited';
    else if (result?.degraded) outcome = 'degraded';
    else if (streamStatus === 'client_closed') outcome = 'client_closed';
    else if (streamStatus === 'upstream_error' || streamStatus === 'timeout') {
      outcome = 'stream_error';
      errorCode = streamStatus === 'timeout' ? 'upstream_timeout' : 'upstream_stream_error';
    } else if (res.errorCode === 'client_closed') outcome = 'client_closed';
    else outcome = res.status >= 400 ? 'error' : 'ok';
    return {
      v: 1,
      request_id: base.requestId,
      client_request_id: base.clientRequestId,
      ts: base.started,
      tenant: base.tenant,
      key_id: base.keyId,
      user: this.user,
      feature: base.feature,
      endpoint: base.endpoint,
      requested_model: this.requestedModel,
      model: served?.model.id ?? hit?.model ?? null,
      backend: served?.backend.id ?? null,
      region: served?.backend.region ?? null,
      tier: served?.tier ?? this.tier,
      prompt_tokens: usage?.prompt_tokens ?? 0,
      cached_tokens: usage?.cached_tokens ?? 0,
      completion_tokens: completion,
      // Served but no count at all (a backend that sent none): the zeros are not a measurement.
      tokens_estimated: usage ? usage.estimated === true : served !== null && res.status < 400,
      cost_usd: served && usage ? usdCost(this.config, served.model.id, usage) : 0,
      saved_usd: hit?.saved_cost_usd ?? 0,
      latency_ms: Math.max(0, endAt - base.started),
      ttft_ms: ttft,
      tokens_per_s: tps,
      status: res.status,
      outcome,
      cache: res.cache,
      attempts: result?.attempts ?? 0,
      path: result?.path ?? [],
      error_code: errorCode,
      deployment: this.deployment?.name ?? null,
      deployment_version: this.deployment?.version ?? null,
      finish_reason: served ? (this.answer?.finishReason ?? null) : null,
      refused: served && this.answer ? this.answer.refused : null,
      ...(base.batchId ? { batch_id: base.batchId } : {}),
    };
  }
}
