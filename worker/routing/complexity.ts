/**
 * The complexity scorer: how hard is this request, in [0, 1], and which tier should serve it.
 *
 * Pure (no Workers or Node APIs) and cheap: one walk over the messages, one character loop over a
 * bounded slice of the last user message, one word loop over its "instruction zone". Text beyond
 * the slices counts by length only.
 *
 * ## Formula
 *
 * Each feature f_i is normalised to [0, 1] (saturating: counts go through 1 - e^(-n/k), lengths
 * through a clamped log scale). The score is a weighted sum through a saturating function:
 *
 *     z = Σ w_i · f_i          score = 1 - e^(-max(0, z))
 *
 * so independent signals add up with diminishing returns and no single signal pins the score to
 * 1. Two weights are negative (light-task words such as "translate"/"summarize", and a small
 * `max_tokens`). `signals` in the result holds every w_i · f_i, keyed by feature name.
 *
 * What is read, and where:
 * - the LAST user message weighs most: its length, code (fences, indented or brace/semicolon
 *   lines, symbol density, stack-trace lines, programming words), maths (LaTeX, unicode maths,
 *   equations, maths words), reasoning words (deep: prove, derive, trade-offs, design, analyse,
 *   consistency, concurrency…; light: explain, compare, why…), task structure (numbered or bullet
 *   items, sequencing and constraint words, commas and sentences in the instruction), the length
 *   of answer it asks for ("1,500 words", "essay", "detailed…"), and light-task words (negative);
 * - the system/developer prompt and the previous user turn contribute their words at a fraction of
 *   that weight (0.2 and 0.4), and their length only on a log scale (a long shared system prompt
 *   does not make "hi" hard);
 * - conversation depth (earlier turns), tool calls and results already in the conversation,
 *   `tools` (count), `response_format` (json_schema by schema size, json_object less), images and
 *   other attachments, and `max_tokens` / `max_completion_tokens`.
 *
 * Words are matched as whole lowercase words from fixed, general vocabularies (below); the
 * instruction zone is the first 1.5 KB and the last 1 KB of the last user message (where people
 * put what they want done); the syntax slice is its first 6 KB and last 2 KB.
 *
 * ## Recommended thresholds (calibrated on test/fixtures/complexity-prompts.json)
 *
 *     fast 0 · balanced 0.30 · advanced 0.62
 *
 * On that fixture (224 hand-labelled chat requests: 111 fast, 69 balanced, 44 advanced) these give
 * CALIBRATION_RESULTS. See scripts/bench/complexity.ts (`npm run bench complexity`).
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
  { tier: 'balanced', min_complexity: 0.3 },
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

const HEAD_INSTRUCTION = 1536;
const TAIL_INSTRUCTION = 1024;
const HEAD_SYNTAX = 6144;
const TAIL_SYNTAX = 2048;
const SIDE_SCAN = 1024;
/** Messages up to this many characters are read whole as the instruction. */
const SHORT_MESSAGE = 1000;
/** Rough prompt-token costs of things that are not plain text. */
const TOKENS_PER_MESSAGE = 4;
const TOKENS_PER_IMAGE = 500;
const TOKENS_PER_TOOL_CALL = 20;

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
          const part = c.text.slice(0, SIDE_SCAN - systemScanned);
          systemScanned += part.length;
          scanWords(part, SYSTEM_WORD_WEIGHT, words);
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
      if (i === previousUser) scanWords(c.text.slice(0, SIDE_SCAN), PREVIOUS_TURN_WORD_WEIGHT, words);
    }
    if (body.tools) {
      toolsCount = body.tools.length;
      toolsChars = jsonLength(body.tools);
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

  // The last user message: words and structure in its instruction zone, syntax in a larger slice.
  const { instruction, material } = instructionZone(lastText);
  scanWords(instruction, 1, words);
  if (material) scanWords(material, MATERIAL_WORD_WEIGHT, words);
  const st = scanStructure(instruction);
  const syntaxSlice =
    lastText.length <= HEAD_SYNTAX + TAIL_SYNTAX ? lastText : `${lastText.slice(0, HEAD_SYNTAX)}\n${lastText.slice(lastText.length - TAIL_SYNTAX)}`;
  const syn = scanSyntax(syntaxSlice);

  const lastTokens = lastChars / 4;
  const contextTokens = contextChars / 4 + toolsChars / 4;
  const promptTokens = Math.round(lastTokens + contextTokens + schemaChars / 4 + extraTokens);

  const code = sat(syn.fences * 0.6 + syn.codeLines / 5 + Math.max(0, syn.symbolDensity - 0.012) * 40, 1);
  const math = sat(syn.mathSymbols / 3 + syn.latex / 2, 1);
  const codeWords = sat(words.code, 2);
  const mathWords = sat(words.math, 2);
  const reasoning = sat(words.deep, 2);
  const structure = words.multi + st.listItems + syn.listItems * 0.25 + st.clauses * 0.5 + Math.max(0, st.sentences - 1) * 0.7 + Math.max(0, st.questions - 1);
  const asked = words.wordsAsked > 0 ? clamp01(Math.log2(words.wordsAsked / 150) / Math.log2(3000 / 150)) : 0;

  const features: ComplexityFeatures = {
    length: logScale(lastTokens, 25, 4000),
    context: logScale(contextTokens, 200, 16000),
    code,
    code_words: codeWords,
    math,
    math_words: mathWords,
    reasoning,
    explain: sat(words.light, 1.5),
    multi_step: sat(structure, 6),
    technical_reasoning: reasoning * Math.max(code, codeWords, math, mathWords),
    vocabulary: words.total >= 4 ? clamp01((words.longWords / words.total - 0.08) / 0.25) : 0,
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
 * comes back as `material`, to be read at a lower weight. Without paragraphs, the first 1.5 KB
 * and the last 1 KB.
 */
function instructionZone(text: string): { instruction: string; material: string } {
  const n = text.length;
  if (n <= SHORT_MESSAGE) return { instruction: text, material: '' };
  let headEnd = text.indexOf('\n\n');
  const paragraphs = headEnd >= 0 && headEnd <= HEAD_INSTRUCTION;
  if (!paragraphs) headEnd = Math.min(n, HEAD_INSTRUCTION);
  let tailStart = text.lastIndexOf('\n\n');
  if (tailStart < n - TAIL_INSTRUCTION || tailStart < headEnd) tailStart = Math.max(headEnd, n - TAIL_INSTRUCTION);
  else tailStart += 2;
  const head = text.slice(0, headEnd);
  const tail = tailStart >= n ? '' : text.slice(tailStart);
  if (paragraphs && /:\s*$/.test(head)) return { instruction: head, material: tail };
  return { instruction: tail ? `${head}\n${tail}` : head, material: '' };
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
// Syntax: one character loop.

interface Syntax {
  /** ``` blocks. */
  fences: number;
  /** Lines ending in { } ; or indented by 4+ spaces / a tab (code, stack traces). */
  codeLines: number;
  /** Share of characters in {}[]();=<>_\\|&$`. */
  symbolDensity: number;
  /** Unicode maths symbols, ^. */
  mathSymbols: number;
  /** Backslash commands (\\frac, \\int…). */
  latex: number;
  /** Numbered or bulleted list items. */
  listItems: number;
}

// Character classes, by code unit (ASCII) or looked up in a set (maths symbols).
const SYMBOL = new Uint8Array(128);
for (const ch of '{}[]();=<>_\\|&$`') SYMBOL[ch.charCodeAt(0)] = 1;
const MATH_CHARS = new Set([...'∫∑∏√≤≥≠≈∞∀∃∈∉⊂⊆∪∩ℝℕℤℚℂπθλσμ∂∇²³ⁿ⁻₀₁₂≡⇒⇔±×÷'].map((c) => c.charCodeAt(0)));

function endsCodeLine(lastNonSpace: number, indent: number): boolean {
  return lastNonSpace === 123 || lastNonSpace === 125 || lastNonSpace === 59 || indent >= 4;
}

/** One pass over the syntax slice. */
function scanSyntax(text: string): Syntax {
  const n = text.length;
  let fences = 0;
  let codeLines = 0;
  let symbols = 0;
  let mathSymbols = 0;
  let latex = 0;
  let listItems = 0;
  let lineStart = true;
  let indent = 0;
  let lineHasText = false;
  let lastNonSpace = 0;
  let digitsAtStart = false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      if (lineHasText && endsCodeLine(lastNonSpace, indent)) codeLines++;
      lineStart = true;
      indent = 0;
      lineHasText = false;
      digitsAtStart = false;
      continue;
    }
    if (lineStart) {
      if (c === 32) {
        indent++;
        continue;
      }
      if (c === 9) {
        indent += 4;
        continue;
      }
      lineStart = false;
      if (c === 45 || c === 42 || c === 8226) {
        // "- ", "* ", "• "
        if (text.charCodeAt(i + 1) === 32 && indent < 4) listItems++;
      } else if (c >= 48 && c <= 57) {
        digitsAtStart = true;
      }
    } else if (digitsAtStart) {
      // "1. " or "2) "
      if ((c === 46 || c === 41) && text.charCodeAt(i + 1) === 32) listItems++;
      if (c < 48 || c > 57) digitsAtStart = false;
    }
    if (c !== 32 && c !== 9 && c !== 13) {
      lineHasText = true;
      lastNonSpace = c;
    }
    if (c < 128) {
      if (SYMBOL[c]) {
        symbols++;
        if (c === 96 && text.charCodeAt(i + 1) === 96 && text.charCodeAt(i + 2) === 96) {
          fences++;
          symbols += 2;
          i += 2;
        } else if (c === 92) {
          const d = text.charCodeAt(i + 1) | 32;
          if (d >= 97 && d <= 122) latex++;
        }
      } else if (c === 94) {
        mathSymbols++;
      }
    } else if (MATH_CHARS.has(c)) {
      mathSymbols++;
    }
  }
  if (lineHasText && endsCodeLine(lastNonSpace, indent)) codeLines++;
  return { fences: Math.ceil(fences / 2), codeLines, symbolDensity: n > 0 ? symbols / n : 0, mathSymbols, latex, listItems };
}

/** Clauses, sentences, questions and list items of the instruction zone (≤ 2.5 KB). */
function scanStructure(text: string): { clauses: number; sentences: number; questions: number; listItems: number } {
  let clauses = 0;
  let sentences = 0;
  let questions = 0;
  let listItems = 0;
  let lineStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      lineStart = true;
      continue;
    }
    if (lineStart && c !== 32 && c !== 9) {
      lineStart = false;
      if ((c === 45 || c === 42 || c === 8226) && text.charCodeAt(i + 1) === 32) listItems++;
      else if (c >= 49 && c <= 57) {
        const d = text.charCodeAt(i + 1);
        if ((d === 46 || d === 41) && text.charCodeAt(i + 2) === 32) listItems++;
      }
    }
    if (c === 44 || c === 59) clauses++;
    else if (c === 46 || c === 33 || c === 63) {
      const d = text.charCodeAt(i + 1);
      if (d === 32 || d === 10 || Number.isNaN(d)) {
        sentences++;
        if (c === 63) questions++;
      }
    }
  }
  return { clauses, sentences, questions, listItems };
}

// ---------------------------------------------------------------------------------------------
// Words: one regex walk, a Map lookup per word (and per two-word phrase).

const DEEP = 1;
const LIGHT = 2;
const MULTI = 4;
const SIMPLE = 8;
const CODE = 16;
const MATH = 32;
const LONG = 64;

/** word or "two words" → category bits. General vocabularies, not tied to any prompt set. */
const VOCAB = new Map<string, number>();
function add(bits: number, list: string): void {
  for (const w of list.split(',')) {
    const k = w.trim();
    if (k) VOCAB.set(k, (VOCAB.get(k) ?? 0) | bits);
  }
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
  in depth,end-to-end,end to end,uniqueness,iff,if and only,edge cases,vulnerability,vulnerabilities,exploit,threat model,
  lock-free,atomics,memory ordering,formally,from first,first principles,non-trivial,nontrivial,subtle,strategy`,
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
  briefly,brief,short,quick,quickly,simple terms,eli5,one sentence,one word,one line,yes or no,capital of,who wrote,what year,
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
  confidence interval,regression,stochastic,bayes,bayesian,geometry,algebra,lattice`,
);
add(
  LONG,
  `essay,story,article,blog post,chapter,report,guide,tutorial,itinerary,letter,speech,curriculum,lesson plan,
  comprehensive,in detail,full,complete,thorough,thoroughly,whitepaper,proposal,schedule,outline`,
);

const WORD_RE = /[a-z0-9][a-z0-9+#]*(?:[-';.][a-z0-9+#]+)*/g;
const WORDS_ASKED_RE = /(\d[\d,]{1,6})(?:\s*(?:-|to)\s*\d[\d,]{1,6})?\s*-?\s*(words?|pages?)\b/;

class WordCounts {
  deep = 0;
  light = 0;
  multi = 0;
  simple = 0;
  code = 0;
  math = 0;
  long = 0;
  /** Words asked for ("1,500 words", "3 pages" ≈ 1,500 words). */
  wordsAsked = 0;
  /** Words in the last user message's instruction zone, and how many have 9+ letters. */
  total = 0;
  longWords = 0;
}

function scanWords(text: string, weight: number, out: WordCounts): void {
  if (!text) return;
  const lower = text.toLowerCase();
  WORD_RE.lastIndex = 0;
  let prev = '';
  let m: RegExpExecArray | null;
  while ((m = WORD_RE.exec(lower)) !== null) {
    let w = m[0];
    // Trailing sentence punctuation caught by the joiner class ("done." → "done").
    const last = w.charCodeAt(w.length - 1);
    if (last === 46 || last === 59 || last === 39) w = w.slice(0, -1);
    if (weight === 1) {
      out.total++;
      if (w.length >= 9) out.longWords++;
    }
    let bits = VOCAB.get(w) ?? 0;
    if (prev) bits |= VOCAB.get(`${prev} ${w}`) ?? 0;
    prev = w;
    if (bits === 0) continue;
    if (bits & DEEP) out.deep += weight;
    if (bits & LIGHT) out.light += weight;
    if (bits & MULTI) out.multi += weight;
    if (bits & SIMPLE) out.simple += weight;
    if (bits & CODE) out.code += weight;
    if (bits & MATH) out.math += weight;
    if (bits & LONG) out.long += weight;
  }
  if (weight === 1) {
    const asked = WORDS_ASKED_RE.exec(lower);
    if (asked) {
      const nWords = Number(asked[1]!.replace(/,/g, ''));
      const words = asked[2]!.startsWith('page') ? nWords * 500 : nWords;
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
