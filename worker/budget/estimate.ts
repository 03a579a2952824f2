// A request's worst case (what it reserves before going upstream) and its real cost (what it is
// debited when it ends). Money is counted in integer nano-dollars; prices are USD per million
// tokens, so one token at price P costs P × 1000 nano-dollars.
//
// The prompt estimate is an upper bound, not a guess: with byte-level BPE tokenizers (Llama 3,
// GPT, Qwen, Mistral) every token covers at least one byte, so a text never has more tokens than
// UTF-8 bytes. The chat template's own tokens are bounded per message and per request, a
// non-text part (image, audio, file) by `non_text_part_tokens`. The output is bounded by
// max_tokens, which the router sends upstream itself when the client left it out (so the backend
// cannot generate more than was reserved), and the whole by the model's context when known.
// Reserving a bound is what makes "no overshoot" hold; it is generous (English runs about four
// bytes per token) but the difference is released the moment the request settles.

import type { CompiledConfig } from '../config/compiled';
import { tierReachable } from '../routing/resolve-model';
import type { ModelConfig, Price, TenantConfig } from '../config/schema';
import type { EndpointKind } from '../openai/schemas';
import type { Usage } from '../openai/usage';

/** Tokens any chat prompt may add beyond its messages: BOS, generation prompt, a template's default system text. */
export const CHAT_BASE_TOKENS = 64;
/** Per message: role header and end-of-turn tokens of common chat templates. */
export const MESSAGE_TOKENS = 8;
/** Tool definitions are rendered with instructions around their JSON. */
export const TOOLS_BASE_TOKENS = 256;
/** Per prompt or embedding input: BOS/EOS or [CLS]/[SEP]. */
export const PROMPT_TOKENS = 2;
/** OpenAI's (and vLLM's) default max_tokens for /v1/completions. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;
const NANO_PER_PRICE_UNIT = 1_000;

export interface WorstCase {
  tokens: number;
  nano: number;
  /** The request had no output limit: send this as max_tokens so the reservation holds. */
  maxTokens: number | null;
}

export interface EstimateOptions {
  defaultMaxTokens: number;
  nonTextPartTokens: number;
}

type Body = Record<string, unknown>;

/** The most a request can cost if any of `models` answers it. */
export function worstCase(config: CompiledConfig, endpoint: EndpointKind, body: Body, models: readonly ModelConfig[], opts: EstimateOptions): WorstCase {
  let prompt: number;
  let perChoice = 0;
  let choices = 0;
  let maxTokens: number | null = null;
  if (endpoint === 'chat') {
    prompt = chatPromptBound(body, opts.nonTextPartTokens);
    const asked = positive(body.max_completion_tokens) ?? positive(body.max_tokens);
    perChoice = asked ?? opts.defaultMaxTokens;
    if (asked === null) maxTokens = perChoice;
    choices = positive(body.n) ?? 1;
  } else if (endpoint === 'completions') {
    const p = inputsBound(body.prompt);
    prompt = p.tokens + (typeof body.suffix === 'string' ? utf8Bytes(body.suffix) : 0);
    const asked = positive(body.max_tokens);
    perChoice = asked ?? COMPLETIONS_DEFAULT_MAX_TOKENS;
    if (asked === null) maxTokens = perChoice;
    choices = p.count * Math.max(positive(body.n) ?? 1, positive(body.best_of) ?? 1);
  } else {
    prompt = inputsBound(body.input).tokens;
  }
  let tokens = prompt + perChoice * choices;
  let inPrice = 0;
  let outPrice = 0;
  let context: number | null = 0;
  for (const m of models) {
    const p = priceOf(config, m.id);
    inPrice = Math.max(inPrice, p?.input ?? 0);
    outPrice = Math.max(outPrice, p?.output ?? 0);
    context = context === null || m.max_model_len === undefined ? null : Math.max(context, m.max_model_len);
  }
  // Prompt and output of each sequence together fit the context window.
  if (context && choices > 0) tokens = Math.min(tokens, context * choices);
  const split = Math.ceil((prompt * inPrice + perChoice * choices * outPrice) * NANO_PER_PRICE_UNIT);
  const flat = Math.ceil(tokens * Math.max(inPrice, outPrice) * NANO_PER_PRICE_UNIT);
  return { tokens, nano: Math.min(split, flat), maxTokens };
}

/** What an answer really cost on the model that gave it (cached prompt tokens at the cached price). */
export function costOf(config: CompiledConfig, modelId: string, usage: Usage): number {
  const p = priceOf(config, modelId);
  if (!p) return 0;
  const cached = Math.min(usage.cached_tokens ?? 0, usage.prompt_tokens);
  const usd = (usage.prompt_tokens - cached) * p.input + cached * (p.cached_input ?? p.input) + usage.completion_tokens * p.output;
  return Math.max(0, Math.round(usd * NANO_PER_PRICE_UNIT));
}

const priceOf = (config: CompiledConfig, modelId: string): Price | undefined => config.raw.prices[modelId];

const cheapest = new WeakMap<CompiledConfig, Map<string, string | null>>();

/**
 * The tier a soft-limited tenant on policy "downgrade" is sent to: of the tiers it may use, the one
 * whose dearest model (input + output price) is cheapest; ties go to the lower min_complexity.
 */
export function cheapestTier(config: CompiledConfig, tenantId: string, tenant: TenantConfig): string | null {
  let byTenant = cheapest.get(config);
  if (!byTenant) cheapest.set(config, (byTenant = new Map()));
  let tier = byTenant.get(tenantId);
  if (tier === undefined) {
    tier = null;
    let best = Number.POSITIVE_INFINITY;
    let bestLevel = Number.POSITIVE_INFINITY;
    for (const [name, t] of Object.entries(config.raw.tiers)) {
      if (!tenant.tiers.includes('*') && !tenant.tiers.includes(name)) continue;
      if (!tierReachable(config, tenant, name)) continue; // a downgrade must land on a model the tenant may use
      let cost = 0;
      for (const m of t.models) {
        const split = config.raw.splits[m];
        for (const id of split ? split.targets.map((x) => x.model) : [m]) {
          const p = priceOf(config, id);
          cost = Math.max(cost, (p?.input ?? 0) + (p?.output ?? 0));
        }
      }
      if (cost < best || (cost === best && t.min_complexity < bestLevel)) {
        best = cost;
        bestLevel = t.min_complexity;
        tier = name;
      }
    }
    byTenant.set(tenantId, tier);
  }
  return tier;
}

// ------------------------------------------------------------------ bounds

function chatPromptBound(body: Body, nonText: number): number {
  let n = CHAT_BASE_TOKENS;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const m of messages as Record<string, unknown>[]) {
    n += MESSAGE_TOKENS + contentBound(m.content, nonText);
    if (typeof m.name === 'string') n += utf8Bytes(m.name);
    if (m.tool_calls !== undefined && m.tool_calls !== null) n += utf8Bytes(JSON.stringify(m.tool_calls));
    if (typeof m.tool_call_id === 'string') n += utf8Bytes(m.tool_call_id);
  }
  if (Array.isArray(body.tools) && body.tools.length > 0) n += TOOLS_BASE_TOKENS + utf8Bytes(JSON.stringify(body.tools));
  return n;
}

function contentBound(content: unknown, nonText: number): number {
  if (typeof content === 'string') return utf8Bytes(content);
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const part of content as Record<string, unknown>[]) {
    if (typeof part === 'string') n += utf8Bytes(part);
    else if (typeof part?.text === 'string') n += utf8Bytes(part.text);
    else if (typeof part?.refusal === 'string') n += utf8Bytes(part.refusal);
    else n += nonText;
  }
  return n;
}

/** A prompt or embedding input: a string, strings, token ids, or lists of token ids. */
function inputsBound(input: unknown): { tokens: number; count: number } {
  if (typeof input === 'string') return { tokens: utf8Bytes(input) + PROMPT_TOKENS, count: 1 };
  if (!Array.isArray(input) || input.length === 0) return { tokens: 0, count: 1 };
  if (typeof input[0] === 'number') return { tokens: input.length, count: 1 };
  let tokens = 0;
  for (const x of input) tokens += typeof x === 'string' ? utf8Bytes(x) + PROMPT_TOKENS : Array.isArray(x) ? x.length : 0;
  return { tokens, count: input.length };
}

const NON_ASCII = /[^\x00-\x7f]/;

/** UTF-8 length of a string, rounded up for lone surrogates (3 bytes each; a pair counts 6 ≥ 4). */
export function utf8Bytes(s: string): number {
  if (!NON_ASCII.test(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
  }
  return n;
}

const positive = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null);
