import { ANSWER_TOKENS, json, parseBody, startFake, type Fake, type StandInServerOptions } from './common';

// A stand-in for vLLM served on Modal as a web endpoint (https://<workspace>--<app>-<fn>.modal.run):
// - OpenAI's API as vLLM serves it: POST /v1/chat/completions, JSON or SSE chunks ending in
//   `data: [DONE]`, usage in the JSON and in a last chunk when stream_options.include_usage.
// - Modal proxy auth (modal.com/docs/guide/webhook-proxy-auth): with key/secret set, a request
//   without matching Modal-Key and Modal-Secret headers gets 401 "modal-http: missing credentials
//   for proxy authorization" (plain text), before the app sees it. With bearer set, vLLM's
//   --api-key check: 401 {"error": "Unauthorized"} without `Authorization: Bearer <bearer>`.
// - Long calls (modal.com/docs/guide/webhook-timeouts): past 150 s Modal answers 303 See Other
//   to the original URL with a query parameter naming the call; a GET there blocks until the
//   result or 303s again. Here a prompt holding "[long]" gets that 303, and the GET answers the
//   result after `redirects` 303s in all (default 2). With `redirect_origin` set, Location points
//   at that origin instead (another fake, to check credentials are not sent across origins); a
//   GET with a call id this fake never issued answers a result (it stands for Modal's other host).
// With `redirect_status` (307 or 308), that redirect is sent instead of 303 (a POST to be repeated).
// Other markers in the last message: [no-usage] (JSON without usage), [bad-json] (a 200 that is
// not JSON).

export interface ModalFakeOptions extends StandInServerOptions {
  key?: string;
  secret?: string;
  bearer?: string;
  redirects?: number;
  redirect_origin?: string;
  redirect_status?: number;
}

export function startModalFake(opts: ModalFakeOptions = {}): Promise<Fake> {
  const pending = new Map<string, { body: Record<string, any>; left: number }>();
  let n = 0;
  return startFake((req, raw, res, ctx) => {
    if (opts.key && (req.headers['modal-key'] !== opts.key || req.headers['modal-secret'] !== opts.secret)) {
      const missing = req.headers['modal-key'] === undefined || req.headers['modal-secret'] === undefined;
      return void res.writeHead(401, { 'content-type': 'text/plain' }).end(`modal-http: ${missing ? 'missing' : 'invalid'} credentials for proxy authorization`);
    }
    if (opts.bearer && req.headers.authorization !== `Bearer ${opts.bearer}`) return json(res, 401, { error: 'Unauthorized' });
    const url = new URL(req.url ?? '/', ctx.url);
    if (url.pathname !== '/v1/chat/completions') return json(res, 404, { detail: 'Not Found' });

    const callId = url.searchParams.get('__modal_function_call_id');
    if (req.method === 'GET' && callId) {
      const call = pending.get(callId);
      if (!call) return answer(res, { messages: [{ role: 'user', content: 'result' }] }); // Modal's other host
      if (--call.left > 0) return seeOther(res, `${url.pathname}?__modal_function_call_id=${callId}`);
      pending.delete(callId);
      return answer(res, call.body);
    }
    if (req.method !== 'POST') return json(res, 405, { detail: 'Method Not Allowed' });
    const body = parseBody(raw);
    if (!body || !Array.isArray(body.messages)) return json(res, 400, { object: 'error', message: 'messages is required', type: 'BadRequestError', code: 400 });
    const last = String(body.messages.at(-1)?.content ?? '');
    if (last.includes('[long]')) {
      const id = `fc-${++n}`;
      const location = `${opts.redirect_origin ?? ''}/v1/chat/completions?__modal_function_call_id=${id}`;
      if (!opts.redirect_origin) pending.set(id, { body, left: opts.redirects ?? 2 });
      return seeOther(res, location, opts.redirect_status);
    }
    if (last.includes('[bad-json]')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"choices": [');
    answer(res, body, !last.includes('[no-usage]'));
  }, opts);
}

function seeOther(res: import('node:http').ServerResponse, location: string, status = 303) {
  res.writeHead(status, { location, 'content-length': '0' }).end();
}

/** vLLM's answer: ANSWER_TOKENS cut at max_tokens, JSON or SSE. */
function answer(res: import('node:http').ServerResponse, body: Record<string, any>, withUsage = true) {
  const max = Number.isInteger(body.max_tokens) ? body.max_tokens : ANSWER_TOKENS.length;
  const tokens = ANSWER_TOKENS.slice(0, max);
  const prompt = body.messages.map((m: { content?: unknown }) => String(m.content ?? '')).join(' ').split(/\s+/).filter(Boolean).length;
  const usage = { prompt_tokens: prompt, completion_tokens: tokens.length, total_tokens: prompt + tokens.length };
  const id = `chatcmpl-fake${Date.now()}`;
  const base = { id, created: Math.floor(Date.now() / 1000), model: body.model ?? 'model' };
  const finish = tokens.length < ANSWER_TOKENS.length ? 'length' : 'stop';
  if (body.stream !== true) {
    return json(res, 200, {
      ...base,
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: tokens.join('') }, logprobs: null, finish_reason: finish }],
      ...(withUsage ? { usage } : {}),
    });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
  const send = (v: unknown) => res.write(`data: ${JSON.stringify(v)}\n\n`);
  const chunk = (delta: unknown, finish_reason: string | null) => send({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason }] });
  chunk({ role: 'assistant', content: '' }, null);
  for (const t of tokens) chunk({ content: t }, null);
  chunk({}, finish);
  if (body.stream_options?.include_usage === true) send({ ...base, object: 'chat.completion.chunk', choices: [], usage });
  res.end('data: [DONE]\n\n');
}
