/**
 * The rollout statistics (worker/protocol/rules/rollout-stats.ts) by simulation, no stack:
 * - A/B false positives when the report is read continuously (A/A experiments checked every 50
 *   samples up to 2,000 per arm): the sequential test (mSPRT) against the fixed z / Welch test.
 * - A/B power on real differences.
 * - Automatic rollback of a 5% canary re-evaluated every 50 requests: how often a good candidate
 *   is wrongly rolled back, and how many candidate requests a bad one gets before its rollback.
 * Seeded PRNG: the same numbers every run.
 */
import {
  type ArmSample,
  compareArms,
  type MomentStats,
  meanTest,
  sequentialProportionTest,
  summarize,
  twoProportionTest,
} from '../../worker/protocol/rules/rollout-stats';
import type { BenchSection, BenchTable } from './lib/section';
import { unitPrng as prng } from '../../regional/sim/hash';


const ALPHA = 0.05;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

interface PeekResult {
  sequential: number;
  fixedPeeking: number;
  fixedOnce: number;
  /** Median samples per arm at the sequential test's first rejection (null if none). */
  seqMedianN: number | null;
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** Proportions (positive feedback) or uniform 0..1 scores (a custom metric), looked at every 50 samples. */
function peek(kind: 'proportion' | 'mean', a: number, b: number, experiments: number, maxN: number, seed: number): PeekResult {
  const rnd = prng(seed);
  let seq = 0;
  let fixPeek = 0;
  let fixOnce = 0;
  const seqAt: number[] = [];
  for (let e = 0; e < experiments; e++) {
    const ma: MomentStats = { n: 0, sum: 0, sumsq: 0 };
    const mb: MomentStats = { n: 0, sum: 0, sumsq: 0 };
    let s = false;
    let f = false;
    for (let n = 1; n <= maxN; n++) {
      const x = kind === 'proportion' ? (rnd() < a ? 1 : 0) : Math.min(1, rnd() + a);
      const y = kind === 'proportion' ? (rnd() < b ? 1 : 0) : Math.min(1, rnd() + b);
      ma.n++;
      ma.sum += x;
      ma.sumsq += x * x;
      mb.n++;
      mb.sum += y;
      mb.sumsq += y * y;
      if (n % 50 !== 0) continue;
      const pSeq =
        kind === 'proportion'
          ? sequentialProportionTest(ma.sum, n, mb.sum, n, { alpha: ALPHA }).p_value
          : meanTest(ma, mb, { alpha: ALPHA, test: 'sequential' }).p_value;
      const pFix =
        kind === 'proportion' ? twoProportionTest(ma.sum, n, mb.sum, n, { alpha: ALPHA }).p_value : meanTest(ma, mb, { alpha: ALPHA, test: 'fixed' }).p_value;
      if (!s && (pSeq ?? 1) <= ALPHA) {
        s = true;
        seqAt.push(n);
      }
      if ((pFix ?? 1) <= ALPHA) f = true;
      if (n === maxN && (pFix ?? 1) <= ALPHA) fixOnce++;
    }
    if (s) seq++;
    if (f) fixPeek++;
  }
  return { sequential: seq / experiments, fixedPeeking: fixPeek / experiments, fixedOnce: fixOnce / experiments, seqMedianN: median(seqAt) };
}

interface Behaviour {
  err?: number;
  lat?: number;
  ref?: number;
  tok?: number;
  heavyTail?: boolean;
}

function draw(rnd: () => number, b: Behaviour): ArmSample {
  const z = Math.sqrt(-2 * Math.log(rnd() || 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const lat = (b.lat ?? 1) * 200 * (b.heavyTail ? Math.exp(0.5 * z) : 0.7 + 0.6 * rnd());
  return {
    error: rnd() < (b.err ?? 0.005),
    latencyMs: lat,
    ttftMs: lat / 4,
    truncated: rnd() < 0.02,
    refused: rnd() < (b.ref ?? 0.01),
    outputTokens: Math.round((b.tok ?? 1) * 40 * (0.5 + rnd())),
  };
}

/** 5% canary, compareArms every 50 requests: share rolled back, candidate requests at rollback. */
function canary(bad: Behaviour, runs: number, requests: number, seed: number): { rolledBack: number; median: number | null; p90: number | null } {
  const at: number[] = [];
  const thresholds = { error_rate_points: 1, p95_latency_pct: 20, p95_ttft_pct: 20, quality_pct: 5 };
  for (let r = 0; r < runs; r++) {
    const rnd = prng(seed + r);
    const st: ArmSample[] = [];
    const ca: ArmSample[] = [];
    for (let k = 1; k <= requests; k++) {
      if (rnd() < 0.05) ca.push(draw(rnd, bad));
      else st.push(draw(rnd, { heavyTail: bad.heavyTail }));
      if (k % 50 === 0 && compareArms(summarize(st, []), summarize(ca, []), thresholds, { minSamples: 30, confidence: 0.95 }).verdict === 'rollback') {
        at.push(ca.length);
        break;
      }
    }
  }
  const s = [...at].sort((a, b) => a - b);
  return { rolledBack: at.length / runs, median: median(s), p90: s.length ? (s[Math.floor(s.length * 0.9)] as number) : null };
}

export const rolloutStats: BenchSection = {
  name: 'rollout-stats',
  description: 'A/B false positives and power under continuous peeking; canary rollback false alarms and detection (simulated, no stack)',
  async run({ smoke }) {
    const exps = smoke ? 50 : 2000;
    const aa = [
      { name: 'positive feedback 50% vs 50%', r: peek('proportion', 0.5, 0.5, exps, 2000, 11) },
      { name: 'positive feedback 10% vs 10%', r: peek('proportion', 0.1, 0.1, exps, 2000, 12) },
      { name: 'custom metric, uniform 0..1 both', r: peek('mean', 0, 0, smoke ? 20 : 1000, 2000, 13) },
    ];
    const powerExps = smoke ? 20 : 500;
    const ab = [
      { name: 'positive feedback 50% vs 58%', r: peek('proportion', 0.5, 0.58, powerExps, 2000, 21) },
      { name: 'positive feedback 50% vs 55%', r: peek('proportion', 0.5, 0.55, powerExps, 2000, 22) },
      { name: 'custom metric, +0.05 mean', r: peek('mean', 0, 0.05, powerExps, 2000, 23) },
    ];
    const runs = smoke ? 5 : 200;
    const scenarios: { name: string; bad: Behaviour; good: boolean }[] = [
      { name: 'good candidate, uniform latency', bad: {}, good: true },
      { name: 'good candidate, log-normal latency (σ 0.5)', bad: { heavyTail: true }, good: true },
      { name: 'errors 0.5% → 5%', bad: { err: 0.05 }, good: false },
      { name: 'errors 0.5% → 20%', bad: { err: 0.2 }, good: false },
      { name: 'latency ×1.5 (log-normal)', bad: { lat: 1.5, heavyTail: true }, good: false },
      { name: 'refusals 1% → 10%', bad: { ref: 0.1 }, good: false },
      { name: 'output length ×0.7', bad: { tok: 0.7 }, good: false },
    ];
    const rb = scenarios.map((s, i) => ({ ...s, r: canary(s.bad, runs, 4000, 100 + i * 1000) }));
    const tables: BenchTable[] = [
      {
        title: `A/A: share of ${exps} experiments that ever declare a winner (alpha ${ALPHA}, looked at every 50 samples up to 2,000 per arm)`,
        columns: ['experiment', 'sequential (mSPRT)', 'fixed test, peeking', 'fixed test, once at 2,000'],
        rows: aa.map(({ name, r }) => [name, pct(r.sequential), pct(r.fixedPeeking), pct(r.fixedOnce)]),
        notes: ['The sequential test keeps its promise (≤ alpha) however often it is read; the fixed test read this way does not.'],
      },
      {
        title: `A/B power: share of ${powerExps} experiments where the sequential test finds the difference by 2,000 per arm`,
        columns: ['experiment', 'sequential found', 'median samples per arm when found', 'fixed test once at 2,000'],
        rows: ab.map(({ name, r }) => [name, pct(r.sequential), String(r.seqMedianN ?? '—'), pct(r.fixedOnce)]),
      },
      {
        title: `Canary at 5%, compared every 50 requests over 4,000 requests (${runs} runs each; thresholds +1 point, +20%, 5%; confidence 0.95, min 30)`,
        columns: ['candidate', 'rolled back', 'median candidate requests at rollback', 'p90'],
        rows: rb.map(({ name, r, good }) => [
          `${name}${good ? ' (false alarm)' : ''}`,
          pct(r.rolledBack),
          String(r.median ?? '—'),
          String(r.p90 ?? '—'),
        ]),
      },
    ];
    return { tables, json: { aa, ab, rollback: rb } };
  },
};
