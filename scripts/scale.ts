/**
 * Scale to zero (README "Scale to zero"):
 *   npm run scale -- plan  [--router URL] [--admin-token TOKEN] [--config wrangler.toml] [--env NAME]
 *   npm run scale -- apply [same flags]
 *   npm run scale -- watch [same flags] [--interval 30] [--wake-interval 2]
 * ROUTER_URL and ROUTER_ADMIN_TOKEN stand in for the first two flags.
 * Exit codes: 0 done; 1 a backend's driver or event report failed (the others still acted);
 * 2 bad flags, bad config, or the router could not be read.
 */
import { relative, resolve } from 'node:path';
import { localStackConfig } from './dev/endpoints';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { ConfigError, loadScaleConfig } from './scale/config';
import { makeDrivers } from './scale/drivers';
import { errorMessage } from './scale/drivers/types';
import { routerClient } from './scale/router-client';
import { applyRound, planRound, watch, type Round, type ScaleContext } from './scale/run';
import { decisionTable } from './scale/table';

const USAGE = `usage: npm run scale -- <plan|apply|watch> [--router URL] [--admin-token TOKEN]
         [--config wrangler.toml] [--env NAME] [--interval SECONDS] [--wake-interval SECONDS]

  plan    print one decision per backend, change nothing
  apply   carry the decisions out and report scale events to the router
  watch   apply every --interval seconds (default 30), every --wake-interval (default 2)
          while the router has wake-ups pending; Ctrl-C stops

  --router, ROUTER_URL                 the router's base URL
  --admin-token, ROUTER_ADMIN_TOKEN    its ADMIN_TOKEN
  --config                             wrangler.toml with the [scaling] tables (default ./wrangler.toml;
                                       for the router \`npm start\` runs, the config it runs: .dev/wrangler.toml)
  --env                                read [env.NAME].vars.ROUTER instead of [vars.ROUTER]`;

const seconds = (flag: string) =>
  z.coerce.number({ error: `${flag} must be a number of seconds` }).positive(`${flag} must be above 0`).max(24 * 3600, `${flag} must be at most 86400`);

const optionsSchema = z.object({
  command: z.enum(['plan', 'apply', 'watch'], { error: 'the command must be plan, apply or watch' }),
  router: z.url({ protocol: /^https?$/, error: 'the router URL (--router or ROUTER_URL) must be an http(s) URL' }),
  adminToken: z.string({ error: 'the admin token is missing (--admin-token or ROUTER_ADMIN_TOKEN)' }).min(1, 'the admin token is empty'),
  config: z.string().min(1),
  env: z.string().min(1).optional(),
  interval: seconds('--interval'),
  wakeInterval: seconds('--wake-interval'),
});
type Options = z.infer<typeof optionsSchema>;

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      router: { type: 'string' },
      'admin-token': { type: 'string' },
      config: { type: 'string' },
      env: { type: 'string' },
      interval: { type: 'string', default: '30' },
      'wake-interval': { type: 'string', default: '2' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length > 1) throw new UsageError(`one command expected, got: ${positionals.join(' ')}`);
  const parsed = optionsSchema.safeParse({
    command: positionals[0],
    router: values.router ?? process.env.ROUTER_URL,
    adminToken: values['admin-token'] ?? process.env.ROUTER_ADMIN_TOKEN,
    config: values.config ?? localStackConfigFor(values.router ?? process.env.ROUTER_URL, values.env) ?? 'wrangler.toml',
    env: values.env,
    interval: values.interval,
    wakeInterval: values['wake-interval'],
  });
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => i.message).join('\n'));
  return parsed.data;
}

class UsageError extends Error {}

/** The config `npm start` runs (.dev/wrangler.toml) when --router is that stack's URL and no --env is given. */
function localStackConfigFor(router: string | undefined, env: string | undefined): string | undefined {
  if (env !== undefined) return undefined;
  const config = localStackConfig(router, resolve('.dev/endpoints.json'));
  if (config) console.log(`config: ${relative(process.cwd(), config)} (the one \`npm start\` runs at that URL)`);
  return config;
}

function print(round: Round, withResult: boolean): void {
  console.log(decisionTable(round.rows, round.routerNow, withResult));
  for (const r of round.rows) if (r.error) console.error(`✗ ${r.id}: ${r.error}`);
}

async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(argv);
  } catch (e) {
    console.error(`✗ ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  let ctx: ScaleContext;
  try {
    ctx = { router: routerClient(opts.router, opts.adminToken), backends: loadScaleConfig(resolve(opts.config), opts.env), drivers: makeDrivers() };
  } catch (e) {
    console.error(`✗ ${e instanceof ConfigError ? e.message : errorMessage(e)}`);
    return 2;
  }

  if (opts.command === 'watch') {
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    console.log(`watching ${ctx.router.url} every ${opts.interval}s (every ${opts.wakeInterval}s while wake-ups are pending); Ctrl-C stops`);
    const { rounds } = await watch(
      {
        ctx,
        intervalMs: opts.interval * 1000,
        wakeIntervalMs: opts.wakeInterval * 1000,
        onRound: (round, n) => {
          // The full table only when something happened, so a quiet watch stays quiet.
          const busy = round.rows.filter((r) => r.error || r.result || r.events.length);
          if (n === 1 || busy.length) {
            console.log(`\n[${new Date().toISOString()}] round ${n}`);
            print(n === 1 ? round : { ...round, rows: busy }, true);
          }
        },
        onError: (e, n) => console.error(`✗ [${new Date().toISOString()}] round ${n}: ${errorMessage(e)}`),
      },
      stop.signal,
    );
    console.log(`stopped after ${rounds} round${rounds === 1 ? '' : 's'}`);
    return 0;
  }

  let round: Round;
  try {
    round = opts.command === 'plan' ? await planRound(ctx) : await applyRound(ctx);
  } catch (e) {
    console.error(`✗ ${errorMessage(e)}`);
    return 2;
  }
  print(round, opts.command === 'apply');
  return round.failed ? 1 : 0;
}

// Exit explicitly: SDK clients (Modal's gRPC channels, keep-alive agents) may hold the loop open.
process.exit(await main(process.argv.slice(2)));
