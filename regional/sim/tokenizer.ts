/**
 * A deterministic tokenizer approximation (no vocabulary, no model files).
 *
 * Text is cut like GPT-2/Llama-3 pre-tokenizers do (a word with its leading space, up to
 * three digits, a run of punctuation with its leading space, a run of whitespace); pieces
 * longer than LONG_PIECE characters are split again into 4-character tokens. English
 * prose comes out at roughly one token per 4–5 characters, long or random strings cost
 * more, which is the shape a router's token estimates need.
 *
 * `tokenize` returns the token strings (so prompt blocks can be hashed for the prefix
 * cache); `countTokens` gives the same count without allocating them.
 */

const PIECE_RE = / ?[\p{L}\p{M}]+| ?\p{N}{1,3}| ?[^\s\p{L}\p{M}\p{N}]+|\s+/gu;
/** Pieces up to this many UTF-16 units are one token. */
const LONG_PIECE = 8;
/** Longer pieces are split into tokens of this many units. */
const SPLIT = 4;
/** Whitespace runs are split every this many units. */
const WS_SPLIT = 16;

function isSpaceRun(piece: string): boolean {
  const c = piece.charCodeAt(piece.length - 1);
  // A whitespace run ends with whitespace; every other piece ends with a non-space.
  return c === 32 || c === 10 || c === 9 || c === 13 || (c > 127 && /\s/u.test(piece[piece.length - 1] ?? ''));
}

function piecesOf(len: number, space: boolean): number {
  if (space) return Math.ceil(len / WS_SPLIT);
  return len <= LONG_PIECE ? 1 : Math.ceil(len / SPLIT);
}

/** Number of tokens `tokenize(text)` would return. */
export function countTokens(text: string): number {
  if (text.length === 0) return 0;
  let n = 0;
  PIECE_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PIECE_RE.exec(text)) !== null) {
    const p = m[0];
    n += piecesOf(p.length, isSpaceRun(p));
  }
  return n;
}

/** The token strings of `text`, appended to `out` (a new array by default). Concatenated they give back `text`. */
export function tokenize(text: string, out: string[] = []): string[] {
  if (text.length === 0) return out;
  PIECE_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PIECE_RE.exec(text)) !== null) {
    const p = m[0];
    const space = isSpaceRun(p);
    const step = space ? WS_SPLIT : SPLIT;
    if ((space && p.length <= WS_SPLIT) || (!space && p.length <= LONG_PIECE)) {
      out.push(p);
    } else {
      for (let i = 0; i < p.length; i += step) out.push(p.slice(i, i + step));
    }
  }
  return out;
}

/** Special tokens of the Llama-3 chat template the sim renders (see prompt.ts). */
export const SPECIAL = Object.freeze({
  BOS: '<|begin_of_text|>',
  HEADER_START: '<|start_header_id|>',
  HEADER_END: '<|end_header_id|>',
  EOT: '<|eot_id|>',
  NL2: '\n\n',
});
