// Quality drift (README "Quality signals and drift"): a pure detector over the per-minute quality
// series (worker/protocol/rules/quality-minutes.ts), run by the alert cron with the others.
//
// Per subject (a deployment version; for traffic on no deployment, the model), each signal of the
// last drift_window_minutes is compared with the drift_baseline_minutes before it. It fires when the
// signal moved, either way, by more than drift_change of its baseline AND by more than an absolute
// floor (drift_rate_floor for rates, drift_tokens_floor for the mean output length), with at least
// drift_min_samples on both sides: a relative threshold alone fires on noise when a rate is tiny
// (1% → 1.06%), and from a zero baseline only the floor can decide. Windows are complete minutes;
// a baseline shorter than the window (or than the configured baseline, if smaller) is skipped, as
// in the cost detector. A version that just started serving has no baseline: the rollout's own
// comparison with the stable version covers it.

import type { AlertsConfig } from '../config/alerts';
import type { Alert } from '../protocol/alerts';
import type { QualityMinute } from '../protocol/rules/quality-minutes';

const MINUTE_MS = 60_000;

export type DriftSignal = 'refusal_rate' | 'truncation_rate' | 'mean_output_tokens' | 'negative_feedback_rate';

interface Sums {
  answered: number;
  refusals: number;
  truncations: number;
  output_tokens: number;
  feedback: number;
  feedback_negative: number;
}

const empty = (): Sums => ({ answered: 0, refusals: 0, truncations: 0, output_tokens: 0, feedback: 0, feedback_negative: 0 });

function add(into: Sums, q: QualityMinute): void {
  into.answered += q.answered;
  into.refusals += q.refusals;
  into.truncations += q.truncations;
  into.output_tokens += q.output_tokens;
  into.feedback += q.feedback;
  into.feedback_negative += q.feedback_negative;
}

interface Subject {
  /** In the alert id: "deployment:<name>@<version>" or "model:<id>". */
  id: string;
  deployment: string | null;
  version: string | null;
  model: string | null;
  win: Sums;
  base: Sums;
}

const SIGNALS: readonly { signal: DriftSignal; label: string; kind: 'rate' | 'tokens'; value: (s: Sums) => number | null; samples: (s: Sums) => number }[] = [
  { signal: 'refusal_rate', label: 'Refusal rate', kind: 'rate', value: (s) => (s.answered ? s.refusals / s.answered : null), samples: (s) => s.answered },
  { signal: 'truncation_rate', label: 'Truncation rate', kind: 'rate', value: (s) => (s.answered ? s.truncations / s.answered : null), samples: (s) => s.answered },
  { signal: 'mean_output_tokens', label: 'Mean output length', kind: 'tokens', value: (s) => (s.answered ? s.output_tokens / s.answered : null), samples: (s) => s.answered },
  { signal: 'negative_feedback_rate', label: 'Negative feedback rate', kind: 'rate', value: (s) => (s.feedback ? s.feedback_negative / s.feedback : null), samples: (s) => s.feedback },
];

const r = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const show = (kind: 'rate' | 'tokens', x: number) => (kind === 'rate' ? `${r(x * 100, 2)}%` : `${r(x, 1)} tokens`);

/** Drift alerts at `now` over the quality minutes (any order). */
export function detectDrift(quality: readonly QualityMinute[], a: AlertsConfig, now: number): Alert[] {
  if (!a.drift_enabled || quality.length === 0) return [];
  const end = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const winStart = end - a.drift_window_minutes * MINUTE_MS;
  let horizon = Number.POSITIVE_INFINITY;
  for (const q of quality) if (q.minute < horizon) horizon = q.minute;
  const baseFrom = Math.max(winStart - a.drift_baseline_minutes * MINUTE_MS, horizon);
  const baseMinutes = Math.max(0, (winStart - baseFrom) / MINUTE_MS);
  if (baseMinutes < Math.min(a.drift_window_minutes, a.drift_baseline_minutes)) return [];

  const subjects = new Map<string, Subject>();
  for (const q of quality) {
    if (q.minute < baseFrom || q.minute >= end) continue;
    const onDeployment = q.deployment !== null && q.version !== null;
    if (!onDeployment && q.model === null) continue;
    const id = onDeployment ? `deployment:${q.deployment}@${q.version}` : `model:${q.model}`;
    let s = subjects.get(id);
    if (!s) subjects.set(id, (s = { id, deployment: onDeployment ? q.deployment : null, version: onDeployment ? q.version : null, model: q.model, win: empty(), base: empty() }));
    add(q.minute >= winStart ? s.win : s.base, q);
  }

  const out: Alert[] = [];
  for (const s of [...subjects.values()].sort((x, y) => (x.id < y.id ? -1 : 1))) {
    for (const sig of SIGNALS) {
      const nWin = sig.samples(s.win);
      const nBase = sig.samples(s.base);
      if (nWin < a.drift_min_samples || nBase < a.drift_min_samples) continue;
      const now_ = sig.value(s.win)!;
      const base = sig.value(s.base)!;
      const diff = now_ - base;
      const floor = sig.kind === 'rate' ? a.drift_rate_floor : a.drift_tokens_floor;
      if (Math.abs(diff) <= floor || Math.abs(diff) <= a.drift_change * base) continue;
      const who = s.deployment !== null ? `deployment ${s.deployment} version ${s.version}` : `model ${s.model}`;
      const change = base > 0 ? `${diff > 0 ? '+' : ''}${r((diff / base) * 100, 1)}%` : 'from 0';
      out.push({
        id: `quality_drift:${sig.signal}:${s.id}`,
        severity: 'warning',
        summary: `${sig.label} of ${who} moved ${show(sig.kind, base)} → ${show(sig.kind, now_)} (${change}) over the last ${a.drift_window_minutes} min against the ${baseMinutes} min before`,
        details: {
          signal: sig.signal,
          deployment: s.deployment,
          version: s.version,
          model: s.model,
          value: r(now_, sig.kind === 'rate' ? 4 : 2),
          baseline: r(base, sig.kind === 'rate' ? 4 : 2),
          relative_change: base > 0 ? r(diff / base, 4) : null,
          window_samples: nWin,
          baseline_samples: nBase,
          window_minutes: a.drift_window_minutes,
          baseline_minutes: baseMinutes,
        },
      });
    }
  }
  return out;
}
