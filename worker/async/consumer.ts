import type { CompiledConfig } from '../config/compiled';
import { loadConfig } from '../config/compiled';
import type { Env } from '../env';
import { schemaError } from '../http/body';
import { endpoints } from '../openai/schemas';
import { responsesRequestSchema, toChatBody } from '../openai/responses/request';
import { responseFromChat } from '../openai/responses/answer';
import { readChatAnswer } from '../openai/chat-reader';
import { runInferenceCall } from '../pipeline/inference';
import type { InferenceBody } from '../pipeline/types';
import { FEATURE_HEADER } from '../budget/settings';
import type { ClaimJob, JobRequest, JobView } from '../protocol/async-jobs';
import { backgroundSettled } from '../isolate/background';
import { requestStore } from './store';
import { deliverJobWebhook } from './webhook';

// The async queue's consumer (README "Async requests"): each message names one job ({tenant, id});
// the job's request lives in the tenant's RequestStore. Per job: claim (done already → ack; another
// delivery holds it → later) → run through the one inference pipeline (runInferenceCall: limits,
// budgets, caches, routing; the usage record carries the job id in its batch_id column) → record the
// answer (first wins) → the webhook, if the request named one → ack. A retryable failure (429 other
// than insufficient_quota, 502, 503, 504) goes back with backoff up to [async].max_retries times;
// the last answer is then the job's (status "failed"), recorded as a dead letter.

export const ASYNC_QUEUE = 'edge-router-async';

const RETRYABLE = new Set([429, 502, 503, 504]);
const KEEP_ALIVE_MAX_MS = 10_000;

interface JobMessage {
  tenant: string;
  id: string;
}

function jobOf(body: unknown): JobMessage | null {
  const m = body as Partial<JobMessage> | null;
  return m && typeof m.tenant === 'string' && typeof m.id === 'string' && /^async_[0-9a-f]{32}$/.test(m.id) ? { tenant: m.tenant, id: m.id } : null;
}

export async function asyncQueue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const loaded = loadConfig(env.ROUTER);
  if (!loaded.ok) {
    console.error(JSON.stringify({ msg: 'async queue: invalid config', errors: loaded.errors.slice(0, 5) }));
    batch.retryAll({ delaySeconds: 30 });
    return;
  }
  // As the batch consumer: hold the delivery until the isolate's background work (usage records) settles.
  const keepAlive = setInterval(() => {}, 1_000);
  ctx.waitUntil(Promise.race([backgroundSettled(), new Promise((r) => setTimeout(r, KEEP_ALIVE_MAX_MS))]).finally(() => clearInterval(keepAlive)));
  await Promise.all(
    batch.messages.map((msg) =>
      runJob(env, ctx, loaded.config, msg).catch((e) => {
        console.error(JSON.stringify({ msg: 'async job failed in the consumer', error: String(e) }));
        msg.retry({ delaySeconds: backoff(loaded.config.raw.async.retry_base_seconds, msg.attempts) });
      }),
    ),
  );
}

const backoff = (base: number, attempts: number) => base * 2 ** Math.max(0, attempts - 1);

async function runJob(env: Env, ctx: ExecutionContext, config: CompiledConfig, msg: Message<unknown>): Promise<void> {
  const cfg = config.raw.async;
  const m = jobOf(msg.body);
  if (!m) {
    console.error(JSON.stringify({ msg: 'async queue: malformed message dropped', id: msg.id }));
    msg.ack();
    return;
  }
  const store = requestStore(env, m.tenant);
  const claim = (await store.claimJob(m.id, Date.now(), cfg.claim_ms)) as ClaimJob;
  if (claim.state !== 'run') {
    if (claim.state === 'busy') return msg.retry({ delaySeconds: Math.max(1, Math.ceil(cfg.claim_ms / 4000)) });
    return msg.ack(); // done already, or expired
  }
  const { request, attempts } = claim;

  const { status, text, code } = await run(env, ctx, config, m.id, request, attempts);
  const retryable = RETRYABLE.has(status) && code !== 'insufficient_quota';
  if (retryable && attempts <= cfg.max_retries) {
    await store.requeueJob(m.id);
    return msg.retry({ delaySeconds: backoff(cfg.retry_base_seconds, attempts) });
  }
  const ok = status >= 200 && status < 300;
  const tooLarge = new TextEncoder().encode(text).byteLength > cfg.max_result_bytes;
  const body = tooLarge
    ? JSON.stringify({ error: { message: `The answer is larger than [async].max_result_bytes (${cfg.max_result_bytes}).`, type: 'server_error', param: null, code: 'result_too_large' } })
    : text;
  // A retryable failure past the last retry is the job's dead letter (counted in GET /admin/queues).
  const first = await store.completeJob(m.id, ok && !tooLarge ? 'completed' : 'failed', tooLarge ? 500 : status, body, Date.now(), retryable);
  if (first && request.webhook) {
    const job = (await store.getJob(m.id, Date.now())) as JobView | null;
    if (job) await deliverJobWebhook(env, config, m.tenant, request.webhook, job);
  }
  msg.ack();
}

async function run(env: Env, ctx: ExecutionContext, config: CompiledConfig, id: string, request: JobRequest, attempts: number): Promise<{ status: number; text: string; code: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (request.feature) headers[FEATURE_HEADER] = request.feature;
  if (request.user) headers['x-router-user'] = request.user;
  const path = request.endpoint === 'responses' ? '/v1/responses' : endpoints[request.endpoint].path;
  const raw = new Request(`https://async.internal${path}`, { method: 'POST', headers });
  // The Responses API runs as a chat completion and is written back in its own format (as worker/routes/responses.ts).
  try {
    const responses = request.endpoint === 'responses' ? responsesRequestSchema.parse(JSON.parse(request.body)) : null;
    const kind = responses ? 'chat' : (request.endpoint as Exclude<JobRequest['endpoint'], 'responses'>);
    const chatBody = responses ? toChatBody(responses) : null;
    const res = await runInferenceCall(
      // batchId: the usage record's batch_id column names the job; the request id is the job's, per attempt.
      { env, ctx, config, key: { ...request.key, revoked_at: null, limits: request.key.limits ?? null }, raw, requestId: `req_${id.slice(6)}_${attempts}`, batchId: id },
      kind,
      async () => {
        const parsed = endpoints[kind].schema.safeParse(chatBody ?? JSON.parse(request.body));
        if (!parsed.success) throw schemaError(parsed.error);
        return parsed.data as InferenceBody;
      },
    );
    let text = await res.text();
    let code: unknown = null;
    if (res.status >= 400) {
      try {
        code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
      } catch {
        /* not JSON: no code */
      }
    } else if (responses && chatBody) {
      text = JSON.stringify(responseFromChat(responses, readChatAnswer(JSON.parse(text), String(chatBody.model))));
    }
    return { status: res.status, text, code };
  } catch (e) {
    return { status: 500, text: JSON.stringify({ error: { message: String(e).slice(0, 500), type: 'server_error', param: null, code: 'internal_error' } }), code: 'internal_error' };
  }
}
