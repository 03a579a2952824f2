/**
 * FinOps report (README "FinOps report"):
 *   npm run finops -- --router URL --admin-token TOKEN [--month YYYY-MM] [--config wrangler.toml] [--env NAME] [--out DIR]
 * ROUTER_URL and ROUTER_ADMIN_TOKEN stand in for the first two flags. Writes
 * <out>/finops-<month>.md and .html (default out: .dev/finops) and prints their paths.
 * Exit codes: 0 written; 2 bad flags, bad config, or the router could not be read.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { localStackConfig } from './dev/endpoints';
import { collect, FinopsError, loadRouterConfig, periodOf } from './finops/collect';
import { buildReport } from './finops/model';
import { renderHtml, renderMarkdown } from './finops/render';

const USAGE = `usage: npm run finops -- --router URL --admin-token TOKEN [--month YYYY-MM] [--config wrangler.toml] [--env NAME] [--out DIR]`;

const optionsSchema = z.object({
  router: z.url({ protocol: /^https?$/, error: 'the router URL (--router or ROUTER_URL) must be an http(s) URL' }),
  adminToken: z.string({ error: 'the admin token is missing (--admin-token or ROUTER_ADMIN_TOKEN)' }).min(1),
  month: z.string().optional(),
  config: z.string().min(1),
  env: z.string().min(1).optional(),
  out: z.string().min(1),
});

export async function main(argv: string[]): Promise<number> {
  let opts: z.infer<typeof optionsSchema>;
  try {
    const { values } = parseArgs({
      args: argv,
      options: { router: { type: 'string' }, 'admin-token': { type: 'string' }, month: { type: 'string' }, config: { type: 'string' }, env: { type: 'string' }, out: { type: 'string', default: '.dev/finops' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    const router = values.router ?? process.env.ROUTER_URL;
    const parsed = optionsSchema.safeParse({
      router,
      adminToken: values['admin-token'] ?? process.env.ROUTER_ADMIN_TOKEN,
      month: values.month,
      config: values.config ?? (values.env === undefined ? localStackConfig(router, resolve('.dev/endpoints.json')) : undefined) ?? 'wrangler.toml',
      env: values.env,
      out: values.out,
    });
    if (!parsed.success) throw new FinopsError(parsed.error.issues.map((i) => i.message).join('\n'));
    opts = parsed.data;
  } catch (e) {
    console.error(`✗ ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  try {
    const config = loadRouterConfig(resolve(opts.config), opts.env);
    const period = periodOf(opts.month);
    const report = buildReport(await collect({ router: opts.router, adminToken: opts.adminToken, config, period }));
    mkdirSync(opts.out, { recursive: true });
    const md = join(opts.out, `finops-${report.month}.md`);
    const html = join(opts.out, `finops-${report.month}.html`);
    writeFileSync(md, renderMarkdown(report));
    writeFileSync(html, renderHtml(report));
    console.log(`config: ${relative(process.cwd(), resolve(opts.config))}\nwrote ${md}\nwrote ${html}`);
    return 0;
  } catch (e) {
    console.error(`✗ ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(await main(process.argv.slice(2)));
