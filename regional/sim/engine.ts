/**
 * Execution of accepted inference requests: a job per request that waits for a sequence
 * slot (scheduler.ts), looks its prompt up in the prefix cache, then produces its tokens
 * on the latency model's schedule, streaming (SSE) or as one JSON body.
 *
 * With every delay at zero a job runs to completion synchronously inside `submit()`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FinishedReason } from './metrics.js';
import type { Generation } from './generate.js';
import type { RenderedPrompt } from './prompt.js';
import type { SchedJob } from './scheduler.js';
import type { RequestRecord } from './state.js';
import type { Sim } from './sim.js';
import {
  chatCompletionJson,
  chatContentChunk,
  chatContinuousUsage,
  chatRoleChunk,
  type ChoiceOut,
  chunkHead,
  completionChunk,
  completionContinuousUsage,
  completionJson,
  DONE,
  embeddingResponseJson,
  usageChunk,
} from './wire.js';

/** Headers of a streaming answer (what uvicorn/Starlette send for text/event-stream). */
export const SSE_HEADERS = ['content-type', 'text/event-stream; charset=utf-8', 'server', 'uvicorn'];

/**
 * One HTTP exchange on its way through the async phases (body, wake, fault delay,
 * queue, generation). `cleanup` is what to undo if the client goes away in the current phase.
 */
export class Exchange {
  closed = false;
  cleanup: (() => void) | null = null;
  private watching = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly path: string,
  ) {}

  /** Starts listening for a client disconnect (only needed once the exchange goes async). */
  watch(): void {
    if (this.watching) return;
    this.watching = true;
    this.res.once('close', () => {
      if (this.res.writableFinished) return;
      this.closed = true;
      const c = this.cleanup;
      this.cleanup = null;
      if (c) c();
    });
  }
}

export interface Seq {
  /** Choice index in the response. */
  index: number;
  gen: Generation;
  /** Tokens streamed so far. */
  sent: number;
}

export interface GenJobInit {
  kind: 'chat' | 'completion';
  model: string;
  modelJson: string;
  stream: boolean;
  includeUsage: boolean;
  continuousUsage: boolean;
  prompts: RenderedPrompt[];
  /** Per prompt: chained block hashes for the prefix cache. */
  hashes: number[][];
  promptTokens: number;
  seqs: Seq[];
  id: string;
  created: number;
}

export abstract class BaseJob implements SchedJob {
  schedState = 0;
  enqueuedAt = 0;
  done = false;
  startedAt = -1;
  firstTokenAt = -1;
  cached = 0;
  modelTtft = 0;
  protected timer: NodeJS.Timeout | null = null;

  constructor(
    protected readonly sim: Sim,
    readonly ex: Exchange,
  ) {}

  abstract start(): void;
  /** KV blocks this running job holds (for vllm:kv_cache_usage_perc). */
  abstract blocksHeld(now: number): number;
  protected abstract record(status: number, aborted: boolean, finish: string | null, completion: number): RequestRecord;

  /** Hands the job to the scheduler and watches for a client disconnect if it did not finish synchronously. */
  submit(): void {
    this.enqueuedAt = performance.now();
    this.sim.active.add(this);
    this.sim.scheduler.submit(this);
    if (!this.done) {
      this.ex.watch();
      this.ex.cleanup = () => this.abort();
    }
  }

  /** Client went away (or the server is closing): free the slot, stop producing. */
  abort(): void {
    if (this.done) return;
    this.finishBookkeeping();
    const n = this.choicesCount();
    this.sim.metrics.success.abort += n;
    this.sim.stats.aborted++;
    this.sim.stats.addRecord(this.record(499, true, 'abort', this.tokensSoFar()));
    this.sim.scheduler.release(this);
  }

  /** drop_after_tokens fault: cut the connection. */
  protected drop(pending: string): void {
    this.finishBookkeeping();
    this.sim.stats.faults.drops++;
    this.sim.metrics.success.abort += this.choicesCount();
    this.sim.stats.addRecord(this.record(0, true, 'dropped', this.tokensSoFar()));
    const res = this.ex.res;
    if (pending.length > 0 && !res.destroyed) res.write(pending, () => res.destroy());
    else res.destroy();
    this.sim.scheduler.release(this);
  }

  protected finishBookkeeping(): void {
    this.done = true;
    this.ex.cleanup = null;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.sim.active.delete(this);
    this.sim.lifecycle.touch();
  }

  protected choicesCount(): number {
    return 1;
  }

  protected tokensSoFar(): number {
    return 0;
  }
}

export class GenJob extends BaseJob {
  private readonly p: GenJobInit;
  private readonly steps: number;
  private step = 0;
  private itl = 0;
  private contentSent = 0;
  private readonly head: string;
  private readonly drop_after: number | null;

  constructor(sim: Sim, ex: Exchange, init: GenJobInit) {
    super(sim, ex);
    this.p = init;
    let steps = 0;
    for (const s of init.seqs) steps = Math.max(steps, s.gen.pieces.length);
    this.steps = steps;
    this.head = init.stream ? chunkHead(init.kind, init.id, init.created, init.modelJson) : '';
    this.drop_after = sim.faults.active ? sim.faults.current.drop_after_tokens : null;
  }

  override submit(): void {
    const { res } = this.ex;
    if (this.p.stream) {
      this.sim.stats.streams++;
      this.sim.stats.countResponse(200);
      // Headers go out at acceptance, before the slot/first token (like Starlette's StreamingResponse).
      res.writeHead(200, SSE_HEADERS);
    }
    super.submit();
    // Still waiting for a slot or the first token: send the headers now. (When the job
    // completed synchronously, headers and body already left together in one write.)
    if (this.p.stream && !this.done && this.step === 0) res.flushHeaders();
  }

  start(): void {
    const sim = this.sim;
    const now = performance.now();
    this.startedAt = now;
    const { prompts, hashes } = this.p;
    let cached = 0;
    for (let i = 0; i < prompts.length; i++) {
      cached += sim.prefixCache.lookup(hashes[i] as number[], (prompts[i] as RenderedPrompt).tokens.length);
    }
    this.cached = cached;
    sim.metrics.prefixQueries += this.p.promptTokens;
    sim.metrics.prefixHits += cached;
    sim.metrics.queue.observe((now - this.enqueuedAt) / 1000);
    const cfg = sim.config;
    this.modelTtft = cfg.base_ttft_ms + cfg.prefill_ms_per_token * (this.p.promptTokens - cached);
    this.itl = cfg.itl_ms;
    if (this.modelTtft <= 0) {
      // First token right away; with itl 0 too the whole request completes here, no timers at all.
      this.firstToken(now);
      this.advance(now);
      return;
    }
    this.timer = setTimeout(this.onTimer, this.modelTtft);
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.done) return;
    const now = performance.now();
    if (this.firstTokenAt < 0) this.firstToken(now);
    this.advance(now);
  };

  private firstToken(now: number): void {
    const sim = this.sim;
    this.firstTokenAt = now;
    for (const h of this.p.hashes) sim.prefixCache.insert(h);
    sim.metrics.ttft.observe((now - this.enqueuedAt) / 1000);
    sim.metrics.promptTokens += this.p.promptTokens;
    sim.stats.tokens.prompt += this.p.promptTokens;
    sim.stats.tokens.cached += this.cached;
  }

  /** Emits everything due by `now`, then completes or re-arms the timer. */
  private advance(now: number): void {
    const itl = this.itl;
    // Steps due: token k is due at firstTokenAt + k·itl (1 ms tolerance for timer rounding).
    const due = itl <= 0 ? this.steps : Math.min(this.steps, Math.floor((now + 1 - this.firstTokenAt) / itl) + 1);
    if (!this.p.stream) {
      if (due >= this.steps) this.completeJson(now);
      else this.rearm(now);
      return;
    }
    const out = this.emitStream(due);
    if (out === null) return; // dropped
    const res = this.ex.res;
    if (this.step >= this.steps) {
      let tail = out;
      if (this.p.includeUsage) tail += usageChunk(this.head, this.usage());
      tail += DONE;
      this.complete(now, 200);
      res.end(tail);
    } else {
      if (out.length > 0) res.write(out);
      this.rearm(now);
    }
  }

  private rearm(now: number): void {
    const nextStep = this.p.stream ? this.step : this.steps - 1;
    const at = this.firstTokenAt + nextStep * this.itl;
    this.timer = setTimeout(this.onTimer, Math.max(1, at - now));
  }

  /** SSE text for steps [step, target); null if the drop fault fired (connection cut). */
  private emitStream(target: number): string | null {
    const { seqs, kind, continuousUsage, promptTokens } = this.p;
    const head = this.head;
    let out = '';
    if (this.step === 0 && kind === 'chat' && target > 0) {
      for (const s of seqs) out += chatRoleChunk(head, s.index, continuousUsage ? chatContinuousUsage(promptTokens, 0) : null);
    }
    const drop = this.drop_after;
    let emitted = 0;
    for (; this.step < target; this.step++) {
      const k = this.step;
      for (let i = 0; i < seqs.length; i++) {
        const s = seqs[i] as Seq;
        const pieces = s.gen.pieces;
        if (k >= pieces.length) continue;
        if (drop !== null && this.contentSent >= drop) {
          this.sim.metrics.generationTokens += emitted;
          this.drop(out);
          return null;
        }
        const last = k === pieces.length - 1;
        s.sent++;
        this.contentSent++;
        emitted++;
        const usage = continuousUsage
          ? kind === 'chat'
            ? chatContinuousUsage(promptTokens, s.sent)
            : completionContinuousUsage(promptTokens, s.sent)
          : null;
        const fin = last ? s.gen.finishReason : null;
        const stop = last ? s.gen.stopReason : null;
        out +=
          kind === 'chat'
            ? chatContentChunk(head, s.index, pieces[k] as string, fin, stop, usage)
            : completionChunk(head, s.index, pieces[k] as string, fin, stop, usage);
      }
    }
    this.sim.metrics.generationTokens += emitted;
    return out;
  }

  private usage(): { prompt: number; completion: number; cached: number } {
    let completion = 0;
    for (const s of this.p.seqs) completion += s.gen.tokens;
    return { prompt: this.p.promptTokens, completion, cached: this.cached };
  }

  private completeJson(now: number): void {
    if (this.drop_after !== null) {
      this.drop('');
      return;
    }
    const { seqs, kind, id, created, modelJson } = this.p;
    const choices: ChoiceOut[] = new Array<ChoiceOut>(seqs.length);
    for (let i = 0; i < seqs.length; i++) {
      const s = seqs[i] as Seq;
      choices[i] = { index: s.index, text: s.gen.text, finishReason: s.gen.finishReason, stopReason: s.gen.stopReason };
    }
    const usage = this.usage();
    this.sim.metrics.generationTokens += usage.completion;
    const body =
      kind === 'chat' ? chatCompletionJson(id, created, modelJson, choices, usage) : completionJson(id, created, modelJson, choices, usage);
    this.complete(now, 200);
    this.sim.sendJson(this.ex.res, 200, body);
  }

  /** Bookkeeping of a successful finish; the caller writes the last bytes. */
  private complete(now: number, status: number): void {
    const sim = this.sim;
    this.finishBookkeeping();
    const m = sim.metrics;
    m.e2e.observe((now - this.enqueuedAt) / 1000);
    let completion = 0;
    for (const s of this.p.seqs) {
      const g = s.gen;
      completion += g.tokens;
      m.success[g.finishReason as FinishedReason]++;
      if (g.tokens > 1) m.tpot.observe((now - this.firstTokenAt) / 1000 / (g.tokens - 1));
    }
    sim.stats.completed++;
    sim.stats.tokens.completion += completion;
    const first = this.p.seqs[0];
    sim.stats.addRecord(this.record(status, false, first ? first.gen.finishReason : null, completion));
    sim.scheduler.release(this);
  }

  protected override record(status: number, aborted: boolean, finish: string | null, completion: number): RequestRecord {
    const now = performance.now();
    return {
      id: (this.p.kind === 'chat' ? 'chatcmpl-' : 'cmpl-') + this.p.id,
      endpoint: this.ex.path,
      model: this.p.model,
      stream: this.p.stream,
      status,
      prompt_tokens: this.p.promptTokens,
      cached_tokens: this.cached,
      completion_tokens: completion,
      queue_ms: round3(this.startedAt < 0 ? now - this.enqueuedAt : this.startedAt - this.enqueuedAt),
      model_ttft_ms: round3(this.modelTtft),
      ttft_ms: this.firstTokenAt < 0 ? null : round3(this.firstTokenAt - this.enqueuedAt),
      e2e_ms: round3(now - this.enqueuedAt),
      finish_reason: finish,
      aborted,
    };
  }

  protected override choicesCount(): number {
    return this.p.seqs.length;
  }

  protected override tokensSoFar(): number {
    if (this.p.stream) {
      let n = 0;
      for (const s of this.p.seqs) n += s.sent;
      return n;
    }
    return this.estimateGenerated(performance.now());
  }

  private estimateGenerated(now: number): number {
    if (this.firstTokenAt < 0) return 0;
    const k = this.itl <= 0 ? this.steps : Math.min(this.steps, Math.floor((now - this.firstTokenAt) / this.itl) + 1);
    return k * this.p.seqs.length;
  }

  blocksHeld(now: number): number {
    const gen = this.p.stream ? this.tokensSoFar() : this.estimateGenerated(now);
    return Math.ceil((this.p.promptTokens + gen) / this.sim.prefixCache.blockTokens);
  }
}

export interface EmbedJobInit {
  model: string;
  modelJson: string;
  /** JSON value of each embedding, in input order. */
  vectors: () => string[];
  promptTokens: number;
  id: string;
  created: number;
}

/** An embeddings request: prefill only (no prefix caching, like vLLM for pooling models). */
export class EmbedJob extends BaseJob {
  constructor(
    sim: Sim,
    ex: Exchange,
    private readonly p: EmbedJobInit,
  ) {
    super(sim, ex);
  }

  start(): void {
    const sim = this.sim;
    const now = performance.now();
    this.startedAt = now;
    sim.metrics.queue.observe((now - this.enqueuedAt) / 1000);
    const cfg = sim.config;
    this.modelTtft = cfg.base_ttft_ms + cfg.prefill_ms_per_token * this.p.promptTokens;
    if (this.modelTtft <= 0) {
      this.finish(now);
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.done) this.finish(performance.now());
    }, this.modelTtft);
  }

  private finish(now: number): void {
    const sim = this.sim;
    if (sim.faults.active && sim.faults.current.drop_after_tokens !== null) {
      this.drop('');
      return;
    }
    this.firstTokenAt = now;
    const body = embeddingResponseJson(this.p.id, this.p.created, this.p.modelJson, this.p.vectors(), this.p.promptTokens);
    this.finishBookkeeping();
    const m = sim.metrics;
    m.ttft.observe((now - this.enqueuedAt) / 1000);
    m.e2e.observe((now - this.enqueuedAt) / 1000);
    m.promptTokens += this.p.promptTokens;
    m.success.stop++;
    sim.stats.completed++;
    sim.stats.tokens.prompt += this.p.promptTokens;
    sim.stats.addRecord(this.record(200, false, 'stop', 0));
    sim.scheduler.release(this);
    sim.sendJson(this.ex.res, 200, body);
  }

  blocksHeld(): number {
    return Math.ceil(this.p.promptTokens / this.sim.prefixCache.blockTokens);
  }

  protected override record(status: number, aborted: boolean, finish: string | null, completion: number): RequestRecord {
    const now = performance.now();
    return {
      id: `embd-${this.p.id}`,
      endpoint: this.ex.path,
      model: this.p.model,
      stream: false,
      status,
      prompt_tokens: this.p.promptTokens,
      cached_tokens: 0,
      completion_tokens: completion,
      queue_ms: round3(this.startedAt < 0 ? now - this.enqueuedAt : this.startedAt - this.enqueuedAt),
      model_ttft_ms: round3(this.modelTtft),
      ttft_ms: this.firstTokenAt < 0 ? null : round3(this.firstTokenAt - this.enqueuedAt),
      e2e_ms: round3(now - this.enqueuedAt),
      finish_reason: finish,
      aborted,
    };
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export type Job = BaseJob;
