import { z } from 'zod';
import type { ReplicateConfig } from '../config/backend-kinds';
import type { BackendConfig } from '../config/schema';
import { synthesize } from '../openai/synthesize';
import type { Usage } from '../openai/usage';
import { renderChat, type TextMessage } from './chat-template';
import { badUpstream, estimatedUsage, finishReason, parseJson, textRequest, translateStream, upstreamError, type TextRequest } from './translate';
import { UpstreamStreamError, USAGE_HEADER, type BackendAdapter, type SendInit } from './types';
import { raceAbort } from './race-abort';

// Replicate's predictions API (replicate.com/docs/reference/http, …/topics/predictions/streaming):
// - create: POST /v1/models/{owner}/{name}/predictions (an official model at its latest version),
//   /v1/deployments/{owner}/{name}/predictions, or /v1/predictions with a `version`; body
//   {"input": {…}, "stream": true?}; `Prefer: wait=N` holds the call up to N s (≤ 60) so that the
//   answer carries the output. The prediction: id, status (starting | processing | succeeded |
//   failed | canceled | aborted), output (language models: an array of text pieces), error,
//   urls.get / urls.cancel / urls.stream, metrics.input_token_count / output_token_count.
// - urls.stream: SSE; `output` events carry text as it comes, `error` a JSON {"detail"}, `done`
//   a JSON {} or {"reason": "canceled" | "error"}.
// - urls.cancel: POST, to stop a prediction (its GPU time is billed until then).
//
// Plain fetch, not the `replicate` npm client: its request() retries a 429 on its own, up to five
// times with sleeps no AbortSignal interrupts (past this request's deadline, and in place of the
// router's own fallback to another backend); it throws on any HTTP error after reading the body,
// where the executor needs the status as a Response; and its cancel goes to /predictions/{id}/cancel,
// not the urls.cancel the prediction names. The tests use the client to check the stand-in server.

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted']);
const POLL_MIN_MS = 250;
const POLL_MAX_MS = 2_000;
/** Reading a finished prediction's metrics at the end of a stream: best effort, this long at most. */
const METRICS_TIMEOUT_MS = 2_000;

const predictionSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  output: z.unknown().optional(),
  error: z.unknown().optional(),
  urls: z.looseObject({ get: z.string().optional(), cancel: z.string().optional(), stream: z.string().optional() }).optional(),
  metrics: z.looseObject({ input_token_count: z.number().optional(), output_token_count: z.number().optional() }).nullish(),
});
type Prediction = z.infer<typeof predictionSchema>;

export const replicateAdapter: BackendAdapter = {
  async send(backend, request, init) {
    const cfg = backend.replicate;
    if (!cfg) return badUpstream(`${backend.id}: no [replicate] settings`); // the config schema requires them
    const tr = textRequest(request, 'replicate');
    if (tr instanceof Response) return tr;
    const call = new ReplicateCall(backend, cfg, init);
    const { input, promptText } = predictionInput(cfg, tr);

    // The create call is not tied to the client: if the client leaves while Replicate holds it
    // (Prefer: wait), its answer is still read, in the background, to cancel the prediction it names.
    const created = call.create(input, request.stream);
    let res: Response;
    try {
      res = await raceAbort(created, init.signal);
    } catch (e) {
      init.waitUntil?.(created.then((r) => call.cancelFromCreate(r)).catch(() => {}));
      throw e;
    }
    if (!res.ok) return upstreamError(res, backend.id);
    const prediction = await readPrediction(res);
    if (!prediction) return badUpstream(`${backend.id}: the created prediction is not Replicate's JSON`);
    call.watch(prediction);

    if (request.stream && prediction.urls?.stream && !TERMINAL.has(prediction.status)) return call.stream(prediction, tr, promptText);
    // Not streamed (or a model that cannot stream: its whole answer goes as one chunk).
    const done = await call.settle(prediction);
    if (done instanceof Response) return done;
    if (done.status !== 'succeeded') return badUpstream(`${backend.id}: prediction ${done.id} ${done.status}${done.error ? `: ${String(done.error)}` : ''}`);
    const text = outputText(done.output);
    if (text === null) return badUpstream(`${backend.id}: prediction ${done.id} has no text output`);
    const usage = usageOf(done, promptText, text);
    const answer = synthesize({
      endpoint: tr.endpoint,
      model: tr.model,
      text,
      finishReason: finishReason(usage.completion_tokens, tr.maxTokens),
      stream: request.stream,
      includeUsage: tr.includeUsage,
      usage,
    });
    if (usage.estimated) answer.headers.set(USAGE_HEADER, 'estimated');
    return answer;
  },
};

/** Replicate's own streaming host, trusted only beside its own API origin. */
const OFFICIAL_API = 'https://api.replicate.com';
const OFFICIAL_STREAM = 'https://stream.replicate.com';

/**
 * The origins whose URLs a prediction may name and which receive the API token: the backend's
 * own (scheme, host and port equal), those in `allowed_origins`, and Replicate's stream host when
 * the backend is Replicate's own API. Nothing else: no parent-domain or look-alike matching.
 */
export function trustedOrigins(backendUrl: string, cfg: Pick<ReplicateConfig, 'allowed_origins'>): Set<string> {
  const own = new URL(backendUrl).origin;
  return new Set([own, ...cfg.allowed_origins.map((o) => new URL(o).origin), ...(own === OFFICIAL_API ? [OFFICIAL_STREAM] : [])]);
}

/** One request's dealings with Replicate: auth, the prediction's URLs, cancelling it if abandoned. */
class ReplicateCall {
  private readonly base: URL;
  private readonly trusted: Set<string>;
  private readonly auth: Record<string, string>;
  private unwatch: () => void = () => {};
  private cancelled = false;

  constructor(
    private readonly backend: BackendConfig,
    private readonly cfg: ReplicateConfig,
    private readonly init: SendInit,
  ) {
    this.base = new URL(backend.url.replace(/\/+$/, '') + '/');
    this.trusted = trustedOrigins(backend.url, cfg);
    this.auth = {};
    if (init.secret) this.auth[backend.auth_header] = backend.auth_header === 'authorization' ? `Bearer ${init.secret}` : init.secret;
  }

  create(input: Record<string, unknown>, stream: boolean): Promise<Response> {
    const { model, deployment, version } = this.cfg;
    const path = version ? 'v1/predictions' : deployment ? `v1/deployments/${deployment}/predictions` : `v1/models/${model}/predictions`;
    const headers: Record<string, string> = { ...this.auth, 'content-type': 'application/json' };
    // Streamed: no wait, the stream URL is wanted at once. Else Replicate holds the call for the output.
    if (!stream) headers.prefer = `wait=${this.waitSeconds()}`;
    // Bounded on its own (Replicate holds it ≤ 60 s): it may outlive the client, to be cancelled.
    const signal = AbortSignal.timeout((this.cfg.wait_seconds + 30) * 1000);
    return fetch(new URL(path, this.base), { method: 'POST', headers, body: JSON.stringify({ ...(version ? { version } : {}), input, ...(stream ? { stream: true } : {}) }), signal });
  }

  private waitSeconds(): number {
    const left = this.init.deadline === undefined ? Infinity : Math.floor((this.init.deadline - Date.now()) / 1000);
    return Math.max(1, Math.min(this.cfg.wait_seconds, left));
  }

  /** Until the prediction ends: a client that leaves (or a deadline that passes) cancels it, in the background. */
  watch(p: Prediction): void {
    if (TERMINAL.has(p.status)) return;
    const onAbort = () => this.cancel(p);
    this.init.signal.addEventListener('abort', onAbort, { once: true });
    this.unwatch = () => this.init.signal.removeEventListener('abort', onAbort);
    if (this.init.signal.aborted) onAbort();
  }

  /** POST urls.cancel, best effort and never thrown: nobody waits for the answer any more. */
  cancel(p: Prediction): void {
    this.unwatch();
    if (this.cancelled) return;
    this.cancelled = true;
    const url = this.own(p.urls?.cancel) ?? new URL(`v1/predictions/${encodeURIComponent(p.id)}/cancel`, this.base);
    const done = fetch(url, { method: 'POST', headers: this.authFor(url), signal: AbortSignal.timeout(10_000) })
      .then((r) => r.body?.cancel())
      .catch((e) => console.warn(JSON.stringify({ msg: 'replicate: cancel failed', backend: this.backend.id, prediction: p.id, error: String(e) })));
    if (this.init.waitUntil) this.init.waitUntil(done);
  }

  /** The create call answered after the client left: cancel what it started. */
  async cancelFromCreate(res: Response): Promise<void> {
    if (!res.ok) return void res.body?.cancel();
    const p = await readPrediction(res);
    if (p && !TERMINAL.has(p.status)) this.cancel(p);
  }

  /** Polls urls.get until the prediction ends (Prefer: wait gave up first), under the request's signal. */
  async settle(first: Prediction): Promise<Prediction | Response> {
    let p = first;
    for (let wait = POLL_MIN_MS; !TERMINAL.has(p.status); wait = Math.min(POLL_MAX_MS, wait * 2)) {
      const foreign = this.foreign(p);
      if (foreign) {
        this.cancel(p);
        return badUpstream(foreign);
      }
      await sleep(wait, this.init.signal);
      const res = await fetch(this.getUrl(p), { headers: this.authFor(this.getUrl(p)), signal: this.init.signal });
      const next = res.ok ? await readPrediction(res) : null;
      if (!next) {
        this.cancel(p); // this attempt gives up on it: nobody would read its output
        return res.ok ? badUpstream(`${this.backend.id}: prediction ${p.id} is not Replicate's JSON`) : upstreamError(res, this.backend.id);
      }
      p = next;
    }
    this.unwatch();
    return p;
  }

  stream(p: Prediction, tr: TextRequest, promptText: string): Promise<Response> {
    const url = this.own(p.urls!.stream!);
    const foreign = this.foreign(p);
    if (!url || foreign) {
      this.cancel(p);
      return Promise.resolve(badUpstream(foreign ?? `${this.backend.id}: prediction ${p.id} names a stream URL that is not a URL`));
    }
    const opened = fetch(url, { headers: { ...this.authFor(url), accept: 'text/event-stream', 'cache-control': 'no-store' }, signal: this.init.signal });
    opened.catch(() => this.cancel(p)); // could not even open the stream: the prediction would run for nobody
    return opened.then(async (res) => {
      if (!res.ok || !res.body) {
        this.cancel(p);
        return res.ok ? badUpstream(`${this.backend.id}: empty stream`) : upstreamError(res, this.backend.id);
      }
      const body = translateStream({
        endpoint: tr.endpoint,
        model: tr.model,
        includeUsage: tr.includeUsage,
        body: res.body,
        onEvent: (e) => {
          if (e.event === 'output') return { text: e.data };
          if (e.event === 'error') throw new UpstreamStreamError(`${this.backend.id}: ${detailOf(e.data)}`);
          if (e.event !== 'done') return null; // logs, or events added later
          const reason = (parseJson(e.data) as { reason?: unknown } | null)?.reason;
          if (reason === 'canceled' || reason === 'error') throw new UpstreamStreamError(`${this.backend.id}: prediction ${p.id} ended: ${reason}`);
          return { done: true };
        },
        onEnd: async ({ done, text }) => {
          if (!done) throw new UpstreamStreamError(`${this.backend.id}: the stream ended before its done event`);
          this.unwatch();
          const usage = usageOf((await this.finalState(p)) ?? p, promptText, text);
          return { usage, finishReason: finishReason(usage.completion_tokens, tr.maxTokens) };
        },
        onCancel: () => this.cancel(p),
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream; charset=utf-8' } });
    });
  }

  /** The finished prediction, for its token counts; null if it cannot be had quickly. */
  private async finalState(p: Prediction): Promise<Prediction | null> {
    if (this.foreign(p)) return null;
    try {
      const url = this.getUrl(p);
      const res = await fetch(url, { headers: this.authFor(url), signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
      return res.ok ? await readPrediction(res) : null;
    } catch {
      return null;
    }
  }

  private getUrl(p: Prediction): URL {
    return this.own(p.urls?.get) ?? new URL(`v1/predictions/${encodeURIComponent(p.id)}`, this.base);
  }

  /** A URL the prediction names, if it parses and is on a trusted origin (else null: the fallback is a URL on the API's own origin). */
  private own(url: string | undefined): URL | null {
    const u = url ? parseUrl(url) : null;
    return u && this.trusted.has(u.origin) ? u : null;
  }

  /** Why the prediction cannot be followed: it names a URL on an origin the config does not trust (null when it names none). */
  private foreign(p: Prediction): string | null {
    // Only the URLs the router would call: urls.web (Replicate's page for humans) is never fetched.
    for (const name of ['get', 'stream', 'cancel'] as const) {
      const url = p.urls?.[name];
      const parsed = typeof url === 'string' ? parseUrl(url) : null;
      if (!parsed) continue;
      const origin = parsed.origin;
      if (!this.trusted.has(origin)) return `${this.backend.id}: prediction ${p.id} names urls.${name} on ${origin}, not an origin this backend trusts (replicate.allowed_origins); not followed`;
    }
    return null;
  }

  /** The API token goes only to trusted origins (own() already refuses any other URL; this is the last guard). */
  private authFor(url: URL): Record<string, string> {
    return this.trusted.has(url.origin) ? this.auth : {};
  }
}

function parseUrl(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/** The input object: the prompt fields (per config), the sampling ones the request sets, fixed extras. */
export function predictionInput(cfg: ReplicateConfig, tr: TextRequest): { input: Record<string, unknown>; promptText: string } {
  const f = cfg.input;
  const input: Record<string, unknown> = { ...cfg.extra_input };
  let promptText: string;
  if (tr.endpoint === 'completions') {
    input[f.prompt] = promptText = tr.prompt;
  } else if (cfg.chat_template) {
    input[f.prompt] = promptText = renderChat(cfg.chat_template, tr.messages);
  } else {
    const system = tr.messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n\n');
    const turns = tr.messages.filter((m) => m.role !== 'system');
    let prompt = transcript(turns);
    if (system && f.system_prompt !== false) input[f.system_prompt] = system;
    else if (system) prompt = `${system}\n\n${prompt}`;
    input[f.prompt] = prompt;
    promptText = `${system}\n${prompt}`;
  }
  const set = (field: string | false, value: unknown) => {
    if (field !== false && value !== null && value !== undefined) input[field] = value;
  };
  set(f.max_tokens, tr.maxTokens);
  set(f.temperature, tr.temperature);
  set(f.top_p, tr.topP);
  set(f.stop, tr.stop.length > 0 ? tr.stop.join(',') : null);
  set(f.seed, tr.seed);
  return { input, promptText };
}

/**
 * A conversation for a model that takes one prompt and wraps it in its own template: one user
 * message as it is; several turns as a labelled transcript ending with the assistant's cue.
 */
function transcript(turns: readonly TextMessage[]): string {
  if (turns.length === 1 && turns[0]!.role === 'user') return turns[0]!.content;
  const label = { user: 'User', assistant: 'Assistant', tool: 'Tool', system: 'System' } as const;
  return turns.map((m) => `${label[m.role]}: ${m.content}`).join('\n\n') + '\n\nAssistant:';
}

/** A language model's output: an array of text pieces (or one string). Null for anything else. */
function outputText(output: unknown): string | null {
  if (output === null || output === undefined) return '';
  if (typeof output === 'string') return output;
  if (Array.isArray(output) && output.every((x) => typeof x === 'string')) return output.join('');
  return null;
}

/** Replicate's own token counts when the model reports them, else the router's estimate. */
function usageOf(p: Prediction, promptText: string, text: string): Usage {
  const input = p.metrics?.input_token_count;
  const output = p.metrics?.output_token_count;
  if (typeof input === 'number' && typeof output === 'number') return { prompt_tokens: input, completion_tokens: output, total_tokens: input + output };
  const estimate = estimatedUsage(promptText, text);
  return typeof output === 'number' ? { ...estimate, completion_tokens: output, total_tokens: estimate.prompt_tokens + output } : estimate;
}

async function readPrediction(res: Response): Promise<Prediction | null> {
  const parsed = predictionSchema.safeParse(parseJson(await res.text().catch(() => '')));
  return parsed.success ? parsed.data : null;
}

function detailOf(data: string): string {
  const json = parseJson(data) as { detail?: unknown } | null;
  return typeof json?.detail === 'string' ? json.detail : data.slice(0, 300) || 'stream error';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
