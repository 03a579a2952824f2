/**
 * The complexity scorer: how hard is a chat (or completions) request, in [0, 1], and which tier
 * should serve it. `auto` maps the score to a tier with `tierForScore` and the tiers'
 * `min_complexity`.
 *
 * Pure (no Workers or Node APIs) and cheap: one walk over the messages, then bounded scans of the
 * last user message (a character loop over at most 4 KB for syntax, a word loop over at most
 * 1.8 KB for words and sentence structure), 600 characters of the system prompt and of the
 * previous user turn. Everything else counts by length only. No substrings are built: scanners
 * take ranges. About 20-60 µs for a 4,000-token prompt on a slow 2-core box (p99 ≈ 100 µs).
 *
 * ## Formula
 *
 * Each feature f_i is normalised to [0, 1] (counts saturate as 1 - e^(-n/k), lengths on a clamped
 * log scale). The score is a weighted sum through a saturating function:
 *
 *     z = Σ w_i · f_i          score = 1 - e^(-max(0, z))
 *
 * so independent signals add up with diminishing returns and no single one pins the score to 1.
 * Two weights are negative: light-task words ("translate", "summarize", "extract", "briefly"…)
 * and a small `max_tokens` (≤ 100). `signals` in the result holds every non-zero w_i · f_i.
 * The weights are COMPLEXITY_WEIGHTS below; each is documented there.
 *
 * What is read, and where:
 * - the LAST user message weighs most: its length; code (``` fences, indented lines and lines
 *   ending in { } ; — which catches stack traces —, density of {}[]();=<>_ etc., programming
 *   words); maths (LaTeX commands, unicode maths symbols and ^, maths words); reasoning words (deep:
 *   prove, derive, trade-offs, design, analyse, consistency, concurrency, latency…; proof words on
 *   their own; light: explain, compare, why…) and deep reasoning × a technical subject; task
 *   structure (list items, sequencing and constraint words, clauses, sentences, several
 *   questions); register (share of long words); the length of answer asked for ("1,500 words",
 *   "essay", "detailed"); light-task words (negative);
 * - where in that message: its "instruction zone" — all of a message up to 1,000 characters;
 *   for a longer one, its first and last paragraphs (capped at 1.2 KB and 600 characters), or,
 *   when the first paragraph ends with ":" ("Summarize this:"), the first one only, the last being
 *   read at 0.3 weight as material. So a pasted document counts by its length, not its words;
 * - the system/developer prompt: only its domain words (deep, proof, code, maths) at 0.2 weight,
 *   and its length on a log scale with a tiny weight (a long shared system prompt does not make
 *   "hi" harder); the previous user turn: its words at 0.4 weight;
 * - conversation depth (earlier turns), tool calls and results already in the conversation,
 *   `tools` (count), `response_format` (json_schema by schema size, json_object less), images and
 *   other attachments, and `max_tokens` / `max_completion_tokens` (log scale from 500 to 8,192,
 *   weighted so that a client sending max_tokens = 4096 on everything does not move "hi").
 *
 * Words come from fixed, general vocabularies (below), matched as whole lowercase words or
 * two-word phrases through a hash table; they were written as general lists for each category,
 * not from the fixture's phrasing.
 *
 * ## Recommended thresholds
 *
 *     fast 0 · balanced 0.25 · advanced 0.6          (RECOMMENDED_THRESHOLDS)
 *
 * Calibrated on test/fixtures/complexity-prompts.json: 244 hand-labelled chat requests (121 fast,
 * 75 balanced, 48 advanced), labelled before the weights were fitted (coordinate search on
 * weights and thresholds, penalising a request below its tier 3x a request above it, plus cost;
 * then rounded). On it: 89.8% exact tier, 1.2% below the tier needed, 9.0% above, and a saving of
 * 34.0% versus sending everything to the strongest tier (perfect routing saves 36.2% on this
 * fixture; with a shared 1,000-token system prompt on every request, 55.8%). Two-fold
 * cross-validation (fit on one half, measure on the other): 2.0% below, 11.5% above.
 * Raising the advanced threshold trades answers below their tier for money: at 0.7 (balanced
 * 0.25), 7.0% below and 47.3% saved. `npm run bench complexity` prints all of this.
 */
import type { ChatRequest, CompletionRequest } from '../openai/schemas';

export interface ComplexityResult {
  /** Complexity in [0, 1]. */
  score: number;
  /** Estimated prompt tokens (characters / 4, plus fixed costs for messages, tools and images). */
  promptTokens: number;
  /** Each feature's contribution w_i · f_i to z (before the saturating function). */
  signals: Record<string, number>;
}

/** Thresholds recommended for `[tiers.<name>] min_complexity` (see the comment above). */
export const RECOMMENDED_THRESHOLDS: ReadonlyArray<{ tier: string; min_complexity: number }> = [
  { tier: 'fast', min_complexity: 0 },
  { tier: 'balanced', min_complexity: 0.25 },
  { tier: 'advanced', min_complexity: 0.6 },
];

/**
 * The tier with the highest `min_complexity` ≤ score (ties: the first listed). When the score is
 * below every threshold (or is NaN), the tier with the lowest `min_complexity`. Empty list: ''.
 */
export function tierForScore(thresholds: ReadonlyArray<{ tier: string; min_complexity: number }>, score: number): string {
  let best: { tier: string; min_complexity: number } | undefined;
  let lowest: { tier: string; min_complexity: number } | undefined;
  for (const t of thresholds) {
    if (t.min_complexity <= score && (!best || t.min_complexity > best.min_complexity)) best = t;
    if (!lowest || t.min_complexity < lowest.min_complexity) lowest = t;
  }
  return (best ?? lowest)?.tier ?? '';
}

// ---------------------------------------------------------------------------------------------
// Weights. Calibrated on the fixture (see the top of the file); each feature is in [0, 1].

export const COMPLEXITY_WEIGHTS = {
  /** Length of the last user message, log scale from ~25 to ~4,000 tokens. */
  length: 0.65,
  /** Length of system prompt + history, log scale from ~200 to ~16,000 tokens. */
  context: 0.05,
  /** Code syntax: fences, code-like and indented lines, symbol density. */
  code: 0.15,
  /** Programming vocabulary (languages, "implement", "refactor", "stack trace"…). */
  code_words: 0.35,
  /** Maths syntax: LaTeX, unicode maths, equations. */
  math: 0.35,
  /** Maths vocabulary ("integral", "theorem", "probability"…). */
  math_words: 0.35,
  /** Deep reasoning / rigour / systems vocabulary. */
  reasoning: 0.85,
  /** Proof vocabulary (prove, rigorous, theorem, show that…). */
  proof: 0.3,
  /** Light reasoning vocabulary (explain, compare, why…). */
  explain: 0.3,
  /** Task structure: list items, sequencing and constraint words, clauses. */
  multi_step: 0.5,
  /** Deep reasoning on a technical subject (reasoning × max(code, maths)). */
  technical_reasoning: 0.65,
  /** Share of long (9+ letter) words in the instruction: technical or formal register. */
  vocabulary: 0.3,
  /** Long answer asked for in words ("essay", "1,500 words"). */
  long_answer: 0.35,
  /** Light-task vocabulary (translate, summarize, extract, briefly…): negative. */
  light_task: -0.35,
  /** Earlier turns in the conversation. */
  depth: 0.3,
  /** Tool calls / results already in the conversation. */
  agentic: 0.3,
  /** `tools` offered. */
  tools: 0.3,
  /** `response_format`: json_schema (by schema size) or json_object. */
  json_schema: 0.1,
  /** Images, audio and files in the last user message. */
  attachments: 0.3,
  /** `max_tokens` / `max_completion_tokens` above ~500, log scale to 8,192. */
  max_tokens: 0.3,
  /** A small `max_tokens` (≤ 100): a short answer is expected. Negative. */
  short_answer: -0.3,
} as const;
export type ComplexityFeature = keyof typeof COMPLEXITY_WEIGHTS;
export type ComplexityFeatures = Record<ComplexityFeature, number>;

/** Combines features (each in [0, 1]) with weights into a result's score and signals. */
export function combineComplexity(
  features: ComplexityFeatures,
  weights: Readonly<Record<ComplexityFeature, number>> = COMPLEXITY_WEIGHTS,
): { score: number; signals: Record<string, number> } {
  const signals: Record<string, number> = {};
  let z = 0;
  for (const key in weights) {
    const k = key as ComplexityFeature;
    const c = weights[k] * features[k];
    if (c !== 0) signals[k] = round4(c);
    z += c;
  }
  const score = z > 0 ? 1 - Math.exp(-z) : 0;
  return { score: Number.isFinite(score) ? round4(score) : 0, signals };
}

export function scoreComplexity(body: ChatRequest | CompletionRequest): ComplexityResult {
  const { features, promptTokens } = complexityFeatures(body);
  const { score, signals } = combineComplexity(features);
  return { score, promptTokens, signals };
}

// ---------------------------------------------------------------------------------------------
// Feature extraction.

const HEAD_INSTRUCTION = 1200;
const TAIL_INSTRUCTION = 600;
const HEAD_SYNTAX = 3072;
const TAIL_SYNTAX = 1024;
const SIDE_SCAN = 600;
/** Messages up to this many characters are read whole as the instruction. */
const SHORT_MESSAGE = 1000;
/** Rough prompt-token costs of things that are not plain text. */
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_IMAGE = 500;
const TOKENS_PER_TOOL_CALL = 20;
const TOOLS_SIZE_SAMPLE = 8;

const SYSTEM_WORD_WEIGHT = 0.2;
const PREVIOUS_TURN_WORD_WEIGHT = 0.4;
const MATERIAL_WORD_WEIGHT = 0.3;

function isChat(body: ChatRequest | CompletionRequest): body is ChatRequest {
  return Array.isArray((body as { messages?: unknown }).messages);
}

export function complexityFeatures(body: ChatRequest | CompletionRequest): { features: ComplexityFeatures; promptTokens: number } {
  let lastText = '';
  let lastChars = 0;
  let contextChars = 0;
  let extraTokens = 0;
  let attachments = 0;
  let priorTurns = 0;
  let toolActivity = 0;
  const words = new WordCounts();
  let toolsCount = 0;
  let toolsChars = 0;
  let schemaChars = 0;
  let jsonObject = false;
  let maxTokens: number | null | undefined = body.max_tokens;

  if (isChat(body)) {
    const messages = body.messages;
    let lastUser = -1;
    for (let i = messages.length - 1; i >= 0; i--) {
      if (messages[i]!.role === 'user') {
        lastUser = i;
        break;
      }
    }
    if (lastUser < 0) lastUser = messages.length - 1;
    let previousUser = -1;
    for (let i = lastUser - 1; i >= 0; i--) {
      if (messages[i]!.role === 'user') {
        previousUser = i;
        break;
      }
    }
    let systemScanned = 0;
    for (let i = 0; i < messages.length; i++) {
      const msg = messages[i]!;
      extraTokens += TOKENS_PER_MESSAGE;
      const c = collectContent(msg.content);
      extraTokens += c.attachments * TOKENS_PER_IMAGE;
      if (i === lastUser) {
        lastText = c.text;
        lastChars = c.chars;
        attachments += c.attachments;
        continue;
      }
      contextChars += c.chars;
      if (msg.role === 'system' || msg.role === 'developer') {
        if (systemScanned < SIDE_SCAN) {
          const to = Math.min(c.text.length, SIDE_SCAN - systemScanned);
          systemScanned += to;
          scanWords(c.text, 0, to, SYSTEM_WORD_WEIGHT, words, SYSTEM_CATEGORIES);
        }
        continue;
      }
      if (i < lastUser) priorTurns++;
      if (msg.role === 'tool') toolActivity++;
      if (msg.role === 'assistant' && msg.tool_calls) {
        toolActivity += msg.tool_calls.length;
        for (const call of msg.tool_calls) contextChars += call.function.arguments.length + call.function.name.length;
        extraTokens += msg.tool_calls.length * TOKENS_PER_TOOL_CALL;
      }
      if (i === previousUser) scanWords(c.text, 0, Math.min(c.text.length, SIDE_SCAN), PREVIOUS_TURN_WORD_WEIGHT, words);
    }
    if (body.tools && body.tools.length > 0) {
      // Size from the first few tools, extrapolated: up to 128 large schemas are not serialised.
      toolsCount = body.tools.length;
      const sample = body.tools.length > TOOLS_SIZE_SAMPLE ? body.tools.slice(0, TOOLS_SIZE_SAMPLE) : body.tools;
      toolsChars = (jsonLength(sample) * toolsCount) / sample.length;
    }
    const rf = body.response_format;
    if (rf?.type === 'json_schema') schemaChars = jsonLength(rf.json_schema.schema ?? {}) + 40;
    else if (rf?.type === 'json_object') jsonObject = true;
    maxTokens = body.max_completion_tokens ?? body.max_tokens;
  } else {
    const p = body.prompt;
    if (typeof p === 'string') {
      lastText = p;
      lastChars = p.length;
    } else if (p.length > 0 && typeof p[0] === 'string') {
      lastText = (p as string[]).join('\n');
      lastChars = lastText.length;
    } else {
      // Token ids: count them; nothing to read.
      for (const x of p as Array<number | number[]>) extraTokens += typeof x === 'number' ? 1 : x.length;
    }
  }

  // The last user message: words and structure in its instruction zone, syntax in a larger
  // slice. Scanners take ranges of the message itself: no substrings are built.
  const zone = instructionZone(lastText);
  const st = new Structure();
  for (let r = 0; r < zone.instruction.length; r += 2) {
    scanWords(lastText, zone.instruction[r]!, zone.instruction[r + 1]!, 1, words);
    scanStructure(lastText, zone.instruction[r]!, zone.instruction[r + 1]!, st);
  }
  if (zone.material) scanWords(lastText, zone.material[0], zone.material[1], MATERIAL_WORD_WEIGHT, words);
  const syn = new Syntax();
  const n = lastText.length;
  if (n <= HEAD_SYNTAX + TAIL_SYNTAX) scanSyntax(lastText, 0, n, syn);
  else {
    scanSyntax(lastText, 0, HEAD_SYNTAX, syn);
    scanSyntax(lastText, n - TAIL_SYNTAX, n, syn);
  }

  const lastTokens = lastChars / 4;
  const contextTokens = contextChars / 4 + toolsChars / 4;
  const promptTokens = Math.round(lastTokens + contextTokens + schemaChars / 4 + extraTokens);

  const symbolDensity = syn.chars > 0 ? syn.symbols / syn.chars : 0;
  const code = sat(Math.ceil(syn.fences / 2) * 0.6 + syn.codeLines / 5 + Math.max(0, symbolDensity - 0.012) * 40, 1);
  const math = sat(syn.mathSymbols / 3 + syn.latex / 2, 1);
  const codeWords = sat(words.code, 2);
  const mathWords = sat(words.math, 2);
  const reasoning = sat(words.deep, 2);
  const structure = words.multi + st.listItems + syn.listItems * 0.25 + st.clauses * 0.5 + Math.max(0, st.sentences - 1) * 0.7 + Math.max(0, st.questions - 1);
  const asked = words.wordsAsked > 0 ? logScale(words.wordsAsked, 150, 1500) : 0;

  const features: ComplexityFeatures = {
    length: logScale(lastTokens, 25, 4000),
    context: logScale(contextTokens, 200, 16000),
    code,
    code_words: codeWords,
    math,
    math_words: mathWords,
    reasoning,
    proof: sat(words.proof, 1),
    explain: sat(words.light, 1.5),
    multi_step: sat(structure, 6),
    technical_reasoning: reasoning * Math.max(code, codeWords, math, mathWords),
    // Damped for short messages, where one long word would swing the share.
    vocabulary: words.total > 0 ? clamp01((words.longWords / words.total - 0.08) / 0.25) * Math.min(1, words.total / 12) : 0,
    long_answer: Math.max(asked, sat(words.long, 1.5)),
    light_task: sat(words.simple, 1),
    depth: sat(priorTurns, 5),
    agentic: sat(toolActivity, 2),
    tools: toolsCount > 0 ? 0.5 + 0.5 * sat(toolsCount - 1, 4) : 0,
    json_schema: schemaChars > 0 ? 0.3 + 0.7 * sat(schemaChars, 1200) : jsonObject ? 0.2 : 0,
    attachments: sat(attachments, 1.5),
    max_tokens: maxTokens ? logScale(maxTokens, 500, 8192) : 0,
    short_answer: maxTokens && maxTokens <= 100 ? 1 : 0,
  };
  return { features, promptTokens };
}

/**
 * Where the ask is. A short message is all instruction. A long one with paragraphs is usually
 * "instruction, then material" or "material, then question": its first and last paragraphs
 * (each capped), and when the first ends with ":" ("Summarize this:") the last is material and
 * comes back as `material`, to be read at a lower weight. Without paragraphs, the first 1.2 KB
 * and the last 600 characters.
 */
function instructionZone(text: string): { instruction: number[]; material: [number, number] | null } {
  const n = text.length;
  if (n <= SHORT_MESSAGE) return { instruction: [0, n], material: null };
  // Both searches are bounded (a 1 MB body without blank lines must not be read whole).
  let headEnd = text.slice(0, HEAD_INSTRUCTION + 2).indexOf('\n\n');
  const paragraphs = headEnd >= 0 && headEnd <= HEAD_INSTRUCTION;
  if (!paragraphs) headEnd = Math.min(n, HEAD_INSTRUCTION);
  const tailFrom = Math.max(0, n - TAIL_INSTRUCTION - 2);
  let tailStart = text.slice(tailFrom).lastIndexOf('\n\n');
  if (tailStart >= 0) tailStart += tailFrom;
  if (tailStart < n - TAIL_INSTRUCTION - 2 || tailStart < headEnd) tailStart = Math.max(headEnd, n - TAIL_INSTRUCTION);
  else tailStart += 2;
  const hasTail = tailStart < n;
  if (paragraphs && endsWithColon(text, headEnd)) return { instruction: [0, headEnd], material: hasTail ? [tailStart, n] : null };
  return { instruction: hasTail ? [0, headEnd, tailStart, n] : [0, headEnd], material: null };
}

/** Whether text[0, end) ends with ":" (trailing whitespace aside). */
function endsWithColon(text: string, end: number): boolean {
  let i = end - 1;
  while (i >= 0 && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 10 || text.charCodeAt(i) === 13 || text.charCodeAt(i) === 9)) i--;
  return i >= 0 && text.charCodeAt(i) === 58;
}

/** Text of a message's content (parts joined), its full length, and how many non-text parts. */
function collectContent(content: unknown): { text: string; chars: number; attachments: number } {
  if (typeof content === 'string') return { text: content, chars: content.length, attachments: 0 };
  if (!Array.isArray(content)) return { text: '', chars: 0, attachments: 0 };
  let text = '';
  let chars = 0;
  let attachments = 0;
  for (const part of content as Array<{ type?: unknown; text?: unknown; refusal?: unknown }>) {
    if (typeof part?.text === 'string') {
      chars += part.text.length;
      // Keep what the scans can use; the rest counts by length only.
      if (text.length < HEAD_SYNTAX + TAIL_SYNTAX) text += (text ? '\n' : '') + part.text;
    } else if (typeof part?.refusal === 'string') {
      chars += part.refusal.length;
    } else {
      attachments++;
    }
  }
  return { text, chars, attachments };
}

function jsonLength(value: unknown): number {
  try {
    return JSON.stringify(value)?.length ?? 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Syntax: a character loop and a line walk over the syntax slice.

class Syntax {
  /** Scanned characters. */
  chars = 0;
  /** ``` markers (two per block). */
  fences = 0;
  /** Lines ending in { } ; or indented by 4+ spaces / a tab (code, stack traces). */
  codeLines = 0;
  /** Characters in {}[]();=<>_\\|&$`. */
  symbols = 0;
  /** Unicode maths symbols, ^. */
  mathSymbols = 0;
  /** Backslash commands (\\frac, \\int…). */
  latex = 0;
  /** Numbered or bulleted list items. */
  listItems = 0;
}

// Character classes: one table lookup per character.
const C_SYMBOL = 1; // {}[]();=<>_\|&$` (code-ish punctuation)
const C_MATH = 2; // ^ and unicode maths (∫ ≤ ℝ ² π …)
const CLASS = new Uint8Array(0x10000);
for (const ch of '{}[]();=<>_\\|&$`') CLASS[ch.charCodeAt(0)] = C_SYMBOL;
for (const ch of '^∫∑∏√≤≥≠≈∞∀∃∈∉⊂⊆∪∩ℝℕℤℚℂπθλσμ∂∇²³ⁿ⁻₀₁₂≡⇒⇔±×÷') CLASS[ch.charCodeAt(0)] = C_MATH;

/**
 * Two cheap passes over the syntax slice: a tight loop over characters for symbols (most
 * characters are a single table lookup), and a walk from newline to newline (indexOf) that
 * looks only at each line's start and end.
 */
function scanSyntax(text: string, from: number, to: number, out: Syntax): void {
  out.chars += to - from;
  for (let i = from; i < to; i++) {
    const k = CLASS[text.charCodeAt(i)]!;
    if (k === 0) continue;
    if (k === C_MATH) {
      out.mathSymbols++;
      continue;
    }
    out.symbols++;
    const c = text.charCodeAt(i);
    if (c === 96) {
      if (text.charCodeAt(i + 1) === 96 && text.charCodeAt(i + 2) === 96) {
        out.fences++;
        out.symbols += 2;
        i += 2;
      }
    } else if (c === 92) {
      const d = text.charCodeAt(i + 1) | 32;
      if (d >= 97 && d <= 122) out.latex++;
    }
  }

  for (let start = from; start < to; ) {
    let end = text.indexOf('\n', start);
    if (end < 0 || end > to) end = to;
    let i = start;
    let indent = 0;
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === 32) indent++;
      else if (c === 9) indent += 4;
      else break;
    }
    if (i < end) {
      let last = end - 1;
      while (last > i && (text.charCodeAt(last) === 32 || text.charCodeAt(last) === 13)) last--;
      const lastChar = text.charCodeAt(last);
      // Code and stack traces: indented lines, or lines ending in { } ;
      if (indent >= 4 || lastChar === 123 || lastChar === 125 || lastChar === 59) out.codeLines++;
      else if (isListItem(text, i)) out.listItems++;
    }
    start = end + 1;
  }
}

/** "- x", "* x", "• x", "1. x", "12) x" at position i. */
function isListItem(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  if (c === 45 || c === 42 || c === 8226) return text.charCodeAt(i + 1) === 32;
  let j = i;
  while (j < i + 3 && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j++;
  if (j === i) return false;
  const d = text.charCodeAt(j);
  return (d === 46 || d === 41) && text.charCodeAt(j + 1) === 32;
}

class Structure {
  clauses = 0;
  sentences = 0;
  questions = 0;
  listItems = 0;
}

/** Clauses, sentences, questions and list items of a range of the instruction zone. */
function scanStructure(text: string, from: number, to: number, out: Structure): void {
  let lineStart = true;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      lineStart = true;
      continue;
    }
    if (lineStart && c !== 32 && c !== 9) {
      lineStart = false;
      if (isListItem(text, i)) out.listItems++;
    }
    if (c === 44 || c === 59) out.clauses++;
    else if (c === 46 || c === 33 || c === 63) {
      const d = i + 1 < to ? text.charCodeAt(i + 1) : 32;
      if (d === 32 || d === 10) {
        out.sentences++;
        if (c === 63) out.questions++;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Words: one character loop that hashes each lowercase word on the fly (no strings are built)
// and looks the hash up in a Map; two-word phrases are looked up by a hash of the pair.

const DEEP = 1;
const LIGHT = 2;
const MULTI = 4;
const SIMPLE = 8;
const CODE = 16;
const MATH = 32;
const LONG = 64;
const PROOF = 128;
const ALL_CATEGORIES = 255;
/** What a system prompt may tell about a request: its domain, not its task (style rules and "be brief" are shared by every request). */
const SYSTEM_CATEGORIES = DEEP | CODE | MATH | PROOF;

/**
 * hash of a word, or of a two-word phrase → category bits, in an open-addressing table (typed
 * arrays, linear probing; 0 marks an empty slot, so a hash of 0 is stored as 1).
 */
const VOCAB_SIZE = 4096; // a power of two, several times the number of entries
const VOCAB_KEYS = new Int32Array(VOCAB_SIZE);
const VOCAB_BITS = new Uint16Array(VOCAB_SIZE);
let vocabEntries = 0;
function vocabSlot(h: number): number {
  const key = h === 0 ? 1 : h;
  let i = (Math.imul(key, 0x9e3779b1) >>> 20) & (VOCAB_SIZE - 1);
  while (VOCAB_KEYS[i] !== 0 && VOCAB_KEYS[i] !== key) i = (i + 1) & (VOCAB_SIZE - 1);
  return i;
}
function vocabGet(h: number): number {
  return VOCAB_BITS[vocabSlot(h)]!;
}
function add(bits: number, list: string): void {
  for (const entry of list.split(',')) {
    const words = entry.trim().split(' ');
    if (!words[0]) continue;
    if (words.length > 2) throw new Error(`complexity vocabulary: "${entry.trim()}" has more than two words`);
    let h = hashWord(words[0]);
    if (words[1]) h = pairHash(h, hashWord(words[1]));
    const slot = vocabSlot(h);
    if (VOCAB_KEYS[slot] === 0) {
      if (++vocabEntries > VOCAB_SIZE / 4) throw new Error('complexity vocabulary: table too full');
      VOCAB_KEYS[slot] = h === 0 ? 1 : h;
    }
    VOCAB_BITS[slot]! |= bits;
  }
}
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;
function hashWord(w: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), FNV_PRIME);
  return h;
}
function pairHash(a: number, b: number): number {
  return Math.imul(a ^ 0x5bd1e995, FNV_PRIME) ^ b;
}
add(
  DEEP,
  `prove,proves,proving,proof,proofs,rigorous,rigorously,derive,derives,derivation,justify,justification,critique,critically,
  tradeoff,tradeoffs,trade-off,trade-offs,trade off,trade offs,architect,architecture,architectures,design,designs,designing,
  analyze,analyse,analyzing,analysing,analysis,evaluate,evaluating,assess,root cause,failure modes,failure mode,failure scenarios,
  invariant,invariants,correctness,guarantee,guarantees,guaranteed,consistency,consistent,concurrency,concurrent,race condition,
  race conditions,deadlock,deadlocks,distributed,partition,partitioned,partitions,replica,replicas,replication,shard,sharding,
  throughput,latency,p99,scalability,scalable,scaling,fault-tolerant,exactly-once,idempotency,idempotent,consensus,optimal,
  optimality,optimize,optimise,complexity,theorem,lemma,counterexample,generalize,generalise,second-order,implications,
  in depth,end-to-end,uniqueness,iff,only if,edge cases,vulnerability,vulnerabilities,exploit,threat model,
  lock-free,atomics,memory ordering,from first,first principles,non-trivial,nontrivial,subtle,strategy`,
);
add(
  LIGHT,
  `why,explain,explaining,explanation,compare,comparing,comparison,versus,vs,difference,differences,pros,cons,recommend,
  recommendation,interpret,reason,reasoning,step by,walk me,how does,how do,review,feedback,improve,argue,argument,
  counterarguments,counterargument,implement,implementation,debug,intuition,intuitively,show the,show your,work out,
  plan,assumptions,estimate,estimates,risks,detail,detailed`,
);
add(
  MULTI,
  `first,second,third,then,next,finally,afterwards,also,additionally,each,every,include,including,ensure,must,without,
  handle,handling,support,cover,covering,both,plus,while,otherwise,unless,whether,only,keep,preserving,given,constraints,
  requirements,assuming,so that,at least,at most,per`,
);
add(
  SIMPLE,
  `translate,translation,summarize,summarise,summary,tl;dr,tldr,rewrite,rephrase,paraphrase,reword,shorten,grammar,spelling,
  proofread,synonym,synonyms,antonym,define,definition,meaning,classify,categorize,categorise,sentiment,extract,convert,
  briefly,brief,quick,quickly,simple terms,eli5,one sentence,one word,one line,capital of,who wrote,what year,
  what time,how long,caption,slogan,tweet,haiku,limerick,joke,hi,hello,hey,thanks,thank you`,
);
add(
  CODE,
  `python,javascript,typescript,java,rust,golang,c++,c#,kotlin,swift,ruby,php,scala,haskell,sql,postgres,postgresql,mysql,sqlite,
  regex,bash,shell,script,function,functions,class,method,api,endpoint,refactor,compile,compiler,bug,bugs,error,exception,
  traceback,stack trace,unit tests,unit test,pytest,algorithm,algorithms,data structure,thread,threads,async,await,mutex,lock,
  database,query,queries,server,docker,dockerfile,kubernetes,kafka,redis,cache,queue,http,json,git,react,node,css,html,
  frontend,backend,microservices,interpreter,parser,runtime,kernel,goroutine,pointer,null,undefined,segfault`,
);
add(
  MATH,
  `integral,integrals,integrate,derivative,derivatives,differentiate,equation,equations,matrix,matrices,eigenvalue,
  eigenvalues,eigenvector,determinant,probability,probabilities,expected value,variance,distribution,converge,converges,
  convergence,convergent,series,polynomial,prime,primes,modulo,congruent,divisible,inequality,inequalities,real numbers,
  integer,integers,rational,irrational,subgroup,abelian,isomorphic,homomorphism,vector space,topology,compact,continuous,
  differential,jacobian,gradient,logarithm,factorial,combinatorics,permutations,combinations,triangle,orthocenter,
  perpendicular,sequence,sequences,bounded,infinitely,calculus,equilibrium,equilibria,solve,compute,calculate,
  confidence interval,regression,stochastic,bayes,bayesian,geometry,algebra,lattice,finite,infinite,countable,uncountable,
  fixed point,transitive,transitively,bijection,bijective,injective,surjective,homeomorphic,manifold,cardinality,axiom,axioms,
  metric space,topological,hilbert,banach,norm,measurable,lebesgue,galois,modular,asymptotic,recurrence,induction,
  planar,vertex,vertices,colorable,coloring,chromatic,bipartite,spanning tree,graph theory`,
);
add(
  LONG,
  `essay,story,article,blog post,chapter,report,guide,tutorial,itinerary,letter,speech,curriculum,lesson plan,
  comprehensive,in detail,full,complete,thorough,thoroughly,whitepaper,proposal,schedule,outline`,
);
add(PROOF, `prove,proves,proving,proof,proofs,rigorous,rigorously,theorem,lemma,show that,qed,iff,only if,disprove`);

const WORDS_ASKED_RE = /(\d[\d,]{1,6})(?:\s*(?:-|to)\s*\d[\d,]{1,6})?\s*-?\s*(words?|pages?)\b/i;

class WordCounts {
  deep = 0;
  light = 0;
  multi = 0;
  simple = 0;
  code = 0;
  math = 0;
  long = 0;
  proof = 0;
  /** Words asked for ("1,500 words", "3 pages" ≈ 1,500 words). */
  wordsAsked = 0;
  /** Words in the last user message's instruction zone, and how many have 9+ letters. */
  total = 0;
  longWords = 0;
}

/**
 * Word characters → their lowercase code, 0 for the rest: a-z, A-Z, 0-9, + and # (c++, c#), and
 * non-ASCII letters (roughly: other alphabets up to U+1FFF, and CJK from U+3000; not punctuation
 * or maths). One table lookup per character.
 */
const WORD = new Uint16Array(0x10000);
for (let c = 97; c <= 122; c++) WORD[c] = c;
for (let c = 65; c <= 90; c++) WORD[c] = c + 32;
for (let c = 48; c <= 57; c++) WORD[c] = c;
WORD[43] = 43;
WORD[35] = 35;
for (let c = 0xc0; c < 0x2000; c++) if (c !== 0xd7 && c !== 0xf7) WORD[c] = c;
for (let c = 0x3000; c < 0x10000; c++) WORD[c] = c;
/** Joiners inside a word when a word character follows: trade-off, don't, tl;dr, node.js. */
const JOINER = new Uint8Array(128);
JOINER[45] = JOINER[39] = JOINER[59] = JOINER[46] = 1;

/** Counts vocabulary hits (each weighted) in text[from, to). */
function scanWords(text: string, from: number, to: number, weight: number, out: WordCounts, categories = ALL_CATEGORIES): void {
  const n = to;
  let prev = 0; // hash of the previous word, 0 = none
  let i = from;
  while (i < n) {
    let w = WORD[text.charCodeAt(i)]!;
    if (w === 0) {
      i++;
      continue;
    }
    let h = FNV_OFFSET;
    let len = 0;
    for (;;) {
      h = Math.imul(h ^ w, FNV_PRIME);
      len++;
      if (++i >= n) break;
      const c = text.charCodeAt(i);
      w = WORD[c]!;
      if (w !== 0) continue;
      if (c < 128 && JOINER[c] === 1 && i + 1 < n && WORD[text.charCodeAt(i + 1)] !== 0) {
        w = c;
        continue;
      }
      break;
    }
    if (weight === 1) {
      out.total++;
      if (len >= 9) out.longWords++;
    }
    let bits = vocabGet(h);
    if (prev !== 0) bits |= vocabGet(pairHash(prev, h));
    prev = h;
    bits &= categories;
    if (bits === 0) continue;
    if (bits & DEEP) out.deep += weight;
    if (bits & LIGHT) out.light += weight;
    if (bits & MULTI) out.multi += weight;
    if (bits & SIMPLE) out.simple += weight;
    if (bits & CODE) out.code += weight;
    if (bits & MATH) out.math += weight;
    if (bits & LONG) out.long += weight;
    if (bits & PROOF) out.proof += weight;
  }
  if (weight === 1 && to > from) {
    const asked = WORDS_ASKED_RE.exec(from === 0 && to === text.length ? text : text.slice(from, to));
    if (asked) {
      const nWords = Number(asked[1]!.replace(/,/g, ''));
      const words = asked[2]!.toLowerCase().startsWith('page') ? nWords * 500 : nWords;
      if (Number.isFinite(words)) out.wordsAsked = Math.max(out.wordsAsked, words);
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** 1 - e^(-x/k): 0 at 0, 0.63 at k, → 1. */
function sat(x: number, k: number): number {
  return x <= 0 ? 0 : 1 - Math.exp(-x / k);
}
/** 0 at ≤ lo, 1 at ≥ hi, log-linear between. */
function logScale(x: number, lo: number, hi: number): number {
  return x <= lo ? 0 : x >= hi ? 1 : Math.log(x / lo) / Math.log(hi / lo);
}
function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}
function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
