import type { CompiledConfig } from '../config/compiled';
import { loadConfig } from '../config/compiled';
import type { Env } from '../env';
import { endpoints, type EndpointKind } from '../openai/schemas';
import { schemaError } from '../http/body';
import { runInferenceCall } from '../pipeline/inference';
import type { InferenceBody } from '../pipeline/types';
import { BATCH_ENDPOINTS, type BatchLineMessage, type LineResult } from '../protocol/batch';
import { refreshLoad } from '../routing/load-snapshot';
import { backgroundSettled } from '../isolate/background';
import { batchPricedConfig } from './pricing';
import { batchHeadroom } from './schedule';
import { batchStore, randomHex } from './store';

// The batch queue's consumer (README "Batch and async"): each message is one batch line, run
// through the same inference pipeline as interactive traffic (runInferenceCall: limits, budgets
// at the batch price, caches, routing, usage record with batch_id), at a concurrency that leaves
// the backends' headroom to interactive requests (schedule.ts). Per line:
//   claim in the tenant's BatchStore (done already → ack; another delivery holds it → later)
//   → run → record the result (first one wins) → ack.
// The tenant's own rate limit (429 rate_limit_exceeded) puts the line back after Retry-After, not
// counted as a failure. A retryable failure (other 429s but insufficient_quota, 5xx, timeouts, a degraded answer) goes
// back with backoff (retry_base_seconds × 2^n: 1, 2, 4, 8 s) up to [batch].max_retries times,
// then lands in the batch's error file and on the dead-letter queue.

export const BATCH_QUEUE = 'edge-router-batch';
export const BATCH_DLQ = 'edge-router-batch-dlq';
export const BATCH_QUEUES = new Set([BATCH_QUEUE, BATCH_DLQ]);

/** Poll interval while waiting for headroom. */
const HEADROOM_POLL_MS = 50;
/** Longest the delivery waits for the isolate's background work after its lines are done. */
const KEEP_ALIVE_MAX_MS = 10_000;
/** A line put back for want of headroom (or only cold backends) comes again this much later. */
const DEFER_SECONDS = 5;
const COLD_DEFER_SECONDS = 60;
/** Longest wait for the tenant's rate-limit window (Queues' delay limit is 12 h; a minute window is the usual). */
const RATE_LIMIT_MAX_WAIT_S = 300;
const RETRYABLE = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

/** The debug crash (config [batch].debug_crash_after_lines) fires once per isolate. */
let crashed = false;

export async function batchQueue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext): Promise<void> {
  const loaded = loadConfig(env.ROUTER);
  if (!loaded.ok) {
    console.error(JSON.stringify({ msg: 'batch queue: invalid config', errors: loaded.errors.slice(0, 5) }));
    batch.retryAll({ delaySeconds: 30 });
    return;
  }
  const config = loaded.config;
  if (batch.queue === BATCH_DLQ) return deadLetters(batch, env);
  refreshLoad(env, ctx, config);
  // A line's background work (usage records, metric flushes) may ride on a flush another request
  // started, and the other way round (worker/isolate/background.ts): with nothing of its own
  // pending, workerd takes the delivery for a hung one and cancels what is left of its waitUntil.
  // A timer held until the isolate's background work has settled (bounded) keeps it honest.
  const keepAlive = setInterval(() => {}, 1_000);
  ctx.waitUntil(
    Promise.race([backgroundSettled(), new Promise((r) => setTimeout(r, KEEP_ALIVE_MAX_MS))]).finally(() => clearInterval(keepAlive)),
  );
  await runLines(batch, env, ctx, config);
}

async function runLines(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext, config: CompiledConfig): Promise<void> {
  const cfg = config.raw.batch;
  let running = 0;
  let done = 0;
  let crash: Error | null = null;
  const tasks: Promise<void>[] = [];
  for (const msg of batch.messages) {
    if (crash) break;
    const m = lineOf(msg.body);
    if (!m) {
      console.error(JSON.stringify({ msg: 'batch queue: malformed message dropped', id: msg.id }));
      msg.ack();
      continue;
    }
    // Interactive first: start a line only when the backends that could serve it have headroom.
    const gate = await waitForHeadroom(config, m, () => running);
    if (gate !== 'run') {
      await defer(env, msg, m, gate === 'cold' ? COLD_DEFER_SECONDS : DEFER_SECONDS);
      continue;
    }
    running++;
    tasks.push(
      runLine(env, ctx, config, msg, m)
        .then((ack) => {
          done++;
          if (cfg.debug_crash_after_lines !== undefined && !crashed && done >= cfg.debug_crash_after_lines) {
            crashed = true;
            crash = new Error('batch queue: debug crash ([batch].debug_crash_after_lines)');
            return; // not acked: the queue redelivers it, and the ledger says it is done
          }
          ack();
        })
        .catch((e) => {
          console.error(JSON.stringify({ msg: 'batch line failed in the consumer', batch_id: m.batch_id, custom_id: m.custom_id, error: String(e) }));
          msg.retry({ delaySeconds: backoff(cfg.retry_base_seconds, msg.attempts) });
        })
        .finally(() => running--),
    );
  }
  await Promise.all(tasks);
  if (crash) throw crash;
}

/** Runs one line unless the ledger says otherwise; resolves with how to settle the message (ack, or retry already decided). */
async function runLine(env: Env, ctx: ExecutionContext, config: CompiledConfig, msg: Message<unknown>, m: BatchLineMessage): Promise<() => void> {
  const cfg = config.raw.batch;
  const store = batchStore(env, m.tenant);
  const now = Date.now();
  const claim = await store.claim(m.batch_id, m.custom_id, now, cfg.claim_ms);
  if (claim === 'done' || claim === 'gone') return () => msg.ack();
  if (claim === 'busy') return () => msg.retry({ delaySeconds: Math.max(1, Math.ceil(cfg.claim_ms / 1000 / 4)) });

  // The line's request id: one per run of the line (its delivery attempt, and how many times it was
  // put back), the same for a duplicate delivery of that run, so the ledger never holds it twice.
  const requestId = `req_${m.batch_id.slice(6)}_${await shortHash(m.custom_id)}_${m.deferrals ?? 0}_${msg.attempts}`;
  const kind = BATCH_ENDPOINTS[m.endpoint] as EndpointKind;
  const raw = new Request(`https://batch.internal${m.endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  let status = 0;
  let body: unknown = null;
  let degraded = false;
  let retryAfter: number | null = null;
  try {
    const res = await runInferenceCall(
      { env, ctx, config: batchPricedConfig(config), key: { ...m.key, revoked_at: null, limits: m.key.limits ?? null }, raw, requestId, batchId: m.batch_id },
      kind,
      // Validated like an HTTP body (a bad one is a 400 in the error file, never retried).
      async () => {
        const parsed = endpoints[kind].schema.safeParse(m.body);
        if (!parsed.success) throw schemaError(parsed.error);
        return parsed.data as InferenceBody;
      },
    );
    status = res.status;
    degraded = res.headers.get('x-router-degraded') === 'true';
    const ra = Number(res.headers.get('retry-after'));
    retryAfter = Number.isFinite(ra) && ra > 0 ? Math.ceil(ra) : null;
    const text = await res.text();
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: { message: text.slice(0, 500), type: 'server_error', param: null, code: 'invalid_upstream_body' } };
    }
  } catch (e) {
    status = 500;
    body = { error: { message: String(e).slice(0, 500), type: 'server_error', param: null, code: 'internal_error' } };
  }
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  const ok = status >= 200 && status < 300 && !degraded;
  const retryable = !ok && (degraded || (RETRYABLE.has(status) && code !== 'insufficient_quota'));
  // The tenant's own rate limit is not the line's failure: it waits its turn (Retry-After), uncounted.
  if (status === 429 && code === 'rate_limit_exceeded') {
    await store.unclaim(m.batch_id, m.custom_id, false);
    await defer(env, msg, m, Math.min(RATE_LIMIT_MAX_WAIT_S, retryAfter ?? DEFER_SECONDS));
    return () => {};
  }
  const exhausted = msg.attempts > cfg.max_retries;
  if (retryable && !exhausted) {
    await store.unclaim(m.batch_id, m.custom_id, true);
    return () => msg.retry({ delaySeconds: backoff(cfg.retry_base_seconds, msg.attempts) });
  }
  const result: LineResult = {
    ok,
    line: JSON.stringify({ id: `batch_req_${randomHex(12)}`, custom_id: m.custom_id, response: { status_code: degraded ? 503 : status, request_id: requestId, body }, error: null }),
    usage: ok ? usageOf(body) : null,
    dead_letter: retryable && exhausted,
  };
  await store.complete(m.batch_id, m.custom_id, result);
  if (result.dead_letter) await env.ROUTER_BATCH_DLQ?.send({ ...m, recorded: true }, { contentType: 'json' });
  return () => msg.ack();
}

/** 1 s, 2 s, 4 s, 8 s … for the 1st, 2nd, 3rd, 4th retry. */
const backoff = (base: number, attempts: number) => base * 2 ** Math.max(0, attempts - 1);

/** Waits (bounded) for room; 'defer' when none came, 'cold' when every candidate is parked and the window can wait. */
async function waitForHeadroom(config: CompiledConfig, m: BatchLineMessage, running: () => number): Promise<'run' | 'defer' | 'cold'> {
  const cfg = config.raw.batch;
  const windowMs = cfg.completion_window_seconds * 1000;
  const urgent = m.expires_at_ms - Date.now() < windowMs * cfg.wake_cold_when_window_left;
  const until = Date.now() + cfg.headroom_wait_ms;
  for (;;) {
    const h = batchHeadroom(config, String(m.body.model));
    if (h.warm === 0 && h.cold > 0) return urgent ? 'run' : 'cold';
    if (running() < cfg.max_concurrency && h.slots >= 1) return 'run';
    // Nothing of ours in flight and the window is running out: progress beats politeness.
    if (urgent && running() === 0) return 'run';
    if (Date.now() >= until) return running() === 0 && h.warm === 0 ? 'run' : 'defer';
    await new Promise((r) => setTimeout(r, HEADROOM_POLL_MS));
  }
}

/** Puts a line back without counting a failure: a fresh message (attempts from 1) after a delay. */
async function defer(env: Env, msg: Message<unknown>, m: BatchLineMessage, seconds: number): Promise<void> {
  try {
    await env.ROUTER_BATCH!.send({ ...m, deferrals: (m.deferrals ?? 0) + 1 }, { contentType: 'json', delaySeconds: seconds });
    msg.ack();
  } catch {
    msg.retry({ delaySeconds: seconds });
  }
}

/** The dead-letter queue: lines the queue gave up on (a consumer that kept dying) go to the error file. */
async function deadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    const m = lineOf(msg.body);
    if (!m || (msg.body as { recorded?: unknown }).recorded === true) {
      msg.ack();
      continue;
    }
    try {
      const line = JSON.stringify({ id: `batch_req_${randomHex(12)}`, custom_id: m.custom_id, response: null, error: { code: 'dead_letter', message: 'The request could not be processed after repeated attempts.' } });
      await batchStore(env, m.tenant).complete(m.batch_id, m.custom_id, { ok: false, line, usage: null, dead_letter: true });
      msg.ack();
    } catch (e) {
      console.error(JSON.stringify({ msg: 'batch DLQ: record failed', error: String(e) }));
      msg.retry({ delaySeconds: 10 });
    }
  }
}

/** A message body as the producer (worker/routes/batches.ts) wrote it, or null. */
function lineOf(body: unknown): BatchLineMessage | null {
  const m = body as Partial<BatchLineMessage> | null;
  if (!m || m.v !== 1 || typeof m.tenant !== 'string' || typeof m.batch_id !== 'string' || typeof m.custom_id !== 'string') return null;
  if (!m.endpoint || !(m.endpoint in BATCH_ENDPOINTS) || typeof m.body !== 'object' || m.body === null || !m.key) return null;
  return m as BatchLineMessage;
}

function usageOf(body: unknown): LineResult['usage'] {
  const u = (body as { usage?: { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: { cached_tokens?: unknown } } } | null)?.usage;
  if (!u) return null;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
  return { input_tokens: n(u.prompt_tokens), cached_tokens: n(u.prompt_tokens_details?.cached_tokens), output_tokens: n(u.completion_tokens) };
}

async function shortHash(s: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s)));
  return [...d.slice(0, 8)].map((x) => x.toString(16).padStart(2, '0')).join('');
}
