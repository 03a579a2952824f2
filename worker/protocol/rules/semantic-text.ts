/**
 * Text handling shared by the local embedding and the guards: Unicode and contraction
 * normalization, tokenization, a small stop-word list and a crude suffix stemmer. English-only
 * and deliberately simple: it is a lexical tool, not a language model.
 */

/** NFKC, curly quotes made straight, whitespace collapsed: what is embedded and compared. */
export function normalizeSpace(text: string): string {
  return text
    .normalize('NFKC')
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/\s+/g, ' ')
    .trim();
}

const CONTRACTIONS: [RegExp, string][] = [
  [/\bcan't\b/g, 'can not'],
  [/\bwon't\b/g, 'will not'],
  [/\bshan't\b/g, 'shall not'],
  [/n't\b/g, ' not'],
  [/'re\b/g, ' are'],
  [/'ll\b/g, ' will'],
  [/'ve\b/g, ' have'],
  [/'m\b/g, ' am'],
  [/'d\b/g, ' would'],
  [/'s\b/g, ''], // possessive or "is": neither carries meaning here
];

/** Lower-cased words and numbers, contractions expanded ("don't" → "do not"), punctuation dropped. */
export function words(text: string): string[] {
  let t = normalizeSpace(text).toLowerCase();
  for (const [re, to] of CONTRACTIONS) t = t.replace(re, to);
  // Decimal points and thousands separators stay inside numbers ("3.5", "1,000"); other punctuation splits.
  return t.match(/\d+(?:[.,]\d+)*|[\p{L}\p{N}]+/gu) ?? [];
}

/**
 * Words that change little between paraphrases of a request: articles, auxiliaries, pronouns,
 * politeness. Negations are NOT here ("not", "no", "never" change the meaning), nor are question
 * words ("how" and "why" ask different things).
 */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    'a an the and or but if then so of to in on at by for with from into onto about as than that this these those ' +
    'is are was were be been being am do does did doing done have has had having will would shall should can could may might must ' +
    'i me my mine myself we us our ours you your yours yourself he him his she her hers it its they them their theirs ' +
    'please kindly thanks thank hi hello hey just really very quite also there here some any ' +
    'tell give show let know want need like help explain describe'
  ).split(' '),
);

/** Crude suffix stripping so that inflections meet ("running", "runs" → "run"); never below 3 letters. */
export function stem(word: string): string {
  if (word.length <= 3 || /\d/.test(word)) return word;
  let w = word;
  if (w.endsWith('ies') && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.endsWith('ing') && w.length > 5) w = w.slice(0, -3);
  else if (w.endsWith('ed') && w.length > 4) w = w.slice(0, -2);
  else if (w.endsWith('ly') && w.length > 4) w = w.slice(0, -2);
  else if (w.endsWith('es') && w.length > 4 && /(?:ch|sh|x|z|ss)es$/.test(w)) w = w.slice(0, -2);
  else if (w.endsWith('s') && !w.endsWith('ss') && !w.endsWith('us') && !w.endsWith('is') && w.length > 3) w = w.slice(0, -1);
  // "running" → "runn" → "run": undo a doubled final consonant left by -ing/-ed.
  if (w !== word && /([b-df-hj-np-tv-z])\1$/.test(w) && !/(?:ll|ss|zz|ff)$/.test(w)) w = w.slice(0, -1);
  return w;
}

/** The content words of a text, stemmed: what the local embedding is built from. */
export function contentTokens(text: string): string[] {
  const out: string[] = [];
  for (const w of words(text)) if (!STOP_WORDS.has(w)) out.push(stem(w));
  return out;
}
