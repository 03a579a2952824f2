import { adapterFor } from '../backends';
import { backendSecret } from '../protocol/rules/backend-endpoints';
import { USAGE_HEADER } from '../backends/types';
import type { CompiledConfig } from '../config/compiled';
import type { RoutingConfig, Timeouts } from '../config/schema';
import { errors, RouterError, type ErrorStatus } from '../http/errors';
import type { EndpointKind } from '../openai/schemas';
import { readUsage, type Usage } from '../openai/usage';
import { estimateStreamUsage } from './stream-usage';
import { acquireProbe, breakerAllows, type ProbePermit } from './breaker-view';
import { traceAttempt, type Failure } from './attempt-observers';
import { withColdStart } from './cold-start';
import { assembledResponse, CompletionAssembler } from '../openai/assemble';
import { PhaseTimer } from './phase-timer';
import { createParser } from 'eventsource-parser';
import { noteProviderResponse, providerGate } from './provider-throttle';
import { observedP95 } from './ttft-history';
import type { Candidate } from './plan';
import { DeadlineError, relaySse, type StreamOutcome } from './sse-relay';
import type { ExecuteResult, Settled } from './types';

export type { ExecuteResult, Settled };
import { conformAnswer } from '../openai/conform';
import { bulkReader, type ChunkReader } from '../http/bulk-reader';

export interface ExecuteInput {
  config: CompiledConfig;
  env: Record<string, unknown>;
  /** For background work (breaker reports) that outlives the response. */
  ctx: { waitUntil(p: Promise<unknown>): void };
  endpoint: EndpointKind;
  /** The validated request body, as the client sent it. */
  body: Record<string, unknown>;
  candidates: readonly Candidate[];
  requestId: string;
  /** Aborts when the client goes away. */
  clientSignal: AbortSignal;
  /** Epoch ms by which the client must have an answer. */
  deadline: number;
  /** Called once when the answer is complete (for a stream: when it ends), for accounting. */
  onSettled?: (settled: Settled) => void;
  /** A streamed answer's upstream events (their data), as they are relayed; for the response cache. */
  onStreamEvent?: (data: string) => void;
}

/** A probe's lease outlives the attempt's deadline, so a probe that times out still reports in time to reopen the breaker. */
const PROBE_LEASE_MARGIN_MS = 5_000;

/**
 * A streaming client that has taken nothing for this long is gone (README "Request lifecycle"): a
 * client that disconnects before the response starts is not signalled by workerd, which just stops
 * reading; without this its stream would hold its backend slot and settle only at the deadline.
 */
const CLIENT_STALL_MS = 10_000;

/** Statuses that are the request's own fault: returned to the client as they are, never retried. */
const CLIENT_FAULT = new Set([400, 413, 422]);

/**
 * Tries the candidates in order, at most `max_attempts` of them, each under its backend's
 * timeouts and the request's deadline. Connect errors, timeouts, 5xx, 429 and upstream auth
 * failures move on to the next candidate; a request the backend rejects as malformed does not.
 * A streamed attempt is committed only once its first chunk has arrived, so a backend that
 * accepts and then stalls before the first token still falls through to the next one.
 */
export async function execute(input: ExecuteInput): Promise<ExecuteResult> {
  const { config, candidates } = input;
  const { retry_base_ms, retry_max_ms, hedging } = config.raw.routing;
  const stream = input.body.stream === true;
  const path: string[] = [];
  const failures: Failure[] = [];

  if (candidates.length === 0) {
    const error = errors.unavailable('No backend can serve this model right now.', 'no_backend_available');
    return { response: error.toResponse(), served: null, attempts: 0, path, upstreamFailed: true, error };
  }

  // i walks the chain (and its retries); an attempt is a backend call (path). A candidate whose
  // breaker says no is skipped without spending an attempt.
  for (let i = 0; path.length < config.raw.max_attempts && i < config.raw.max_attempts + candidates.length; i++) {
    if (input.clientSignal.aborted) break;
    const candidate = candidates[i % candidates.length]!;
    if (providerGate(candidate.backend.id) === 'throttled') continue; // a provider's 429: no retry there (nor waiting for it) before its reset
    if (i >= candidates.length) {
      // Every candidate has had its turn: retry from the top after a backoff (exponential,
      // full jitter), or after the backend's Retry-After if it asked for longer, so long as
      // the retry can start before the deadline.
      const round = Math.floor(i / candidates.length);
      const backoff = Math.random() * Math.min(retry_max_ms, retry_base_ms * 2 ** (round - 1));
      const wait = Math.max(backoff, failures[i - candidates.length]?.retryAfterMs ?? 0);
      if (Date.now() + wait >= input.deadline) break;
      await sleep(wait, input.clientSignal);
      if (input.clientSignal.aborted) break;
    }
    if (Date.now() >= input.deadline) {
      failures.push({ kind: 'timeout', message: 'deadline reached before this attempt' });
      break;
    }
    let probe: ProbePermit | null = null;
    const gate = breakerAllows(candidate.backend.id);
    if (gate !== 'closed') {
      // Open (since the plan was made): skip. Half-open: only a probe permit lets it through (one hop).
      const permit = gate === 'half-open' ? await acquireProbe(input.env, config, candidate.backend.id, { leaseMs: Math.max(1_000, input.deadline - Date.now()) + PROBE_LEASE_MARGIN_MS }) : null;
      if (permit === null) continue;
      if (permit !== 'closed') probe = permit;
    }
    path.push(candidate.backend.id);
    // A hedge partner: the next candidate of this pass, if it may be tried now (no probe needed).
    const next = i + 1 < candidates.length ? candidates[i + 1]! : null;
    const partner = hedging.enabled && next && path.length < config.raw.max_attempts && breakerAllows(next.backend.id) === 'closed' && providerGate(next.backend.id) !== 'throttled' ? next : null;
    const run = partner
      ? await hedged(input, { candidate, probe }, partner, hedgeDelay(hedging, candidate.backend.id), stream, () => path.push(partner.backend.id))
      : { winner: candidate, outcome: await attempt(input, candidate, stream, probe, { ...(input.onSettled ? { onSettled: input.onSettled } : {}) }), other: null };
    if (run.other) {
      i++; // the partner had its turn
      failures.push(run.other);
    }
    const outcome = run.outcome;
    if ('response' in outcome) return { response: outcome.response, served: run.winner, attempts: path.length, path, upstreamFailed: false, ...(outcome.error ? { error: outcome.error } : {}) };
    failures.push(outcome.failure);
    if (outcome.final) return { response: outcome.final.toResponse(), served: run.winner, attempts: path.length, path, upstreamFailed: false, error: outcome.final };
  }

  if (input.clientSignal.aborted) {
    // Nobody is listening; the status only shows in logs and usage records.
    return { response: CLIENT_CLOSED.toResponse(), served: null, attempts: path.length, path, upstreamFailed: false, error: CLIENT_CLOSED };
  }
  const summary = path.map((id, i) => `${id}: ${failures[i]?.message ?? 'not tried'}`).join('; ') || 'no attempt fitted the deadline';
  const error = failures.at(-1)?.kind === 'timeout'
    ? errors.timeout(`The upstream did not answer in time (${summary}).`)
    : errors.badGateway(`No upstream could answer (${summary}).`);
  return { response: error.toResponse(), served: null, attempts: path.length, path, upstreamFailed: true, error };
}

/** How long an attempt may go without a first token before its hedge starts. */
function hedgeDelay(h: RoutingConfig['hedging'], backendId: string): number {
  const p95 = observedP95(backendId, h.min_samples);
  return p95 === null ? h.max_ms : Math.min(h.max_ms, Math.max(h.min_ms, Math.round(h.multiplier * p95)));
}

type HedgeRun = { winner: Candidate; outcome: AttemptOutcome; other: Failure | null };

/**
 * One attempt on `first`; if it has not answered (first token, or the whole answer without a
 * stream) after `delayMs`, the same request goes to `partner` too, and the first of the two to
 * answer wins: the other is cancelled (counted against nothing, settled with nothing: it had not
 * answered, so it had generated nothing but the prompt). Only the winner's settlement reaches the
 * request. A failure of either leaves the other running alone. `other` is the partner's failure, or
 * the loser's, when the partner was started.
 */
async function hedged(input: ExecuteInput, first: { candidate: Candidate; probe: ProbePermit | null }, partner: Candidate, delayMs: number, stream: boolean, started: () => void): Promise<HedgeRun> {
  type Side = { candidate: Candidate; cancel: AbortController; done: Promise<AttemptOutcome>; outcome: AttemptOutcome | null };
  let winner: Side | null = null;
  let answered: () => void = () => {};
  const firstAnswer = new Promise<void>((resolve) => (answered = resolve));
  const start = (candidate: Candidate, probe: ProbePermit | null): Side => {
    const side: Side = { candidate, cancel: new AbortController(), done: null as unknown as Promise<AttemptOutcome>, outcome: null };
    side.done = attempt(input, candidate, stream, probe, {
      cancel: side.cancel.signal,
      onFirst: () => {
        if (winner) return;
        winner = side;
        for (const o of sides) if (o !== side) o.cancel.abort('hedge lost');
        answered();
      },
      onSettled: (s) => {
        if (winner === side) input.onSettled?.(s);
      },
    }).then((o) => (side.outcome = o));
    return side;
  };
  const sides: Side[] = [];
  const a = start(first.candidate, first.probe);
  sides.push(a);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hedgeDue = new Promise<'hedge'>((resolve) => (timer = setTimeout(() => resolve('hedge'), Math.max(0, Math.min(delayMs, input.deadline - Date.now())))));
  const why = await Promise.race([a.done.then(() => 'done' as const), firstAnswer.then(() => 'answered' as const), hedgeDue]);
  clearTimeout(timer ?? null);
  if (why !== 'hedge' || input.clientSignal.aborted) return { winner: a.candidate, outcome: await a.done, other: null };

  started();
  const b = start(partner, null);
  sides.push(b);
  // Whichever answers first wins; a side that fails first leaves the other to finish alone.
  const firstDone = await Promise.race([firstAnswer.then(() => null), a.done.then(() => a), b.done.then(() => b)]);
  const lead: Side = winner ?? firstDone!;
  const rest = lead === a ? b : a;
  const leadOutcome = await lead.done;
  if ('response' in leadOutcome || leadOutcome.final) {
    if (winner !== lead) rest.cancel.abort('hedge lost'); // answered without a first token of its own (an error the client must see)
    const restOutcome = await rest.done;
    // A loser that still answered (its first chunk arrived as it was cancelled): nobody reads it.
    if ('response' in restOutcome) await restOutcome.response.body?.cancel().catch(() => {});
    return { winner: lead.candidate, outcome: leadOutcome, other: 'failure' in restOutcome ? restOutcome.failure : { kind: 'connect', message: 'hedge lost' } };
  }
  // The lead failed: the other side is the request's answer, whatever it gives.
  const restOutcome = await rest.done;
  return rest === a ? { winner: a.candidate, outcome: restOutcome, other: leadOutcome.failure } : { winner: b.candidate, outcome: restOutcome, other: leadOutcome.failure };
}

/** The answer to a client that has gone: nobody reads it; the status shows in logs and usage records. */
const CLIENT_CLOSED = new RouterError(400, 'The client closed the request.', 'client_closed');

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** Retry-After in seconds or as an HTTP date, in ms; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : null;
}

type AttemptOutcome = { response: Response; error?: RouterError } | { failure: Failure; final?: RouterError };

/**
 * Kinds the router streams from for every request (non-streamed clients get the answer assembled),
 * so TTFT is measured and bounded by ttft_ms for every request. The others are asked as the client
 * asked: Replicate and Triton (their streamed and held calls differ in cost and contract) and, for
 * now, Modal, whose adapter answers a long held call through Modal's 303-to-result-URL flow
 * (README "Request lifecycle"). Embeddings never stream.
 */
const STREAMING_KINDS = new Set(['vllm', 'trtllm', 'openai']);
export const streamsUpstream = (kind: string, endpoint: EndpointKind) => endpoint !== 'embeddings' && STREAMING_KINDS.has(kind);

/** What one attempt reports to its caller, and how the caller may cancel it (a hedge that lost). */
interface AttemptHooks {
  /** This attempt's settlement (the executor forwards only the served attempt's). */
  onSettled?: (s: Settled) => void;
  /** The backend's first token (or its whole answer, without a stream). */
  onFirst?: () => void;
  /** Aborts the attempt; it then counts nothing against the backend and settles nothing. */
  cancel?: AbortSignal;
}

async function attempt(input: ExecuteInput, candidate: Candidate, clientStream: boolean, probe: ProbePermit | null, hooks: AttemptHooks): Promise<AttemptOutcome> {
  const { backend, model } = candidate;
  const t: Timeouts = withColdStart({ ...input.config.raw.timeouts, ...backend.timeouts }, candidate.coldStartWaitMs);
  const stream = clientStream || streamsUpstream(backend.kind, input.endpoint);
  const started = Date.now();
  const totalEnd = Math.min(started + t.total_ms, input.deadline);
  const controller = new AbortController();
  const abort = (reason: string) => controller.abort(reason);
  const onClientAbort = () => abort('client closed');
  const onCancel = () => abort('hedge lost');
  input.clientSignal.addEventListener('abort', onClientAbort);
  hooks.cancel?.addEventListener('abort', onCancel);
  // `stream` as the client asked: the lifecycle keeps a normal answer time per kind of request, as the cold-start planner reads it.
  const trace = traceAttempt({ config: input.config, env: input.env, ctx: input.ctx, backend, stream: clientStream, probe, at: started });
  const timer = new PhaseTimer();
  let timedOut: string | null = null;
  const arm = (ms: number, phase: string) =>
    timer.set(Math.min(Date.now() + ms, totalEnd), () => {
      timedOut = phase;
      abort(`timeout: ${phase}`);
    });
  const cleanup = () => {
    timer.clear();
    input.clientSignal.removeEventListener('abort', onClientAbort);
    hooks.cancel?.removeEventListener('abort', onCancel);
    trace.end();
  };
  const fail = (failure: Failure, final?: RouterError): AttemptOutcome => {
    // A client that left says nothing about the backend; nor does a request it judged invalid.
    trace.failed(failure, !final && !input.clientSignal.aborted && !hooks.cancel?.aborted);
    cleanup();
    return { failure, ...(final ? { final } : {}) };
  };
  const thrown = (e: unknown): AttemptOutcome =>
    timedOut
      ? fail({ kind: 'timeout', message: `timed out (${timedOut})` })
      : fail({ kind: 'connect', message: controller.signal.aborted ? String(controller.signal.reason) : `connect error: ${(e as Error).message}` });

  const body: Record<string, unknown> = { ...input.body, model: model.served_name ?? model.id };
  if (stream) {
    // Always ask for usage so every stream can be counted; relaySse drops it if the client did not ask.
    body.stream = true;
    body.stream_options = { ...(input.body.stream_options as object | undefined), include_usage: true };
  }

  let res: Response;
  try {
    // Without a stream the whole answer is the "first token": ttft_ms bounds it for embeddings;
    // Replicate and Triton generate the whole answer before replying, so only total_ms bounds theirs.
    if (stream) arm(Math.min(t.connect_ms, t.ttft_ms), 'connect');
    else if (input.endpoint === 'embeddings') arm(t.ttft_ms, 'first token');
    else arm(t.total_ms, 'total');
    res = await adapterFor(backend).send(backend, { endpoint: input.endpoint, body, stream, requestId: input.requestId }, {
      signal: controller.signal,
      secret: backendSecret(backend, input.env),
      env: input.env,
      deadline: totalEnd,
      waitUntil: (p) => input.ctx.waitUntil(p),
    });
  } catch (e) {
    return thrown(e);
  }
  noteProviderResponse(backend, res); // managed providers' rate-limit headers and 429s (provider-throttle.ts)

  if (!res.ok) {
    const detail = await upstreamErrorMessage(res).catch(() => '');
    if (CLIENT_FAULT.has(res.status)) {
      // The backend judged the request itself invalid (context too long, bad parameter): the client's to fix.
      return fail({ kind: 'status', status: res.status, message: `${res.status}` }, new RouterError(res.status === 413 ? 413 : 400, detail || `The backend rejected the request (${res.status}).`, 'upstream_rejected_request'));
    }
    return fail({
      kind: 'status',
      status: res.status,
      message: `${res.status}${detail ? ` ${truncate(detail, 120)}` : ''}`,
      retryAfterMs: retryAfterMs(res.headers.get('retry-after')),
    });
  }

  if (!stream) {
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      return thrown(e);
    }
    const at = Date.now();
    trace.answered(at);
    hooks.onFirst?.();
    trace.succeeded();
    cleanup();
    hooks.onSettled?.({ candidate, status: 'completed', usage: usageOf(text), ttftMs: input.endpoint === 'embeddings' ? at - started : null, totalMs: at - started });
    return { response: new Response(conformAnswer(text), { status: res.status, headers: { 'content-type': res.headers.get('content-type') ?? 'application/json', ...usageHeader(res) } }) };
  }

  // Streamed: wait for the first chunk before committing to this backend.
  if (!res.body) return fail({ kind: 'status', message: 'empty body' });
  // A non-streamed client's answer is only used at the end: read it in as few runtime reads as possible.
  const reader: ChunkReader = clientStream ? res.body.getReader() : bulkReader(res.body);
  let first: ReadableStreamReadResult<Uint8Array>;
  try {
    arm(t.ttft_ms - (Date.now() - started), 'first token'); // ttft_ms counts from the attempt's start
    first = await reader.read();
  } catch (e) {
    return thrown(e);
  }
  if (first.done) return fail({ kind: 'status', message: 'stream closed before the first chunk' });
  const ttftMs = Date.now() - started;
  trace.answered(Date.now());
  hooks.onFirst?.();

  let rejectDeadline: (e: Error) => void = () => {};
  const deadline = new Promise<never>((_, reject) => (rejectDeadline = reject));
  deadline.catch(() => {});
  timer.set(totalEnd, () => rejectDeadline(new DeadlineError('total timeout')));
  const settle = (outcome: StreamOutcome) => {
    // No usage chunk (the client left, the stream failed, or a backend that sends none): count what was relayed.
    const usage = outcome.usage ?? estimateStreamUsage(input.endpoint, input.body, outcome.contentChunks);
    hooks.onSettled?.({ candidate, status: outcome.status, usage, ttftMs, totalMs: Date.now() - started });
  };

  if (!clientStream) return assembleAnswer(input, candidate, { reader, first: first.value, abort, deadline, trace, fail, cleanup, settle, res, ...(hooks.cancel ? { cancel: hooks.cancel } : {}) });

  // The client streams: committed from the first chunk on (a later failure cannot move to another backend).
  trace.succeeded();
  const clientWantsUsage = (input.body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const relayed = relaySse({
    reader,
    first: first.value,
    clientWantsUsage,
    abort,
    deadline,
    signal: input.clientSignal,
    stallMs: CLIENT_STALL_MS,
    ...(input.onStreamEvent ? { onEvent: input.onStreamEvent } : {}),
    onDone: (outcome) => {
      cleanup();
      settle(outcome);
    },
  });
  return {
    response: new Response(relayed, {
      status: 200,
      headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...usageHeader(res) },
    }),
  };
}

interface Streaming {
  /** Its chunks are valid until the next read (bulk-reader.ts): each is decoded before reading on. */
  reader: ChunkReader;
  first: Uint8Array;
  abort: (reason: string) => void;
  deadline: Promise<never>;
  trace: ReturnType<typeof traceAttempt>;
  fail: (f: Failure) => AttemptOutcome;
  cleanup: () => void;
  settle: (o: StreamOutcome) => void;
  res: Response;
  /** A hedge that lost: its failure counts nothing (attempt's fail() checks the same signal). */
  cancel?: AbortSignal;
}

/**
 * A non-streamed client over a streamed upstream: the chunks are read to the end and assembled
 * into the JSON answer. Until the last chunk nothing has reached the client, so a stream that
 * fails or runs out of time is an attempt failure like any other (the next candidate is tried);
 * a client that leaves settles what was generated so far.
 */
async function assembleAnswer(input: ExecuteInput, candidate: Candidate, s: Streaming): Promise<AttemptOutcome> {
  // Read straight from the upstream body (no relay stream in between: nothing reaches the client
  // until the end, so the events only need parsing and merging).
  const assembler = new CompletionAssembler(input.endpoint === 'completions' ? 'completions' : 'chat');
  const decoder = new TextDecoder();
  let sawDone = false;
  const parser = createParser({
    onEvent: (e) => {
      if (e.data === '[DONE]') sawDone = true;
      else assembler.add(e.data);
    },
  });
  let failure: StreamOutcome['status'] | null = null;
  try {
    parser.feed(decoder.decode(s.first, { stream: true }));
    for (;;) {
      const r = await Promise.race([s.reader.read(), s.deadline]);
      if (r.done) break;
      parser.feed(decoder.decode(r.value, { stream: true }));
    }
    parser.feed(decoder.decode());
    if (!sawDone) failure = 'upstream_error';
  } catch (e) {
    failure = input.clientSignal.aborted ? 'client_closed' : s.cancel?.aborted ? 'upstream_error' : e instanceof DeadlineError ? 'timeout' : 'upstream_error';
  }
  const outcome = (status: StreamOutcome['status']): StreamOutcome => ({ status, usage: readUsage(assembler.reportedUsage), chunks: 0, contentChunks: assembler.textChunks });
  if (failure === 'client_closed') {
    // Nobody is listening; what was generated is settled and recorded against this backend.
    s.trace.failed({ kind: 'connect', message: 'client closed' }, false);
    s.cleanup();
    s.settle(outcome('client_closed'));
    return { response: CLIENT_CLOSED.toResponse(), error: CLIENT_CLOSED };
  }
  if (failure !== null) {
    s.abort(failure === 'timeout' ? 'timeout' : 'upstream error');
    s.reader.cancel().catch(() => {});
    return s.fail(failure === 'timeout' ? { kind: 'timeout', message: 'timed out (total)' } : { kind: 'connect', message: 'upstream stream failed' });
  }
  s.trace.succeeded();
  s.cleanup();
  s.settle(outcome('completed'));
  return { response: assembledResponse(assembler.result(), usageHeader(s.res)) };
}

/** An adapter's x-router-usage (its usage is the router's estimate), kept on the answer. */
function usageHeader(res: Response): Record<string, string> {
  const value = res.headers.get(USAGE_HEADER);
  return value ? { [USAGE_HEADER]: value } : {};
}

function usageOf(text: string): Usage | null {
  try {
    return readUsage((JSON.parse(text) as { usage?: unknown }).usage);
  } catch {
    return null;
  }
}

/** The message of an upstream error body, in OpenAI's format or vLLM's older flat one. */
async function upstreamErrorMessage(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const json = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    if (typeof json.error === 'object' && typeof json.error?.message === 'string') return json.error.message;
    if (typeof json.error === 'string') return json.error;
    if (typeof json.message === 'string') return json.message;
    if (typeof json.detail === 'string') return json.detail;
  } catch {
    // not JSON
  }
  return truncate(text.trim(), 500);
}

const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

export type { ErrorStatus };
