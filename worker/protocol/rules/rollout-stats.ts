/**
 * Rollout statistics (README "Rollouts and quality" → "Rollout statistics"): pure functions, no I/O,
 * shared by the DeploymentState Durable Object (rollout evaluation, A/B reports) and the Worker.
 *
 * - `summarize` turns one arm's raw outcomes and feedback into an ArmSummary. Errors count in
 *   `requests` only: latency, TTFT, refusal, truncation and output length are measured on the
 *   answered (non-error) requests, so a candidate that fails fast cannot look faster or shorter.
 *   Percentiles interpolate linearly between order statistics (numpy's default).
 * - `compareArms` (automatic rollback) compares candidate with stable on the same window. The
 *   verdict is "insufficient" until both arms have `minSamples` requests. A check is `worse` when
 *   the candidate's point estimate is past its threshold:
 *     error rate          candidate − stable > error_rate_points / 100
 *     p95 latency / TTFT  candidate > stable × (1 + pct / 100)
 *     refusal, truncation, negative-feedback rate
 *                         candidate − stable > max(stable × quality_pct / 100, RATE_FLOOR = 1 point),
 *                         the absolute floor keeps 0% vs 0.1% from tripping on relative terms;
 *                         negative feedback also needs minSamples feedback per arm
 *     mean output tokens  candidate < stable × (1 − quality_pct / 100)
 *   and `significant` when a one-sided test at `confidence` says the candidate is past that
 *   threshold, not merely different (H0: the candidate is at most at the limit): an unpooled
 *   two-proportion z-test with Agresti–Caffo's adjustment for rates (defined at 0% and 100%),
 *   Welch's t-test for the mean length (variance floor 1/12: token counts are whole numbers), and
 *   for a p95 an exact binomial test that more than 5% of the candidate's values (counted from
 *   its log histogram) lie above the limit, with minSamples values per arm. Limits are taken
 *   from the stable estimate. Each test runs at (1 − confidence) / 7 (Bonferroni over the 7 checks, so
 *   `confidence` holds for the whole family; the check's p_value is the raw one-sided p).
 *   Testing against the threshold rather than equality, family-wise, is what keeps equal arms
 *   healthy although the object re-evaluates every few seconds on heavy-tailed latencies.
 *   Verdict "rollback" when any check is worse and significant, else "healthy".
 * - `abTest` (A/B report): metric "positive_feedback" = share of default feedback with score > 0
 *   (a proportion); any other name = the mean of that custom metric's scores (0..1). diff and CI
 *   are candidate − stable; the p-value is two-sided.
 *     "fixed": two-proportion z-test (pooled SE for the p-value, unpooled for the CI) or Welch's
 *       t-test for means. Valid only when looked at once, at a sample size fixed in advance:
 *       checked repeatedly it declares false winners far more often than alpha.
 *     "sequential" (default): mixture sequential probability ratio test (mSPRT, normal mixture
 *       N(0, τ²) over the difference, Johari et al., "Always valid inference", 2017/2022). The
 *       p-value is min(1, 1/Λ) and the CI a confidence sequence; by Ville's inequality the chance
 *       that a no-difference test EVER reports p ≤ alpha is ≤ alpha, so it may be checked after
 *       every request. τ = 0.1 (a 10-point / 0.1 difference is the effect size it is tuned for).
 *       Pass the previous result as `previous` to get the running minimum p-value and the
 *       intersected confidence sequence (both stay valid and become monotone).
 *   `winner` is set only when significant at alpha: the arm with the higher value.
 * Zero samples or zero variance give null values (never NaN), and never a significant result.
 */

export interface ArmSample {
  error: boolean;
  latencyMs: number;
  ttftMs: number | null;
  truncated: boolean;
  refused: boolean;
  outputTokens: number | null;
}

export interface FeedbackSample {
  /** -1..1: > 0 positive, < 0 negative, 0 neutral. */
  score: number;
  /** Custom metric name; absent = the default score. */
  metric?: string;
}

export interface MomentStats {
  n: number;
  sum: number;
  sumsq: number;
}

export interface ArmSummary {
  requests: number;
  errors: number;
  error_rate: number | null;
  p95_latency_ms: number | null;
  p95_ttft_ms: number | null;
  /** Answered requests with a latency / TTFT value (the p95s' sample sizes). */
  latency_n: number;
  ttft_n: number;
  /**
   * Log histograms of the same values (5% wide buckets: key i counts values in
   * [1.05^i, 1.05^(i+1)) ms), so compareArms can test a p95 regression for significance.
   */
  latency_buckets: Record<string, number>;
  ttft_buckets: Record<string, number>;
  /** Non-error samples: denominators of refusal/truncation/length. */
  answered: number;
  refusals: number;
  refusal_rate: number | null;
  truncations: number;
  truncation_rate: number | null;
  mean_output_tokens: number | null;
  output_tokens_sum: number;
  output_tokens_sumsq: number;
  output_tokens_n: number;
  feedback: {
    count: number;
    positive: number;
    negative: number;
    negative_rate: number | null;
    positive_rate: number | null;
    mean_score: number | null;
    sum: number;
    sumsq: number;
  };
  /** Custom metrics from feedback. */
  metrics: Record<string, { n: number; sum: number; sumsq: number; mean: number }>;
}

export interface RollbackThresholds {
  error_rate_points: number;
  p95_latency_pct: number;
  p95_ttft_pct: number;
  quality_pct: number;
}

export type CheckSignal =
  | 'error_rate'
  | 'p95_latency'
  | 'p95_ttft'
  | 'refusal_rate'
  | 'truncation_rate'
  | 'mean_output_tokens'
  | 'negative_feedback_rate';

export interface Check {
  signal: CheckSignal;
  stable: number | null;
  candidate: number | null;
  /** The candidate value past which the check is worse (from stable and the threshold). */
  limit: number | null;
  worse: boolean;
  significant: boolean;
  p_value: number | null;
}

export interface Comparison {
  verdict: 'rollback' | 'healthy' | 'insufficient';
  reasons: string[];
  checks: Check[];
}

export interface AbResult {
  metric: string;
  test: 'fixed' | 'sequential';
  alpha: number;
  stable: { n: number; value: number | null };
  candidate: { n: number; value: number | null };
  diff: number | null;
  ci: [number, number] | null;
  p_value: number | null;
  significant: boolean;
  winner: 'stable' | 'candidate' | null;
}

/** Checks with a significance test (all of them); each runs at (1 − confidence) / this. */
export const TESTED_CHECKS = 7;
/** Absolute floor (a share) for the relative quality-rate thresholds: 1 percentage point. */
export const RATE_FLOOR = 0.01;
/** Default mixture standard deviation of the mSPRT (absolute, in the metric's units). */
export const MSPRT_TAU = 0.1;
/** The A/B metric that is the share of positive default feedback. */
export const POSITIVE_FEEDBACK = 'positive_feedback';

// ---------------------------------------------------------------------------------------- summaries

/** The p-th percentile (0..100) by linear interpolation between order statistics (numpy's default); null when empty. */
export function percentile(values: readonly number[], p: number): number | null {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const pos = (Math.min(100, Math.max(0, p)) / 100) * (xs.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = xs[lo] as number;
  const b = xs[hi] as number;
  return a + (b - a) * (pos - lo);
}

/** Bucket width of the latency histograms: each bucket is 5% wider than the one below. */
export const BUCKET_GROWTH = 1.05;
const LOG_GROWTH = Math.log(BUCKET_GROWTH);

/** Histogram bucket of a value in ms (values under 1 µs share the lowest bucket). */
export function bucketOf(ms: number): number {
  return Math.floor(Math.log(Math.max(ms, 1e-3)) / LOG_GROWTH);
}

function buckets(values: readonly number[]): Record<string, number> {
  const m = new Map<number, number>();
  for (const v of values) {
    const b = bucketOf(v);
    m.set(b, (m.get(b) ?? 0) + 1);
  }
  return Object.fromEntries([...m].sort((a, b) => a[0] - b[0]).map(([k, n]) => [String(k), n]));
}

/** Values in the histogram that are certainly above `limit` (buckets starting at or past it). */
function countAbove(h: Record<string, number>, limit: number): number {
  const first = Math.ceil(Math.log(Math.max(limit, 1e-3)) / LOG_GROWTH - 1e-9);
  let n = 0;
  for (const [k, c] of Object.entries(h)) if (Number(k) >= first) n += c;
  return n;
}

/** P(X ≥ k) for X ~ Binomial(n, p): the exact upper tail, I_p(k, n − k + 1). */
export function binomialSf(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  return betaInc(k, n - k + 1, p);
}

function ratio(num: number, den: number): number | null {
  return den > 0 ? num / den : null;
}

export function summarize(samples: readonly ArmSample[], feedback: readonly FeedbackSample[]): ArmSummary {
  let errors = 0;
  let answered = 0;
  let refusals = 0;
  let truncations = 0;
  let tokN = 0;
  let tokSum = 0;
  let tokSq = 0;
  const latencies: number[] = [];
  const ttfts: number[] = [];
  for (const s of samples) {
    if (s.error) {
      errors++;
      continue;
    }
    answered++;
    if (s.refused) refusals++;
    if (s.truncated) truncations++;
    if (Number.isFinite(s.latencyMs) && s.latencyMs >= 0) latencies.push(s.latencyMs);
    if (s.ttftMs !== null && Number.isFinite(s.ttftMs) && s.ttftMs >= 0) ttfts.push(s.ttftMs);
    const t = s.outputTokens;
    if (t !== null && Number.isFinite(t) && t >= 0) {
      tokN++;
      tokSum += t;
      tokSq += t * t;
    }
  }
  let count = 0;
  let positive = 0;
  let negative = 0;
  let sum = 0;
  let sumsq = 0;
  const custom = new Map<string, MomentStats>();
  for (const f of feedback) {
    if (!Number.isFinite(f.score)) continue;
    if (f.metric === undefined) {
      count++;
      if (f.score > 0) positive++;
      else if (f.score < 0) negative++;
      sum += f.score;
      sumsq += f.score * f.score;
    } else {
      let m = custom.get(f.metric);
      if (m === undefined) custom.set(f.metric, (m = { n: 0, sum: 0, sumsq: 0 }));
      m.n++;
      m.sum += f.score;
      m.sumsq += f.score * f.score;
    }
  }
  const requests = samples.length;
  return {
    requests,
    errors,
    error_rate: ratio(errors, requests),
    p95_latency_ms: percentile(latencies, 95),
    p95_ttft_ms: percentile(ttfts, 95),
    latency_n: latencies.length,
    ttft_n: ttfts.length,
    latency_buckets: buckets(latencies),
    ttft_buckets: buckets(ttfts),
    answered,
    refusals,
    refusal_rate: ratio(refusals, answered),
    truncations,
    truncation_rate: ratio(truncations, answered),
    mean_output_tokens: ratio(tokSum, tokN),
    output_tokens_sum: tokSum,
    output_tokens_sumsq: tokSq,
    output_tokens_n: tokN,
    feedback: {
      count,
      positive,
      negative,
      negative_rate: ratio(negative, count),
      positive_rate: ratio(positive, count),
      mean_score: ratio(sum, count),
      sum,
      sumsq,
    },
    // fromEntries defines own properties, so a metric named "__proto__" stays a plain key.
    metrics: Object.fromEntries([...custom].map(([k, m]) => [k, { ...m, mean: m.sum / m.n }])),
  };
}

// ------------------------------------------------------------------------------- distributions

/** erfc with fractional error < 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Standard normal CDF Φ(x). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Upper tail 1 − Φ(x), accurate in the far tail. */
function normalSf(x: number): number {
  return 0.5 * erfc(x / Math.SQRT2);
}

/** Standard normal quantile Φ⁻¹(p), Acklam's rational approximation (relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (p <= 0) return -Infinity;
  if (p >= 1) return Infinity;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const [a0, a1, a2, a3, a4, a5] = a as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = b as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = c as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = d as [number, number, number, number];
  const lowP = 0.02425;
  if (p < lowP) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  }
  if (p > 1 - lowP) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return -(((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
  }
  const q = p - 0.5;
  const r = q * q;
  return ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1);
}

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9).
  const g = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const y = x - 1;
  let s = g[0] as number;
  for (let i = 1; i < 9; i++) s += (g[i] as number) / (y + i);
  const t = y + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaCf(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-14) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b). */
function betaInc(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lbt = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  const bt = Math.exp(lbt);
  if (x < (a + 1) / (a + b + 2)) return (bt * betaCf(a, b, x)) / a;
  return 1 - (bt * betaCf(b, a, 1 - x)) / b;
}

/** Upper tail P(T > t) of Student's t with `df` degrees of freedom (normal past 1e7). */
export function studentTSf(t: number, df: number): number {
  if (!Number.isFinite(df) || df > 1e7) return normalSf(t);
  const tail = 0.5 * betaInc(df / 2, 0.5, df / (df + t * t));
  return t >= 0 ? tail : 1 - tail;
}

/** Student's t quantile (bisection on the CDF; p in (0, 1)). */
export function studentTQuantile(p: number, df: number): number {
  if (!Number.isFinite(df) || df > 1e7) return normalQuantile(p);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = Math.max(1, normalQuantile(p) * 2);
  while (studentTSf(hi, df) > 1 - p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTSf(mid, df) > 1 - p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

// ------------------------------------------------------------------------------------------ tests

/** Which difference (b − a) the p-value is about: ≠ 0, > 0 or < 0. */
export type Alternative = 'two-sided' | 'greater' | 'less';

export interface TestResult {
  /** b − a. */
  diff: number | null;
  /** The test statistic (z or t); for the mSPRT the mixture likelihood ratio Λ. */
  stat: number | null;
  p_value: number | null;
  /** Two-sided (1 − alpha) interval for b − a: a confidence interval, or a confidence sequence. */
  ci: [number, number] | null;
}

const NONE: TestResult = Object.freeze({ diff: null, stat: null, p_value: null, ci: null }) as TestResult;

function pFromZ(z: number, alt: Alternative): number {
  if (alt === 'greater') return normalSf(z);
  if (alt === 'less') return normalSf(-z);
  return Math.min(1, 2 * normalSf(Math.abs(z)));
}

function clampP(p: number): number {
  return Math.min(1, Math.max(0, p));
}

/**
 * Two-proportion z-test of b − a (x successes out of n): pooled standard error for the p-value
 * (the null says both arms share one rate), unpooled for the (1 − alpha) confidence interval.
 */
export function twoProportionTest(
  xa: number,
  na: number,
  xb: number,
  nb: number,
  opts: { alpha: number; alternative?: Alternative },
): TestResult {
  if (!(na > 0 && nb > 0)) return NONE;
  const pa = xa / na;
  const pb = xb / nb;
  const diff = pb - pa;
  const pooled = (xa + xb) / (na + nb);
  const se = Math.sqrt((pa * (1 - pa)) / na + (pb * (1 - pb)) / nb);
  const se0 = Math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb));
  const zc = normalQuantile(1 - opts.alpha / 2);
  const ci: [number, number] | null = se > 0 ? [diff - zc * se, diff + zc * se] : null;
  if (!(se0 > 0)) return { diff, stat: null, p_value: null, ci };
  const z = diff / se0;
  return { diff, stat: z, p_value: pFromZ(z, opts.alternative ?? 'two-sided'), ci };
}

/**
 * One-sided test that b − a exceeds `delta` (H0: b − a ≤ delta), for the rollback checks. The
 * null is a threshold, not equality, so the SE is unpooled; Agresti–Caffo's adjustment (one
 * success and one failure added to each arm) keeps it honest on small counts and defined at
 * 0% and 100% (10 errors out of 10 vs 0 out of 200 is evidence, not a zero variance).
 */
export function thresholdProportionTest(xa: number, na: number, xb: number, nb: number, delta: number): TestResult {
  if (!(na > 0 && nb > 0)) return NONE;
  const pa = (xa + 1) / (na + 2);
  const pb = (xb + 1) / (nb + 2);
  const se = Math.sqrt((pa * (1 - pa)) / (na + 2) + (pb * (1 - pb)) / (nb + 2));
  const z = (pb - pa - delta) / se;
  return { diff: xb / nb - xa / na, stat: z, p_value: normalSf(z), ci: null };
}

/**
 * mSPRT for a difference whose estimate is ≈ N(θ, v) (Johari et al., normal mixture θ ~ N(0, τ²)):
 * Λ = √(v / (v + τ²)) · exp(τ² d² / (2 v (v + τ²))); always-valid p = min(1, 1/Λ); the confidence
 * sequence is every θ with Λ(θ) < 1/alpha, i.e. d ± √(v (v + τ²) / τ² · (2 ln(1/alpha) + ln((v + τ²) / v))).
 */
function msprt(diff: number, vP: number, vCi: number, alpha: number, tau: number): TestResult {
  const t2 = tau * tau;
  const ci: [number, number] | null =
    vCi > 0
      ? (() => {
          const half = Math.sqrt(((vCi * (vCi + t2)) / t2) * (2 * Math.log(1 / alpha) + Math.log((vCi + t2) / vCi)));
          return [diff - half, diff + half];
        })()
      : null;
  if (!(vP > 0)) return { diff, stat: null, p_value: null, ci };
  const logLambda = 0.5 * Math.log(vP / (vP + t2)) + (t2 * diff * diff) / (2 * vP * (vP + t2));
  return { diff, stat: Math.exp(Math.min(700, logLambda)), p_value: clampP(Math.exp(-logLambda)), ci };
}

/**
 * Sequential (always valid) two-proportion test of b − a: the mSPRT with the pooled variance for
 * the p-value and the unpooled one for the confidence sequence (like the fixed test).
 */
export function sequentialProportionTest(
  xa: number,
  na: number,
  xb: number,
  nb: number,
  opts: { alpha: number; tau?: number },
): TestResult {
  if (!(na > 0 && nb > 0)) return NONE;
  const pa = xa / na;
  const pb = xb / nb;
  const pooled = (xa + xb) / (na + nb);
  const vP = pooled * (1 - pooled) * (1 / na + 1 / nb);
  const vCi = (pa * (1 - pa)) / na + (pb * (1 - pb)) / nb;
  return msprt(pb - pa, vP, vCi, opts.alpha, opts.tau ?? MSPRT_TAU);
}

function sampleVariance(m: MomentStats): number {
  if (m.n < 2) return 0;
  return Math.max(0, (m.sumsq - (m.sum * m.sum) / m.n) / (m.n - 1));
}

/**
 * Difference of means b − a from moments. "fixed": Welch's t-test (Welch–Satterthwaite degrees of
 * freedom, t-based CI; null b − a = delta, default 0). "sequential": the mSPRT on the same estimate
 * (variance from the samples; null b − a = 0). `minVariance` floors each arm's sample variance
 * (e.g. 1/12 for whole-token counts, their rounding noise), so identical answers still compare.
 */
export function meanTest(
  a: MomentStats,
  b: MomentStats,
  opts: { alpha: number; test: 'fixed' | 'sequential'; alternative?: Alternative; tau?: number; delta?: number; minVariance?: number },
): TestResult {
  if (!(a.n >= 2 && b.n >= 2)) return NONE;
  const diff = b.sum / b.n - a.sum / a.n;
  const floor = opts.minVariance ?? 0;
  const va = Math.max(floor, sampleVariance(a)) / a.n;
  const vb = Math.max(floor, sampleVariance(b)) / b.n;
  const v = va + vb;
  if (opts.test === 'sequential') return msprt(diff, v, v, opts.alpha, opts.tau ?? MSPRT_TAU);
  if (!(v > 0)) return { diff, stat: null, p_value: null, ci: null };
  const se = Math.sqrt(v);
  const df = (v * v) / ((va * va) / (a.n - 1) + (vb * vb) / (b.n - 1));
  const t = (diff - (opts.delta ?? 0)) / se;
  const alt = opts.alternative ?? 'two-sided';
  const p = alt === 'greater' ? studentTSf(t, df) : alt === 'less' ? studentTSf(-t, df) : Math.min(1, 2 * studentTSf(Math.abs(t), df));
  const tc = studentTQuantile(1 - opts.alpha / 2, df);
  return { diff, stat: t, p_value: p, ci: [diff - tc * se, diff + tc * se] };
}

// ---------------------------------------------------------------------------------------- rollback

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

function relPct(c: number, s: number): string {
  const r = ((c - s) / s) * 100;
  return `${r >= 0 ? '+' : '−'}${Math.abs(r).toFixed(0)}%`;
}

interface RateArgs {
  signal: CheckSignal;
  label: string;
  xs: number;
  ns: number;
  xc: number;
  nc: number;
  /** Least sample size per arm (below it the check cannot be worse). */
  minN: number;
  /** Worse when candidate − stable > limitDelta(stable). */
  limitDelta: (s: number) => number;
  explain: (c: number, s: number) => string;
  alpha: number;
}

function rateCheck(r: RateArgs): { check: Check; reason: string | null } {
  const s = r.ns > 0 ? r.xs / r.ns : null;
  const c = r.nc > 0 ? r.xc / r.nc : null;
  if (s === null || c === null) {
    return { check: { signal: r.signal, stable: s, candidate: c, limit: null, worse: false, significant: false, p_value: null }, reason: null };
  }
  const limit = s + r.limitDelta(s);
  const enough = r.ns >= r.minN && r.nc >= r.minN;
  const worse = enough && c > limit;
  // H0: candidate − stable ≤ the allowed delta: significantly past the threshold.
  const p = thresholdProportionTest(r.xs, r.ns, r.xc, r.nc, limit - s).p_value;
  const significant = enough && p !== null && p <= r.alpha;
  return {
    check: { signal: r.signal, stable: s, candidate: c, limit, worse, significant, p_value: p },
    reason: worse && significant ? `${r.label} ${pct(c)} vs ${pct(s)} (${r.explain(c, s)})` : null,
  };
}

/**
 * p95 regression: worse when candidate p95 > limit. Significant when both arms have minN values
 * and an exact one-sided binomial test says more than 5% of the candidate's values lie above the
 * limit (H0: the candidate's p95 ≤ limit; the stable p95 is taken as known). Values are counted
 * from the candidate's log histogram, only buckets wholly above the limit (conservative).
 */
function p95Check(
  signal: 'p95_latency' | 'p95_ttft',
  label: string,
  s: number | null,
  ns: number,
  c: number | null,
  nc: number,
  candBuckets: Record<string, number>,
  pctLimit: number,
  minN: number,
  alpha: number,
): { check: Check; reason: string | null } {
  if (s === null || c === null) {
    return { check: { signal, stable: s, candidate: c, limit: null, worse: false, significant: false, p_value: null }, reason: null };
  }
  const limit = s * (1 + pctLimit / 100);
  const worse = c > limit;
  const p = nc > 0 ? binomialSf(countAbove(candBuckets, limit), nc, 0.05) : null;
  const significant = ns >= minN && nc >= minN && p !== null && p <= alpha;
  const rel = s > 0 ? `${relPct(c, s)} > ${pctLimit}%` : `from 0 ms`;
  return {
    check: { signal, stable: s, candidate: c, limit, worse, significant, p_value: p },
    reason: worse && significant ? `${label} ${c.toFixed(0)} ms vs ${s.toFixed(0)} ms (${rel})` : null,
  };
}

/** Candidate vs stable on the same window: see the header comment for every rule. */
export function compareArms(stable: ArmSummary, candidate: ArmSummary, t: RollbackThresholds, opts: { minSamples: number; confidence: number }): Comparison {
  // Bonferroni: `confidence` holds for the family of tested checks, not for each one.
  const alpha = (1 - opts.confidence) / TESTED_CHECKS;
  const minN = Math.max(1, opts.minSamples);
  const q = t.quality_pct;
  const qualityDelta = (s: number): number => Math.max((s * q) / 100, RATE_FLOOR);
  const qualityExplain = (c: number, s: number): string =>
    s > 0 && (s * q) / 100 >= RATE_FLOOR ? `${relPct(c, s)} > ${q}%` : `+${((c - s) * 100).toFixed(1)} points > ${RATE_FLOOR * 100}-point floor`;
  const results: { check: Check; reason: string | null }[] = [
    rateCheck({
      signal: 'error_rate',
      label: 'error rate',
      xs: stable.errors,
      ns: stable.requests,
      xc: candidate.errors,
      nc: candidate.requests,
      minN,
      limitDelta: () => t.error_rate_points / 100,
      explain: (c, s) => `+${((c - s) * 100).toFixed(1)} points > ${t.error_rate_points}`,
      alpha,
    }),
    p95Check('p95_latency', 'p95 latency', stable.p95_latency_ms, stable.latency_n, candidate.p95_latency_ms, candidate.latency_n, candidate.latency_buckets, t.p95_latency_pct, minN, alpha),
    p95Check('p95_ttft', 'p95 TTFT', stable.p95_ttft_ms, stable.ttft_n, candidate.p95_ttft_ms, candidate.ttft_n, candidate.ttft_buckets, t.p95_ttft_pct, minN, alpha),
    rateCheck({
      signal: 'refusal_rate',
      label: 'refusal rate',
      xs: stable.refusals,
      ns: stable.answered,
      xc: candidate.refusals,
      nc: candidate.answered,
      minN: 1,
      limitDelta: qualityDelta,
      explain: qualityExplain,
      alpha,
    }),
    rateCheck({
      signal: 'truncation_rate',
      label: 'truncation rate',
      xs: stable.truncations,
      ns: stable.answered,
      xc: candidate.truncations,
      nc: candidate.answered,
      minN: 1,
      limitDelta: qualityDelta,
      explain: qualityExplain,
      alpha,
    }),
    lengthCheck(stable, candidate, q, alpha),
    rateCheck({
      signal: 'negative_feedback_rate',
      label: 'negative feedback rate',
      xs: stable.feedback.negative,
      ns: stable.feedback.count,
      xc: candidate.feedback.negative,
      nc: candidate.feedback.count,
      minN,
      limitDelta: qualityDelta,
      explain: qualityExplain,
      alpha,
    }),
  ];
  const checks = results.map((r) => r.check);
  if (stable.requests < minN || candidate.requests < minN) {
    return {
      verdict: 'insufficient',
      reasons: [`need ${minN} requests per arm (stable ${stable.requests}, candidate ${candidate.requests})`],
      checks,
    };
  }
  const reasons = results.flatMap((r) => (r.reason === null ? [] : [r.reason]));
  return { verdict: reasons.length > 0 ? 'rollback' : 'healthy', reasons, checks };
}

function lengthCheck(stable: ArmSummary, candidate: ArmSummary, q: number, alpha: number): { check: Check; reason: string | null } {
  const s = stable.mean_output_tokens;
  const c = candidate.mean_output_tokens;
  if (s === null || c === null) {
    return { check: { signal: 'mean_output_tokens', stable: s, candidate: c, limit: null, worse: false, significant: false, p_value: null }, reason: null };
  }
  const limit = s * (1 - q / 100);
  const worse = c < limit;
  const p = meanTest(
    { n: stable.output_tokens_n, sum: stable.output_tokens_sum, sumsq: stable.output_tokens_sumsq },
    { n: candidate.output_tokens_n, sum: candidate.output_tokens_sum, sumsq: candidate.output_tokens_sumsq },
    // Token counts are whole numbers: a variance floor of 1/12 (rounding) keeps all-equal lengths testable.
    { alpha, test: 'fixed', alternative: 'less', delta: limit - s, minVariance: 1 / 12 },
  ).p_value;
  const significant = p !== null && p <= alpha;
  return {
    check: { signal: 'mean_output_tokens', stable: s, candidate: c, limit, worse, significant, p_value: p },
    reason: worse && significant ? `mean output length ${c.toFixed(1)} vs ${s.toFixed(1)} tokens (${s > 0 ? relPct(c, s) : '−'} > ${q}%)` : null,
  };
}

// -------------------------------------------------------------------------------------------- A/B

/** The A/B metric of one arm: positive-feedback proportion or a custom metric's moments. */
function abArm(a: ArmSummary, metric: string): { n: number; value: number | null; moments: MomentStats; successes: number } {
  if (metric === POSITIVE_FEEDBACK) {
    const f = a.feedback;
    return { n: f.count, value: f.positive_rate, moments: { n: f.count, sum: f.positive, sumsq: f.positive }, successes: f.positive };
  }
  const m = Object.hasOwn(a.metrics, metric) ? a.metrics[metric] : undefined;
  if (m === undefined || m.n === 0) return { n: 0, value: null, moments: { n: 0, sum: 0, sumsq: 0 }, successes: 0 };
  return { n: m.n, value: m.mean, moments: { n: m.n, sum: m.sum, sumsq: m.sumsq }, successes: 0 };
}

export function abTest(
  stable: ArmSummary,
  candidate: ArmSummary,
  opts: { metric: string; alpha: number; test: 'fixed' | 'sequential'; tau?: number; previous?: Pick<AbResult, 'p_value' | 'ci'> | null },
): AbResult {
  const s = abArm(stable, opts.metric);
  const c = abArm(candidate, opts.metric);
  let r: TestResult;
  if (opts.metric === POSITIVE_FEEDBACK) {
    r =
      opts.test === 'sequential'
        ? sequentialProportionTest(s.successes, s.n, c.successes, c.n, { alpha: opts.alpha, tau: opts.tau })
        : twoProportionTest(s.successes, s.n, c.successes, c.n, { alpha: opts.alpha });
  } else {
    r = meanTest(s.moments, c.moments, { alpha: opts.alpha, test: opts.test, tau: opts.tau });
  }
  let p = r.p_value;
  let ci = r.ci;
  const prev = opts.previous;
  if (opts.test === 'sequential' && prev) {
    // Running minimum p and intersected confidence sequence: still always valid, and monotone.
    if (prev.p_value !== null) p = p === null ? prev.p_value : Math.min(p, prev.p_value);
    if (prev.ci !== null && ci !== null) {
      const lo = Math.max(ci[0], prev.ci[0]);
      const hi = Math.min(ci[1], prev.ci[1]);
      ci = lo <= hi ? [lo, hi] : ci;
    }
  }
  const significant = p !== null && p <= opts.alpha && r.diff !== null && r.diff !== 0;
  return {
    metric: opts.metric,
    test: opts.test,
    alpha: opts.alpha,
    stable: { n: s.n, value: s.value },
    candidate: { n: c.n, value: c.value },
    diff: r.diff,
    ci,
    p_value: p,
    significant,
    winner: significant ? ((r.diff as number) > 0 ? 'candidate' : 'stable') : null,
  };
}
