/**
 * Records a golden set's expected answers from a version of a deployment (README "Prompt
 * regression gate"):
 *   npm run regress:golden -- --router URL --deployment NAME --version V --inputs FILE --out FILE
 *     [--admin-token T | ROUTER_ADMIN_TOKEN] [--key K | ROUTER_KEY] [--concurrency N] [--min-cases N]
 * `--inputs` is a JSONL file of cases whose `expected` may be missing (any `expected` there is
 * replaced); each line of `--out` is the case with `expected` = what the version answered.
 *
 * This is a starting point, not a verdict: recorded answers say "behave like this version". Real
 * teams write the expected answers or read and approve every recorded one before the file is used
 * as a gate. The local stack's simulators answer pseudo-random text, so there the stable version's
 * own answers are the only meaningful expectation (test/golden/support-bot.jsonl was made this way).
 * Exit codes: 0 written; 2 bad flags or inputs, or a case could not be answered.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseGolden } from './golden';
import { InferenceClient } from './router-client';
import { answers } from './run';

const USAGE = `usage: npm run regress:golden -- --router URL --deployment NAME --version V --inputs FILE --out FILE
  [--admin-token T | env ROUTER_ADMIN_TOKEN] [--key K | env ROUTER_KEY] [--concurrency N (8)] [--min-cases N (100)]`;

const optionsSchema = z.object({
  router: z.url({ protocol: /^https?$/, error: 'the router URL (--router or ROUTER_URL) must be an http(s) URL' }),
  deployment: z.string({ error: '--deployment is required' }).min(1),
  version: z.string({ error: '--version is required' }).min(1),
  inputs: z.string({ error: '--inputs is required' }).min(1),
  out: z.string({ error: '--out is required' }).min(1),
  adminToken: z.string({ error: 'the admin token is missing (--admin-token or ROUTER_ADMIN_TOKEN)' }).min(1),
  key: z.string({ error: 'a client key is missing (--key or ROUTER_KEY)' }).min(1),
  concurrency: z.coerce.number().int().min(1).max(64),
  minCases: z.coerce.number().int().min(1).optional(),
});

export async function main(argv: string[], print: (s: string) => void = console.log, printErr: (s: string) => void = console.error): Promise<number> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        router: { type: 'string' },
        deployment: { type: 'string' },
        version: { type: 'string' },
        inputs: { type: 'string' },
        out: { type: 'string' },
        'admin-token': { type: 'string' },
        key: { type: 'string' },
        concurrency: { type: 'string', default: '8' },
        'min-cases': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      print(USAGE);
      return 0;
    }
    const parsed = optionsSchema.safeParse({
      router: values.router ?? process.env.ROUTER_URL,
      deployment: values.deployment,
      version: values.version,
      inputs: values.inputs,
      out: values.out,
      adminToken: values['admin-token'] ?? process.env.ROUTER_ADMIN_TOKEN,
      key: values.key ?? process.env.ROUTER_KEY,
      concurrency: values.concurrency,
      minCases: values['min-cases'],
    });
    if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('\n'));
    const o = parsed.data;
    const text = readFileSync(resolve(o.inputs), 'utf8');
    const cases = parseGolden(text, o.inputs, { minCases: o.minCases, requireExpected: false });
    const raw = text.split(/\r?\n/);
    const client = new InferenceClient({ router: o.router, key: o.key });
    const got = await answers(cases, { client, deployment: o.deployment, version: o.version, adminToken: o.adminToken, concurrency: o.concurrency, embeddingModel: '' });
    const failed = got.flatMap((g, i) => (g.error ? [`${cases[i]!.id}: ${g.error}`] : []));
    if (failed.length) throw new Error(`${failed.length} cases got no answer:\n  ${failed.slice(0, 10).join('\n  ')}`);
    // Each line as it was written (input form, metric, threshold, id, key order), with the answer as `expected`.
    const lines = cases.map((c, i) => JSON.stringify({ ...(JSON.parse(raw[c.line - 1]!) as Record<string, unknown>), expected: got[i]!.got }));
    writeFileSync(o.out, `${lines.join('\n')}\n`);
    print(`wrote ${cases.length} cases with ${o.deployment}@${o.version}'s answers to ${o.out}`);
    return 0;
  } catch (e) {
    printErr(`✗ ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href) process.exit(await main(process.argv.slice(2)));
