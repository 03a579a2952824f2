/**
 * The labelled prompt pairs of test/fixtures/semantic-pairs.json run through the semantic cache's
 * own decision code (worker/cache/semantic: prompt split, local embedding, guards), imported
 * directly: no stack, no Durable Object. Shared by `npm run bench semantic` and the node test
 * that holds the wrong-hit rate under 1%.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { canonicalJson } from '../../../worker/cache/canonical';
import { guardAllows, type GuardReason } from '../../../worker/protocol/rules/semantic-guard';
import { cosine, localEmbedding } from '../../../worker/cache/semantic/local-embedding';
import { semanticPrompt } from '../../../worker/cache/semantic/prompt';

export const PAIRS_FIXTURE = resolve(import.meta.dirname, '../../../test/fixtures/semantic-pairs.json');

type Message = { role: string; content: string };
export interface PromptPair {
  id: string;
  /** hit: a's answer is a right answer to b; miss: replaying it for b would be wrong. */
  label: 'hit' | 'miss';
  kind: string;
  a: string;
  b: string;
  a_context?: Message[];
  b_context?: Message[];
  /** Fixed once (stratified by label and kind): thresholds are tuned on 'tune', reported on 'held-out'. */
  split: 'tune' | 'held-out';
}

export function loadPairs(path = PAIRS_FIXTURE, split?: PromptPair['split']): PromptPair[] {
  const all = (JSON.parse(readFileSync(path, 'utf8')) as { pairs: PromptPair[] }).pairs;
  return split ? all.filter((p) => p.split === split) : all;
}

/**
 * The highest-hit-rate threshold of `thresholds` whose wrong-hit rate stays at or under `maxWrong`
 * on `pairs` (pairwise and shared index, guards on): how a deployment would pick it, given only
 * the tuning half. Ties go to the higher (safer) threshold.
 */
export function tuneThreshold(pairs: PromptPair[], thresholds: readonly number[], embed: EvalOptions['embed'], maxWrong = 0.01): number {
  let best = Math.max(...thresholds);
  let bestRate = -1;
  for (const t of [...thresholds].sort((a, b) => b - a)) {
    const p = evaluatePairs(pairs, { threshold: t, guards: true, embed });
    const i = evaluateIndex(pairs, { threshold: t, guards: true, embed });
    if (p.wrongHitRate > maxWrong || i.wrongHitRate > maxWrong) continue;
    if (p.hitRate > bestRate) {
      best = t;
      bestRate = p.hitRate;
    }
  }
  return best;
}

export interface EvalOptions {
  threshold: number;
  guards: boolean;
  /** Nearest stored prompts checked against the guards per lookup ([cache.semantic].top_k), index mode only. */
  topK?: number;
  embed?: (text: string) => Float32Array | null;
}

export interface EvalResult {
  pairs: number;
  /** Pairs labelled hit: the most hits there could be. */
  shouldHit: number;
  hits: number;
  correctHits: number;
  wrongHits: number;
  /** correct hits / pairs labelled hit. */
  hitRate: number;
  /** wrong hits / all hits (0 with no hits). */
  wrongHitRate: number;
  /** Hits the embedding allowed and a guard then refused, by guard, split by label. */
  refusedByGuard: { hit: Partial<Record<GuardReason, number>>; miss: Partial<Record<GuardReason, number>> };
  wrong: string[];
  /** Labelled-hit pairs that did not hit, by kind. */
  missedByKind: Record<string, number>;
}

export interface Side {
  scope: string;
  text: string;
  depth: number;
  vector: Float32Array | null;
}

export function side(text: string, context: Message[] | undefined, embed: (t: string) => Float32Array | null): Side | null {
  const body = { model: 'm', temperature: 0, messages: [...(context ?? []), { role: 'user', content: text }] };
  const p = semanticPrompt('chat', body, 2_000);
  if (!p) return null;
  return { scope: canonicalJson(p.rest), text: p.text, depth: p.depth, vector: embed(p.text) };
}

/** Pairwise: a is stored, b is looked up; a hit needs the same scope, similarity ≥ threshold and (with guards) the guards' consent. */
export function evaluatePairs(pairs: PromptPair[], opts: EvalOptions): EvalResult {
  const embed = opts.embed ?? localEmbedding;
  const r = emptyResult(pairs);
  for (const p of pairs) {
    const a = side(p.a, p.a_context, embed);
    const b = side(p.b, p.b_context, embed);
    let hit = false;
    if (a && b && a.vector && b.vector && a.scope === b.scope && cosine(a.vector, b.vector) >= opts.threshold) {
      const verdict = opts.guards ? guardAllows({ text: b.text, depth: b.depth }, { text: a.text, depth: a.depth }) : { ok: true as const };
      if (verdict.ok) hit = true;
      else bump(r.refusedByGuard[p.label], verdict.reason);
    }
    record(r, p, hit, hit && p.label === 'hit');
  }
  return finish(r);
}

/**
 * Index mode, closer to production: every distinct a is stored in one index (per scope), then
 * each b looks up its nearest neighbours as the cache does (the top_k most similar above the
 * threshold, the first the guards accept). A hit on another pair's prompt counts as wrong unless
 * that prompt is word for word this pair's own a.
 */
export function evaluateIndex(pairs: PromptPair[], opts: EvalOptions): EvalResult {
  const embed = opts.embed ?? localEmbedding;
  const topK = opts.topK ?? 3;
  const stored = new Map<string, Side>();
  for (const p of pairs) {
    const a = side(p.a, p.a_context, embed);
    if (a?.vector) stored.set(`${a.scope}\n${a.text}`, a);
  }
  const entries = [...stored.values()];
  const r = emptyResult(pairs);
  for (const p of pairs) {
    const b = side(p.b, p.b_context, embed);
    const own = side(p.a, p.a_context, embed);
    let matched: Side | null = null;
    if (b?.vector) {
      const near = entries
        .filter((e) => e.scope === b.scope)
        .map((e) => ({ e, s: cosine(e.vector!, b.vector!) }))
        .filter((x) => x.s >= opts.threshold)
        .sort((x, y) => y.s - x.s)
        .slice(0, topK);
      for (const { e } of near) {
        const verdict = opts.guards ? guardAllows({ text: b.text, depth: b.depth }, { text: e.text, depth: e.depth }) : { ok: true as const };
        if (verdict.ok) {
          matched = e;
          break;
        }
        bump(r.refusedByGuard[p.label], verdict.reason);
      }
    }
    const correct = matched !== null && p.label === 'hit' && own !== null && matched.scope === own.scope && matched.text === own.text;
    record(r, p, matched !== null, correct);
  }
  return finish(r);
}

function emptyResult(pairs: PromptPair[]): EvalResult {
  return {
    pairs: pairs.length,
    shouldHit: pairs.filter((p) => p.label === 'hit').length,
    hits: 0,
    correctHits: 0,
    wrongHits: 0,
    hitRate: 0,
    wrongHitRate: 0,
    refusedByGuard: { hit: {}, miss: {} },
    wrong: [],
    missedByKind: {},
  };
}

function record(r: EvalResult, p: PromptPair, hit: boolean, correct: boolean) {
  if (hit) {
    r.hits++;
    if (correct) r.correctHits++;
    else {
      r.wrongHits++;
      r.wrong.push(p.id);
    }
  } else if (p.label === 'hit') r.missedByKind[p.kind] = (r.missedByKind[p.kind] ?? 0) + 1;
}

function finish(r: EvalResult): EvalResult {
  r.hitRate = r.shouldHit ? r.correctHits / r.shouldHit : 0;
  r.wrongHitRate = r.hits ? r.wrongHits / r.hits : 0;
  return r;
}

function bump<K extends string>(m: Partial<Record<K, number>>, k: K) {
  m[k] = (m[k] ?? 0) + 1;
}
