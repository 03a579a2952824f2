import type { EndpointKind } from '../openai/schemas';
import { synthesize, type SyntheticToolCall } from '../openai/synthesize';
import { readUsage, type Usage } from '../openai/usage';

/**
 * An answer as the caches keep it: not the bytes the backend sent, but a canonical,
 * non-streamed form (text per choice, finish reasons, tool calls, usage, model), so that a
 * streamed request can be answered from an answer that was not streamed and the other way
 * round. Embeddings are kept as the JSON body itself (they are never streamed).
 *
 * Answers carrying what this form cannot hold (logprobs, refusals, audio, reasoning content)
 * are not cached.
 */
export type CachedAnswer = CachedGeneration | CachedEmbeddings;

export interface CachedGeneration {
  v: 1;
  endpoint: 'chat' | 'completions';
  /** The `model` field of the answer, as the backend wrote it. */
  model: string;
  choices: CachedChoice[];
  usage: Usage | null;
}

export interface CachedChoice {
  index: number;
  /** Chat content (null when the message has tool calls only) or completion text. */
  text: string | null;
  finish_reason: string;
  tool_calls?: SyntheticToolCall[];
}

export interface CachedEmbeddings {
  v: 1;
  endpoint: 'embeddings';
  model: string;
  /** The backend's JSON body, unchanged (encoding_format is part of the cache key). */
  body: string;
  usage: Usage | null;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown) => v !== undefined && v !== null;

function toolCallsOf(value: unknown): SyntheticToolCall[] | null | undefined {
  if (!present(value)) return undefined;
  if (!Array.isArray(value)) return null;
  const out: SyntheticToolCall[] = [];
  for (const t of value) {
    if (!isObj(t) || !isObj(t.function) || typeof t.id !== 'string' || typeof t.function.name !== 'string' || typeof t.function.arguments !== 'string') return null;
    out.push({ id: t.id, type: 'function', function: { name: t.function.name, arguments: t.function.arguments } });
  }
  return out;
}

/** The canonical form of a complete non-streamed answer (its JSON text); null when it cannot be cached. */
export function answerFromJson(endpoint: EndpointKind, text: string): CachedAnswer | null {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  return endpoint === 'embeddings' ? embeddingAnswer(body, text) : answerFromBody(endpoint, body);
}

function embeddingAnswer(body: unknown, text: string): CachedAnswer | null {
  if (!isObj(body) || typeof body.model !== 'string' || !Array.isArray(body.data)) return null;
  return { v: 1, endpoint: 'embeddings', model: body.model, body: text, usage: readUsage(body.usage) };
}

/** The canonical form of a complete chat or completions answer, from its parsed body (an answer the router assembled). */
export function answerFromBody(endpoint: 'chat' | 'completions', body: unknown): CachedAnswer | null {
  if (!isObj(body) || typeof body.model !== 'string' || !Array.isArray(body.choices)) return null;
  const usage = readUsage(body.usage);

  const choices: CachedChoice[] = [];
  for (const [i, c] of (body.choices as unknown[]).entries()) {
    if (!isObj(c) || typeof c.finish_reason !== 'string' || present(c.logprobs)) return null;
    const index = typeof c.index === 'number' ? c.index : i;
    if (endpoint === 'completions') {
      if (typeof c.text !== 'string') return null;
      choices.push({ index, text: c.text, finish_reason: c.finish_reason });
      continue;
    }
    const m = c.message;
    if (!isObj(m) || present(m.refusal) || present(m.audio) || present(m.function_call) || present(m.reasoning_content)) return null;
    if (m.content !== null && m.content !== undefined && typeof m.content !== 'string') return null;
    const tools = toolCallsOf(m.tool_calls);
    if (tools === null) return null;
    choices.push({ index, text: (m.content as string | null | undefined) ?? null, finish_reason: c.finish_reason, ...(tools?.length ? { tool_calls: tools } : {}) });
  }
  if (choices.length === 0) return null;
  return { v: 1, endpoint, model: body.model, choices, usage };
}

/**
 * Builds the canonical form from a streamed answer's SSE events as the relay passes them (the
 * `data` of each event, `[DONE]` included): nothing is buffered but the text itself. `result()`
 * is the answer once the stream is complete (`[DONE]` seen, every choice finished, no error
 * event, nothing uncacheable), else null.
 */
export class StreamAssembler {
  private readonly choices = new Map<number, { text: string | null; finish: string | null; tools: Map<number, { id: string; name: string; args: string }> }>();
  private model: string | null = null;
  private usage: Usage | null = null;
  private broken = false;
  private done = false;

  constructor(private readonly endpoint: 'chat' | 'completions') {}

  /** True once `[DONE]` has been seen. */
  get complete(): boolean {
    return this.done;
  }

  onEvent(data: string): void {
    if (this.broken || this.done) return;
    if (data === '[DONE]') {
      this.done = true;
      return;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      this.broken = true;
      return;
    }
    if (!isObj(chunk) || present(chunk.error)) {
      this.broken = true;
      return;
    }
    if (typeof chunk.model === 'string') this.model = chunk.model;
    const u = readUsage(chunk.usage);
    if (u) this.usage = u;
    if (!Array.isArray(chunk.choices)) return;
    for (const c of chunk.choices) {
      if (!isObj(c) || present(c.logprobs)) {
        this.broken = true;
        return;
      }
      const index = typeof c.index === 'number' ? c.index : 0;
      let st = this.choices.get(index);
      if (!st) this.choices.set(index, (st = { text: null, finish: null, tools: new Map() }));
      if (this.endpoint === 'completions') {
        if (typeof c.text === 'string') st.text = (st.text ?? '') + c.text;
      } else if (isObj(c.delta)) {
        const d = c.delta;
        if (present(d.refusal) || present(d.audio) || present(d.function_call) || present(d.reasoning_content)) {
          this.broken = true;
          return;
        }
        if (typeof d.content === 'string') st.text = (st.text ?? '') + d.content;
        if (Array.isArray(d.tool_calls)) {
          for (const t of d.tool_calls) {
            if (!isObj(t)) continue;
            const ti = typeof t.index === 'number' ? t.index : st.tools.size;
            let tool = st.tools.get(ti);
            if (!tool) st.tools.set(ti, (tool = { id: '', name: '', args: '' }));
            if (typeof t.id === 'string') tool.id = t.id;
            if (isObj(t.function)) {
              if (typeof t.function.name === 'string') tool.name += t.function.name;
              if (typeof t.function.arguments === 'string') tool.args += t.function.arguments;
            }
          }
        }
      }
      if (typeof c.finish_reason === 'string') st.finish = c.finish_reason;
    }
  }

  result(): CachedGeneration | null {
    if (!this.done || this.broken || this.model === null || this.choices.size === 0) return null;
    const choices: CachedChoice[] = [];
    for (const [index, st] of [...this.choices].sort((a, b) => a[0] - b[0])) {
      if (st.finish === null) return null;
      const tools = [...st.tools].sort((a, b) => a[0] - b[0]).map(([, t]) => ({ id: t.id, type: 'function' as const, function: { name: t.name, arguments: t.args } }));
      if (tools.some((t) => !t.id || !t.function.name)) return null;
      const text = tools.length && !st.text ? null : this.endpoint === 'completions' ? (st.text ?? '') : st.text;
      choices.push({ index, text, finish_reason: st.finish, ...(tools.length ? { tool_calls: tools } : {}) });
    }
    return { v: 1, endpoint: this.endpoint, model: this.model, choices, usage: this.usage };
  }
}

/** The cached answer as this request wants it: JSON or SSE in OpenAI's chunk format. */
export function replayAnswer(answer: CachedAnswer, opts: { stream: boolean; includeUsage: boolean }): Response {
  if (answer.endpoint === 'embeddings') return new Response(answer.body, { headers: { 'content-type': 'application/json' } });
  return synthesize({
    endpoint: answer.endpoint,
    model: answer.model,
    choices: answer.choices.map((c) => ({ index: c.index, text: c.text, finishReason: c.finish_reason, ...(c.tool_calls ? { toolCalls: c.tool_calls } : {}) })),
    stream: opts.stream,
    includeUsage: opts.includeUsage,
    usage: answer.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  });
}
