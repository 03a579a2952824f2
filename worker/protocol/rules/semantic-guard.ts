import { contentTokens, normalizeSpace, STOP_WORDS, stem, words } from './semantic-text';

/**
 * Guards against wrong semantic hits: pure functions, run on the prompt being answered and on
 * the stored prompt whose answer would be replayed. Embeddings (ours, and real models too) put
 * "what is 2+2" next to "what is 2+3", "enable X" next to "disable X" and "Paris" next to
 * "Lyon"; these checks forbid a hit whenever such details differ, whatever the similarity:
 *
 * - depth: the number of messages (the earlier turns are part of the scope key anyway);
 * - numbers, in order (digits, decimals, "1,000", ordinals, small written-out numbers: "two");
 * - arithmetic: operator symbols between operands and operator words ("plus", "times" = "*"), in order;
 * - code: fenced blocks, `inline code`, identifier-like tokens (snake_case, camelCase, a.b.c,
 *   call(), --flags, file names, paths), as a multiset;
 * - quoted strings, URLs and e-mail addresses, as multisets;
 * - named entities, in order: capitalized words of either prompt (not "I", not a common word at
 *   the start of a sentence) are looked for, case-insensitively, in both; plus months, weekdays
 *   and relative days ("today", "tomorrow"), which count even lower-cased;
 * - units and currencies, in order ("5 km to miles" ≠ "5 miles to km");
 * - negations (not, no, never, without, n't, …): same count;
 * - polar words (enable/disable, increase/decrease, before/after, min/max, …), as a multiset;
 * - substitution: the same content words in the same order except exactly one, swapped for
 *   another word ("train a puppy" / "train a kitten", "paint the bedroom wall" / "the bathroom
 *   wall"). Embeddings that carry meaning put such co-hyponyms close together, so the prompts
 *   score as high as real paraphrases do; a one-word synonym swap ("buy"/"purchase") is refused
 *   too, which costs hit rate only.
 *
 * Any difference forbids the hit. The price is hit rate: "Paris to London" and "London to Paris"
 * never share an answer, nor do "twenty-five" and "25". Lower-cased names ("paris") are only
 * caught when the other prompt capitalizes them; otherwise the similarity threshold is the
 * only defence, which is why the default threshold is high.
 */
export interface GuardInput {
  /** The last user message (or completion prompt). */
  text: string;
  /** Messages in the conversation (1 for a completion prompt). */
  depth: number;
}

export type GuardReason = 'depth' | 'numbers' | 'arithmetic' | 'code' | 'quoted' | 'links' | 'entities' | 'units' | 'negation' | 'polarity' | 'substitution';
export type GuardVerdict = { ok: true } | { ok: false; reason: GuardReason };

/** Whether the answer to `stored` may be replayed for `query`. Symmetric. */
export function guardAllows(query: GuardInput, stored: GuardInput): GuardVerdict {
  if (query.depth !== stored.depth) return { ok: false, reason: 'depth' };
  const a = promptFeatures(query.text);
  const b = promptFeatures(stored.text);
  for (const reason of ['numbers', 'arithmetic', 'code', 'quoted', 'links', 'units', 'polarity'] as const) {
    if (!sameList(a[reason], b[reason])) return { ok: false, reason };
  }
  if (a.negation !== b.negation) return { ok: false, reason: 'negation' };
  if (!sameList(entitySequence(a, b), entitySequence(b, a))) return { ok: false, reason: 'entities' };
  if (oneWordSwapped(a.content, b.content)) return { ok: false, reason: 'substitution' };
  return { ok: true };
}

/** Same length, exactly one position differs. */
function oneWordSwapped(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length && diff < 2; i++) if (a[i] !== b[i]) diff++;
  return diff === 1;
}

/** What the guards compare, per prompt (lists in order of appearance unless said otherwise). */
export interface PromptFeatures {
  numbers: string[];
  arithmetic: string[];
  /** Sorted: a multiset. */
  code: string[];
  quoted: string[];
  links: string[];
  units: string[];
  negation: number;
  /** Sorted. */
  polarity: string[];
  /** Entity candidates (lower-cased) and the prompt's lower-cased words, for the pairwise entity check. */
  entityCandidates: ReadonlySet<string>;
  words: string[];
  /** Content words, stemmed, in order (semantic-text.ts), for the substitution check. */
  content: string[];
}

const cache = new Map<string, PromptFeatures>();

export function promptFeatures(text: string): PromptFeatures {
  const hit = cache.get(text);
  if (hit) return hit;
  const t = normalizeSpace(text);
  const ws = words(t);
  const f: PromptFeatures = {
    numbers: numbersOf(t, ws),
    arithmetic: arithmeticOf(t),
    code: codeOf(t).sort(),
    quoted: quotedOf(t).sort(),
    links: linksOf(t).sort(),
    units: unitsOf(t),
    negation: ws.filter((w) => NEGATIONS.has(w)).length,
    polarity: ws.map(stem).filter((w) => POLAR.has(w)).sort(),
    entityCandidates: entityCandidatesOf(t),
    words: ws,
    content: contentTokens(t).map((w) => NUMBER_WORDS[w] ?? w), // "two" = "2": the numbers check has compared them
  };
  if (cache.size > 256) cache.clear(); // the bench and the DO compare the same few texts repeatedly
  cache.set(text, f);
  return f;
}

/** The words of `self` that are entities by either prompt's evidence (or always-key words), in order. */
function entitySequence(self: PromptFeatures, other: PromptFeatures): string[] {
  return self.words.filter((w) => self.entityCandidates.has(w) || other.entityCandidates.has(w) || ALWAYS_KEY.has(w));
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---------------------------------------------------------------------------------------------
// numbers and arithmetic

const NUMBER_WORDS: Record<string, string> = {
  zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
  eleven: '11', twelve: '12', thirteen: '13', fourteen: '14', fifteen: '15', sixteen: '16', seventeen: '17', eighteen: '18', nineteen: '19',
  twenty: '20', thirty: '30', forty: '40', fifty: '50', sixty: '60', seventy: '70', eighty: '80', ninety: '90',
  hundred: '100', thousand: '1000', million: '1000000', billion: '1000000000', trillion: '1000000000000', dozen: '12',
  first: '1', second: '2', third: '3', fourth: '4', fifth: '5', tenth: '10', half: '0.5', quarter: '0.25', twice: '2', double: '2', triple: '3',
};

function numbersOf(t: string, ws: string[]): string[] {
  // Digits in text order, then written-out numbers in text order: the two are rarely mixed, and
  // when they are, comparing each list separately is still exact for identical wording.
  const digits = [...t.matchAll(/(?<![\p{L}\d.,])-?\d+(?:[.,]\d+)*(?:st|nd|rd|th)?/gu)].map((m) => canonicalNumber(m[0]));
  const written = ws.filter((w) => NUMBER_WORDS[w] !== undefined).map((w) => NUMBER_WORDS[w]!);
  return [...digits, ...written];
}

function canonicalNumber(raw: string): string {
  let s = raw.replace(/(?:st|nd|rd|th)$/, '');
  if (/^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, ''); // 1,000,000
  else if (/^-?\d+,\d+$/.test(s)) s = s.replace(',', '.'); // 3,5 (decimal comma)
  const n = Number(s);
  return Number.isFinite(n) && /^-?\d+(?:\.\d+)?$/.test(s) ? String(n) : s;
}

/** Arithmetic written out, mapped to the symbol it means ("times" and "*" are the same operation). */
const OPERATOR_WORDS: Record<string, string> = {
  plus: '+', minus: '-', subtract: '-', subtracted: '-', times: '*', multiplied: '*', multiply: '*', divided: '/', divide: '/', squared: '^2', cubed: '^3', root: 'root', power: '^', modulo: '%', mod: '%', factorial: '!', log: 'log', logarithm: 'log',
  derivative: 'd/dx', integral: 'integral',
};
const OPERATOR_SYMBOLS: Record<string, string> = { '×': '*', '÷': '/', '**': '^', '≤': '<=', '≥': '>=' };

/** Operators in text order: symbols between operands (digits, parentheses, one-letter variables) and operator words. */
function arithmeticOf(t: string): string[] {
  const out: string[] = [];
  const re = /(?<=(?:\d|\)|\b[a-zA-Z])\s*)(?:\*\*|!=|<=|>=|[-+*/^%×÷=<>≤≥])(?=\s*(?:\d|\(|[a-zA-Z]\b))|[\p{L}]+/gu;
  for (const m of t.matchAll(re)) {
    const tok = m[0];
    if (/^[\p{L}]+$/u.test(tok)) {
      const op = OPERATOR_WORDS[tok.toLowerCase()];
      if (op !== undefined) out.push(op);
    } else out.push(OPERATOR_SYMBOLS[tok] ?? tok);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// code, quotes, links

const FILE_EXTENSIONS = 'py|js|mjs|cjs|ts|tsx|jsx|json|ya?ml|toml|ini|cfg|conf|md|txt|csv|sql|sh|bash|zsh|go|rs|rb|java|kt|c|h|cc|cpp|hpp|cs|php|html?|css|scss|xml|lock|env|dockerfile|tf';
const CODE_TOKEN = new RegExp(
  [
    String.raw`[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)+(?:\(\))?`, // a.b.c, std::vector, p->x, obj.method()
    String.raw`[A-Za-z_$][\w$]*\(\)`, // call()
    String.raw`[a-z]+[A-Z][\w$]*`, // camelCase
    String.raw`[A-Za-z]*[A-Za-z0-9]_[\w]*`, // snake_case, __init__
    String.raw`--?[a-z][\w-]*(?==|\b)`, // --flags, -v
    String.raw`[\w.-]+\.(?:${FILE_EXTENSIONS})\b`, // file names
    String.raw`(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)+`, // paths
  ].join('|'),
  'g',
);

function codeOf(t: string): string[] {
  const out: string[] = [];
  let rest = t.replace(/```[\s\S]*?(?:```|$)|`[^`]+`/g, (block) => {
    out.push(block.replace(/^`+\w*|`+$/g, '').replace(/\s+/g, ' ').trim());
    return ' ';
  });
  rest = rest.replace(/https?:\/\/\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+/g, ' '); // links are compared on their own
  for (const m of rest.matchAll(CODE_TOKEN)) {
    const tok = m[0];
    // "e.g", "i.e" and "U.S" are abbreviations, not member access: every part must have 2+ characters.
    if (/^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/.test(tok) && tok.split('.').some((p) => p.length < 2)) continue;
    if (/^-/.test(tok) && m.index !== undefined && m.index > 0 && /[\w]/.test(rest[m.index - 1]!)) continue; // a hyphenated word
    out.push(tok);
  }
  return out;
}

function quotedOf(t: string): string[] {
  const out: string[] = [];
  for (const m of t.matchAll(/"([^"]{1,300})"|(?<![\p{L}\d])'([^']{1,300})'(?![\p{L}\d])/gu)) out.push((m[1] ?? m[2] ?? '').trim().toLowerCase());
  return out;
}

function linksOf(t: string): string[] {
  return [...t.matchAll(/https?:\/\/[^\s<>"')\]]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+/g)].map((m) => m[0].replace(/[.,;:!?]+$/, '').toLowerCase());
}

// ---------------------------------------------------------------------------------------------
// entities

const QUESTION_WORDS = 'what whats how why when where who whom whose which whether';
/** Words that start sentences without being names: a capitalized one of these at a sentence start is not an entity. */
const COMMON_STARTERS: ReadonlySet<string> = new Set([
  ...STOP_WORDS,
  ...`${QUESTION_WORDS} write create make list summarize summarise translate compare convert calculate compute find generate fix debug define suggest recommend name provide
  rewrite improve draft outline plan check review refactor implement build design add remove update delete count sort return print read parse format rank estimate predict
  is are was do does did can could would should will shall may might must have has had not no never none yes ok okay sure also now then so but and or yet
  in on at for with from to as if after before since while given assume suppose consider imagine using use note say said try keep go get put set run
  one two three four five six seven eight nine ten first second third next last finally however therefore also again instead other another each every all both
  some many much more most few less least any my our your their his her its this that these those there here hello hi hey dear thanks thank please good great`
    .split(/\s+/)
    .filter(Boolean),
]);

const MONTHS = 'january february march april may june july august september october november december jan feb mar apr jun jul aug sep sept oct nov dec';
const DAYS = 'monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday tonight weekend';
/** Time words that count as key tokens even lower-cased ("may" is left out: a verb far more often). */
const ALWAYS_KEY: ReadonlySet<string> = new Set(`${MONTHS} ${DAYS}`.split(' ').filter((w) => w !== 'may' && w !== 'mar'));

function entityCandidatesOf(t: string): Set<string> {
  const out = new Set<string>();
  for (const m of t.matchAll(/[\p{Lu}][\p{L}\p{N}]*/gu)) {
    const word = m[0];
    const lower = word.toLowerCase();
    if (word === 'I' || STOP_WORDS.has(lower) || UNIT_GROUPS[lower] !== undefined) continue; // units ("USD", "GB") have their own check
    const i = m.index ?? 0;
    if (i > 0 && /[\p{L}\p{N}]/u.test(t[i - 1]!)) continue; // inside a word (camelCase tail): code's business
    const before = t.slice(0, i).replace(/["'(\[*\-•\s]+$/u, '');
    const sentenceStart = before === '' || /[.!?:;\n]$/.test(before);
    if (sentenceStart && COMMON_STARTERS.has(lower)) continue;
    // words() splits on what this regex keeps together only for digits/letters mixes; take its first piece.
    const piece = words(word)[0];
    if (piece) out.add(piece);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// units, negation, polarity

const UNIT_GROUPS: Record<string, string> = {};
for (const [canon, names] of Object.entries({
  km: 'km kilometer kilometers kilometre kilometres', mile: 'mi mile miles', m: 'meter meters metre metres', cm: 'cm centimeter centimeters centimetre centimetres',
  mm: 'mm millimeter millimeters millimetre millimetres', inch: 'inch inches in.', ft: 'ft foot feet', yd: 'yd yard yards', kg: 'kg kilogram kilograms kilo kilos',
  g: 'gram grams', lb: 'lb lbs pound pounds', oz: 'oz ounce ounces', ton: 'ton tons tonne tonnes', l: 'liter liters litre litres', ml: 'ml milliliter milliliters millilitre millilitres',
  gal: 'gallon gallons', c: 'celsius centigrade °c', f: 'fahrenheit °f', k: 'kelvin', usd: 'usd dollar dollars $', eur: 'eur euro euros €', gbp: 'gbp sterling £',
  jpy: 'jpy yen ¥', cny: 'cny yuan rmb', inr: 'inr rupee rupees', btc: 'btc bitcoin bitcoins', pct: '% percent percentage', s: 'sec secs second seconds',
  min: 'minute minutes mins', h: 'hour hours hr hrs', day: 'day days', week: 'week weeks', month: 'month months', year: 'year years yr yrs', kb: 'kb kilobyte kilobytes',
  mb: 'mb megabyte megabytes', gb: 'gb gigabyte gigabytes', tb: 'tb terabyte terabytes', byte: 'byte bytes', bit: 'bit bits', mph: 'mph', kmh: 'kph kmh km/h',
  w: 'watt watts', kw: 'kw kilowatt kilowatts', kwh: 'kwh', v: 'volt volts', hz: 'hz hertz', ghz: 'ghz', mhz: 'mhz', cal: 'calorie calories kcal', acre: 'acre acres',
  sqm: 'm2 m²', sqft: 'sqft', px: 'px pixel pixels', rem: 'rem', em: 'em', pt: 'pt',
})) {
  for (const n of names.split(' ')) UNIT_GROUPS[n] = canon;
}

function unitsOf(t: string): string[] {
  const out: string[] = [];
  for (const m of t.toLowerCase().matchAll(/°\s?[cf]\b|km\/h|[$€£¥%]|[\p{L}\d²]+/gu)) {
    const canon = UNIT_GROUPS[m[0].replace(/\s/g, '')];
    if (canon !== undefined) out.push(canon);
  }
  return out;
}

const NEGATIONS: ReadonlySet<string> = new Set(['not', 'no', 'never', 'none', 'nobody', 'nothing', 'neither', 'nor', 'without', 'cannot', 'nowhere', 'except', 'excluding', 'unless', 'instead']);

/** Words whose opposite often sits at the same place in an otherwise identical prompt (stemmed like the text). */
const POLAR: ReadonlySet<string> = new Set(
  `enable disable increase decrease add remove install uninstall start stop open close before after above below min max minimum maximum first last
  ascend descend ascending descending encrypt decrypt compress decompress upload download import export buy sell push pull true false more less fewer higher lower
  bigger smaller larger faster slower best worst pro con advantage disadvantage left right north south east west off win lose allow deny accept reject
  lock unlock include exclude inclusive exclusive input output read write send receive positive negative increment decrement forward backward inner outer upper lower
  uppercase lowercase horizontal vertical server client synchronous asynchronous sync async public private internal external old new older newer cheap expensive
  cheaper hot cold warm cool hotter colder easier harder easy hard early late earlier later short long shorter longer light dark heavy lighter heavier`
    .split(/\s+/)
    .filter(Boolean)
    .map(stem),
);
