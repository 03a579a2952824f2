import type { Context } from 'hono';
import { admitStage, softLimitStage } from '../budget/stage';
import { checkFeatureAllowed, FEATURE_HEADER } from '../budget/settings';
import { exactCacheStage, semanticCacheStage } from '../cache/stage';
import type { AppEnv } from '../env';
import type { CompiledConfig } from '../config/compiled';
import type { KeyRecord } from '../protocol/keys';
import { readJsonBody } from '../http/body';
import { errors } from '../http/errors';
import { endpoints, type EndpointKind } from '../openai/schemas';
import { rateLimitStage } from '../ratelimit/stage';
import { executeStage } from '../routing/execute-stage';
import { planStage } from '../routing/plan-stage';
import { qualityFeedbackStage } from '../routing/quality-stage';
import { answerSignalsStage, AnswerWatch } from '../quality/answer-signals';
import { resolveRoute } from '../routing/resolve-model';
import { recordUsage } from '../telemetry/record';
import { UsageDraft } from '../telemetry/usage-draft';
import { assignDeployment } from '../deployments/assign';
import { recordDeploymentOutcome } from '../deployments/outcomes';
import { enforceDeferredStage } from './deferred';
import { PipelineRun } from './run';
import { afterResponse } from '../isolate/background';
import type { InferenceBody, InferenceRequest, Stage } from './types';

/**
 * The request path of every inference endpoint, in order (README "Request lifecycle"). A stage
 * that holds something for the request registers a participant, and the runner closes it on every
 * exit. A new stage (a guardrail, a request transform) is one file and one line here.
 */
export const INFERENCE_STAGES: readonly Stage[] = [
  rateLimitStage, // worker/ratelimit/stage.ts: requests taken, tokens reserved; 429 on requests
  softLimitStage, // worker/budget/stage.ts: may downgrade the route; a block is deferred
  exactCacheStage, // worker/cache/stage.ts: a hit answers
  semanticCacheStage, // worker/cache/stage.ts: a hit answers
  enforceDeferredStage, // worker/pipeline/deferred.ts: every cache missed: soft-limit block, tokens refusal
  answerSignalsStage, // worker/quality/answer-signals.ts: the served answer's finish_reason and refusal verdict, after it is sent
  qualityFeedbackStage, // worker/routing/quality-stage.ts: auto answers' truncation/refusal feed the tenant's tier boundaries
  planStage, // worker/routing/plan-stage.ts: candidates in order (region, tier, replicas, capabilities, cold starts)
  admitStage, // worker/budget/stage.ts: worst case reserved; max_tokens may be lowered
  executeStage, // worker/routing/execute-stage.ts: attempts, retries, fallbacks; degraded answer
];

/** The header a client may name its own request with; kept as client_request_id, never the ledger key. */
const CLIENT_ID_RE = /^[\w\-=.:]{1,128}$/;
const FEATURE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** POST /v1/chat/completions, /v1/completions, /v1/embeddings. */
export function inferenceRoute(kind: EndpointKind) {
  const spec = endpoints[kind];
  return (c: Context<AppEnv>) => runInference(c, kind, () => readJsonBody(c.req.raw, spec.schema, c.get('config').raw.max_body_bytes) as Promise<InferenceBody>);
}

/**
 * One inference request through the stages, to its response (never throws: an error is answered in
 * OpenAI's format). `body` is the validated body, or a function that reads and validates it (so a
 * body the client cannot send whole is still a recorded request). Other API faces (the Responses
 * API, Anthropic's Messages) translate their body and call this with kind 'chat'.
 */
export function runInference(c: Context<AppEnv>, kind: EndpointKind, body: InferenceBody | (() => Promise<InferenceBody>)): Promise<Response> {
  return runInferenceCall({ env: c.env, ctx: c.executionCtx, config: c.get('config'), key: c.get('key'), raw: c.req.raw, requestId: c.get('requestId') }, kind, body);
}

/**
 * Who asks, without an HTTP client behind it: an HTTP route (runInference above) or the batch
 * queue's consumer (worker/batch/consumer.ts), which builds `raw` itself for a tenant's key.
 */
export interface InferenceCall {
  env: AppEnv['Bindings'];
  ctx: InferenceRequest['ctx'];
  config: CompiledConfig;
  key: KeyRecord;
  /** The request as received (headers, abort signal); a batch line's is made up by its consumer. */
  raw: Request;
  /** The router's id for the request when the client did not name it (x-request-id). */
  requestId: string;
  /** A batch line: its batch id (on the usage record); its requestId is then used as given (deterministic per line). */
  batchId?: string;
}

/** runInference for an InferenceCall: the one pipeline for interactive requests and batch lines. */
export async function runInferenceCall(call: InferenceCall, kind: EndpointKind, body: InferenceBody | (() => Promise<InferenceBody>)): Promise<Response> {
  const { config, key, ctx } = call;
  const header = (name: string) => call.raw.headers.get(name) ?? undefined;
  const started = Date.now();
  const clientId = call.batchId ? undefined : header('x-request-id');
  const clientRequestId = clientId !== undefined && CLIENT_ID_RE.test(clientId) ? clientId : null;
  // The ledger key is the router's own: the id Hono's middleware made, unless that is the client's.
  const requestId = clientRequestId === null ? call.requestId : `req_${crypto.randomUUID().replaceAll('-', '')}`;
  const feature = header(FEATURE_HEADER);
  const run = new PipelineRun(requestId);
  const usage = new UsageDraft(
    { requestId, clientRequestId, started, tenant: key.tenant, keyId: key.id ?? null, feature: feature && FEATURE_RE.test(feature) ? feature : null, endpoint: kind, ...(call.batchId ? { batchId: call.batchId } : {}) },
    config,
    // The record's sinks (ledger queue, /metrics, the rollout's outcomes) run after the response is out.
    (record) =>
      afterResponse(
        ctx,
        () => {
          recordUsage(call.env, ctx, config, record);
          if (r.deployment) recordDeploymentOutcome(call.env, ctx, config, r.deployment, record);
        },
        'usage record',
      ),
  );
  usage.user = header('x-router-user')?.slice(0, 256) ?? null;

  const r: InferenceRequest = {
    kind,
    spec: endpoints[kind],
    config,
    env: call.env,
    ctx,
    key,
    tenantId: key.tenant,
    requestId,
    raw: call.raw,
    signal: call.raw.signal,
    started,
    deadline: started,
    body: undefined as unknown as InferenceBody,
    user: null,
    route: undefined as unknown as InferenceRequest['route'],
    limits: null,
    budget: null,
    downgradedTo: null,
    cache: { status: 'bypass', savings: null },
    deferred: [],
    candidates: [],
    cold: null,
    result: null,
    degraded: false,
    deployment: null,
    signals: new AnswerWatch(),
    join: (p) => run.join(p),
    lifecycle: { settle: run.settle, streamEvents: () => run.streamEvents(), relaying: () => run.markRelaying() },
  };
  // The usage record is the first participant: every exit from here on leaves exactly one.
  run.join({
    name: 'usage',
    settle: usage.settle,
    finish: ({ response, error }) => {
      if (r.route) usage.noteRequest(r.deployment?.name ?? r.body.model, r.user, r.route);
      if (r.deployment) usage.noteDeployment(r.deployment.name, r.deployment.version);
      if (r.signals.pending) usage.expectAnswer();
      if (r.result) usage.executed(r.result, r.degraded, r.body.stream === true && !r.degraded && r.result.served !== null && response.status === 200);
      const code = error?.code ?? r.result?.error?.code ?? null;
      usage.responded(response.status, response.status < 400 ? null : code, r.cache.status, r.cache.savings);
    },
  });
  r.signals.listen((s) => usage.answered(s));
  // Keeps the request running until every participant is closed, the client leaving included.
  ctx.waitUntil(run.closed);
  const response = await run.run(r, INFERENCE_STAGES, async () => {
    (r as { deadline: number }).deadline = started + requestTimeout(header('x-router-timeout-ms'), config.raw.timeouts.total_ms);
    // A feature name the tenant does not allow is refused before any limit counts it.
    checkFeatureAllowed(config, r.tenantId, feature);
    r.body = typeof body === 'function' ? await body() : body;
    r.user = (typeof r.body.user === 'string' && r.body.user) || header('x-router-user') || null;
    await assignDeployment(r, call.raw.headers);
    r.route = resolveRoute(config, r.tenantId, r.body, r.spec.modelType, r.user, r.deployment !== null);
  });
  if (clientRequestId !== null) response.headers.set('x-router-request-id', requestId);
  if (r.deployment) response.headers.set('x-router-deployment-version', r.deployment.version);
  return response;
}

/** x-router-timeout-ms may shorten the configured deadline, never lengthen it. */
function requestTimeout(header: string | undefined, configured: number): number {
  if (header === undefined) return configured;
  const ms = Number(header);
  if (!Number.isInteger(ms) || ms <= 0) throw errors.badRequest('x-router-timeout-ms must be a positive integer (milliseconds).', 'x-router-timeout-ms', 'invalid_header');
  return Math.min(ms, configured);
}
