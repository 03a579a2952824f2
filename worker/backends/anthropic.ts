import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { Usage } from '../openai/usage';
import { answerResponse, blockChat, ChunkWriter, providerHeaders, translatedStream, type Block, type BlockChat, blockUsage } from './chat-blocks';
import { badUpstream, openAIError, parseJson } from './translate';
import { UpstreamStreamError, type BackendAdapter } from './types';

// Anthropic's Messages API (docs.anthropic.com/en/api/messages, …/messages-streaming):
// POST {url}/v1/messages with x-api-key, anthropic-version (and anthropic-beta when set).
// - Request: model, max_tokens (required), system, messages (user/assistant alternating, content
//   blocks: text, image {source: base64 | url}, tool_use, tool_result), temperature, top_p,
//   stop_sequences, tools [{name, description, input_schema}], tool_choice {auto|any|tool|none}.
// - Answer: content blocks (text, tool_use; thinking is left out), stop_reason (end_turn,
//   max_tokens, stop_sequence, tool_use, refusal, pause_turn), usage {input_tokens, output_tokens,
//   cache_creation_input_tokens, cache_read_input_tokens}. input_tokens excludes cached tokens,
//   so OpenAI's prompt_tokens is their sum, cached_tokens the cache reads.
// - Stream (SSE): message_start (usage so far), content_block_start / _delta (text_delta,
//   input_json_delta) / _stop, message_delta (stop_reason, cumulative usage), message_stop, ping,
//   error {error: {type, message}}.
// - Errors: {"type":"error","error":{"type","message"}}; 429 rate_limit_error, 529 overloaded_error.

export const anthropicAdapter: BackendAdapter = {
  async send(backend, request, { signal, secret }) {
    const chat = blockChat(request, 'anthropic', true);
    if (chat instanceof Response) return chat;
    const cfg = backend.anthropic;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: request.stream ? 'text/event-stream' : 'application/json',
      'anthropic-version': cfg?.version ?? '2023-06-01',
    };
    if (secret) headers['x-api-key'] = secret;
    if (cfg?.beta.length) headers['anthropic-beta'] = cfg.beta.join(',');
    const body = messagesBody(chat, cfg?.default_max_tokens ?? 4_096, request.stream);
    const res = await fetch(backend.url.replace(/\/+$/, '') + '/v1/messages', { method: 'POST', headers, body: JSON.stringify(body), signal });
    const kept = providerHeaders(res.headers);
    if (!res.ok) return anthropicError(res, backend.id, kept);
    if (!request.stream) {
      const json = parseJson(await res.text()) as Record<string, any> | null;
      if (!json || json.type !== 'message' || !Array.isArray(json.content)) return badUpstream(`${backend.id}: the answer is not an Anthropic message`);
      const blocks = (json.content as unknown[]).filter((c): c is Record<string, any> => typeof c === 'object' && c !== null);
      const toolCalls = blocks.filter((c) => c.type === 'tool_use').map((c) => ({ id: String(c.id), name: String(c.name), arguments: JSON.stringify(c.input ?? {}) }));
      const text = blocks.filter((c) => c.type === 'text').map((c) => String(c.text ?? '')).join('');
      return answerResponse(chat, { text, toolCalls, finishReason: finishOf(json.stop_reason), usage: usageOf(json.usage) }, kept);
    }
    if (!res.body) return badUpstream(`${backend.id}: empty stream`);
    return new Response(anthropicStream(res.body, chat, backend.id), { status: 200, headers: { 'content-type': 'text/event-stream; charset=utf-8', ...kept } });
  },
};

/** The Messages API request for a chat. */
export function messagesBody(chat: BlockChat, defaultMaxTokens: number, stream: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: chat.model,
    max_tokens: chat.maxTokens ?? defaultMaxTokens,
    messages: chat.turns.map((t) => ({ role: t.role, content: t.blocks.map(blockOf) })),
  };
  if (chat.system.length > 0) body.system = chat.system.join('\n\n');
  if (chat.temperature !== null) body.temperature = Math.min(1, chat.temperature); // Anthropic's range is 0..1
  if (chat.topP !== null) body.top_p = chat.topP;
  if (chat.stop.length > 0) body.stop_sequences = chat.stop;
  if (chat.user) body.metadata = { user_id: chat.user };
  if (chat.tools.length > 0) {
    body.tools = chat.tools.map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), input_schema: t.parameters }));
    const c = chat.toolChoice;
    const choice = c === 'none' ? { type: 'none' } : c === 'required' ? { type: 'any' } : c && typeof c === 'object' ? { type: 'tool', name: c.name } : { type: 'auto' };
    body.tool_choice = !chat.parallelToolCalls && choice.type !== 'none' ? { ...choice, disable_parallel_tool_use: true } : choice;
  }
  if (stream) body.stream = true;
  return body;
}

function blockOf(b: Block): Record<string, unknown> {
  switch (b.type) {
    case 'text':
      return { type: 'text', text: b.text };
    case 'image':
      return { type: 'image', source: { type: 'base64', media_type: b.mediaType, data: b.data } };
    case 'image_url':
      return { type: 'image', source: { type: 'url', url: b.url } };
    case 'tool_use':
      return { type: 'tool_use', id: b.id, name: b.name, input: b.input };
    case 'tool_result':
      return { type: 'tool_result', tool_use_id: b.id, content: b.text };
  }
}

const finishes: Record<string, string> = { end_turn: 'stop', stop_sequence: 'stop', pause_turn: 'stop', max_tokens: 'length', tool_use: 'tool_calls', refusal: 'content_filter' };
const finishOf = (reason: unknown) => finishes[String(reason)] ?? 'stop';

/** Anthropic's usage as OpenAI's (chat-blocks.ts blockUsage). */
export const usageOf = (u: Record<string, unknown> | null | undefined): Usage => blockUsage(u?.input_tokens, u?.output_tokens, u?.cache_read_input_tokens, u?.cache_creation_input_tokens);

/** An Anthropic error status, its message in OpenAI's format (the status kept: the executor classifies it). */
async function anthropicError(res: Response, id: string, headers: Record<string, string>): Promise<Response> {
  const text = await res.text().catch(() => '');
  const json = parseJson(text) as { error?: { type?: unknown; message?: unknown } } | null;
  const message = typeof json?.error?.message === 'string' ? json.error.message : text.slice(0, 300) || `HTTP ${res.status}`;
  const status = res.status === 529 ? 503 : res.status; // 529 overloaded: the next backend should be tried
  return openAIError(status, `${id}: ${message}`, typeof json?.error?.type === 'string' ? json.error.type : 'upstream_error', null, headers);
}

/** Anthropic's SSE events as OpenAI chunks. */
function anthropicStream(body: ReadableStream<Uint8Array>, chat: BlockChat, id: string): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => queue.push(e) });
  const out = new ChunkWriter(chat);
  let usage: Record<string, unknown> = {};
  let stopReason: unknown = null;
  let finished = false;
  let eof = false;

  const step = (e: EventSourceMessage): string => {
    const data = parseJson(e.data) as Record<string, any> | null;
    const type = data?.type ?? e.event;
    switch (type) {
      case 'message_start':
        usage = { ...usage, ...(data?.message?.usage ?? {}) };
        return '';
      case 'content_block_start': {
        const block = data?.content_block;
        if (block?.type === 'tool_use') return out.toolStart(Number(data?.index), String(block.id), String(block.name));
        if (block?.type === 'text' && typeof block.text === 'string') return out.text(block.text);
        return '';
      }
      case 'content_block_delta': {
        const d = data?.delta;
        if (d?.type === 'text_delta') return out.text(String(d.text ?? ''));
        if (d?.type === 'input_json_delta') return out.toolArgs(Number(data?.index), String(d.partial_json ?? ''));
        return ''; // thinking, signatures, citations
      }
      case 'message_delta':
        if (data?.delta?.stop_reason) stopReason = data.delta.stop_reason;
        usage = { ...usage, ...Object.fromEntries(Object.entries(data?.usage ?? {}).filter(([, v]) => v !== null)) };
        return '';
      case 'message_stop':
        finished = true;
        return out.end(finishOf(stopReason), usageOf(usage));
      case 'error':
        throw new UpstreamStreamError(`${id}: ${String(data?.error?.message ?? 'stream error')}`);
      default:
        return ''; // ping, content_block_stop, events added later
    }
  };

  return translatedStream(
    async () => {
      for (;;) {
        if (finished) {
          reader.cancel().catch(() => {});
          return null;
        }
        if (queue.length > 0) {
          let text = '';
          while (queue.length > 0 && !finished) text += step(queue.shift()!);
          return text;
        }
        if (eof) throw new UpstreamStreamError(`${id}: the stream ended before message_stop`);
        const read = await reader.read();
        if (read.done) {
          eof = true;
          parser.feed(decoder.decode());
        } else parser.feed(decoder.decode(read.value, { stream: true }));
      }
    },
    () => void reader.cancel().catch(() => {}),
  );
}
