/**
 * Rollouts from the command line (README "Rollout script"), over the admin API:
 *   npm run rollout -- start    --deployment D --version V [--mode canary|blue-green|ab] [--steps 5,25,50,100]
 *                               [--share 50] [--metric M] [--force --reason "..."]
 *   npm run rollout -- status   --deployment D [--id R]
 *   npm run rollout -- promote|pause|resume|rollback --deployment D [--id R] [--reason "..."] [--force]
 *   npm run rollout -- list
 * Common: --router URL (or ROUTER_URL), --admin-token T (or ROUTER_ADMIN_TOKEN), --actor NAME (who
 * acts, kept in the history; default $USER), --json (print the router's answer as JSON).
 * Without --id, promote/pause/resume/rollback/status act on the deployment's rollout in progress,
 * else its latest one (so `rollback` after a blue-green switch switches back).
 * Exit codes: 0 done; 1 the router refused (its error message is printed); 2 bad flags.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { AdminClient, RouterError } from './regress/router-client';
import { renderHistory, renderList, renderRollout } from './rollout/render';
import { deploymentListSchema, deploymentSchema, rolloutSchema, type DeploymentView, type RolloutView } from './rollout/schemas';

const USAGE = `usage: npm run rollout -- <command> [flags]
  start    --deployment D --version V [--mode canary|blue-green|ab] [--steps 5,25,50,100] [--share 50] [--metric M] [--force --reason "..."]
  status   --deployment D [--id R]
  promote | pause | resume | rollback   --deployment D [--id R] [--reason "..."] [--force]
  list
common: --router URL (ROUTER_URL)  --admin-token T (ROUTER_ADMIN_TOKEN)  --actor NAME  --json`;

const COMMANDS = ['start', 'status', 'promote', 'pause', 'resume', 'rollback', 'list'] as const;
type Command = (typeof COMMANDS)[number];

const percent = z.coerce.number().gt(0).max(100);
const optionsSchema = z
  .object({
    command: z.enum(COMMANDS, { error: `the command must be one of: ${COMMANDS.join(', ')}` }),
    router: z.url({ protocol: /^https?$/, error: 'the router URL (--router or ROUTER_URL) must be an http(s) URL' }),
    adminToken: z.string({ error: 'the admin token is missing (--admin-token or ROUTER_ADMIN_TOKEN)' }).min(1),
    actor: z.string().min(1).max(100),
    deployment: z.string().min(1).optional(),
    version: z.string().min(1).optional(),
    id: z.string().min(1).optional(),
    mode: z.enum(['canary', 'blue-green', 'ab']).optional(),
    steps: z
      .string()
      .transform((s, ctx) => {
        const steps = s.split(',').map((x) => Number(x.trim()));
        if (steps.some((n) => !Number.isFinite(n) || n <= 0 || n > 100) || steps.some((n, i) => i > 0 && n <= steps[i - 1]!)) {
          ctx.addIssue({ code: 'custom', message: '--steps must be increasing percentages in (0, 100], e.g. 5,25,50,100' });
          return z.NEVER;
        }
        return steps;
      })
      .optional(),
    share: percent.optional(),
    metric: z.string().min(1).optional(),
    force: z.boolean(),
    reason: z.string().min(1).max(500).optional(),
    json: z.boolean(),
  })
  .superRefine((o, ctx) => {
    const need = (ok: boolean, message: string) => ok || ctx.addIssue({ code: 'custom', message });
    if (o.command !== 'list') need(o.deployment !== undefined, '--deployment is required');
    if (o.command === 'start') {
      need(o.version !== undefined, '--version is required');
      need(!o.force || o.reason !== undefined, '--force needs --reason "…" (it is kept in the history)');
      need(o.mode === 'ab' || (o.share === undefined && o.metric === undefined), '--share and --metric are for --mode ab');
      need(o.mode !== 'blue-green' || o.steps === undefined, '--steps is for canary and ab rollouts');
    }
  });
type Options = z.infer<typeof optionsSchema>;

function options(argv: string[]): Options | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      router: { type: 'string' },
      'admin-token': { type: 'string' },
      actor: { type: 'string' },
      deployment: { type: 'string' },
      version: { type: 'string' },
      id: { type: 'string' },
      mode: { type: 'string' },
      steps: { type: 'string' },
      share: { type: 'string' },
      metric: { type: 'string' },
      force: { type: 'boolean', default: false },
      reason: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) return 'help';
  if (positionals.length > 1) throw new Error(`one command at a time (got: ${positionals.join(' ')})`);
  const parsed = optionsSchema.safeParse({
    command: positionals[0],
    router: values.router ?? process.env.ROUTER_URL,
    adminToken: values['admin-token'] ?? process.env.ROUTER_ADMIN_TOKEN,
    actor: values.actor ?? process.env.USER ?? 'rollout-script',
    deployment: values.deployment,
    version: values.version,
    id: values.id,
    mode: values.mode,
    steps: values.steps,
    share: values.share,
    metric: values.metric,
    force: values.force,
    reason: values.reason,
    json: values.json,
  });
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => i.message).join('\n'));
  return parsed.data;
}

/** The rollout in progress, else the one started last. */
function currentOrLatest(d: DeploymentView): RolloutView | null {
  if (d.rollout) return d.rollout;
  const started = (r: RolloutView) => (typeof r.started_at === 'number' ? r.started_at : Date.parse(String(r.started_at ?? 0)) || 0);
  return [...(d.rollouts ?? [])].sort((a, b) => started(b) - started(a))[0] ?? null;
}

/** Entry point (also called by the tests): returns the exit code. */
export async function main(argv: string[], print: (s: string) => void = console.log, printErr: (s: string) => void = console.error): Promise<number> {
  let o: Options;
  try {
    const parsed = options(argv);
    if (parsed === 'help') {
      print(USAGE);
      return argv.includes('--help') || argv.includes('-h') ? 0 : 2;
    }
    o = parsed;
  } catch (e) {
    printErr(`✗ ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  const admin = new AdminClient({ router: o.router, adminToken: o.adminToken, actor: o.actor });
  const base = o.deployment ? `/admin/deployments/${encodeURIComponent(o.deployment)}` : '';
  const emit = (value: unknown, text: () => string) => print(o.json ? JSON.stringify(value, null, 2) : text());
  try {
    switch (o.command as Command) {
      case 'list': {
        const list = await admin.call('GET', '/admin/deployments', deploymentListSchema);
        emit(list, () => renderList(list.data));
        return 0;
      }
      case 'start': {
        const body = { version: o.version, mode: o.mode ?? 'canary', steps: o.steps, share: o.share, metric: o.metric, force: o.force || undefined, reason: o.reason };
        const r = await admin.call('POST', `${base}/rollouts`, rolloutSchema, body);
        emit(r, () => `started ${r.id}\n\n${renderRollout(r)}`);
        return 0;
      }
      case 'status': {
        const d = await admin.call('GET', base, deploymentSchema);
        const id = o.id ?? currentOrLatest(d)?.id;
        if (!id) {
          emit(d, () => `${d.name}: serving ${d.serving}, no rollout yet.\n\n${renderHistory(d)}`.trimEnd());
          return 0;
        }
        const r = await admin.call('GET', `${base}/rollouts/${encodeURIComponent(id)}`, rolloutSchema);
        emit(r, () => `${d.name}: serving ${d.serving}${d.previous ? ` (previous ${d.previous})` : ''}\n\n${renderRollout(r)}\n\n${renderHistory(d)}`.trimEnd());
        return 0;
      }
      default: {
        let id = o.id;
        if (!id) {
          const d = await admin.call('GET', base, deploymentSchema);
          // The latest one when none runs: a promoted blue-green switch is rolled back this way.
          const r = currentOrLatest(d);
          if (!r) throw new RouterError(`${o.deployment} has no rollout: start one first`, 404, 'no_rollout');
          id = r.id;
        }
        const body = { reason: o.reason, force: o.force || undefined };
        const r = await admin.call('POST', `${base}/rollouts/${encodeURIComponent(id)}/${o.command}`, rolloutSchema, body);
        emit(r, () => `${o.command}: ${r.id} is now ${r.state}\n\n${renderRollout(r)}`);
        return 0;
      }
    }
  } catch (e) {
    printErr(`✗ ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href) process.exit(await main(process.argv.slice(2)));
