import type { EndpointKind } from './schemas';
import type { Usage } from './usage';

/**
 * An answer the router writes itself, in OpenAI's format: JSON, or SSE chunks ending in
 * `data: [DONE]`. Used for the degraded answer at the end of a fallback chain (and for
 * answers replayed from a cache).
 */
export interface SyntheticAnswer {
  endpoint: Exclude<EndpointKind, 'embeddings'>;
  model: string;
  text: string;
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
  const finish = a.finishReason ?? 'stop';
  const usage = { prompt_tokens: a.usage.prompt_tokens, completion_tokens: a.usage.completion_tokens, total_tokens: a.usage.total_tokens };

  if (!a.stream) {
    const body =
      a.endpoint === 'chat'
        ? { id, object: 'chat.completion', created, model: a.model, choices: [{ index: 0, message: { role: 'assistant', content: a.text }, logprobs: null, finish_reason: finish }], usage }
        : { id, object: 'text_completion', created, model: a.model, choices: [{ index: 0, text: a.text, logprobs: null, finish_reason: finish }], usage };
    return new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } });
  }

  const object = a.endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const chunk = (choice: Record<string, unknown>) => ({ id, object, created, model: a.model, choices: [{ index: 0, ...choice }] });
  const events: unknown[] =
    a.endpoint === 'chat'
      ? [
          chunk({ delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
          chunk({ delta: { content: a.text }, logprobs: null, finish_reason: null }),
          chunk({ delta: {}, logprobs: null, finish_reason: finish }),
        ]
      : [chunk({ text: a.text, logprobs: null, finish_reason: null }), chunk({ text: '', logprobs: null, finish_reason: finish })];
  if (a.includeUsage) events.push({ id, object, created, model: a.model, choices: [], usage });
  const text = events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + 'data: [DONE]\n\n';
  return new Response(text, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } });
}
