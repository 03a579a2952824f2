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
import { DAY_MS, predictiveDecide, profileFromRouter, type DailyProfile } from './scale/predictive';
import { errorMessage } from './scale/drivers/types';
import { routerClient } from './scale/router-client';
import { applyRound, planRound, watch, type Round, type ScaleContext } from './scale/run';
import { decisionTable } from './scale/table';

const USAGE = `usage: npm run scale -- <plan|apply|watch> [--router URL] [--admin-token TOKEN]
         [--config wrangler.toml] [--env NAME] [--interval SECONDS] [--wake-interval SECONDS]
         [--predictive [--history-days 7] [--park-below-per-gpu 1.5]]

  plan    print one decision per backend, change nothing
  apply   carry the decisions out and report scale events to the router
  watch   apply every --interval seconds (default 30), every --wake-interval (default 2)
          while the router has wake-ups pending; Ctrl-C stops

  --router, ROUTER_URL                 the router's base URL
  --admin-token, ROUTER_ADMIN_TOKEN    its ADMIN_TOKEN
  --config                             wrangler.toml with the [scaling] tables (default ./wrangler.toml;
                                       for the router \`npm start\` runs, the config it runs: .dev/wrangler.toml)
  --env                                read [env.NAME].vars.ROUTER instead of [vars.ROUTER]
  --predictive                         park and wake by each backend's daily profile, learnt from the
                                       router's request history (/admin/usage, the last --history-days
                                       days, hourly; re-learnt every hour by watch): park when fewer than
                                       --park-below-per-gpu × gpus requests are expected in the next hour,
                                       start a parked backend when its usual ramp is within its
                                       cold_start_ms + 15 min. The idle window still applies.`;

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
  predictive: z.boolean(),
  historyDays: z.coerce.number({ error: '--history-days must be a number' }).int('--history-days must be whole days').min(1).max(90),
  parkBelowPerGpu: z.coerce.number({ error: '--park-below-per-gpu must be a number' }).min(0).max(1_000),
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
      predictive: { type: 'boolean', default: false },
      'history-days': { type: 'string', default: '7' },
      'park-below-per-gpu': { type: 'string', default: '1.5' },
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
    predictive: values.predictive,
    historyDays: values['history-days'],
    parkBelowPerGpu: values['park-below-per-gpu'],
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

  // Predictive parking: the decision reads a profile that watch re-learns every hour.
  let relearn: (() => void) | undefined;
  if (opts.predictive) {
    const learn = () => profileFromRouter({ router: opts.router, adminToken: opts.adminToken, days: opts.historyDays });
    const holder = { profile: undefined as DailyProfile | undefined, learnedAt: Date.now() };
    try {
      holder.profile = await learn();
    } catch (e) {
      console.error(`✗ predictive: ${errorMessage(e)}`);
      return 2;
    }
    console.log(`predictive: daily profiles of ${holder.profile.perSlot.size} backends from ${opts.historyDays} days of request history`);
    const backends = ctx.backends;
    const decideWith = (profile: DailyProfile) =>
      predictiveDecide({
        profile,
        timeOfDay: () => Date.now() % DAY_MS,
        horizonMs: 3_600_000,
        parkBelow: (id) => opts.parkBelowPerGpu * (backends.find((b) => b.id === id)?.gpus ?? 1),
        leadMs: (id) => (backends.find((b) => b.id === id)?.cold_start_ms ?? 0) + 15 * 60_000,
      });
    let current = decideWith(holder.profile);
    ctx.decide = (input) => current(input);
    relearn = () => {
      if (Date.now() - holder.learnedAt < 3_600_000) return;
      holder.learnedAt = Date.now();
      learn().then(
        (p) => void (current = decideWith(p)),
        (e: unknown) => console.error(`✗ predictive: re-learning failed, keeping the last profile: ${errorMessage(e)}`),
      );
    };
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
          relearn?.();
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
