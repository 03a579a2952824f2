// PROVISIONAL (lead): the contract of /work/notes/I14-CONTRACT.md with simple rules, replaced by
// helper i14-stats' implementation (tests, significance, mSPRT) on merge.

export interface ArmSample { error: boolean; latencyMs: number; ttftMs: number | null; truncated: boolean; refused: boolean; outputTokens: number | null }
export interface FeedbackSample { score: number; metric?: string }
export interface ArmSummary {
  requests: number; errors: number; error_rate: number | null;
  p95_latency_ms: number | null; p95_ttft_ms: number | null;
  answered: number;
  refusals: number; refusal_rate: number | null; truncations: number; truncation_rate: number | null;
  mean_output_tokens: number | null; output_tokens_sum: number; output_tokens_sumsq: number; output_tokens_n: number;
  feedback: { count: number; positive: number; negative: number; negative_rate: number | null; positive_rate: number | null; mean_score: number | null; sum: number; sumsq: number };
  metrics: Record<string, { n: number; sum: number; sumsq: number; mean: number }>;
}
export interface RollbackThresholds { error_rate_points: number; p95_latency_pct: number; p95_ttft_pct: number; quality_pct: number }
export interface Check { signal: 'error_rate' | 'p95_latency' | 'p95_ttft' | 'refusal_rate' | 'truncation_rate' | 'mean_output_tokens' | 'negative_feedback_rate'; stable: number | null; candidate: number | null; limit: number | null; worse: boolean; significant: boolean; p_value: number | null }
export interface Comparison { verdict: 'rollback' | 'healthy' | 'insufficient'; reasons: string[]; checks: Check[] }
export interface AbResult { metric: string; test: 'fixed' | 'sequential'; alpha: number; stable: { n: number; value: number | null }; candidate: { n: number; value: number | null }; diff: number | null; ci: [number, number] | null; p_value: number | null; significant: boolean; winner: 'stable' | 'candidate' | null }

export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function summarize(samples: readonly ArmSample[], feedback: readonly FeedbackSample[]): ArmSummary {
  const ok = samples.filter((s) => !s.error);
  const out = ok.filter((s) => s.outputTokens !== null).map((s) => s.outputTokens!);
  const fb = feedback.filter((f) => f.metric === undefined);
  const rate = (n: number, d: number) => (d > 0 ? n / d : null);
  const metrics: ArmSummary['metrics'] = {};
  for (const f of feedback) {
    if (f.metric === undefined) continue;
    const m = (metrics[f.metric] ??= { n: 0, sum: 0, sumsq: 0, mean: 0 });
    m.n++;
    m.sum += f.score;
    m.sumsq += f.score * f.score;
    m.mean = m.sum / m.n;
  }
  const errors = samples.length - ok.length;
  return {
    requests: samples.length, errors, error_rate: rate(errors, samples.length),
    p95_latency_ms: percentile(samples.map((s) => s.latencyMs), 95),
    p95_ttft_ms: percentile(samples.filter((s) => s.ttftMs !== null).map((s) => s.ttftMs!), 95),
    answered: ok.length,
    refusals: ok.filter((s) => s.refused).length, refusal_rate: rate(ok.filter((s) => s.refused).length, ok.length),
    truncations: ok.filter((s) => s.truncated).length, truncation_rate: rate(ok.filter((s) => s.truncated).length, ok.length),
    mean_output_tokens: rate(out.reduce((a, b) => a + b, 0), out.length), output_tokens_sum: out.reduce((a, b) => a + b, 0), output_tokens_sumsq: out.reduce((a, b) => a + b * b, 0), output_tokens_n: out.length,
    feedback: {
      count: fb.length, positive: fb.filter((f) => f.score > 0).length, negative: fb.filter((f) => f.score < 0).length,
      negative_rate: rate(fb.filter((f) => f.score < 0).length, fb.length), positive_rate: rate(fb.filter((f) => f.score > 0).length, fb.length),
      mean_score: rate(fb.reduce((a, f) => a + f.score, 0), fb.length), sum: fb.reduce((a, f) => a + f.score, 0), sumsq: fb.reduce((a, f) => a + f.score * f.score, 0),
    },
    metrics,
  };
}

export function compareArms(stable: ArmSummary, candidate: ArmSummary, t: RollbackThresholds, opts: { minSamples: number; confidence: number }): Comparison {
  if (stable.requests < opts.minSamples || candidate.requests < opts.minSamples) return { verdict: 'insufficient', reasons: [], checks: [] };
  const checks: Check[] = [];
  const add = (signal: Check['signal'], s: number | null, c: number | null, limit: number | null, worse: boolean) => checks.push({ signal, stable: s, candidate: c, limit, worse, significant: worse, p_value: null });
  const er = (stable.error_rate ?? 0) + t.error_rate_points / 100;
  add('error_rate', stable.error_rate, candidate.error_rate, er, (candidate.error_rate ?? 0) > er);
  const pl = stable.p95_latency_ms === null ? null : stable.p95_latency_ms * (1 + t.p95_latency_pct / 100);
  add('p95_latency', stable.p95_latency_ms, candidate.p95_latency_ms, pl, pl !== null && candidate.p95_latency_ms !== null && candidate.p95_latency_ms > pl);
  const rr = (stable.refusal_rate ?? 0) * (1 + t.quality_pct / 100) + 0.02;
  add('refusal_rate', stable.refusal_rate, candidate.refusal_rate, rr, (candidate.refusal_rate ?? 0) > rr);
  const worse = checks.filter((c) => c.worse);
  return { verdict: worse.length ? 'rollback' : 'healthy', reasons: worse.map((c) => `${c.signal} ${c.candidate} vs ${c.stable} (limit ${c.limit})`), checks };
}

export function abTest(stable: ArmSummary, candidate: ArmSummary, opts: { metric: string; alpha: number; test: 'fixed' | 'sequential' }): AbResult {
  const s = { n: stable.feedback.count, value: stable.feedback.positive_rate };
  const c = { n: candidate.feedback.count, value: candidate.feedback.positive_rate };
  return { metric: opts.metric, test: opts.test, alpha: opts.alpha, stable: s, candidate: c, diff: s.value !== null && c.value !== null ? c.value - s.value : null, ci: null, p_value: null, significant: false, winner: null };
}
