import type { ServerResponse } from 'node:http';
import { ANSWER_TOKENS, clientGone, json, parseBody, startFake, type Fake, type StandInServerOptions } from './common';

// A stand-in for Replicate's HTTP API, as documented at replicate.com/docs/reference/http and
// replicate.com/docs/topics/predictions (create-a-prediction, streaming):
// - POST /v1/models/{owner}/{name}/predictions, /v1/deployments/{owner}/{name}/predictions, and
//   /v1/predictions with {"version"}: body {"input": {…}, "stream"?}. 201 with the prediction
//   {id, model, version, input, output, error, status, logs, created_at, urls: {get, cancel,
//   stream, web}, metrics} (web: the prediction's page on replicate.com, for people, not
//   clients). Without `Prefer: wait` the status is "starting" and output null; with
//   `Prefer: wait` or `wait=N` the call is held until the model is done and carries the output.
// - GET /v1/predictions/{id}; POST /v1/predictions/{id}/cancel (status "canceled").
// - urls.stream (here /stream/{id} on the same server): SSE, `event: output` with the text as
//   data (a newline in the text makes several data lines), `event: error` with {"detail"},
//   `event: done` with {} or {"reason": "error" | "canceled"}.
// - Errors as problem+json: 401 {"title","detail","status"}; 422 "Input validation failed".
// The "model" answers ANSWER_TOKENS (cut at input.max_tokens), with metrics.input_token_count
// (prompt words) and output_token_count. Markers in input.prompt choose a behaviour:
//   [slow]         Prefer: wait gives up first (status "processing"); the output comes on the 3rd GET
//   [fail]         the prediction fails (status "failed", error); on the stream: an error event
//   [hold]         the create call is held until POST /_fake/release, then answers "processing"
//   [stream-hold]  the stream sends one output event, then waits until the client leaves
//   [bad-json]     the create call answers 201 with a body that is not JSON
//   [no-metrics]   no token counts in metrics
// Options: token (bearer required when set, on every route but the stream URL); urls_origin (the
// origin the prediction's urls name instead of this server's: another server, to check the router
// follows only origins it trusts).

export interface ReplicateFakeOptions extends StandInServerOptions {
  token?: string;
  urls_origin?: string;
}

interface Prediction {
  id: string;
  model: string;
  version: string | null;
  input: Record<string, unknown>;
  output: string[] | null;
  error: string | null;
  status: 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled';
  logs: string;
  created_at: string;
  urls: { get: string; cancel: string; stream: string; web: string };
  metrics: Record<string, number>;
  /** Fake bookkeeping, not sent. */
  gets: number;
}

export function startReplicateFake(opts: ReplicateFakeOptions = {}): Promise<Fake> {
  const predictions = new Map<string, Prediction>();
  let n = 0;

  const view = (p: Prediction) => {
    const { gets: _gets, ...rest } = p;
    return rest;
  };
  const finish = (p: Prediction) => {
    const prompt = String(p.input.prompt ?? '');
    if (prompt.includes('[fail]')) {
      Object.assign(p, { status: 'failed', error: 'CUDA error: out of memory', output: null });
      return;
    }
    const tokens = answer(p.input);
    p.status = 'succeeded';
    p.output = tokens;
    p.metrics = prompt.includes('[no-metrics]') ? { predict_time: 0.1 } : { predict_time: 0.1, input_token_count: words(prompt, p.input.system_prompt), output_token_count: tokens.length };
  };

  return startFake(async (req, body, res, ctx) => {
    const url = new URL(req.url ?? '/', ctx.url);
    const path = url.pathname;
    // The stream URL is a capability of its own: Replicate's client opens it without the token.
    if (opts.token && !path.startsWith('/stream/') && req.headers.authorization !== `Bearer ${opts.token}`) {
      return json(res, 401, { title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 }, { 'content-type': 'application/problem+json' });
    }

    const create = req.method === 'POST' && (/^\/v1\/(models|deployments)\/[^/]+\/[^/]+\/predictions$/.test(path) || path === '/v1/predictions');
    if (create) {
      const b = parseBody(body);
      if (!b || typeof b.input !== 'object' || b.input === null) return invalid(res, 'input is required');
      if (path === '/v1/predictions' && typeof b.version !== 'string') return invalid(res, 'version is required');
      if (typeof b.input.prompt !== 'string') return invalid(res, '- input: prompt is required');
      const prompt: string = b.input.prompt;
      if (prompt.includes('[hold]')) await ctx.hold();
      const id = `p${++n}${Math.random().toString(36).slice(2, 8)}`;
      const origin = opts.urls_origin ?? ctx.url;
      const model = path.split('/').slice(3, 5).join('/');
      const p: Prediction = {
        id,
        model: path === '/v1/predictions' ? 'owner/pinned' : model,
        version: b.version ?? null,
        input: b.input,
        output: null,
        error: null,
        status: 'starting',
        logs: '',
        created_at: new Date().toISOString(),
        urls: { get: `${origin}/v1/predictions/${id}`, cancel: `${origin}/v1/predictions/${id}/cancel`, stream: `${origin}/stream/${id}`, web: `https://replicate.com/p/${id}` },
        metrics: {},
        gets: 0,
      };
      predictions.set(id, p);
      if (prompt.includes('[bad-json]')) return void res.writeHead(201, { 'content-type': 'application/json' }).end('{"id": "broken');
      const prefer = String(req.headers.prefer ?? '');
      if (/^wait(=\d+)?$/.test(prefer.trim())) {
        if (prompt.includes('[slow]') || prompt.includes('[hold]')) p.status = 'processing';
        else finish(p);
      }
      return json(res, 201, view(p));
    }

    const get = /^\/v1\/predictions\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && get) {
      const p = predictions.get(get[1]!);
      if (!p) return json(res, 404, { title: 'Not found', detail: 'The requested resource could not be found.', status: 404 });
      p.gets++;
      if ((p.status === 'starting' || p.status === 'processing') && (!String(p.input.prompt).includes('[slow]') || p.gets >= 3)) finish(p);
      else if (p.status === 'starting') p.status = 'processing';
      return json(res, 200, view(p));
    }

    const cancel = /^\/v1\/predictions\/([^/]+)\/cancel$/.exec(path);
    if (req.method === 'POST' && cancel) {
      const p = predictions.get(cancel[1]!);
      if (!p) return json(res, 404, { title: 'Not found', detail: 'The requested resource could not be found.', status: 404 });
      if (p.status === 'starting' || p.status === 'processing') p.status = 'canceled';
      return json(res, 200, view(p));
    }

    const stream = /^\/stream\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && stream) {
      const p = predictions.get(stream[1]!);
      if (!p) return json(res, 404, { title: 'Not found', detail: 'The requested resource could not be found.', status: 404 });
      return streamPrediction(p, res, () => finish(p));
    }

    json(res, 404, { title: 'Not found', detail: `no route ${req.method} ${path}`, status: 404 });
  }, opts);
}

async function streamPrediction(p: Prediction, res: ServerResponse, finish: () => void): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  const prompt = String(p.input.prompt ?? '');
  const tokens = answer(p.input);
  let i = 0;
  const event = (name: string, data: string) => res.write(`event: ${name}\nid: ${Date.now()}:${i++}\n${data.split('\n').map((l) => `data: ${l}`).join('\n')}\n\n`);
  p.status = 'processing';
  if (prompt.includes('[stream-hold]')) {
    event('output', tokens[0]!);
    await clientGone(res);
    return;
  }
  if (prompt.includes('[fail]')) {
    event('output', tokens[0]!);
    finish();
    event('error', JSON.stringify({ detail: p.error }));
    event('done', JSON.stringify({ reason: 'error' }));
    return void res.end();
  }
  for (const t of tokens) event('output', t);
  finish();
  event('done', '{}');
  res.end();
}

function invalid(res: ServerResponse, detail: string): void {
  json(res, 422, { title: 'Input validation failed', detail, status: 422 }, { 'content-type': 'application/problem+json' });
}

function answer(input: Record<string, unknown>): string[] {
  const max = typeof input.max_tokens === 'number' ? input.max_tokens : ANSWER_TOKENS.length;
  return ANSWER_TOKENS.slice(0, Math.max(0, max));
}

const words = (...texts: unknown[]) => texts.reduce<number>((n, t) => n + (typeof t === 'string' ? t.split(/\s+/).filter(Boolean).length : 0), 0);

