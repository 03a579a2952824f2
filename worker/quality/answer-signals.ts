import type { InferenceRequest, Stage } from '../pipeline/types';
import { assembledAnswerOf } from '../openai/assemble';
import { isRefusal } from './refusal';

/** What a served answer showed, read after it was sent; never its text. */
export interface AnswerSignals {
  /** The tier that answered (null for an explicit model outside every tier). */
  tier: string | null;
  /** The first choice's finish_reason (null when the answer carried none, e.g. a stream cut short). */
  finishReason: string | null;
  refused: boolean;
}

/** Characters of the answer's start read for the refusal check (held until the verdict, never stored). */
const HEAD_CHARS = 300;
/** A chunk that may carry the verdict: a non-null finish_reason or a refusal. */
const VERDICT_FIELD = /"(?:finish_reason|refusal)"\s*:\s*"/;

/**
 * Watches every served chat or completions answer that missed the caches (the relayed stream's
 * events, or the JSON body once it is sent) for its first choice's finish_reason and first
 * sentences, and hands one verdict to the request's listeners (the usage record, quality feedback,
 * the deployment's rollout). Errors, degraded answers and cache hits get `null`. Delivered exactly
 * once on every exit, so the usage record that waits for it is never held back.
 */
export const answerSignalsStage: Stage = {
  name: 'answer-signals',
  run(r) {
    if (r.kind === 'embeddings') return;
    const deliver = r.signals.expect();
    const head = new AnswerHead();
    let relayed: boolean | null = null; // null until finish
    let streamDone = false;
    const verdict = (): AnswerSignals => ({
      tier: r.result?.served?.tier ?? null,
      finishReason: head.finish,
      refused: head.refused || isRefusal(head.head),
    });
    r.join({
      name: 'answer-signals',
      onStreamEvent: (data) => head.onEvent(data),
      finish: ({ response, relaying }) => {
        if (response.status !== 200 || r.degraded || !r.result?.served) return deliver(null);
        relayed = relaying;
        if (relaying) {
          if (streamDone) deliver(verdict());
          return;
        }
        // An answer the router assembled from a stream is judged from the object it was built from.
        const assembled = assembledAnswerOf(response);
        if (assembled) {
          head.onBody(assembled.answer);
          return deliver(verdict());
        }
        r.ctx.waitUntil(
          response
            .clone()
            .text()
            .then((text) => {
              head.onJson(text);
              deliver(verdict());
            })
            .catch(() => deliver(null)),
        );
      },
      settle: (actual) => {
        if (r.body.stream !== true) return; // a JSON answer is judged in finish
        streamDone = true;
        if (relayed === true) deliver(actual.status === 'completed' || head.finish !== null ? verdict() : { ...verdict(), finishReason: null });
      },
      release: () => deliver(null),
    });
  },
};

/** The first choice's finish reason and the start of its text, from stream chunks or a JSON body. */
class AnswerHead {
  finish: string | null = null;
  head = '';
  refused = false;

  onEvent(data: string): void {
    if (data === '[DONE]' || this.finish !== null) return;
    // Once the head is read, only the chunk with a finish reason matters: skip parsing the others.
    if (this.head.length >= HEAD_CHARS && !VERDICT_FIELD.test(data)) return;
    try {
      this.choice(JSON.parse(data), 'delta');
    } catch {
      // not ours to judge: the relay decides what a bad chunk means
    }
  }

  onJson(text: string): void {
    try {
      this.onBody(JSON.parse(text));
    } catch {
      // an unparseable body gives no verdict
    }
  }

  onBody(body: unknown): void {
    this.choice(body, 'message');
  }

  private choice(body: unknown, field: 'delta' | 'message'): void {
    const choices = (body as { choices?: unknown })?.choices;
    if (!Array.isArray(choices)) return;
    const c = choices.find((x) => ((x as { index?: unknown })?.index ?? 0) === 0) as Record<string, unknown> | undefined;
    if (!c || typeof c !== 'object') return;
    const m = c[field] as Record<string, unknown> | undefined;
    const piece = typeof c.text === 'string' ? c.text : typeof m?.content === 'string' ? m.content : '';
    if (this.head.length < HEAD_CHARS) this.head = (this.head + piece).slice(0, HEAD_CHARS);
    if (typeof m?.refusal === 'string' && m.refusal.length > 0) this.refused = true;
    if (typeof c.finish_reason === 'string') this.finish = c.finish_reason;
  }
}

/** The request's answer listeners (pipeline/inference.ts makes one per request). */
export class AnswerWatch {
  private readonly listeners: ((s: AnswerSignals | null) => void)[] = [];
  private delivered = false;
  private expected = false;

  /** Whether a verdict will come (the stage ran); a listener added when none will hears null at once. */
  get pending(): boolean {
    return this.expected && !this.delivered;
  }

  /** The stage's side: the one function that delivers the verdict (only the first call counts). */
  expect(): (s: AnswerSignals | null) => void {
    this.expected = true;
    return (s) => {
      if (this.delivered) return;
      this.delivered = true;
      for (const fn of this.listeners) {
        try {
          fn(s);
        } catch (e) {
          console.error(JSON.stringify({ msg: 'answer listener failed', error: String(e) }));
        }
      }
    };
  }

  listen(fn: (s: AnswerSignals | null) => void): void {
    this.listeners.push(fn);
  }
}
