/**
 * Deterministic "model output".
 *
 * The text is a stable pseudo-random sequence of words from a small vocabulary, seeded by
 * a hash of (prompt, seed, model, choice index): same inputs → same output, a different
 * `seed` or choice index → a different output. Each word (with its leading space) or
 * punctuation mark is one output token.
 *
 * Length: every (prompt, seed, model, index) has a natural end between 16 and 64 tokens
 * (ending in "."), reported as finish_reason "stop" (an EOS, so stop_reason null). If
 * `max_tokens` comes first → "length". `ignore_eos` disables the natural end. Stop
 * strings: when the generated text contains one, the text is cut before it (or after it
 * with `include_stop_str_in_output`), finish_reason "stop" and stop_reason = that string,
 * as vLLM reports them.
 *
 * A worse model version (quality.ts): `lengthScale` scales the natural length (at least 1
 * token, same words up to the earlier end); `refuse` answers the fixed refusal instead (ended by
 * EOS even with `ignore_eos`, cut by `max_tokens` and stop strings like any text).
 */
import { hashString, prng } from './hash.js';
import { REFUSAL_PIECES } from './quality.js';

const VOCAB = [
  'the', 'model', 'router', 'region', 'token', 'latency', 'cache', 'prefix', 'request', 'stream',
  'backend', 'simulated', 'answer', 'is', 'a', 'of', 'to', 'and', 'in', 'that', 'with', 'for',
  'on', 'fast', 'quiet', 'edge', 'server', 'queue', 'first', 'next', 'blue', 'green', 'river',
  'mountain', 'light', 'signal', 'packet', 'window', 'value', 'result', 'system', 'simple', 'clear',
  'data', 'point', 'path', 'route', 'batch', 'kernel', 'memory', 'block', 'vector', 'graph', 'time',
  'world', 'hello', 'sure', 'here', 'this', 'it', 'we', 'can', 'will', 'be',
] as const;

const MIN_NATURAL = 16;
const MAX_NATURAL = 64;

export interface GenerateInput {
  model: string;
  /** Hash of the rendered prompt (see prompt.ts). */
  promptHash: number;
  seed: number | undefined;
  /** Choice index (n > 1) or prompt × n index for /v1/completions. */
  index: number;
  /** Already resolved: request value, or max_model_len − prompt tokens. ≥ 1. */
  maxTokens: number;
  stop: readonly string[] | undefined;
  ignoreEos?: boolean;
  includeStopStr?: boolean;
  /** Natural length × this (0 < x ≤ 1; default 1), at least 1 token. */
  lengthScale?: number;
  /** Answer with the refusal (quality.ts REFUSAL_PIECES) instead of generated words. */
  refuse?: boolean;
}

export interface Generation {
  /** Per-token text deltas; joined they equal `text` (after a stop string some may be ""). */
  pieces: string[];
  text: string;
  /** Output tokens generated (includes the tokens that made up a cut stop string). */
  tokens: number;
  finishReason: 'stop' | 'length';
  /** The matched stop string, else null (EOS or length), like vLLM's `stop_reason`. */
  stopReason: string | null;
}

/** The natural (EOS) length for these inputs, 16..64 tokens (× lengthScale, at least 1). */
export function naturalLength(input: Pick<GenerateInput, 'model' | 'promptHash' | 'seed' | 'index' | 'lengthScale'>): number {
  const h = seedOf(input);
  return scaled(MIN_NATURAL + (h % (MAX_NATURAL - MIN_NATURAL + 1)), input.lengthScale);
}

function scaled(natural: number, scale: number | undefined): number {
  return scale === undefined || scale === 1 ? natural : Math.max(1, Math.round(natural * scale));
}

function seedOf(input: Pick<GenerateInput, 'model' | 'promptHash' | 'seed' | 'index'>): number {
  return hashString(`${input.promptHash}|${input.seed ?? ''}|${input.index}|${input.model}`);
}

export function generate(input: GenerateInput): Generation {
  const seed = seedOf(input);
  const refuse = input.refuse === true;
  const natural = refuse ? REFUSAL_PIECES.length : scaled(MIN_NATURAL + (seed % (MAX_NATURAL - MIN_NATURAL + 1)), input.lengthScale);
  const eos = refuse || !input.ignoreEos;
  const rand = prng(seed);
  const limit = eos ? Math.min(input.maxTokens, natural) : input.maxTokens;
  const stops = input.stop && input.stop.length > 0 ? input.stop.filter((s) => s.length > 0) : undefined;
  let maxStop = 0;
  if (stops) for (const s of stops) maxStop = Math.max(maxStop, s.length);

  const pieces: string[] = [];
  let text = '';
  let prevPunct = true;
  for (let step = 0; step < limit; step++) {
    const r = rand();
    let piece: string;
    if (refuse) {
      piece = REFUSAL_PIECES[step] as string;
    } else if (!input.ignoreEos && step === natural - 1) {
      piece = '.';
    } else if (!prevPunct && r % 11 === 0) {
      piece = r % 2 === 0 ? ',' : '.';
    } else {
      const w = VOCAB[r % VOCAB.length] as string;
      piece = step === 0 ? capitalize(w) : prevPunct && text.endsWith('.') ? ` ${capitalize(w)}` : ` ${w}`;
    }
    prevPunct = piece === ',' || piece === '.';
    const prevLen = text.length;
    text += piece;
    pieces.push(piece);
    if (stops) {
      const from = Math.max(0, prevLen - maxStop + 1);
      let at = -1;
      let which = '';
      for (const s of stops) {
        const i = text.indexOf(s, from);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          which = s;
        }
      }
      if (at >= 0) {
        const end = input.includeStopStr ? at + which.length : at;
        return { pieces: clip(pieces, end), text: text.slice(0, end), tokens: step + 1, finishReason: 'stop', stopReason: which };
      }
    }
  }
  const finishReason = eos && limit === natural ? 'stop' : 'length';
  return { pieces, text, tokens: pieces.length, finishReason, stopReason: null };
}

function capitalize(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1);
}

/** Cuts the pieces so that their concatenation has length `end`. */
function clip(pieces: string[], end: number): string[] {
  const out = new Array<string>(pieces.length);
  let pos = 0;
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i] as string;
    if (pos >= end) out[i] = '';
    else if (pos + p.length <= end) out[i] = p;
    else out[i] = p.slice(0, end - pos);
    pos += p.length;
  }
  return out;
}
