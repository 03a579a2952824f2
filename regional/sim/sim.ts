/**
 * One simulated vLLM server: state + HTTP request handling (node:http, no framework).
 * See README.md for the endpoints and how each maps to vLLM.
 */
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { embeddingJson, embedVector } from './embeddings.js';
import { EmbedJob, Exchange, GenJob, type Job, type Seq } from './engine.js';
import { errorTypeFor, type Faults, FaultsInputSchema, FaultState } from './faults.js';
import { generate } from './generate.js';
import { pyFloat, SimMetrics } from './metrics.js';
import {
  type ResolvedSimOptions,
  type SimConfig,
  type SimConfigUpdate,
  SimConfigUpdateSchema,
} from './options.js';
import { cacheRoot, PrefixCache } from './prefix-cache.js';
import { QualityKnobs } from './quality.js';
import { PromptError, type RenderedPrompt, renderChat, renderCompletionPrompts, renderEmbeddingInputs } from './prompt.js';
import { Scheduler } from './scheduler.js';
import { type Lifecycle, LifecycleState, type RequestRecord, SimStats } from './state.js';
import { errorJson, randomId } from './wire.js';

type Kind = 'chat' | 'completion' | 'embedding';

/** `GET /sim/stats` → `requests` keys: a short name per endpoint. */
const ENDPOINT_KEYS: Record<string, string> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
  '/v1/models': 'models',
  '/health': 'health',
  '/ping': 'ping',
  '/metrics': 'metrics',
  '/version': 'version',
  '/load': 'load',
};

function endpointKey(path: string): string {
  return ENDPOINT_KEYS[path] ?? (path.startsWith('/sim/') ? 'control' : 'other');
}

/** The vLLM version whose wire format the sim follows (answered on GET /version). */
export const VLLM_VERSION = '0.10.1';

const JSON_CT = 'application/json';

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class RequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly type = 'BadRequestError',
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

function pydanticError(type: string, loc: string, msg: string): RequestError {
  return new RequestError(`[{'type': '${type}', 'loc': ('body', '${loc}'), 'msg': '${msg}'}]`);
}

function optBool(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw pydanticError('bool_type', key, 'Input should be a valid boolean');
  return v;
}

function optInt(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw pydanticError('int_type', key, 'Input should be a valid integer');
  return v;
}

function optNum(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw pydanticError('float_type', key, 'Input should be a valid number');
  return v;
}

interface Sampling {
  stream: boolean;
  includeUsage: boolean;
  continuousUsage: boolean;
  n: number;
  maxTokens: number | undefined;
  seed: number | undefined;
  stop: string[] | undefined;
  ignoreEos: boolean;
  includeStopStr: boolean;
}

/** Field-level validation, like vLLM's pydantic request models (extra fields are accepted and ignored). */
function parseSampling(body: Record<string, unknown>): Sampling {
  const stream = optBool(body, 'stream') ?? false;
  const so = body.stream_options;
  let includeUsage = false;
  let continuousUsage = false;
  if (so !== undefined && so !== null) {
    if (!isObj(so)) throw pydanticError('model_type', 'stream_options', 'Input should be a valid dictionary or instance of StreamOptions');
    if (!stream) throw new RequestError('Stream options can only be defined when `stream=True`.');
    // vLLM's StreamOptions defaults include_usage to True once stream_options is present.
    includeUsage = so.include_usage === undefined || so.include_usage === null ? true : so.include_usage === true;
    continuousUsage = includeUsage && so.continuous_usage_stats === true;
  }
  const n = optInt(body, 'n') ?? 1;
  const maxCompletion = optInt(body, 'max_completion_tokens');
  const maxTokens = maxCompletion ?? optInt(body, 'max_tokens');
  const seed = optInt(body, 'seed');
  const temperature = optNum(body, 'temperature');
  const topP = optNum(body, 'top_p');
  let stop: string[] | undefined;
  const s = body.stop;
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) {
    if (!s.every((x) => typeof x === 'string')) throw pydanticError('string_type', 'stop', 'Input should be a valid string');
    stop = s as string[];
  } else if (s !== undefined && s !== null) throw pydanticError('string_type', 'stop', 'Input should be a valid string');
  // SamplingParams._verify_args
  if (n < 1) throw new RequestError(`n must be at least 1, got ${n}.`, 400, 'BadRequestError', 'n');
  if (temperature !== undefined && temperature < 0) {
    throw new RequestError(`temperature must be non-negative, got ${pyFloat(temperature)}.`, 400, 'BadRequestError', 'temperature');
  }
  if (topP !== undefined && (topP <= 0 || topP > 1)) {
    throw new RequestError(`top_p must be in (0, 1], got ${pyFloat(topP)}.`, 400, 'BadRequestError', 'top_p');
  }
  return {
    stream,
    includeUsage,
    continuousUsage,
    n,
    maxTokens,
    seed,
    stop,
    ignoreEos: body.ignore_eos === true,
    includeStopStr: body.include_stop_str_in_output === true,
  };
}

export interface SimStateSnapshot {
  name: string;
  state: Lifecycle;
  cold_start_ms: number;
  idle_scale_down_ms: number;
  last_request_at: string | null;
  wakes: number;
  running: number;
  waiting: number;
  faults: Faults;
}

export class Sim {
  readonly opts: ResolvedSimOptions;
  name: string;
  readonly config: SimConfig;
  readonly scheduler: Scheduler;
  readonly prefixCache: PrefixCache;
  readonly metrics: SimMetrics;
  readonly faults = new FaultState();
  /** A worse model version: error_rate, refusal_rate, length_scale (POST /sim/config). */
  readonly quality = new QualityKnobs();
  readonly lifecycle: LifecycleState;
  readonly stats = new SimStats();
  /** Jobs accepted and not finished (waiting or running). */
  readonly active = new Set<Job>();
  /** Requests held by the `hang` fault. */
  readonly hanging = new Set<Exchange>();
  private readonly chatModels: Set<string>;
  private readonly embedModels: Set<string>;
  private readonly modelJson = new Map<string, string>();
  private readonly roots = new Map<string, number>();
  private readonly apiKeyHeader: string | undefined;
  private readonly createdAt = Math.floor(Date.now() / 1000);

  constructor(opts: ResolvedSimOptions) {
    this.opts = opts;
    this.name = opts.name ?? 'sim';
    const lat = opts.latency;
    this.config = {
      base_ttft_ms: lat.base_ttft_ms,
      prefill_ms_per_token: lat.prefill_ms_per_token,
      itl_ms: lat.itl_ms,
      max_num_seqs: lat.max_num_seqs,
      cold_start_ms: opts.cold_start_ms,
      idle_scale_down_ms: opts.idle_scale_down_ms,
    };
    this.scheduler = new Scheduler(lat.max_num_seqs);
    this.prefixCache = new PrefixCache(opts.prefix_block_tokens, opts.prefix_cache_blocks);
    this.metrics = new SimMetrics(opts.models[0] ?? opts.embedding_models[0] ?? 'sim-model');
    this.chatModels = new Set(opts.models);
    this.embedModels = new Set(opts.embedding_models);
    for (const m of [...opts.models, ...opts.embedding_models]) {
      this.modelJson.set(m, JSON.stringify(m));
      this.roots.set(m, cacheRoot(m));
    }
    this.apiKeyHeader = opts.api_key === undefined ? undefined : `Bearer ${opts.api_key}`;
    this.lifecycle = new LifecycleState(
      opts.cold_start_ms,
      opts.idle_scale_down_ms,
      () => this.scheduler.numRunning + this.scheduler.numWaiting + this.hanging.size,
      (msg) => this.log(msg),
    );
    if (opts.start_cold) this.lifecycle.setCold(true);
  }

  log(msg: string): void {
    if (this.opts.log_requests) process.stderr.write(`[sim ${this.name}] ${msg}\n`);
  }

  // ------------------------------------------------------------------ control API (also used by the HTTP routes)

  getConfig(): SimConfig {
    return { ...this.config, ...this.quality.shown() };
  }

  updateConfig(update: SimConfigUpdate): SimConfig {
    const c = this.config;
    if (update.base_ttft_ms !== undefined) c.base_ttft_ms = update.base_ttft_ms;
    if (update.prefill_ms_per_token !== undefined) c.prefill_ms_per_token = update.prefill_ms_per_token;
    if (update.itl_ms !== undefined) c.itl_ms = update.itl_ms;
    if (update.cold_start_ms !== undefined) c.cold_start_ms = update.cold_start_ms;
    if (update.idle_scale_down_ms !== undefined) c.idle_scale_down_ms = update.idle_scale_down_ms;
    if (update.error_rate !== undefined) this.quality.setErrorRate(update.error_rate);
    if (update.refusal_rate !== undefined) this.quality.setRefusalRate(update.refusal_rate);
    if (update.length_scale !== undefined) this.quality.lengthScale = update.length_scale;
    this.lifecycle.setTimes(update.cold_start_ms, update.idle_scale_down_ms);
    if (update.max_num_seqs !== undefined) {
      c.max_num_seqs = update.max_num_seqs;
      this.scheduler.setMaxNumSeqs(update.max_num_seqs);
    }
    return this.getConfig();
  }

  getFaults(): Faults {
    return { ...this.faults.current };
  }

  /** Replaces the fault set (`{}` clears). Throws on invalid input. */
  setFaults(input: unknown): Faults {
    return { ...this.faults.set(FaultsInputSchema.parse(input)) };
  }

  setCold(cold: boolean): void {
    this.lifecycle.setCold(cold);
  }

  get running(): number {
    return this.scheduler.numRunning + this.hanging.size;
  }

  get waiting(): number {
    return this.scheduler.numWaiting;
  }

  stateSnapshot(): SimStateSnapshot {
    const l = this.lifecycle;
    return {
      name: this.name,
      state: l.state,
      cold_start_ms: l.coldStartMs,
      idle_scale_down_ms: l.idleScaleDownMs,
      last_request_at: l.lastRequestAt === null ? null : new Date(l.lastRequestAt).toISOString(),
      wakes: l.wakes,
      running: this.running,
      waiting: this.waiting,
      faults: this.getFaults(),
    };
  }

  statsSnapshot(): Record<string, unknown> & { recent: RequestRecord[] } {
    const s = this.stats;
    return {
      name: this.name,
      requests: { ...s.requests },
      by_model: { ...s.by_model },
      responses: { ...s.responses },
      completed: s.completed,
      aborted: s.aborted,
      streams: s.streams,
      faults: { ...s.faults },
      quality: { ...s.quality },
      tokens: { ...s.tokens },
      wakes: this.lifecycle.wakes,
      running: this.running,
      waiting: this.waiting,
      hanging: this.hanging.size,
      prefix_cache_blocks: this.prefixCache.size,
      recent: s.recentRecords(),
    };
  }

  kvCacheUsage(): number {
    const now = performance.now();
    let blocks = 0;
    for (const j of this.scheduler.running) blocks += (j as Job).blocksHeld(now);
    return Math.min(1, blocks / this.prefixCache.capacityBlocks);
  }

  metricsText(): string {
    return this.metrics.render({ running: this.running, waiting: this.waiting, kvCacheUsage: this.kvCacheUsage() });
  }

  /** Like a restart: clears faults, stats, metrics and the prefix cache; warms up. */
  reset(): void {
    this.faults.clear();
    this.quality.resetCounters();
    this.stats.reset();
    this.metrics.reset();
    this.prefixCache.clear();
    this.lifecycle.setCold(false);
  }

  /** Aborts everything in flight (server shutdown). */
  shutdown(): void {
    // No admissions while aborting (releasing a running job would otherwise start a waiting one).
    this.scheduler.maxNumSeqs = 0;
    for (const j of [...this.active]) j.abort();
    for (const ex of [...this.hanging]) ex.res.destroy();
    this.hanging.clear();
    this.lifecycle.close();
  }

  // ------------------------------------------------------------------ HTTP

  sendJson(res: ServerResponse, status: number, body: string): void {
    this.stats.countResponse(status);
    if (res.destroyed) return;
    res.writeHead(status, ['content-type', JSON_CT, 'content-length', String(Buffer.byteLength(body)), 'server', 'uvicorn']);
    res.end(body);
  }

  sendError(res: ServerResponse, status: number, message: string, type = errorTypeFor(status), param: string | null = null): void {
    this.sendJson(res, status, errorJson(message, type, status, param));
  }

  private sendText(res: ServerResponse, status: number, body: string, contentType: string): void {
    this.stats.countResponse(status);
    res.writeHead(status, ['content-type', contentType, 'content-length', String(Buffer.byteLength(body)), 'server', 'uvicorn']);
    res.end(body);
  }

  private sendEmpty(res: ServerResponse, status: number): void {
    this.stats.countResponse(status);
    res.writeHead(status, ['content-length', '0', 'server', 'uvicorn']);
    res.end();
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const qi = url.indexOf('?');
    const path = qi < 0 ? url : url.slice(0, qi);
    const method = req.method ?? 'GET';
    this.stats.countRequest(endpointKey(path));
    try {
      this.route(req, res, path, method);
    } catch (e) {
      // Never let a handler bug take the process down; answer like vLLM's 500.
      process.stderr.write(`[sim ${this.name}] internal error: ${(e as Error).stack ?? String(e)}\n`);
      if (!res.headersSent) this.sendError(res, 500, String((e as Error).message ?? e), 'InternalServerError');
      else res.destroy();
    }
  };

  private route(req: IncomingMessage, res: ServerResponse, path: string, method: string): void {
    if (path.startsWith('/v1/') || path === '/v1') {
      // vLLM's --api-key middleware guards every /v1 path (OPTIONS passes).
      if (this.apiKeyHeader !== undefined && method !== 'OPTIONS' && req.headers.authorization !== this.apiKeyHeader) {
        this.sendJson(res, 401, '{"error":"Unauthorized"}');
        return;
      }
      switch (path) {
        case '/v1/chat/completions':
          if (method === 'POST') return this.inference(req, res, path, 'chat');
          break;
        case '/v1/completions':
          if (method === 'POST') return this.inference(req, res, path, 'completion');
          break;
        case '/v1/embeddings':
          if (method === 'POST') return this.inference(req, res, path, 'embedding');
          break;
        case '/v1/models':
          if (method === 'GET') return this.sendJson(res, 200, this.modelsJson());
          break;
        default:
          return this.sendJson(res, 404, '{"detail":"Not Found"}');
      }
      return this.sendJson(res, 405, '{"detail":"Method Not Allowed"}');
    }
    switch (path) {
      case '/health':
        if (method !== 'GET') break;
        // 200 with an empty body when up; a cold (scaled-to-zero) backend is not up. Never wakes it.
        return this.sendEmpty(res, this.lifecycle.warm ? 200 : 503);
      case '/ping':
        if (method !== 'GET' && method !== 'POST') break;
        return this.sendEmpty(res, this.lifecycle.warm ? 200 : 503);
      case '/metrics':
        if (method !== 'GET') break;
        return this.sendText(res, 200, this.metricsText(), 'text/plain; version=0.0.4; charset=utf-8');
      case '/version':
        if (method !== 'GET') break;
        return this.sendJson(res, 200, `{"version":"${VLLM_VERSION}"}`);
      case '/load':
        if (method !== 'GET') break;
        return this.sendJson(res, 200, `{"server_load":${this.running + this.waiting}}`);
      case '/sim/faults':
        if (method === 'GET') return this.sendJson(res, 200, JSON.stringify(this.getFaults()));
        if (method === 'POST') return this.control(req, res, (b) => this.setFaults(b));
        break;
      case '/sim/state':
        if (method === 'GET') return this.sendJson(res, 200, JSON.stringify(this.stateSnapshot()));
        if (method === 'POST') {
          return this.control(req, res, (b) => {
            const { cold } = z.strictObject({ cold: z.boolean() }).parse(b);
            this.setCold(cold);
            return this.stateSnapshot();
          });
        }
        break;
      case '/sim/config':
        if (method === 'GET') return this.sendJson(res, 200, JSON.stringify(this.getConfig()));
        if (method === 'POST') return this.control(req, res, (b) => this.updateConfig(SimConfigUpdateSchema.parse(b)));
        break;
      case '/sim/stats':
        if (method === 'GET') return this.sendJson(res, 200, JSON.stringify(this.statsSnapshot()));
        break;
      case '/sim/reset':
        if (method === 'POST') {
          return this.control(req, res, () => {
            this.reset();
            return { ok: true };
          });
        }
        break;
      default:
        return this.sendJson(res, 404, '{"detail":"Not Found"}');
    }
    this.sendJson(res, 405, '{"detail":"Method Not Allowed"}');
  }

  private modelsJson(): string {
    const card = (id: string, maxLen: number): unknown => ({
      id,
      object: 'model',
      created: this.createdAt,
      owned_by: 'vllm',
      root: id,
      parent: null,
      max_model_len: maxLen,
      permission: [
        {
          id: `modelperm-${randomId()}`,
          object: 'model_permission',
          created: this.createdAt,
          allow_create_engine: false,
          allow_sampling: true,
          allow_logprobs: true,
          allow_search_indices: false,
          allow_view: true,
          allow_fine_tuning: false,
          organization: '*',
          group: null,
          is_blocking: false,
        },
      ],
    });
    const data = [
      ...this.opts.models.map((m) => card(m, this.opts.max_model_len)),
      ...this.opts.embedding_models.map((m) => card(m, this.opts.embedding_max_model_len)),
    ];
    return JSON.stringify({ object: 'list', data });
  }

  /** Reads a small JSON control body (empty body = `{}`), runs `fn`, answers its result or a 400. */
  private control(req: IncomingMessage, res: ServerResponse, fn: (body: unknown) => unknown): void {
    this.readBody(req, res, (buf) => {
      let body: unknown = {};
      const text = buf.toString('utf8').trim();
      if (text.length > 0) {
        try {
          body = JSON.parse(text);
        } catch (e) {
          this.sendError(res, 400, `invalid JSON: ${(e as Error).message}`);
          return;
        }
      }
      try {
        this.sendJson(res, 200, JSON.stringify(fn(body)));
      } catch (e) {
        const msg = e instanceof z.ZodError ? z.prettifyError(e) : String((e as Error).message ?? e);
        this.sendError(res, 400, msg);
      }
    });
  }

  private readBody(req: IncomingMessage, res: ServerResponse, done: (buf: Buffer) => void): void {
    const max = this.opts.max_body_bytes;
    let first: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    let size = 0;
    let tooBig = false;
    req.on('error', noop);
    req.on('data', (c: Buffer) => {
      if (tooBig) return;
      size += c.length;
      if (size > max) {
        tooBig = true;
        this.sendError(res, 413, `Request body too large (limit ${max} bytes)`);
        return;
      }
      if (first === null) first = c;
      else (chunks ??= [first]).push(c);
    });
    req.on('end', () => {
      if (tooBig) return;
      done(chunks !== null ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)));
    });
  }

  // ------------------------------------------------------------------ inference pipeline
  // body → (wake if cold) → fault latency → fault error/hang → parse/validate → scheduler → generation

  private inference(req: IncomingMessage, res: ServerResponse, path: string, kind: Kind): void {
    const ex = new Exchange(req, res, path);
    this.readBody(req, res, (buf) => {
      this.lifecycle.noteRequest();
      if (!this.lifecycle.warm) {
        const unregister = this.lifecycle.whenWarm(() => {
          ex.cleanup = null;
          this.afterWake(ex, buf, kind);
        });
        if (unregister !== null) {
          ex.watch();
          ex.cleanup = unregister;
          return;
        }
      }
      this.afterWake(ex, buf, kind);
    });
  }

  private afterWake(ex: Exchange, buf: Buffer, kind: Kind): void {
    const f = this.faults;
    if (f.active && f.current.latency_ms > 0) {
      this.stats.faults.delayed++;
      const t = setTimeout(() => {
        ex.cleanup = null;
        this.afterDelay(ex, buf, kind);
      }, f.current.latency_ms);
      ex.watch();
      ex.cleanup = () => clearTimeout(t);
      return;
    }
    this.afterDelay(ex, buf, kind);
  }

  private afterDelay(ex: Exchange, buf: Buffer, kind: Kind): void {
    if (ex.closed) return;
    const f = this.faults;
    if (f.active) {
      if (f.nextFails()) {
        this.stats.faults.errors++;
        const status = f.current.status;
        this.sendError(ex.res, status, `Injected fault: ${STATUS_CODES[status] ?? 'error'} (sim)`, errorTypeFor(status));
        return;
      }
      if (f.current.hang) {
        this.stats.faults.hangs++;
        this.hanging.add(ex);
        ex.watch();
        ex.cleanup = () => {
          this.hanging.delete(ex);
          this.stats.aborted++;
          this.lifecycle.touch();
        };
        return;
      }
    }
    if (kind !== 'embedding' && this.quality.nextError()) {
      // A worse model version (POST /sim/config error_rate), answered like vLLM's 503.
      this.stats.quality.errors++;
      this.sendError(ex.res, 503, 'Service Unavailable (sim error_rate)', errorTypeFor(503));
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(buf.toString('utf8'));
    } catch (e) {
      const err = String((e as Error).message).replace(/'/g, '"');
      this.sendError(
        ex.res,
        400,
        `[{'type': 'json_invalid', 'loc': ('body', 0), 'msg': 'JSON decode error', 'input': {}, 'ctx': {'error': '${err}'}}]`,
      );
      return;
    }
    try {
      if (!isObj(body)) {
        throw new RequestError(
          "[{'type': 'model_attributes_type', 'loc': ('body',), 'msg': 'Input should be a valid dictionary or object to extract fields from'}]",
        );
      }
      if (kind === 'embedding') this.embeddings(ex, body);
      else this.generative(ex, body, kind);
    } catch (e) {
      if (e instanceof RequestError) this.sendError(ex.res, e.status, e.message, e.type, e.param);
      else if (e instanceof PromptError) this.sendError(ex.res, 400, e.message);
      else throw e;
    }
  }

  private resolveModel(body: Record<string, unknown>, kind: Kind): string {
    const m = body.model;
    if (m === undefined || m === null) {
      // vLLM: a request without `model` goes to the served model.
      const d = kind === 'embedding' ? this.opts.embedding_models[0] : this.opts.models[0];
      if (d !== undefined) return d;
      throw new RequestError(
        kind === 'embedding' ? 'The model does not support Embeddings API' : 'The model does not support Chat Completions API',
      );
    }
    if (typeof m !== 'string') throw pydanticError('string_type', 'model', 'Input should be a valid string');
    if (kind === 'embedding') {
      if (this.embedModels.has(m)) return m;
      if (this.chatModels.has(m)) throw new RequestError('The model does not support Embeddings API');
    } else {
      if (this.chatModels.has(m)) return m;
      if (this.embedModels.has(m)) {
        throw new RequestError(kind === 'chat' ? 'The model does not support Chat Completions API' : 'The model does not support Completions API');
      }
    }
    throw new RequestError(`The model \`${m}\` does not exist.`, 404, 'NotFoundError', 'model');
  }

  private generative(ex: Exchange, body: Record<string, unknown>, kind: 'chat' | 'completion'): void {
    const sp = parseSampling(body);
    const model = this.resolveModel(body, kind);
    this.stats.countModel(model);
    let prompts: RenderedPrompt[];
    if (kind === 'chat') prompts = [renderChat(body)];
    else {
      if (body.suffix !== undefined && body.suffix !== null) throw new RequestError('suffix is not currently supported');
      prompts = renderCompletionPrompts(body.prompt);
    }
    const maxLen = this.opts.max_model_len;
    const salt = typeof body.cache_salt === 'string' && body.cache_salt.length > 0 ? body.cache_salt : undefined;
    const root = salt === undefined ? (this.roots.get(model) as number) : cacheRoot(model, salt);
    const hashes: number[][] = [];
    const limits: number[] = [];
    let promptTokens = 0;
    for (let pi = 0; pi < prompts.length; pi++) {
      const pr = prompts[pi] as RenderedPrompt;
      const P = pr.tokens.length;
      let maxTokens = sp.maxTokens;
      if (maxTokens === undefined) {
        if (P >= maxLen) {
          throw new RequestError(
            `This model's maximum context length is ${maxLen} tokens. However, you requested ${P} tokens in the messages, Please reduce the length of the messages.`,
          );
        }
        maxTokens = maxLen - P;
      } else if (P + maxTokens > maxLen) {
        throw new RequestError(
          `This model's maximum context length is ${maxLen} tokens. However, you requested ${P + maxTokens} tokens (${P} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
        );
      }
      if (maxTokens < 1) throw new RequestError(`max_tokens must be at least 1, got ${maxTokens}.`, 400, 'BadRequestError', 'max_tokens');
      promptTokens += P;
      hashes.push(this.prefixCache.blockHashes(pr.tokens, root));
      limits.push(maxTokens);
    }
    // Counted only for requests that will be answered (validation passed).
    const refuse = this.quality.nextRefusal();
    if (refuse) this.stats.quality.refusals++;
    const lengthScale = this.quality.lengthScale;
    const seqs: Seq[] = [];
    for (let pi = 0; pi < prompts.length; pi++) {
      const pr = prompts[pi] as RenderedPrompt;
      const maxTokens = limits[pi] as number;
      for (let i = 0; i < sp.n; i++) {
        const index = pi * sp.n + i;
        seqs.push({
          index,
          sent: 0,
          gen: generate({
            model,
            promptHash: pr.hash,
            seed: sp.seed,
            index,
            maxTokens,
            stop: sp.stop,
            ignoreEos: sp.ignoreEos,
            includeStopStr: sp.includeStopStr,
            lengthScale,
            refuse,
          }),
        });
      }
    }
    const xrid = ex.req.headers['x-request-id'];
    const id = typeof xrid === 'string' && /^[\w.:-]{1,128}$/.test(xrid) ? xrid : randomId();
    new GenJob(this, ex, {
      kind,
      model,
      modelJson: this.modelJson.get(model) as string,
      stream: sp.stream,
      includeUsage: sp.includeUsage,
      continuousUsage: sp.continuousUsage,
      prompts,
      hashes,
      promptTokens,
      seqs,
      id,
      created: Math.floor(Date.now() / 1000),
    }).submit();
  }

  private embeddings(ex: Exchange, body: Record<string, unknown>): void {
    const model = this.resolveModel(body, 'embedding');
    this.stats.countModel(model);
    const fmt = body.encoding_format ?? 'float';
    if (fmt !== 'float' && fmt !== 'base64') {
      throw new RequestError("[{'type': 'literal_error', 'loc': ('body', 'encoding_format'), 'msg': \"Input should be 'float' or 'base64'\"}]");
    }
    const dims = optInt(body, 'dimensions');
    const dim = this.opts.embedding_dim;
    if (dims !== undefined && dims !== dim) {
      throw new RequestError('Model does not support matryoshka representation, changing output dimensions will lead to poor results.');
    }
    const inputs = renderEmbeddingInputs(body.input);
    // Bounded like a real server's request validation: the answer for 100,000 inputs would not even fit in a string.
    if (inputs.length > this.opts.embedding_max_inputs) {
      throw new RequestError(`The batch of ${inputs.length} inputs is too large: at most ${this.opts.embedding_max_inputs} inputs per request.`, 400, 'BadRequestError', 'input');
    }
    const maxLen = this.opts.embedding_max_model_len;
    let promptTokens = 0;
    for (const inp of inputs) {
      if (inp.tokens > maxLen) {
        throw new RequestError(
          `This model's maximum context length is ${maxLen} tokens. However, you requested ${inp.tokens} tokens in the input for embedding generation. Please reduce the length of the input.`,
        );
      }
      promptTokens += inp.tokens;
    }
    new EmbedJob(this, ex, {
      model,
      modelJson: this.modelJson.get(model) as string,
      vectors: () => inputs.map((inp) => embeddingJson(embedVector(model, inp.key, dim), fmt)),
      promptTokens,
      id: randomId(),
      created: Math.floor(Date.now() / 1000),
    }).submit();
  }
}

function noop(): void {}
