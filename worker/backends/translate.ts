import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { chunkBuilder, sseEvent } from '../openai/synthesize';
import type { Usage } from '../openai/usage';
import type { TextMessage } from './chat-template';
import { UpstreamStreamError, type UpstreamRequest } from './types';

// Shared by the adapters of backends that take text and give text (Triton's generate endpoint,
// Replicate's language models): what of an OpenAI request they can serve, their errors in
// OpenAI's format, usage estimates, and their streams turned into OpenAI chunks.

export type TextEndpoint = 'chat' | 'completions';

/** The parts of an OpenAI request a text-in, text-out backend can honour. */
export interface TextRequest {
  endpoint: TextEndpoint;
  /** The served model name (the answer's `model`). */
  model: string;
  /** Chat: the conversation as text. */
  messages: TextMessage[];
  /** Completions: the prompt. */
  prompt: string;
  maxTokens: number | null;
  temperature: number | null;
  topP: number | null;
  stop: string[];
  seed: number | null;
  /** The stream should end with a usage chunk (the executor always asks, to count tokens). */
  includeUsage: boolean;
}

type Body = Record<string, unknown>;
const present = (v: unknown) => v !== undefined && v !== null && v !== false;
const numOrNull = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function singlePrompt(b: Body): string | null {
  const p = Array.isArray(b.prompt) && b.prompt.length === 1 ? b.prompt[0] : b.prompt;
  return typeof p === 'string' ? p : null;
}

/**
 * What of this request a text-in, text-out backend cannot serve (null: it can serve it all).
 * The planner asks it too (worker/routing/capabilities.ts), to send such a request elsewhere.
 */
export function textUnsupported(endpoint: UpstreamRequest['endpoint'], b: Body): { what: string; param: string } | null {
  if (endpoint === 'embeddings') return { what: 'embeddings', param: 'model' };
  if (typeof b.n === 'number' && b.n > 1) return { what: 'more than one choice (n > 1)', param: 'n' };
  if (present(b.logprobs) || present(b.top_logprobs)) return { what: 'logprobs', param: 'logprobs' };
  if (Array.isArray(b.tools) && b.tools.length > 0) return { what: 'tools', param: 'tools' };
  const format = (b.response_format as { type?: unknown } | null | undefined)?.type;
  if (format !== undefined && format !== 'text') return { what: `response_format "${String(format)}"`, param: 'response_format' };
  if (endpoint === 'completions') {
    if (singlePrompt(b) === null) return { what: 'a prompt that is not one string', param: 'prompt' };
    if (present(b.echo) || present(b.suffix) || (typeof b.best_of === 'number' && b.best_of > 1)) return { what: 'echo, suffix or best_of', param: 'prompt' };
  }
  if (endpoint === 'chat' && Array.isArray(b.messages)) {
    for (const [i, m] of (b.messages as Body[]).entries()) {
      if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) return { what: 'assistant tool calls in the conversation', param: `messages[${i}].tool_calls` };
      if (textOf(m.content) === null) return { what: 'non-text content (images, audio, files)', param: `messages[${i}].content` };
    }
  }
  return null;
}

/**
 * The request as text, or a 400 in OpenAI's format naming what this kind of backend cannot do
 * (tools, several choices, logprobs, structured output, images). A 400 is the client's to fix:
 * the executor returns it as it is and does not try another backend with it.
 */
export function textRequest(request: UpstreamRequest, kind: string): TextRequest | Response {
  const b = request.body;
  const reject = (what: string, param: string) => openAIError(400, `Backend kind "${kind}" cannot serve ${what}.`, 'unsupported_by_backend', param);
  const unsupported = textUnsupported(request.endpoint, b);
  if (unsupported) return reject(unsupported.what, unsupported.param);
  const endpoint = request.endpoint;
  if (endpoint === 'embeddings') return reject('embeddings', 'model'); // (refused above; this narrows the type)
  let messages: TextMessage[] = [];
  let prompt = '';
  if (endpoint === 'chat') {
    const list = Array.isArray(b.messages) ? (b.messages as Body[]) : [];
    for (const m of list) {
      const content = textOf(m.content) ?? ''; // textUnsupported() refused anything but text above
      const role = m.role === 'developer' ? 'system' : (m.role as TextMessage['role']);
      messages.push({ role, content });
    }
  } else {
    prompt = singlePrompt(b) ?? ''; // textUnsupported() refused anything but one string above
  }
  const stop = typeof b.stop === 'string' ? [b.stop] : Array.isArray(b.stop) ? b.stop.filter((s): s is string => typeof s === 'string') : [];
  return {
    endpoint,
    model: String(b.model),
    messages,
    prompt,
    maxTokens: numOrNull(b.max_completion_tokens) ?? numOrNull(b.max_tokens),
    temperature: numOrNull(b.temperature),
    topP: numOrNull(b.top_p),
    stop,
    seed: numOrNull(b.seed),
    includeUsage: (b.stream_options as { include_usage?: unknown } | null | undefined)?.include_usage === true,
  };
}

/** A message's text: a string, or text parts joined; null when it holds anything else. */
function textOf(content: unknown): string | null {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  let out = '';
  for (const part of content as Body[]) {
    if (part?.type === 'text' && typeof part.text === 'string') out += part.text;
    else if (part?.type === 'refusal' && typeof part.refusal === 'string') out += part.refusal;
    else return null;
  }
  return out;
}

// ------------------------------------------------------------------ errors

const errorTypes: Record<number, string> = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error', 429: 'rate_limit_error' };

/** An error answer in OpenAI's format, any status (the executor classifies it). */
export function openAIError(status: number, message: string, code: string, param: string | null = null, headers: Record<string, string> = {}): Response {
  const type = errorTypes[status] ?? (status >= 500 ? 'upstream_error' : 'invalid_request_error');
  return new Response(JSON.stringify({ error: { message, type, param, code } }), { status, headers: { 'content-type': 'application/json', ...headers } });
}

/** The backend answered something that is not what its API documents: a 502, so the next backend is tried. */
export const badUpstream = (message: string) => openAIError(502, message, 'bad_upstream_answer');

/**
 * A backend's error status, carried over with its message in OpenAI's format: Triton's
 * `{"error": "…"}`, Replicate's `{"detail": "…"}` (problem+json), or plain text. Retry-After stays.
 */
export async function upstreamError(res: Response, backendName: string): Promise<Response> {
  const text = await res.text().catch(() => '');
  let message = text.trim().slice(0, 500);
  try {
    const json = JSON.parse(text) as { error?: unknown; detail?: unknown; title?: unknown };
    const m = typeof json.error === 'string' ? json.error : typeof json.detail === 'string' ? json.detail : typeof json.title === 'string' ? json.title : null;
    if (m) message = m;
  } catch {
    // not JSON: the text as it came
  }
  const retryAfter = res.headers.get('retry-after');
  return openAIError(res.status, `${backendName}: ${message || `HTTP ${res.status}`}`, 'upstream_error', null, retryAfter ? { 'retry-after': retryAfter } : {});
}

// ------------------------------------------------------------------ usage

const encoder = new TextEncoder();

/**
 * Tokens in a text, estimated for backends that do not count them: about four UTF-8 bytes per
 * token, what Llama-3-class BPE tokenizers average on English. Never above the budget's
 * reservation, which counts a token per byte (worker/budget/estimate.ts).
 */
export function estimateTokens(text: string): number {
  return text === '' ? 0 : Math.max(1, Math.ceil(encoder.encode(text).length / 4));
}

/** Usage the router counted itself, marked as such. */
export function estimatedUsage(promptText: string, completionText: string): Usage {
  const prompt_tokens = estimateTokens(promptText);
  const completion_tokens = estimateTokens(completionText);
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens, estimated: true };
}

/** Backends that do not say why they stopped: "length" when the answer used its whole max_tokens. */
export function finishReason(completionTokens: number, maxTokens: number | null): string {
  return maxTokens !== null && completionTokens >= maxTokens ? 'length' : 'stop';
}

// ------------------------------------------------------------------ streams

/** What one upstream event means: text to pass on, the end of the answer, or nothing (null). */
export type StreamStep = { text: string } | { done: true } | null;

export interface TranslateOptions {
  endpoint: TextEndpoint;
  model: string;
  includeUsage: boolean;
  /** The backend's SSE body. */
  body: ReadableStream<Uint8Array>;
  /** Reads one upstream event; throws UpstreamStreamError for an error event. */
  onEvent(event: EventSourceMessage): StreamStep;
  /**
   * The upstream is over (`done`: an event said so; else its body ended): the usage and the
   * finish reason, or a throw when that ending is a failure.
   */
  onEnd(end: { done: boolean; text: string }): Promise<{ usage: Usage; finishReason: string }>;
  /** The reader went away (the client left): stop the upstream job. */
  onCancel?(): void;
}

/**
 * A backend's own SSE stream as OpenAI chunks: the role with the first text (never before: until
 * the backend has produced something, the executor may still move on to another backend), a
 * delta per upstream piece, a final chunk with the finish reason, the usage chunk when asked,
 * `[DONE]`. Pull-based, one upstream read at a time. An upstream failure errors this stream
 * (the relay ends the client's stream with an error event and no `[DONE]`).
 */
export function translateStream(o: TranslateOptions): ReadableStream<Uint8Array> {
  const chunks = chunkBuilder(o.endpoint, o.model);
  const reader = o.body.getReader();
  const decoder = new TextDecoder();
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => queue.push(e) });
  let started = false;
  let done = false;
  let eof = false;
  let text = '';
  const out = (events: unknown[]) => encoder.encode(events.map(sseEvent).join(''));
  const start = () => {
    const first = started ? null : chunks.start(0);
    started = true;
    return first ? [first] : [];
  };

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          while (queue.length > 0 && !done) {
            const step = o.onEvent(queue.shift()!);
            if (step === null) continue;
            if ('done' in step) {
              done = true;
              break;
            }
            if (step.text === '') continue;
            text += step.text;
            controller.enqueue(out([...start(), chunks.text(0, step.text)]));
            return; // pull() is called again for the rest
          }
          if (done || eof) break;
          const read = await reader.read();
          if (read.done) {
            eof = true;
            parser.feed(decoder.decode());
            parser.reset({ consume: true }); // an event not ended by a blank line still counts
          } else {
            parser.feed(decoder.decode(read.value, { stream: true }));
          }
        }
        if (done) reader.cancel().catch(() => {});
        const end = await o.onEnd({ done, text });
        const tail: unknown[] = [...start(), chunks.finish(0, end.finishReason)];
        if (o.includeUsage) tail.push(chunks.usage(end.usage));
        controller.enqueue(encoder.encode(tail.map(sseEvent).join('') + 'data: [DONE]\n\n'));
        controller.close();
      } catch (e) {
        reader.cancel().catch(() => {});
        controller.error(e instanceof Error ? e : new UpstreamStreamError(String(e)));
      }
    },
    cancel() {
      reader.cancel().catch(() => {});
      o.onCancel?.();
    },
  });
}

/** JSON of an upstream body, or null when it is not JSON (a bad answer). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
