import type { EndpointKind } from './schemas';
import type { Usage } from './usage';

/** A tool call of a chat answer, as OpenAI's non-streamed message carries it. */
export interface SyntheticToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** One choice of an answer: its text (chat content, null with tool calls only) and how it ended. */
export interface SyntheticChoice {
  /** Defaults to the choice's position. */
  index?: number;
  text: string | null;
  finishReason: string;
  /** Chat only. */
  toolCalls?: SyntheticToolCall[];
}

/**
 * An answer the router writes itself, in OpenAI's format: JSON, or SSE chunks ending in
 * `data: [DONE]`. Used for the degraded answer at the end of a fallback chain (one choice,
 * `text`) and for answers replayed from a cache (`choices`: any number, as stored).
 */
export interface SyntheticAnswer {
  endpoint: Exclude<EndpointKind, 'embeddings'>;
  model: string;
  /** The single choice's text (ignored when `choices` is given). */
  text?: string;
  /** Every choice (replaces `text` and `finishReason`). */
  choices?: SyntheticChoice[];
  stream: boolean;
  /** Include the usage chunk in a stream (the client's stream_options.include_usage). */
  includeUsage: boolean;
  usage: Usage;
  finishReason?: string;
  id?: string;
}

/** A new answer id, as OpenAI writes them. */
export function answerId(endpoint: Exclude<EndpointKind, 'embeddings'>): string {
  return `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${crypto.randomUUID().replaceAll('-', '')}`;
}

/** `usage` as it goes on the wire; an estimate (the router's own count) says so with `"estimated": true`. */
export function wireUsage(u: Usage): Record<string, unknown> {
  return { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens, ...(u.estimated ? { estimated: true } : {}) };
}

/** One SSE event carrying JSON. */
export const sseEvent = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`;

/**
 * The chunks of one streamed answer in OpenAI's format (`chat.completion.chunk`, or
 * `text_completion` for legacy completions), all with the same id, created and model. Used by
 * synthesize() and by the adapters that translate a backend's own stream (worker/backends/).
 */
export function chunkBuilder(endpoint: Exclude<EndpointKind, 'embeddings'>, model: string, id: string = answerId(endpoint)) {
  const created = Math.floor(Date.now() / 1000);
  const chat = endpoint === 'chat';
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const chunk = (index: number, choice: Record<string, unknown>) => ({ id, object, created, model, choices: [{ index, ...choice }] });
  return {
    id,
    /** Chat: the first chunk of a choice, with the role. Completions have none (null). */
    start: (index: number) => (chat ? chunk(index, { delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }) : null),
    text: (index: number, text: string) => chunk(index, chat ? { delta: { content: text }, logprobs: null, finish_reason: null } : { text, logprobs: null, finish_reason: null }),
    toolCalls: (index: number, calls: SyntheticToolCall[]) => chunk(index, { delta: { tool_calls: calls.map((t, i) => ({ index: i, ...t })) }, logprobs: null, finish_reason: null }),
    finish: (index: number, reason: string) => chunk(index, chat ? { delta: {}, logprobs: null, finish_reason: reason } : { text: '', logprobs: null, finish_reason: reason }),
    /** The usage chunk: no choices. */
    usage: (u: Usage) => ({ id, object, created, model, choices: [], usage: wireUsage(u) }),
  };
}

export function synthesize(a: SyntheticAnswer): Response {
  const id = a.id ?? answerId(a.endpoint);
  const created = Math.floor(Date.now() / 1000);
  const usage = wireUsage(a.usage);
  const choices = (a.choices ?? [{ text: a.text ?? '', finishReason: a.finishReason ?? 'stop' }]).map((c, i) => ({ ...c, index: c.index ?? i }));
  const chat = a.endpoint === 'chat';

  if (!a.stream) {
    const body = chat
      ? {
          id,
          object: 'chat.completion',
          created,
          model: a.model,
          choices: choices.map((c) => ({
            index: c.index,
            message: { role: 'assistant', content: c.text, refusal: null, ...(c.toolCalls?.length ? { tool_calls: c.toolCalls } : {}) }, // refusal: null, as OpenAI's answers carry it
            logprobs: null,
            finish_reason: c.finishReason,
          })),
          usage,
        }
      : {
          id,
          object: 'text_completion',
          created,
          model: a.model,
          choices: choices.map((c) => ({ index: c.index, text: c.text ?? '', logprobs: null, finish_reason: c.finishReason })),
          usage,
        };
    return new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } });
  }

  const b = chunkBuilder(a.endpoint, a.model, id);
  const events: unknown[] = [];
  for (const c of choices) {
    if (chat) {
      events.push(b.start(c.index));
      if (c.text !== null) events.push(b.text(c.index, c.text));
      if (c.toolCalls?.length) events.push(b.toolCalls(c.index, c.toolCalls));
    } else {
      events.push(b.text(c.index, c.text ?? ''));
    }
    events.push(b.finish(c.index, c.finishReason));
  }
  if (a.includeUsage) events.push(b.usage(a.usage));
  const text = events.map(sseEvent).join('') + 'data: [DONE]\n\n';
  return new Response(text, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } });
}
