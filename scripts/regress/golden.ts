/**
 * The golden set of the prompt regression gate: a JSONL file, one case a line,
 * `{input, expected, metric?, threshold?, id?}`. `input` is the user's message (a string) or a whole
 * chat messages array; `metric` is how the answer is compared with `expected` (default embedding);
 * `threshold` is the case's pass mark (default 1 for exact, 0.9 for the similarity metrics).
 *
 * Every line is checked with zod and every bad line is reported with its number, all at once, so a
 * hand-edited file is fixed in one go. Blank lines are skipped (they keep their numbers).
 */
import { z } from 'zod';

export const METRICS = ['exact', 'rouge_l', 'embedding'] as const;
export type Metric = (typeof METRICS)[number];

export const DEFAULT_METRIC: Metric = 'embedding';
export const DEFAULT_THRESHOLD: Record<Metric, number> = { exact: 1, rouge_l: 0.9, embedding: 0.9 };
export const MIN_CASES = 100;
export const MAX_CASES = 1_000;

const messageSchema = z.strictObject({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.string(),
  name: z.string().optional(),
});
export type ChatMessage = z.infer<typeof messageSchema>;

// Strict: a misspelt key ("treshold") is an error, not a silently ignored default.
const caseSchema = z.strictObject({
  id: z.string().min(1).max(200).optional(),
  input: z.union([z.string().min(1, 'input must not be empty'), z.array(messageSchema).min(1, 'input must hold at least one message')]),
  expected: z.string(),
  metric: z.enum(METRICS).optional(),
  threshold: z.number().min(0).max(1).optional(),
});

const inputSchema = caseSchema.extend({ expected: z.string().default('') });

export interface GoldenCase {
  /** The case's name in reports: its `id`, else "line N". */
  id: string;
  line: number;
  messages: ChatMessage[];
  expected: string;
  metric: Metric;
  threshold: number;
}

export class GoldenError extends Error {
  override name = 'GoldenError';
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems\n  ${problems.slice(0, 20).join('\n  ')}${problems.length > 20 ? `\n  … and ${problems.length - 20} more` : ''}`}`);
  }
}

export interface ReadOptions {
  minCases?: number;
  maxCases?: number;
  /** false: `expected` may be missing (inputs for make-golden, which records the answers). */
  requireExpected?: boolean;
}

/** Parses a golden file's text; throws GoldenError listing every bad line and a count outside [min, max]. */
export function parseGolden(text: string, file: string, opts: ReadOptions = {}): GoldenCase[] {
  const minCases = opts.minCases ?? MIN_CASES;
  const maxCases = opts.maxCases ?? MAX_CASES;
  const problems: string[] = [];
  const cases: GoldenCase[] = [];
  const ids = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      problems.push(`line ${line}: not JSON (${e instanceof Error ? e.message : String(e)})`);
      return;
    }
    const parsed = (opts.requireExpected === false ? inputSchema : caseSchema).safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) problems.push(`line ${line}: ${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
      return;
    }
    const c = parsed.data;
    const id = c.id ?? `line ${line}`;
    const seen = ids.get(id);
    if (seen !== undefined) problems.push(`line ${line}: id "${id}" already used on line ${seen}`);
    ids.set(id, line);
    const metric = c.metric ?? DEFAULT_METRIC;
    cases.push({
      id,
      line,
      messages: typeof c.input === 'string' ? [{ role: 'user', content: c.input }] : c.input,
      expected: c.expected,
      metric,
      threshold: c.threshold ?? DEFAULT_THRESHOLD[metric],
    });
  });
  if (problems.length === 0 && (cases.length < minCases || cases.length > maxCases)) {
    problems.push(`${cases.length} cases; a golden set holds ${minCases} to ${maxCases} (--min-cases lowers the floor for a small test set)`);
  }
  if (problems.length) throw new GoldenError(file, problems);
  return cases;
}
