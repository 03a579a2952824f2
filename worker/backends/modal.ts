import { readUsage } from '../openai/usage';
import { badUpstream, estimatedUsage, openAIError, parseJson } from './translate';
import { USAGE_HEADER, type BackendAdapter } from './types';

// vLLM served on Modal as a web endpoint (`https://<workspace>--<app>-<function>.modal.run`):
// OpenAI's API, plus what Modal's edge adds.
// - Proxy auth (requires_proxy_auth): the token's id and secret in the Modal-Key and
//   Modal-Secret headers (modal.com/docs/guide/webhook-proxy-auth); a bearer key for vLLM's
//   --api-key goes in auth_header as for any vLLM, and both may be sent.
// - A call still running after 150 s is answered 303 See Other, to the same URL with a query
//   parameter naming the call; a GET there blocks until the result, or 303s again after another
//   150 s (modal.com/docs/guide/webhook-timeouts). So redirects are followed by hand: with GET,
//   under the same signal (the deadline still holds), credentials kept only on the same origin.
//   A 307/308 (which repeats the POST, prompt included) is followed only on the same origin.
// The `modal` SDK (gRPC over HTTP/2) is Node-only: it belongs to the scripts; the Worker speaks HTTPS.

const paths = { chat: '/v1/chat/completions', completions: '/v1/completions', embeddings: '/v1/embeddings' } as const;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export const modalAdapter: BackendAdapter = {
  async send(backend, request, { signal, secret, env }) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: request.stream ? 'text/event-stream' : 'application/json',
      'x-request-id': request.requestId,
    };
    if (secret) headers[backend.auth_header] = backend.auth_header === 'authorization' ? `Bearer ${secret}` : secret;
    const modal = backend.modal;
    if (modal?.key_secret && modal.secret_secret) {
      const key = env?.[modal.key_secret];
      const value = env?.[modal.secret_secret];
      if (typeof key === 'string' && typeof value === 'string') {
        headers['modal-key'] = key;
        headers['modal-secret'] = value;
      }
    }
    const body = JSON.stringify(request.body);
    let url = new URL(backend.url.replace(/\/+$/, '') + paths[request.endpoint]);
    const origin = url.origin;
    let res = await fetch(url, { method: 'POST', headers, body, signal, redirect: 'manual' });
    for (let follows = 0; REDIRECTS.has(res.status); follows++) {
      const location = res.headers.get('location');
      await res.body?.cancel().catch(() => {});
      if (!location) return badUpstream(`${backend.id}: redirect ${res.status} without a Location`);
      if (follows >= (modal?.max_redirects ?? 20)) return openAIError(504, `${backend.id}: still running after ${follows} redirects`, 'upstream_timeout');
      url = new URL(location, url);
      // 307/308 repeat the POST; 303 (Modal's) and the older 301/302 fetch the result with GET.
      const repost = res.status === 307 || res.status === 308;
      const sameOrigin = url.origin === origin;
      // A 307/308 elsewhere would re-send the prompt to an origin the config never named: refused.
      if (repost && !sameOrigin) return badUpstream(`${backend.id}: a ${res.status} redirect to ${url.origin} would re-send the request body to another origin; refused`);
      const next: Record<string, string> = sameOrigin ? { ...headers } : { accept: headers.accept!, 'x-request-id': request.requestId };
      if (!repost) delete next['content-type'];
      res = await fetch(url, { method: repost ? 'POST' : 'GET', headers: next, ...(repost ? { body } : {}), signal, redirect: 'manual' });
    }
    if (!res.ok || request.stream) return res; // the executor classifies errors; the relay checks streams
    return checkedJson(res, request.endpoint, request.body, backend.id);
  },
};

/**
 * A non-streamed answer, checked: JSON in OpenAI's shape (choices, or data for embeddings), else
 * a 502. Without usage (an endpoint that is not vLLM), the router estimates it and says so.
 */
async function checkedJson(res: Response, endpoint: keyof typeof paths, body: Record<string, unknown>, id: string): Promise<Response> {
  const text = await res.text();
  const json = parseJson(text) as Record<string, unknown> | null;
  const list = endpoint === 'embeddings' ? json?.data : json?.choices;
  if (!json || typeof json !== 'object' || !Array.isArray(list)) return badUpstream(`${id}: the answer is not OpenAI JSON`);
  if (readUsage(json.usage)) return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } });
  const asText = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v ?? ''));
  const prompt = Array.isArray(body.messages) ? (body.messages as { content?: unknown }[]).map((m) => asText(m.content)).join('\n') : asText(body.prompt ?? body.input);
  const completion = endpoint === 'embeddings' ? '' : (list as Record<string, any>[]).map((c) => c?.message?.content ?? c?.text ?? '').join('');
  json.usage = estimatedUsage(prompt, typeof completion === 'string' ? completion : '');
  return new Response(JSON.stringify(json), { status: 200, headers: { 'content-type': 'application/json', [USAGE_HEADER]: 'estimated' } });
}
