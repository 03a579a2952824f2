import type { Stage } from '../pipeline/types';
import type { ChatRequest } from '../openai/schemas';
import { lastUserText } from './learned-complexity';
import { promptKind, recordOutcome } from './quality-feedback';

/**
 * Quality feedback (quality-feedback.ts): for `auto` requests that missed the caches, the served
 * answer's verdict (worker/quality/answer-signals.ts: finish_reason and refusal) is recorded for
 * the tier that answered: bad when truncated ("length") or refused. Degraded answers, errors and
 * streams that did not complete give no verdict.
 */
export const qualityFeedbackStage: Stage = {
  name: 'quality-feedback',
  run(r) {
    const cfg = r.config.raw.routing.quality_feedback;
    if (!cfg.enabled || r.kind === 'embeddings' || r.route.requested !== 'auto') return;
    const kind = promptKind(lastUserText(r.body as unknown as ChatRequest));
    r.signals.listen((s) => {
      if (s && s.tier !== null && s.finishReason !== null) recordOutcome(cfg, r.tenantId, s.tier, kind, s.finishReason === 'length' || s.refused);
    });
  },
};
