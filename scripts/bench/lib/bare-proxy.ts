/**
 * The floor for "through a Worker": a Worker that only forwards each request to one origin, run
 * exactly like the router in the benches (Miniflare API, direct socket, same compat date/flags).
 * Router − floor is what the router's own code costs; floor − direct is workerd + one more hop.
 */
import { Miniflare } from 'miniflare';

const SCRIPT = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.ORIGIN + url.pathname + url.search, request);
  },
};`;

export function startBareProxy(origin: string, compat: Compat) {
  return startScriptWorker('bare-proxy', SCRIPT, origin, compat);
}

type Compat = { compatibilityDate?: string; compatibilityFlags?: string[] };

/** A one-file Worker with ORIGIN bound, run as the router is in the benches (Miniflare API, direct socket). */
async function startScriptWorker(name: string, script: string, origin: string, compat: Compat) {
  const mf = new Miniflare({
    name,
    modules: true,
    script,
    compatibilityDate: compat.compatibilityDate,
    compatibilityFlags: compat.compatibilityFlags,
    bindings: { ORIGIN: origin.replace(/\/$/, '') },
    host: '127.0.0.1',
    port: 0,
    unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    cf: { colo: 'LOCAL' },
  });
  await mf.ready;
  const url = (await mf.unsafeGetDirectURL()).origin;
  return { url, close: () => mf.dispose() };
}

/**
 * The floor for the router's *shape*: a Worker that does only what any router answering a
 * non-streamed client from a streamed backend must do — parse the JSON body, ask the origin for a
 * stream with usage, parse each event and answer the assembled JSON — and nothing else (no auth,
 * routing, limits, usage records, metrics, timeouts). Router − shape floor is the cost of the
 * router's features; shape floor − bare Worker is the cost of the design (issue 11's upstream
 * streaming). Only for the bench: it skips everything a real answer needs (choices but the first, errors).
 */
const SHAPE_SCRIPT = `export default {
  async fetch(request, env) {
    const body = await request.json();
    body.stream = true;
    body.stream_options = { include_usage: true };
    const res = await fetch(env.ORIGIN + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    let content = '';
    let last;
    for (const ev of text.split('\\n\\n')) {
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      last = JSON.parse(ev.slice(6));
      const piece = last.choices?.[0]?.delta?.content;
      if (piece) content += piece;
    }
    const answer = { id: last?.id, object: 'chat.completion', created: last?.created, model: last?.model, choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: last?.usage };
    return new Response(JSON.stringify(answer), { headers: { 'content-type': 'application/json' } });
  },
};`;

export function startShapeFloor(origin: string, compat: Compat) {
  return startScriptWorker('shape-floor', SHAPE_SCRIPT, origin, compat);
}
