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

export function synthesize(a: SyntheticAnswer): Response {
  const id = a.id ?? `${a.endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${crypto.randomUUID().replaceAll('-', '')}`;
  const created = Math.floor(Date.now() / 1000);
  const usage = { prompt_tokens: a.usage.prompt_tokens, completion_tokens: a.usage.completion_tokens, total_tokens: a.usage.total_tokens };
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
            message: { role: 'assistant', content: c.text, ...(c.toolCalls?.length ? { tool_calls: c.toolCalls } : {}) },
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

  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const chunk = (index: number, choice: Record<string, unknown>) => ({ id, object, created, model: a.model, choices: [{ index, ...choice }] });
  const events: unknown[] = [];
  for (const c of choices) {
    if (chat) {
      events.push(chunk(c.index, { delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
      if (c.text !== null) events.push(chunk(c.index, { delta: { content: c.text }, logprobs: null, finish_reason: null }));
      if (c.toolCalls?.length) events.push(chunk(c.index, { delta: { tool_calls: c.toolCalls.map((t, i) => ({ index: i, ...t })) }, logprobs: null, finish_reason: null }));
      events.push(chunk(c.index, { delta: {}, logprobs: null, finish_reason: c.finishReason }));
    } else {
      events.push(chunk(c.index, { text: c.text ?? '', logprobs: null, finish_reason: null }), chunk(c.index, { text: '', logprobs: null, finish_reason: c.finishReason }));
    }
  }
  if (a.includeUsage) events.push({ id, object, created, model: a.model, choices: [], usage });
  const text = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n';
  return new Response(text, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } });
}
