/** Shared by the trainer and `npm run bench complexity`: the corpus, and what a routing costs and how often it under-serves. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ChatRequest } from '../../worker/openai/schemas';

export const TIERS = ['fast', 'balanced', 'advanced'] as const;
export type Tier = (typeof TIERS)[number];
export interface Price {
  input: number;
  output: number;
}
export interface CorpusItem {
  id: string;
  kind: string;
  tier: Tier;
  why: string;
  template: string;
  split: 'tune' | 'held-out';
  request: Pick<ChatRequest, 'messages'> & Partial<Pick<ChatRequest, 'tools'>>;
  expected_output_tokens: number;
}
export const CORPUS = resolve(import.meta.dirname, '../../test/fixtures/complexity-corpus.json');
/** USD per million tokens: Llama 3.1 8B / 70B / 405B list prices, when wrangler.toml gives none. */
export const DEFAULT_PRICES: Record<Tier, Price> = { fast: { input: 0.05, output: 0.08 }, balanced: { input: 0.59, output: 0.79 }, advanced: { input: 3, output: 3 } };

export function loadCorpus(split?: CorpusItem['split']): CorpusItem[] {
  const all = (JSON.parse(readFileSync(CORPUS, 'utf8')) as { items: CorpusItem[] }).items;
  return split ? all.filter((x) => x.split === split) : all;
}

export interface RoutingEval {
  n: number;
  exact: number;
  /** Share of requests sent below the tier they need. */
  under: number;
  over: number;
  cost: number;
  strongest: number;
  /** 1 - cost / all-strongest cost. */
  saving: number;
  routed: Record<Tier, number>;
  underIds: string[];
}

export function evaluateRouting(items: readonly { item: CorpusItem; tier: Tier; promptTokens: number }[], prices: Record<Tier, Price> = DEFAULT_PRICES): RoutingEval {
  const rank = (t: Tier) => TIERS.indexOf(t);
  const price = (t: Tier, p: number, o: number) => (p * prices[t].input + o * prices[t].output) / 1e6;
  const r: RoutingEval = { n: items.length, exact: 0, under: 0, over: 0, cost: 0, strongest: 0, saving: 0, routed: { fast: 0, balanced: 0, advanced: 0 }, underIds: [] };
  for (const { item, tier, promptTokens } of items) {
    r.routed[tier]++;
    const d = rank(tier) - rank(item.tier);
    if (d < 0) {
      r.under++;
      r.underIds.push(`${item.id} (${item.tier} → ${tier})`);
    } else if (d > 0) r.over++;
    else r.exact++;
    r.cost += price(tier, promptTokens, item.expected_output_tokens);
    r.strongest += price('advanced', promptTokens, item.expected_output_tokens);
  }
  const n = Math.max(1, items.length);
  r.exact /= n;
  r.under /= n;
  r.over /= n;
  r.saving = r.strongest > 0 ? 1 - r.cost / r.strongest : 0;
  return r;
}
