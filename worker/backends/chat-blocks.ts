import { answerId, chunkBuilder, sseEvent } from '../openai/synthesize';
import type { Usage } from '../openai/usage';
import { openAIError } from './translate';
import { UpstreamStreamError, type UpstreamRequest } from './types';

// Shared by the adapters of APIs built of content blocks (Anthropic's Messages, Bedrock's
// Converse): an OpenAI chat request read into alternating turns of blocks (text, images, tool
// calls, tool results), and their answers and streams written back as OpenAI's.

type Body = Record<string, any>;

export type Block =
  | { type: 'text'; text: string }
  | { type: 'image'; mediaType: string; data: string }
  | { type: 'image_url'; url: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; id: string; text: string };

export interface Turn {
  role: 'user' | 'assistant';
  blocks: Block[];
}

export interface Tool {
  name: string;
  description?: string;
  parameters: Record<string, unknown>;
}

export interface BlockChat {
  endpoint: 'chat' | 'completions';
  model: string;
  system: string[];
  /** Alternating user/assistant turns (consecutive messages of one role merged into one turn). */
  turns: Turn[];
  maxTokens: number | null;
  temperature: number | null;
  topP: number | null;
  stop: string[];
  tools: Tool[];
  toolChoice: 'auto' | 'none' | 'required' | { name: string } | null;
  parallelToolCalls: boolean;
  includeUsage: boolean;
  user: string | null;
}

const present = (v: unknown) => v !== undefined && v !== null && v !== false;
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * What of an OpenAI request a block API cannot serve (null: all of it). The planner asks too
 * (worker/routing/capabilities.ts), so such a request goes to a backend that can.
 * `remoteImages`: whether image URLs (not data: URLs) can be passed on (Anthropic yes, Bedrock no).
 */
export function blocksUnsupported(endpoint: UpstreamRequest['endpoint'], b: Body, remoteImages: boolean): { what: string; param: string } | null {
  if (endpoint === 'embeddings') return { what: 'embeddings', param: 'model' };
  if (typeof b.n === 'number' && b.n > 1) return { what: 'more than one choice (n > 1)', param: 'n' };
  if (present(b.logprobs) || present(b.top_logprobs)) return { what: 'logprobs', param: 'logprobs' };
  const format = (b.response_format as { type?: unknown } | null | undefined)?.type;
  if (format !== undefined && format !== 'text') return { what: `response_format "${String(format)}"`, param: 'response_format' };
  if (endpoint === 'completions') {
    const p = Array.isArray(b.prompt) && b.prompt.length === 1 ? b.prompt[0] : b.prompt;
    if (typeof p !== 'string') return { what: 'a prompt that is not one string', param: 'prompt' };
    if (present(b.echo) || present(b.suffix) || (typeof b.best_of === 'number' && b.best_of > 1)) return { what: 'echo, suffix or best_of', param: 'prompt' };
    return null;
  }
  if (Array.isArray(b.tools) && b.tools.some((t: Body) => t?.type !== 'function')) return { what: 'tools other than functions', param: 'tools' };
  if (Array.isArray(b.messages)) {
    for (const [i, m] of (b.messages as Body[]).entries()) {
      if (!Array.isArray(m?.content)) continue;
      for (const part of m.content as Body[]) {
        if (part?.type === 'text' || part?.type === 'refusal') continue;
        if (part?.type !== 'image_url') return { what: `content parts of type "${String(part?.type)}"`, param: `messages[${i}].content` };
        const url = String(part.image_url?.url ?? '');
        if (!url.startsWith('data:') && !remoteImages) return { what: 'images by URL (give them as data: URLs)', param: `messages[${i}].content` };
      }
    }
  }
  return null;
}

/** The request as turns of blocks, or a 400 in OpenAI's format (what this backend cannot serve, or a malformed tool call). */
export function blockChat(request: UpstreamRequest, kind: string, remoteImages: boolean): BlockChat | Response {
  const b = request.body as Body;
  const reject = (what: string, param: string) => openAIError(400, `Backend kind "${kind}" cannot serve ${what}.`, 'unsupported_by_backend', param);
  const unsupported = blocksUnsupported(request.endpoint, b, remoteImages);
  if (unsupported) return reject(unsupported.what, unsupported.param);
  const endpoint = request.endpoint === 'completions' ? 'completions' : 'chat';
  const system: string[] = [];
  const turns: Turn[] = [];
  const push = (role: Turn['role'], blocks: Block[]) => {
    if (blocks.length === 0) return;
    const last = turns.at(-1);
    if (last?.role === role) last.blocks.push(...blocks);
    else turns.push({ role, blocks });
  };
  if (endpoint === 'completions') {
    const p = Array.isArray(b.prompt) ? b.prompt[0] : b.prompt;
    push('user', [{ type: 'text', text: String(p) }]);
  } else {
    for (const [i, m] of ((b.messages ?? []) as Body[]).entries()) {
      if (m.role === 'system' || m.role === 'developer') {
        const text = partsText(m.content);
        if (text) system.push(text);
      } else if (m.role === 'tool') {
        push('user', [{ type: 'tool_result', id: String(m.tool_call_id ?? ''), text: partsText(m.content) }]);
      } else if (m.role === 'assistant') {
        const blocks = contentBlocks(m.content);
        for (const [j, call] of ((Array.isArray(m.tool_calls) ? m.tool_calls : []) as Body[]).entries()) {
          let input: unknown;
          try {
            input = JSON.parse(String(call.function?.arguments ?? '') || '{}');
          } catch {
            return openAIError(400, `messages[${i}].tool_calls[${j}].function.arguments is not JSON.`, 'invalid_tool_arguments', `messages[${i}].tool_calls`);
          }
          blocks.push({ type: 'tool_use', id: String(call.id ?? ''), name: String(call.function?.name ?? ''), input });
        }
        push('assistant', blocks);
      } else {
        push('user', contentBlocks(m.content));
      }
    }
  }
  const tools: Tool[] = ((Array.isArray(b.tools) ? b.tools : []) as Body[]).map((t) => ({
    name: String(t.function?.name ?? ''),
    ...(typeof t.function?.description === 'string' ? { description: t.function.description } : {}),
    parameters: t.function?.parameters && typeof t.function.parameters === 'object' ? t.function.parameters : { type: 'object', properties: {} },
  }));
  const tc = b.tool_choice as unknown;
  const toolChoice = tc === 'auto' || tc === 'none' || tc === 'required' ? tc : tc && typeof tc === 'object' && typeof (tc as Body).function?.name === 'string' ? { name: String((tc as Body).function.name) } : null;
  const stop = typeof b.stop === 'string' ? [b.stop] : Array.isArray(b.stop) ? b.stop.filter((s: unknown): s is string => typeof s === 'string') : [];
  return {
    endpoint,
    model: String(b.model),
    system,
    turns,
    maxTokens: num(b.max_completion_tokens) ?? num(b.max_tokens),
    temperature: num(b.temperature),
    topP: num(b.top_p),
    stop,
    tools,
    toolChoice,
    parallelToolCalls: b.parallel_tool_calls !== false,
    includeUsage: b.stream_options?.include_usage === true,
    user: typeof b.user === 'string' ? b.user : null,
  };
}

function partsText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return (content as Body[]).map((p) => (typeof p?.text === 'string' ? p.text : typeof p?.refusal === 'string' ? p.refusal : '')).join('');
}

/** A message's content as blocks; empty text is left out (block APIs refuse empty text blocks). */
function contentBlocks(content: unknown): Block[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) return [];
  const out: Block[] = [];
  for (const p of content as Body[]) {
    const text = typeof p?.text === 'string' ? p.text : typeof p?.refusal === 'string' ? p.refusal : null;
    if (text !== null) {
      if (text !== '') out.push({ type: 'text', text });
      continue;
    }
    const url = String(p?.image_url?.url ?? '');
    const data = /^data:([a-z]+\/[a-z0-9.+-]+);base64,(.*)$/is.exec(url);
    out.push(data ? { type: 'image', mediaType: data[1]!.toLowerCase(), data: data[2]! } : { type: 'image_url', url });
  }
  return out;
}

// ------------------------------------------------------------------ answers

export interface BlockAnswer {
  text: string;
  toolCalls: { id: string; name: string; arguments: string }[];
  finishReason: string;
  usage: Usage;
}

/** `usage` on the wire, with cached prompt tokens where OpenAI puts them. */
export function usageWire(u: Usage): Record<string, unknown> {
  return {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.total_tokens,
    ...(u.cached_tokens !== undefined ? { prompt_tokens_details: { cached_tokens: u.cached_tokens } } : {}),
  };
}

/** A non-streamed answer in OpenAI's format (chat.completion, or text_completion for legacy completions). */
export function answerResponse(chat: BlockChat, a: BlockAnswer, headers: Record<string, string> = {}): Response {
  const created = Math.floor(Date.now() / 1000);
  const toolCalls = a.toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
  const body =
    chat.endpoint === 'chat'
      ? {
          id: answerId('chat'),
          object: 'chat.completion',
          created,
          model: chat.model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: a.text === '' && toolCalls.length > 0 ? null : a.text, refusal: null, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) },
              logprobs: null,
              finish_reason: a.finishReason,
            },
          ],
          usage: usageWire(a.usage),
        }
      : { id: answerId('completions'), object: 'text_completion', created, model: chat.model, choices: [{ index: 0, text: a.text, logprobs: null, finish_reason: a.finishReason }], usage: usageWire(a.usage) };
  return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json', ...headers } });
}

// ------------------------------------------------------------------ streams

const encoder = new TextEncoder();

/**
 * Writes one streamed answer as OpenAI chunks. Nothing is written before the first text or tool
 * call (until then the executor may still move to another backend); the role goes with it.
 */
export class ChunkWriter {
  private readonly chunks;
  private started = false;
  /** Upstream block index → OpenAI tool call index. */
  private readonly tools = new Map<number, number>();

  constructor(private readonly chat: BlockChat) {
    this.chunks = chunkBuilder(chat.endpoint, chat.model);
  }

  get hasOutput(): boolean {
    return this.started;
  }

  private start(): unknown[] {
    if (this.started) return [];
    this.started = true;
    const first = this.chunks.start(0);
    return first ? [first] : [];
  }

  text(text: string): string {
    if (text === '') return '';
    return [...this.start(), this.chunks.text(0, text)].map(sseEvent).join('');
  }

  toolStart(block: number, id: string, name: string): string {
    const index = this.tools.size;
    this.tools.set(block, index);
    const chunk = this.chunks.text(0, '') as Body;
    chunk.choices[0].delta = { tool_calls: [{ index, id, type: 'function', function: { name, arguments: '' } }] };
    return [...this.start(), chunk].map(sseEvent).join('');
  }

  toolArgs(block: number, partial: string): string {
    const index = this.tools.get(block);
    if (index === undefined || partial === '') return '';
    const chunk = this.chunks.text(0, '') as Body;
    chunk.choices[0].delta = { tool_calls: [{ index, function: { arguments: partial } }] };
    return sseEvent(chunk);
  }

  /** The finish chunk, the usage chunk when asked (none when unknown: the executor estimates it), and [DONE]. */
  end(finishReason: string, usage: Usage | null): string {
    const tail: unknown[] = [...this.start(), this.chunks.finish(0, finishReason)];
    if (this.chat.includeUsage && usage) tail.push({ ...this.chunks.usage(usage), usage: usageWire(usage) });
    return tail.map(sseEvent).join('') + 'data: [DONE]\n\n';
  }
}

/**
 * An upstream stream translated piece by piece: `next()` gives the SSE text of the next
 * upstream event(s) ('' for events that make no output), or null at the end. Pull-based; an
 * error errors the stream (the relay ends the client's stream with an error event).
 */
export function translatedStream(next: () => Promise<string | null>, cancel: () => void): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const out = await next();
          if (out === null) return controller.close();
          if (out !== '') return controller.enqueue(encoder.encode(out));
        }
      } catch (e) {
        cancel();
        controller.error(e instanceof UpstreamStreamError ? e : new UpstreamStreamError(e instanceof Error ? e.message : String(e)));
      }
    },
    cancel,
  });
}

/** Copies the provider headers the executor reads (rate limits, Retry-After) onto a translated answer. */
export function providerHeaders(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((value, name) => {
    if (/^(anthropic-ratelimit-|x-ratelimit-|retry-after)/i.test(name)) out[name] = value;
  });
  return out;
}

const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** A provider's usage as OpenAI's: prompt tokens include cache reads and writes; cached = reads. */
export function blockUsage(input: unknown, output: unknown, cacheRead: unknown, cacheWrite: unknown): Usage {
  const read = count(cacheRead);
  const prompt = count(input) + read + count(cacheWrite);
  const completion = count(output);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, ...(read > 0 ? { cached_tokens: read } : {}) };
}
