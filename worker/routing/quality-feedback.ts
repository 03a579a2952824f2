/**
 * Quality feedback for `auto` (issue 15 §1, "historical performance on similar queries"): per
 * tenant, tier and prompt kind, the share of that tier's answers that were truncated
 * (finish_reason "length") or refused, over a sliding window, lowers the tenant's boundary out of
 * the tier by a bounded offset ([routing.quality_feedback]), so borderline prompts go one tier up.
 * As good answers come in, or bad ones age out of the window, the offset goes back to 0.
 *
 * Isolate-local on purpose: no storage, no round trip on the hot path. Each isolate learns from the
 * answers it served (a busy tenant's traffic reaches the same few isolates, so it learns quickly);
 * a new isolate starts at offset 0, which is the configured routing. Only a verdict per answer is
 * kept (bad or not, and when), never the answer's text.
 */
import type { z } from 'zod';
import type { qualityFeedbackSchema } from '../config/schema';

export type QualityFeedbackConfig = z.infer<typeof qualityFeedbackSchema>;
export type PromptKind = 'code' | 'text';

/** Keys kept per isolate at most (tenant × tier × kind); the oldest key goes first. */
const MAX_KEYS = 10_000;

interface Window {
  at: number[];
  bad: boolean[];
}

const windows = new Map<string, Window>();
const keyOf = (tenant: string, tier: string, kind: PromptKind) => `${tenant}\u0000${tier}\u0000${kind}`;

/** One served answer's verdict, for the tier that produced it. */
export function recordOutcome(cfg: QualityFeedbackConfig, tenant: string, tier: string, kind: PromptKind, bad: boolean, now = Date.now()): void {
  const key = keyOf(tenant, tier, kind);
  let w = windows.get(key);
  if (!w) {
    if (windows.size >= MAX_KEYS) windows.delete(windows.keys().next().value!);
    windows.set(key, (w = { at: [], bad: [] }));
  }
  w.at.push(now);
  w.bad.push(bad);
  if (w.at.length > cfg.window) {
    w.at.shift();
    w.bad.shift();
  }
}

/**
 * How far the boundary above `tier` moves down for this tenant and prompt kind, in [0, max_offset]:
 * 0 up to `bad_share` of bad answers in the window, max_offset from twice it, linear between.
 */
export function boundaryOffset(cfg: QualityFeedbackConfig, tenant: string, tier: string, kind: PromptKind, now = Date.now()): number {
  if (!cfg.enabled) return 0;
  const w = windows.get(keyOf(tenant, tier, kind));
  if (!w) return 0;
  const oldest = now - cfg.window_seconds * 1000;
  while (w.at.length && w.at[0]! < oldest) {
    w.at.shift();
    w.bad.shift();
  }
  if (w.at.length < cfg.min_samples) return 0;
  const share = w.bad.filter(Boolean).length / w.at.length;
  const ramp = Math.min(1, Math.max(0, (share - cfg.bad_share) / cfg.bad_share));
  return Math.round(cfg.max_offset * ramp * 1e4) / 1e4;
}

/** Forgets everything this isolate learned (tests). */
export function resetQualityFeedback(): void {
  windows.clear();
}

/** The prompt kind feedback is kept under: code (fences, or code-shaped lines) or text. */
export function promptKind(lastUserText: string): PromptKind {
  const t = lastUserText.slice(0, 4_000);
  return /```|^\s*(def |class |function |import |#include|public |const |let |SELECT )|[;{}]\s*$/m.test(t) ? 'code' : 'text';
}
