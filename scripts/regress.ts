/**
 * The prompt regression gate (README "Prompt regression gate"):
 *   npm run regress -- --router URL --deployment NAME --version V --golden FILE
 *     [--admin-token T | ROUTER_ADMIN_TOKEN] [--key K | ROUTER_KEY] [--concurrency N]
 *     [--embedding-model M] [--no-record] [--no-compare-stable]
 *     [--min-mean-similarity X] [--max-regression X] [--min-cases N] [--actor NAME]
 * Runs every case of the golden set through the router against version V (pinned with the admin
 * header), scores each answer on the case's metric, does the same for the stable version, prints the
 * failing cases, the totals and the verdict, and records the result with
 * POST /admin/deployments/:name/gates.
 * Exit codes: 0 the version passes; 1 it fails; 2 bad flags or golden file, or the gate could not run.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { GoldenError, parseGolden, type GoldenCase } from './regress/golden';
import { failuresTable, totalsTable, verdictLine } from './regress/report';
import { AdminClient, InferenceClient, RouterError } from './regress/router-client';
import { runVersion } from './regress/run';
import { DEFAULT_GATE, decide, summarize, type CaseResult, type RunSummary } from './regress/verdict';
import { when } from './rollout/render';
import { deploymentSchema, gateSchema } from './rollout/schemas';

const USAGE = `usage: npm run regress -- --router URL --deployment NAME --version V --golden FILE
  [--admin-token T | env ROUTER_ADMIN_TOKEN] [--key K | env ROUTER_KEY] [--concurrency N (8)]
  [--embedding-model M (bge-small-en)] [--record | --no-record] [--compare-stable | --no-compare-stable]
  [--min-mean-similarity X] [--max-regression X] [--min-cases N (100)] [--actor NAME]`;

const ratio = z.coerce.number().min(0).max(1);
const optionsSchema = z.object({
  router: z.url({ protocol: /^https?$/, error: 'the router URL (--router or ROUTER_URL) must be an http(s) URL' }),
  deployment: z.string({ error: '--deployment is required' }).min(1),
  version: z.string({ error: '--version is required' }).min(1),
  golden: z.string({ error: '--golden is required' }).min(1),
  adminToken: z.string({ error: 'the admin token is missing (--admin-token or ROUTER_ADMIN_TOKEN)' }).min(1),
  key: z.string({ error: 'a client key is missing (--key or ROUTER_KEY): the cases run as a client of the deployment' }).min(1),
  concurrency: z.coerce.number().int().min(1).max(64),
  embeddingModel: z.string().min(1),
  record: z.boolean(),
  compareStable: z.boolean(),
  minMeanSimilarity: ratio.optional(),
  maxRegression: ratio.optional(),
  minCases: z.coerce.number().int().min(1).optional(),
  actor: z.string().min(1).max(100),
});
type Options = z.infer<typeof optionsSchema>;

class UsageError extends Error {}

function options(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      router: { type: 'string' },
      deployment: { type: 'string' },
      version: { type: 'string' },
      golden: { type: 'string' },
      'admin-token': { type: 'string' },
      key: { type: 'string' },
      concurrency: { type: 'string', default: '8' },
      'embedding-model': { type: 'string', default: 'bge-small-en' },
      record: { type: 'boolean' },
      'no-record': { type: 'boolean' },
      'compare-stable': { type: 'boolean' },
      'no-compare-stable': { type: 'boolean' },
      'min-mean-similarity': { type: 'string' },
      'max-regression': { type: 'string' },
      'min-cases': { type: 'string' },
      actor: { type: 'string', default: 'regress' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  // node:util parseArgs of Node 20 has no --no-<flag>: both spellings are flags of their own.
  const onOff = (yes: boolean | undefined, no: boolean | undefined, name: string) => {
    if (yes && no) throw new UsageError(`--${name} and --no-${name} together`);
    return !no;
  };
  const parsed = optionsSchema.safeParse({
    router: values.router ?? process.env.ROUTER_URL,
    deployment: values.deployment,
    version: values.version,
    golden: values.golden,
    adminToken: values['admin-token'] ?? process.env.ROUTER_ADMIN_TOKEN,
    key: values.key ?? process.env.ROUTER_KEY,
    concurrency: values.concurrency,
    embeddingModel: values['embedding-model'],
    record: onOff(values.record, values['no-record'], 'record'),
    compareStable: onOff(values['compare-stable'], values['no-compare-stable'], 'compare-stable'),
    minMeanSimilarity: values['min-mean-similarity'],
    maxRegression: values['max-regression'],
    minCases: values['min-cases'],
    actor: values.actor,
  });
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('\n'));
  return parsed.data;
}

export interface GateOutcome {
  passed: boolean;
  candidate: RunSummary;
  stable: RunSummary | null;
  reasons: string[];
}

/** Entry point (also called by the tests): returns the exit code; `print` receives the report. */
export async function main(argv: string[], print: (s: string) => void = console.log, printErr: (s: string) => void = console.error): Promise<number> {
  let opts: Options;
  let cases: GoldenCase[];
  let goldenText: string;
  try {
    const o = options(argv);
    if (o === 'help') {
      print(USAGE);
      return 0;
    }
    opts = o;
    try {
      goldenText = readFileSync(resolve(opts.golden), 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read the golden file ${opts.golden}: ${e instanceof Error ? e.message : String(e)}`);
    }
    cases = parseGolden(goldenText, opts.golden, { minCases: opts.minCases });
  } catch (e) {
    printErr(`✗ ${e instanceof Error ? e.message : String(e)}${e instanceof GoldenError ? '' : `\n\n${USAGE}`}`);
    return 2;
  }

  const admin = new AdminClient({ router: opts.router, adminToken: opts.adminToken, actor: opts.actor });
  const client = new InferenceClient({ router: opts.router, key: opts.key });
  try {
    const path = `/admin/deployments/${encodeURIComponent(opts.deployment)}`;
    const dep = await admin.call('GET', path, deploymentSchema);
    const names = dep.versions.map((v) => v.name);
    if (!names.includes(opts.version)) throw new RouterError(`deployment ${opts.deployment} has no version "${opts.version}" (it has: ${names.join(', ')})`, 404, 'unknown_version');
    // During a rollout the stable arm is the rollout's; otherwise what serves.
    const stableVersion = dep.rollout?.stable ?? dep.serving;
    const thresholds = {
      minMeanSimilarity: opts.minMeanSimilarity ?? dep.gate?.min_mean_similarity ?? DEFAULT_GATE.minMeanSimilarity,
      maxRegression: opts.maxRegression ?? dep.gate?.max_regression ?? DEFAULT_GATE.maxRegression,
    };

    const expectedVectors = new Map<string, number[]>();
    const run = async (version: string) => {
      const started = Date.now();
      const results = await runVersion(cases, { client, deployment: opts.deployment, version, adminToken: opts.adminToken, concurrency: opts.concurrency, embeddingModel: opts.embeddingModel, expectedVectors });
      printErr(`ran ${cases.length} cases against ${opts.deployment}@${version} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return results;
    };
    const results = await run(opts.version);
    const candidate = summarize(opts.version, results);
    let stable: RunSummary | null = null;
    let stableResults: CaseResult[] = [];
    if (opts.compareStable && stableVersion !== opts.version) {
      stableResults = await run(stableVersion);
      stable = summarize(stableVersion, stableResults);
    } else if (opts.compareStable) printErr(`${opts.version} is the stable version: no comparison`);
    const verdict = decide(candidate, stable, thresholds);

    print(failuresTable(results, opts.version));
    print('');
    // Stable's own misses, when it has any: cases whose expected answer no version meets may need a look.
    if (stable && stable.failures > 0) {
      print(failuresTable(stableResults, `${stableVersion} (stable)`));
      print('');
    }
    print(totalsTable(candidate, stable, verdict));
    print('');
    print(verdictLine(opts.version, verdict));

    if (opts.record) {
      const digest = createHash('sha256').update(goldenText).digest('hex').slice(0, 16);
      const golden = `${relative(process.cwd(), resolve(opts.golden))} sha256:${digest}`;
      const summary = (s: RunSummary) => ({
        version: s.version,
        cases: s.cases,
        mean_similarity: s.mean_similarity,
        exact_match: s.exact_match,
        rouge_l: s.rouge_l,
        embedding: s.embedding,
        failures: s.failures,
        errors: s.errors,
        pass_rate: s.pass_rate,
        min_mean_similarity: thresholds.minMeanSimilarity,
        max_regression: thresholds.maxRegression,
      });
      const body = { version: opts.version, passed: verdict.passed, summary: { ...summary(candidate), reasons: verdict.reasons }, golden, ...(stable ? { stable: summary(stable) } : {}) };
      const recorded = await admin.call('POST', `${path}/gates`, z.object({ gate: gateSchema }), body);
      print(`recorded: gate for ${opts.deployment}@${recorded.gate.version} passed=${recorded.gate.passed}${recorded.gate.at ? ` at ${when(recorded.gate.at)}` : ''}`);
    }
    return verdict.passed ? 0 : 1;
  } catch (e) {
    printErr(`✗ ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href) process.exit(await main(process.argv.slice(2)));
