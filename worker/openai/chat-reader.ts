import { createParser } from 'eventsource-parser';
import { readUsage, type Usage } from './usage';

// Reads the router's own chat-completion answers (JSON or SSE chunks) for the routes that answer
// in another format (worker/routes/responses.ts, anthropic-messages.ts). Only the first choice:
// those formats have one answer per request.

export interface ChatToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** A complete chat answer, as the other formats need it. */
export interface ChatAnswer {
  model: string;
  text: string;
  toolCalls: ChatToolCall[];
  /** OpenAI's finish_reason (stop, length, tool_calls, content_filter), null if the answer had none. */
  finishReason: string | null;
  /** vLLM's stop_reason: the stop string that ended the answer, when one did. */
  stopSequence: string | null;
  usage: Usage | null;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** The first choice of a non-streamed chat.completion body. */
export function readChatAnswer(body: unknown, fallbackModel: string): ChatAnswer {
  const b = isObj(body) ? body : {};
  const choice = Array.isArray(b.choices) && isObj(b.choices[0]) ? b.choices[0] : {};
  const m = isObj(choice.message) ? choice.message : {};
  const content = m.content;
  const text = typeof content === 'string' ? content : Array.isArray(content) ? content.map((p) => (isObj(p) && typeof p.text === 'string' ? p.text : '')).join('') : '';
  const toolCalls: ChatToolCall[] = [];
  if (Array.isArray(m.tool_calls)) {
    for (const t of m.tool_calls) {
      if (!isObj(t) || !isObj(t.function)) continue;
      toolCalls.push({ id: str(t.id) ?? `call_${crypto.randomUUID().replaceAll('-', '')}`, name: str(t.function.name) ?? '', arguments: str(t.function.arguments) ?? '' });
    }
  }
  return {
    model: str(b.model) ?? fallbackModel,
    text,
    toolCalls,
    finishReason: str(choice.finish_reason),
    stopSequence: str(choice.stop_reason),
    usage: readUsage(b.usage),
  };
}

/** What a stream translator is told, in order, as the chat chunks arrive. */
export interface ChatStreamSink {
  /** Once, before anything else: the answer's model (from the first chunk). */
  start(model: string): void;
  text(delta: string): void;
  /** A new tool call (its index within the answer), then pieces of its arguments. */
  toolCall(index: number, call: { id: string; name: string }): void;
  toolArguments(index: number, delta: string): void;
  /** The end of the answer: `[DONE]` or the upstream closing after it. */
  end(answer: ChatAnswer): void;
  /** The stream failed (the router's mid-stream error event); nothing follows. */
  error(message: string, code: string | null): void;
}

/**
 * Translates a chat SSE answer into another stream format: each event is read once and handed to
 * the sink, which writes its own events (strings), sent on with the bytes that produced them. Cancelling the result cancels the chat
 * stream (the client leaving reaches the upstream, as for a chat request).
 */
export function translateChatStream(body: ReadableStream<Uint8Array>, fallbackModel: string, makeSink: (emit: (text: string) => void) => ChatStreamSink): ReadableStream<Uint8Array> {
  let out = ''; // what the sink wrote since the last chunk went out
  const sink = makeSink((t) => (out += t));
  let started = false;
  let finished = false;
  let model = fallbackModel;
  let text = '';
  let finishReason: string | null = null;
  let stopSequence: string | null = null;
  let usage: Usage | null = null;
  const calls: ChatToolCall[] = [];
  const begin = (m: string) => {
    if (started) return;
    started = true;
    model = m;
    sink.start(m);
  };
  const end = () => {
    if (finished) return;
    finished = true;
    begin(model);
    sink.end({ model, text, toolCalls: calls.filter(Boolean), finishReason, stopSequence, usage });
  };

  const onEvent = (data: string) => {
    if (finished) return;
    if (data === '[DONE]') return end();
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return; // not JSON: nothing a translator could say about it
    }
    if (!isObj(chunk)) return;
    if (isObj(chunk.error)) {
      finished = true;
      begin(model);
      sink.error(str(chunk.error.message) ?? 'The upstream failed mid-stream.', str(chunk.error.code));
      return;
    }
    begin(str(chunk.model) ?? model);
    const u = readUsage(chunk.usage);
    if (u) usage = u;
    const choice = Array.isArray(chunk.choices) ? chunk.choices.find((c) => isObj(c) && (c.index ?? 0) === 0) : undefined;
    if (!isObj(choice)) return;
    const delta = isObj(choice.delta) ? choice.delta : {};
    if (typeof delta.content === 'string' && delta.content !== '') {
      text += delta.content;
      sink.text(delta.content);
    }
    if (Array.isArray(delta.tool_calls)) {
      for (const t of delta.tool_calls) {
        if (!isObj(t)) continue;
        const index = typeof t.index === 'number' ? t.index : calls.length;
        const fn = isObj(t.function) ? t.function : {};
        let call = calls[index];
        if (!call) {
          call = { id: str(t.id) ?? `call_${crypto.randomUUID().replaceAll('-', '')}`, name: str(fn.name) ?? '', arguments: '' };
          calls[index] = call;
          sink.toolCall(index, { id: call.id, name: call.name });
        }
        const args = str(fn.arguments);
        if (args) {
          call.arguments += args;
          sink.toolArguments(index, args);
        }
      }
    }
    if (typeof choice.finish_reason === 'string') finishReason = choice.finish_reason;
    if (typeof choice.stop_reason === 'string') stopSequence = choice.stop_reason;
  };

  // One stage (decode, parse, translate, encode) rather than a pipe of four: each stage of a
  // stream pipe costs its own hops per chunk (measured: +1.2 ms p50 on a 16-token stream with four).
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  const parser = createParser({ onEvent: (e) => onEvent(e.data) });
  const flushTo = (controller: TransformStreamDefaultController<Uint8Array>) => {
    if (out) controller.enqueue(encoder.encode(out));
    out = '';
  };
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(bytes, controller) {
        parser.feed(decoder.decode(bytes, { stream: true }));
        flushTo(controller);
      },
      flush(controller) {
        parser.feed(decoder.decode());
        // The chat stream always ends with [DONE] unless it failed (then an error event came first).
        if (!finished) end();
        flushTo(controller);
      },
    }),
  );
}
