/**
 * Totals of a gate run and the verdict.
 *
 * Each case is scored on its own metric (the one its author chose); the per-metric figures are
 * means over the cases of that metric, and `mean_similarity` is the mean of every case's score.
 * The verdict (README "Prompt regression gate"):
 *   1. mean_similarity ≥ min_mean_similarity (default 0.9, [gate] of the deployment);
 *   2. with a stable run: no figure (mean_similarity and each metric's mean) worse than stable's by
 *      more than max_regression (default 0.05), relative to stable's value.
 * Pass rate (cases at or above their threshold) is reported but not a rule: one case's threshold
 * says which answers to look at, the totals say whether the version regressed.
 */
import type { GoldenCase, Metric } from './golden';

export interface CaseResult {
  case: GoldenCase;
  /** The answer's text; null when the request failed. */
  got: string | null;
  error: string | null;
  score: number;
  passed: boolean;
}

export interface MetricTotals {
  cases: number;
  mean: number;
  passed: number;
}

export interface RunSummary {
  version: string;
  cases: number;
  mean_similarity: number;
  /** Means per metric (null when no case uses it). */
  exact_match: number | null;
  rouge_l: number | null;
  embedding: number | null;
  by_metric: Partial<Record<Metric, MetricTotals>>;
  failures: number;
  errors: number;
  pass_rate: number;
}

export interface GateThresholds {
  minMeanSimilarity: number;
  maxRegression: number;
}

export const DEFAULT_GATE: GateThresholds = { minMeanSimilarity: 0.9, maxRegression: 0.05 };

export interface Verdict {
  passed: boolean;
  reasons: string[];
  /** Relative change vs stable per figure ((candidate − stable) / stable); empty without a stable run. */
  vs_stable: Partial<Record<Figure, number>>;
}

export const FIGURES = ['mean_similarity', 'exact_match', 'rouge_l', 'embedding'] as const;
export type Figure = (typeof FIGURES)[number];
const SUMMARY_KEY: Record<Metric, 'exact_match' | 'rouge_l' | 'embedding'> = { exact: 'exact_match', rouge_l: 'rouge_l', embedding: 'embedding' };

export function summarize(version: string, results: readonly CaseResult[]): RunSummary {
  const by: Partial<Record<Metric, MetricTotals>> = {};
  let sum = 0;
  let passed = 0;
  for (const r of results) {
    const t = (by[r.case.metric] ??= { cases: 0, mean: 0, passed: 0 });
    t.cases++;
    t.mean += r.score; // a sum until the end of the loop
    if (r.passed) t.passed++;
    sum += r.score;
    if (r.passed) passed++;
  }
  for (const t of Object.values(by)) t.mean /= t.cases;
  const n = results.length;
  const meanOf = (m: Metric) => by[m]?.mean ?? null;
  return {
    version,
    cases: n,
    mean_similarity: n ? sum / n : 0,
    exact_match: meanOf('exact'),
    rouge_l: meanOf('rouge_l'),
    embedding: meanOf('embedding'),
    by_metric: by,
    failures: n - passed,
    errors: results.filter((r) => r.error !== null).length,
    pass_rate: n ? passed / n : 0,
  };
}

export function metricFigure(m: Metric): Figure {
  return SUMMARY_KEY[m];
}

export function decide(candidate: RunSummary, stable: RunSummary | null, t: GateThresholds): Verdict {
  const reasons: string[] = [];
  const vs: Verdict['vs_stable'] = {};
  if (candidate.cases === 0) reasons.push('no case was run');
  if (candidate.mean_similarity < t.minMeanSimilarity) {
    reasons.push(`mean similarity ${fmt(candidate.mean_similarity)} < ${fmt(t.minMeanSimilarity)}`);
  }
  if (stable) {
    for (const f of FIGURES) {
      const s = stable[f];
      const c = candidate[f];
      if (s === null || c === null || s <= 0) continue; // nothing to regress from
      const change = (c - s) / s;
      vs[f] = change;
      // A hair of float noise must not fail an identical run.
      if (change < -t.maxRegression - 1e-12) reasons.push(`${f} ${fmt(c)} is ${pct(-change)} worse than stable's ${fmt(s)} (max ${pct(t.maxRegression)})`);
    }
  }
  return { passed: reasons.length === 0, reasons, vs_stable: vs };
}

export const fmt = (n: number) => n.toFixed(3);
export const pct = (n: number) => `${(n * 100).toFixed(1)}%`;
