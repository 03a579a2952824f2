/**
 * `npx tsx scripts/complexity/train.ts`: fits the learned complexity scorer
 * (worker/routing/learned-complexity.ts) on the TUNING half of test/fixtures/complexity-corpus.json
 * and writes worker/routing/complexity-model.json. The held-out half is never read here.
 *
 * Two L2-regularised logistic regressions (needs ≥ balanced, needs advanced) by full-batch
 * gradient descent. λ and the recommended routing margin are picked by 5-fold cross-validation on
 * the tuning half, folds by template (a fold's templates are unseen by its model): the cheapest
 * (λ, margin) whose under-serving stays ≤ 5%.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { COMPLEXITY_WEIGHTS, type ComplexityFeature } from '../../worker/routing/complexity';
import { learnedInput, learnedTier, predict } from '../../worker/routing/learned-complexity';
import { evaluateRouting, loadCorpus, type CorpusItem } from './evaluate';

const BUCKETS = 1024;
const NAMES = Object.keys(COMPLEXITY_WEIGHTS) as ComplexityFeature[];
const LAMBDAS = [1e-4, 1e-3, 1e-2];
const MARGINS = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4];
const MAX_UNDER = 0.05;
const OUT = resolve(import.meta.dirname, '../../worker/routing/complexity-model.json');

interface Row {
  item: CorpusItem;
  x: Float64Array;
  promptTokens: number;
}

function fit(rows: Row[], y: (r: Row) => number, lambda: number, iters = 600, lr = 1): number[] {
  const d = rows[0]!.x.length;
  const w = new Array<number>(d + 1).fill(0);
  const g = new Float64Array(d + 1);
  // Balanced classes: each class weighs half of the loss.
  const pos = rows.filter((r) => y(r) === 1).length;
  const wPos = rows.length / (2 * Math.max(1, pos));
  const wNeg = rows.length / (2 * Math.max(1, rows.length - pos));
  for (let it = 0; it < iters; it++) {
    g.fill(0);
    for (const r of rows) {
      const t = y(r);
      const e = (predict(w, r.x) - t) * (t === 1 ? wPos : wNeg);
      g[0]! += e;
      for (let i = 0; i < d; i++) if (r.x[i] !== 0) g[i + 1]! += e * r.x[i]!;
    }
    for (let i = 0; i <= d; i++) w[i]! -= (lr * (g[i]! / rows.length + (i > 0 ? lambda * w[i]! : 0)));
  }
  return w;
}

const yBal = (r: Row) => (r.item.tier === 'fast' ? 0 : 1);
const yAdv = (r: Row) => (r.item.tier === 'advanced' ? 1 : 0);

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const tune = loadCorpus('tune');
const rows: Row[] = tune.map((item) => ({ item, ...learnedInput({ model: 'auto', ...item.request } as never, BUCKETS, NAMES) }));
const folds = 5;
const foldOf = (r: Row) => hash(r.item.template) % folds;

const results: { lambda: number; margin: number; under: number; saving: number }[] = [];
for (const lambda of LAMBDAS) {
  const probs = new Map<Row, { pBalanced: number; pAdvanced: number }>();
  for (let f = 0; f < folds; f++) {
    const train = rows.filter((r) => foldOf(r) !== f);
    const test = rows.filter((r) => foldOf(r) === f);
    if (test.length === 0) continue;
    const wb = fit(train, yBal, lambda);
    const wa = fit(train, yAdv, lambda);
    for (const r of test) {
      const pAdvanced = predict(wa, r.x);
      probs.set(r, { pBalanced: Math.max(predict(wb, r.x), pAdvanced), pAdvanced });
    }
  }
  for (const margin of MARGINS) {
    const e = evaluateRouting(rows.map((r) => ({ item: r.item, promptTokens: r.promptTokens, tier: learnedTier(probs.get(r)!, margin) })));
    results.push({ lambda, margin, under: e.under, saving: e.saving });
    console.log(`λ=${lambda} margin=${margin}: cv under ${(e.under * 100).toFixed(1)}% over ${(e.over * 100).toFixed(1)}% saving ${(e.saving * 100).toFixed(1)}%`);
  }
}
const ok = results.filter((r) => r.under <= MAX_UNDER).sort((a, b) => b.saving - a.saving);
const best = ok[0] ?? results.sort((a, b) => a.under - b.under)[0]!;
console.log(`picked λ=${best.lambda}, margin=${best.margin} (cv under ${(best.under * 100).toFixed(1)}%, saving ${(best.saving * 100).toFixed(1)}%)`);

const round = (w: number[]) => w.map((v) => Math.round(v * 1e4) / 1e4);
const model = {
  version: 1,
  trained: { corpus: 'test/fixtures/complexity-corpus.json', split: 'tune', items: rows.length, lambda: best.lambda, recommended_margin: best.margin, cv: { folds, by: 'template', under: best.under, saving: best.saving } },
  buckets: BUCKETS,
  features: NAMES,
  balanced: round(fit(rows, yBal, best.lambda)),
  advanced: round(fit(rows, yAdv, best.lambda)),
};
writeFileSync(OUT, `${JSON.stringify(model)}\n`);
console.log(`wrote ${OUT}`);
