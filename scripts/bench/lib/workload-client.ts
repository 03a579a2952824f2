/**
 * One chat completion through the router as a client sees it, streamed or not: status, the
 * router's headers, time to the first content token, total latency, the answer text, and for a
 * stream whether it ended cleanly in `[DONE]` or with an error event. Never throws: network
 * errors and client-side timeouts come back as a result with `error` set.
 */

export interface ChatCall {
  url: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  /** Client-side give-up (abort) after this many ms; the result then has error = 'client timeout'. */
  clientTimeoutMs?: number;
  /**
   * Streams: give up (error = 'stream stalled') when no body bytes arrive for this long after
   * the response headers. The router sends its headers only once the first upstream chunk is in,
   * so a silence this long after them is a stall, not a slow backend.
   */
  idleTimeoutMs?: number;
}

export interface ChatResult {
  stream: boolean;
  /** HTTP status; 0 when no response arrived. */
  status: number;
  /** Request start → first SSE chunk with non-empty delta content (streams only). */
  ttftMs: number | null;
  /** Request start → last byte. */
  latencyMs: number;
  content: string;
  /** Stream: `data: [DONE]` seen. */
  done: boolean;
  /** Stream: the message of a `data: {"error":…}` event. */
  errorEvent: string | null;
  usage: { prompt_tokens: number; completion_tokens: number; cached_tokens: number | null } | null;
  /** x-router-* headers (without the prefix) and x-request-id. */
  router: Record<string, string>;
  /** Network error, client timeout, or unparsable body. */
  error: string | null;
}

/** 2xx, not the router's degraded stand-in, and for a stream: `[DONE]` without an error event. */
export function answeredOk(r: ChatResult): boolean {
  if (r.error || r.status < 200 || r.status >= 300 || r.router.degraded === 'true') return false;
  return r.stream ? r.done && r.errorEvent === null : r.errorEvent === null;
}

interface Chunk {
  error?: { message?: string };
  choices?: { delta?: { content?: string | null }; message?: { content?: string | null } }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } | null } | null;
}

export async function callChat(call: ChatCall): Promise<ChatResult> {
  const stream = call.body.stream === true;
  const result: ChatResult = { stream, status: 0, ttftMs: null, latencyMs: 0, content: '', done: false, errorEvent: null, usage: null, router: {}, error: null };
  const controller = new AbortController();
  let why: string | null = null;
  const giveUp = (reason: string) => {
    why ??= reason;
    controller.abort(new Error(reason));
  };
  const timer = call.clientTimeoutMs ? setTimeout(() => giveUp('client timeout'), call.clientTimeoutMs) : undefined;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const armIdle = () => {
    if (!call.idleTimeoutMs) return;
    clearTimeout(idle);
    idle = setTimeout(() => giveUp(`stream stalled (no bytes for ${call.idleTimeoutMs} ms)`), call.idleTimeoutMs);
  };
  const start = performance.now();
  try {
    const res = await fetch(call.url, { method: 'POST', headers: { 'content-type': 'application/json', ...call.headers }, body: JSON.stringify(call.body), signal: controller.signal });
    result.status = res.status;
    res.headers.forEach((v, k) => {
      if (k.startsWith('x-router-')) result.router[k.slice('x-router-'.length)] = v;
      else if (k === 'x-request-id') result.router['request-id'] = v;
    });
    const isSse = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
    if (!isSse || !res.body) {
      const text = await res.text();
      const json = parse(text);
      if (json?.error) result.errorEvent = json.error.message ?? 'error';
      result.content = json?.choices?.[0]?.message?.content ?? '';
      result.usage = usageOf(json?.usage);
      if (res.ok && !json) result.error = 'unparsable JSON body';
      return result;
    }
    const decoder = new TextDecoder();
    let buf = '';
    const onLine = (line: string) => {
      if (!line.startsWith('data:')) return;
      const data = line.slice(5).trim();
      if (data === '[DONE]') {
        result.done = true;
        return;
      }
      const json = parse(data);
      if (!json) return;
      if (json.error) result.errorEvent = json.error.message ?? 'error';
      const piece = json.choices?.[0]?.delta?.content;
      if (piece) {
        if (result.ttftMs === null) result.ttftMs = performance.now() - start;
        result.content += piece;
      }
      if (json.usage) result.usage = usageOf(json.usage);
    };
    const reader = res.body.getReader();
    armIdle();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      armIdle();
      buf += decoder.decode(r.value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, nl).replace(/\r$/, ''));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) onLine(buf);
    return result;
  } catch (e) {
    result.error = why ?? `network: ${(e as Error).message}`;
    return result;
  } finally {
    clearTimeout(timer);
    clearTimeout(idle);
    result.latencyMs = performance.now() - start;
  }
}

function parse(text: string): Chunk | null {
  try {
    return JSON.parse(text) as Chunk;
  } catch {
    return null;
  }
}

function usageOf(u: Chunk['usage']): ChatResult['usage'] {
  if (!u || typeof u.prompt_tokens !== 'number') return null;
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens ?? 0, cached_tokens: u.prompt_tokens_details?.cached_tokens ?? null };
}

/** Sum of every sample of a Prometheus metric (all label sets), e.g. `vllm:prefix_cache_hits_total`. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue; // another metric sharing the prefix
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

export async function scrape(simUrl: string): Promise<string> {
  const res = await fetch(`${simUrl}/metrics`);
  return res.text();
}
