import type { InferenceRequest, Stage } from '../pipeline/types';
import type { ChatRequest } from '../openai/schemas';
import { lastUserText } from './learned-complexity';
import { isRefusal, promptKind, recordOutcome } from './quality-feedback';

/** Characters of the answer's start read for the refusal check (held until the verdict, never stored). */
const HEAD_CHARS = 300;

/**
 * Quality feedback (quality-feedback.ts): for `auto` requests that missed the caches, a participant
 * watches the served answer (the relayed stream's events, or the JSON body) for its first choice's
 * finish_reason and first sentences, and records one verdict for the tier that answered: bad when
 * truncated ("length") or refused. Degraded answers, errors and streams the client left are not
 * counted. The usage record is unchanged.
 */
export const qualityFeedbackStage: Stage = {
  name: 'quality-feedback',
  run(r) {
    const cfg = r.config.raw.routing.quality_feedback;
    if (!cfg.enabled || r.kind === 'embeddings' || r.route.requested !== 'auto') return;
    const kind = promptKind(lastUserText(r.body as unknown as ChatRequest));
    const seen = new AnswerHead();
    let tier: string | null = null;
    const verdict = () => {
      if (tier !== null && seen.finish !== null) recordOutcome(cfg, r.tenantId, tier, kind, seen.finish === 'length' || seen.refused || isRefusal(seen.head));
    };
    r.join({
      name: 'quality-feedback',
      onStreamEvent: (data) => seen.onEvent(data),
      finish: ({ response, relaying }) => {
        tier = served(r, response.status);
        if (tier === null || relaying) return;
        r.ctx.waitUntil(
          response
            .clone()
            .text()
            .then((text) => {
              seen.onJson(text);
              verdict();
            })
            .catch(() => {}),
        );
      },
      settle: (actual) => {
        if (actual.status === 'completed' && r.body.stream === true) verdict();
      },
    });
  },
};

/** The tier that answered, when the answer is a real one from upstream. */
function served(r: InferenceRequest, status: number): string | null {
  if (status !== 200 || r.degraded || !r.result?.served) return null;
  return r.result.served.tier;
}

/** The first choice's finish reason and the start of its text, from stream chunks or a JSON body. */
class AnswerHead {
  finish: string | null = null;
  head = '';
  refused = false;

  onEvent(data: string): void {
    if (data === '[DONE]' || this.finish !== null) return;
    try {
      this.choice(JSON.parse(data), 'delta');
    } catch {
      // not ours to judge: the relay decides what a bad chunk means
    }
  }

  onJson(text: string): void {
    try {
      this.choice(JSON.parse(text), 'message');
    } catch {
      // an unparseable body gives no verdict
    }
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
