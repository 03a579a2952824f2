import type { ChunkReader } from '../http/bulk-reader';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { UpstreamStreamError } from '../backends/types';
import { conformAnswer } from '../openai/conform';
import { readUsage, type Usage } from '../openai/usage';

export interface StreamOutcome {
  usage: Usage | null;
  /** Content chunks seen (a fallback count when the upstream sends no usage). */
  chunks: number;
  /** Chunks that carried generated text (a non-empty content or text): about one token each from vLLM and trtllm-serve. */
  contentChunks: number;
  status: 'completed' | 'client_closed' | 'upstream_error' | 'timeout';
  error?: string;
}

export interface RelayOptions {
  /** The upstream body, with its first bytes already read (they decided the attempt succeeded). */
  reader: ChunkReader;
  first: Uint8Array;
  /** The client asked for the usage chunk; if not, it is dropped on the way. */
  clientWantsUsage: boolean;
  /** Abort the upstream call (client left, or the total timeout fired). */
  abort: (reason: string) => void;
  /** Rejects when the total timeout fires: the stream is cut then, whether or not the client is reading. */
  deadline: Promise<never>;
  /**
   * The client's signal: when it aborts, the stream settles at once (client_closed) and the upstream
   * is cancelled. A client that leaves mid-stream may never pull again, and the runtime need not
   * call cancel(), so the relay cannot wait for either.
   */
  signal?: AbortSignal;
  /**
   * A consumer that takes nothing for this long (while no read of ours is pending) is taken as gone.
   * A client that disconnects before the response starts is neither signalled nor cancels the body
   * in workerd: the runtime just stops reading, so only the silence tells.
   */
  stallMs?: number;
  onDone: (outcome: StreamOutcome) => void;
  /** Sees each upstream event's data (`[DONE]` included) before it is relayed; for the response cache. */
  onEvent?: (data: string) => void;
}

const encoder = new TextEncoder();
/** A chunk with generated text: a non-empty "content" (chat delta) or "text" (completions). */
const HAS_TEXT = /"(?:content|text)":\s?"(?!")/;

/**
 * Relays an OpenAI SSE stream to the client one event at a time, with no buffering beyond
 * the event being parsed. Pull-based, so a slow client slows the upstream read rather than
 * growing a queue. The usage chunk (choices: []) is read for accounting and dropped unless
 * the client asked for it. An upstream failure after the first byte cannot be retried: the
 * stream ends with an SSE `data: {"error": ...}` event and closes cleanly.
 */
export function relaySse(opts: RelayOptions): ReadableStream<Uint8Array> {
  const { reader, clientWantsUsage } = opts;
  const decoder = new TextDecoder();
  let usage: Usage | null = null;
  let chunks = 0;
  let contentChunks = 0;
  let finished = false;
  let sawDone = false;
  let pending: Uint8Array[] = [];

  const finish = (status: StreamOutcome['status'], error?: string) => {
    if (finished) return;
    finished = true;
    clearInterval(watchdog ?? null);
    opts.signal?.removeEventListener('abort', onClientGone);
    opts.onDone({ usage, chunks, contentChunks, status, ...(error ? { error } : {}) });
  };

  const parser = createParser({
    onEvent(event: EventSourceMessage) {
      const data = conformAnswer(event.data); // nulls OpenAI's schema does not allow, dropped (openai/conform.ts)
      opts.onEvent?.(data);
      if (data === '[DONE]') {
        sawDone = true;
        pending.push(encoder.encode('data: [DONE]\n\n'));
        return;
      }
      if (HAS_TEXT.test(data)) contentChunks++;
      // Only chunks that mention usage are parsed; the rest go through as text.
      if (data.includes('"usage"')) {
        try {
          const chunk = JSON.parse(data) as { choices?: unknown[]; usage?: unknown };
          const u = readUsage(chunk.usage);
          if (u) usage = u;
          if (u && !clientWantsUsage && Array.isArray(chunk.choices) && chunk.choices.length === 0) return;
          if (!clientWantsUsage && chunk.usage !== undefined) {
            delete chunk.usage;
            chunks++;
            pending.push(encoder.encode(`data: ${JSON.stringify(chunk)}\n\n`));
            return;
          }
        } catch {
          // Not JSON: pass it on as it came.
        }
      }
      chunks++;
      pending.push(encoder.encode(event.event ? `event: ${event.event}\ndata: ${data}\n\n` : `data: ${data}\n\n`));
    },
  });

  const feed = (bytes: Uint8Array) => parser.feed(decoder.decode(bytes, { stream: true }));
  const flush = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    for (const p of pending) controller.enqueue(p);
    pending = [];
  };
  const errorEvent = (message: string, code: string) =>
    encoder.encode(`data: ${JSON.stringify({ error: { message, type: 'upstream_error', param: null, code } })}\n\n`);

  let firstSent = false;
  let out: ReadableStreamDefaultController<Uint8Array> | null = null;
  /** Ends the stream from outside a pull (deadline, client gone): nothing more is read or sent. */
  const cut = (status: 'timeout' | 'client_closed') => {
    if (finished) return;
    opts.abort(status === 'timeout' ? 'timeout' : 'client closed');
    reader.cancel().catch(() => {});
    if (out) {
      try {
        if (status === 'timeout') {
          flush(out);
          out.enqueue(errorEvent('The upstream stream exceeded its time limit.', 'upstream_timeout'));
        }
        out.close();
      } catch {
        // closed or cancelled already
      }
    }
    finish(status, status === 'timeout' ? 'The upstream stream exceeded its time limit.' : undefined);
  };
  opts.deadline.catch(() => cut('timeout'));
  // The stream's own first pull comes before anyone reads; every later one is the consumer asking for more.
  let lastAsked = Date.now();
  let reading = false;
  const watchdog = opts.stallMs
    ? setInterval(() => {
        if (finished) return clearInterval(watchdog ?? null);
        if (!reading && Date.now() - lastAsked >= opts.stallMs!) cut('client_closed');
      }, Math.max(50, Math.floor(opts.stallMs / 4)))
    : undefined;
  const onClientGone = () => cut('client_closed');
  if (opts.signal?.aborted) queueMicrotask(onClientGone);
  else opts.signal?.addEventListener('abort', onClientGone, { once: true });

  return new ReadableStream<Uint8Array>({
    start(controller) {
      out = controller;
    },
    async pull(controller) {
      if (finished) return;
      lastAsked = Date.now();
      reading = true;
      try {
        if (!firstSent) {
          firstSent = true;
          feed(opts.first);
        }
        // A read may carry only part of an event. The stream calls pull() again only after
        // something was enqueued, so keep reading until an event is complete (or the end).
        while (pending.length === 0) {
          // No race with the deadline per read (an allocation per token): the deadline's cut() cancels the reader, which ends this read.
          const result = await reader.read();
          if (finished) return; // cut meanwhile (deadline, client gone)
          if (result.done) {
            feed(new Uint8Array());
            if (!sawDone) throw new Error('upstream stream ended without [DONE]');
            flush(controller);
            controller.close();
            finish('completed');
            return;
          }
          feed(result.value);
        }
        reading = false;
        lastAsked = Date.now();
        flush(controller);
      } catch (e) {
        reading = false;
        if (finished) return;
        const timedOut = e instanceof DeadlineError;
        // A backend's own error event (an adapter's UpstreamStreamError, e.g. Triton's error after a 200) says what failed.
        const message = timedOut ? 'The upstream stream exceeded its time limit.' : e instanceof UpstreamStreamError ? `The upstream failed mid-stream: ${e.message}` : 'The upstream connection failed mid-stream.';
        opts.abort(timedOut ? 'timeout' : 'upstream error');
        flush(controller);
        controller.enqueue(errorEvent(message, timedOut ? 'upstream_timeout' : 'upstream_stream_error'));
        controller.close();
        finish(timedOut ? 'timeout' : 'upstream_error', message);
      }
    },
    cancel() {
      cut('client_closed');
    },
  });
}

export class DeadlineError extends Error {}
