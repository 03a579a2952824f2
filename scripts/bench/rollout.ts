/**
 * A bad version introduced under steady load (issue 14's measurement): the dev stack with a
 * deployment whose candidate runs on a backend of its own; a steady stream of non-streamed
 * requests from a pool of users; a canary is started a few seconds in, on a candidate that is
 * bad (a share of its answers fail with 503, or — when the simulator supports it — are refusals).
 * The rollout runs with the router's default policy (evaluate every 5 s, copies refreshed every
 * 2 s, 30 samples per arm before a verdict) except its first step, which is the one measured.
 *
 * Per first-step size and kind of bad: time from the start of the rollout to the automatic
 * rollback (the object's verdict) and to the last request served by the candidate (what clients
 * saw), and the share of requests and of users that got the bad version over the window
 * [rollout start, rollout start + window). Aim: rolled back within 60 s at 5%, fewer than 2% of
 * requests exposed.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import type { RolloutView } from '../../worker/protocol/deployments';
import { startStack } from '../dev/stack';
import type { BenchSection, BenchTable } from './lib/section';
import { answeredOk, callChat } from './lib/workload-client';

const STABLE_MODEL = 'llama-3.1-8b';
const CANDIDATE_MODEL = 'llama-3.1-8b-next';
const CANDIDATE_BACKEND = 'vllm-us-east-8b-next';
const GEO = '40.7,-74.0';
const CLIENTS = 8;
const USERS = 1_000;
const START_AT_S = 3;
const STEPS = [5, 25, 50] as const;
const KINDS = [
  { name: 'errors', what: '10% of answers are 503s', faults: { error_rate: 0.1, status: 503 }, config: {} },
  { name: 'refusals', what: '20% of answers are refusals', faults: {}, config: { refusal_rate: 0.2 } },
] as const;

const deploymentName = (kind: string, step: number) => `bench-${kind}-${step}`;

interface Run {
  kind: string;
  step: number;
  rolled_back_after_s: number | null;
  last_bad_after_s: number | null;
  reason: string | null;
  requests: number;
  bad_requests: number;
  exposed_share: number;
  users: number;
  bad_users: number;
  users_exposed_share: number;
  failed_requests: number;
}

export const rollout: BenchSection = {
  name: 'rollout',
  description: `a bad candidate under steady load (${CLIENTS} clients, ${USERS} users): time to automatic rollback and exposure, per first-step size`,
  async run(ctx) {
    const windowS = ctx.durationS ?? 60;
    const stack = await startStack({
      port: 0,
      ephemeralBackends: true,
      persist: false,
      directSocket: true,
      configPatch: (router: RouterConfigInput) => withBenchDeployments(router),
    });
    try {
      const candidateUrl = stack.backends[CANDIDATE_BACKEND]!;
      const sim = async (path: string, body: object) => {
        const res = await fetch(`${candidateUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        return { ok: res.ok, text: await res.text() };
      };
      const refusalsSupported = (await sim('/sim/config', { refusal_rate: 0 })).ok;
      const admin = async (path: string, init: RequestInit = {}) => {
        const res = await fetch(`${stack.routerUrl}${path}`, { ...init, headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json', 'x-router-actor': 'bench' } });
        const text = await res.text();
        if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
        return JSON.parse(text) as unknown;
      };
      const runs: Run[] = [];
      const skipped: string[] = [];
      for (const kind of KINDS) {
        if (kind.name === 'refusals' && !refusalsSupported) {
          skipped.push('refusals: the simulator has no refusal_rate in /sim/config');
          continue;
        }
        for (const step of STEPS) {
          const name = deploymentName(kind.name, step);
          await sim('/sim/faults', kind.faults);
          if (Object.keys(kind.config).length) await sim('/sim/config', kind.config);
          runs.push(await measure(stack.routerUrl, stack.keys.demo, name, kind.name, step, windowS, async () => (await admin(`/admin/deployments/${name}/rollouts`, { method: 'POST', body: JSON.stringify({ version: 'v2', steps: [step, 100].filter((v, i, a) => a.indexOf(v) === i) }) })) as RolloutView, async (id) => (await admin(`/admin/deployments/${name}/rollouts/${id}`)) as RolloutView));
          await sim('/sim/faults', {});
          if (refusalsSupported) await sim('/sim/config', { refusal_rate: 0 });
          log(`${kind.name} at ${step}%: ${JSON.stringify(runs.at(-1))}`);
        }
      }
      const table: BenchTable = {
        title: `Bad candidate under steady load: rollback and exposure over ${windowS} s from the rollout's start`,
        columns: ['bad version', 'first step', 'rolled back after', 'last bad answer after', 'requests', 'exposed', 'users', 'users exposed', 'verdict'],
        rows: runs.map((r) => [
          r.kind,
          `${r.step}%`,
          r.rolled_back_after_s === null ? 'not in window' : `${r.rolled_back_after_s.toFixed(1)} s`,
          r.last_bad_after_s === null ? '-' : `${r.last_bad_after_s.toFixed(1)} s`,
          String(r.requests),
          `${(r.exposed_share * 100).toFixed(2)}%`,
          String(r.users),
          `${(r.users_exposed_share * 100).toFixed(1)}%`,
          (r.reason ?? '-').replace(/^automatic rollback: /, '').slice(0, 70),
        ]),
        notes: [
          'Policy: the router defaults (evaluate_interval_ms 5000, refresh_ms 2000, report_interval_ms 500, min_samples 30, confidence 0.95); only the first step differs.',
          '"exposed": requests in the window answered by the candidate; "users exposed": users with at least one such answer among users active in the window.',
          'Aim (issue 14): rolled back within 60 s at 5%, fewer than 2% of requests exposed.',
          ...skipped,
        ],
      };
      return {
        tables: [table],
        json: {
          date: new Date().toISOString(),
          machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, loadavg_1m: os.loadavg()[0] },
          setup: { clients: CLIENTS, users: USERS, window_s: windowS, start_at_s: START_AT_S, kinds: KINDS, steps: STEPS },
          runs,
          skipped,
          aims: { rolled_back_within_60s_at_5: runs.filter((r) => r.step === 5).every((r) => r.rolled_back_after_s !== null && r.rolled_back_after_s <= 60), exposed_under_2pct_at_5: runs.filter((r) => r.step === 5).every((r) => r.exposed_share < 0.02) },
        },
      };
    } finally {
      await stack.close();
    }
  },
};

/** One run: steady load; the rollout starts at START_AT_S; load goes on for the window after it. */
async function measure(routerUrl: string, key: string, name: string, kind: string, step: number, windowS: number, start: () => Promise<RolloutView>, status: (id: string) => Promise<RolloutView>): Promise<Run> {
  const url = `${routerUrl}/v1/chat/completions`;
  const headers = { authorization: `Bearer ${key}`, 'x-router-debug-geo': GEO };
  let stop = false;
  let startedAt: number | null = null;
  const seen: { at: number; user: string; version: string | null; ok: boolean }[] = [];
  const client = async (i: number) => {
    for (let n = 0; !stop; n++) {
      const user = `user-${Math.floor(Math.random() * USERS)}`;
      const r = await callChat({ url, headers, body: { model: name, user, messages: [{ role: 'user', content: `Client ${i} request ${n}: a short status line please.` }], max_tokens: 8 }, clientTimeoutMs: 10_000 });
      seen.push({ at: Date.now(), user, version: r.router['deployment-version'] ?? null, ok: answeredOk(r) });
    }
  };
  let rolledBackAt: number | null = null;
  let reason: string | null = null;
  const conductor = async () => {
    await sleep(START_AT_S * 1000);
    const ro = await start();
    startedAt = Date.now();
    const end = startedAt + windowS * 1000;
    while (Date.now() < end) {
      await sleep(250);
      if (rolledBackAt !== null) continue;
      const v = await status(ro.id);
      if (v.state === 'rolled_back') {
        rolledBackAt = v.ended_at ?? Date.now();
        reason = v.reason;
      } else if (v.state !== 'running') reason = `ended ${v.state}`;
    }
    stop = true;
  };
  await Promise.all([conductor(), ...Array.from({ length: CLIENTS }, (_, i) => client(i))]);
  const t0 = startedAt!;
  const inWindow = seen.filter((s) => s.at >= t0 && s.at < t0 + windowS * 1000);
  const bad = inWindow.filter((s) => s.version === 'v2');
  const users = new Set(inWindow.map((s) => s.user));
  const badUsers = new Set(bad.map((s) => s.user));
  const lastBad = bad.length ? Math.max(...bad.map((s) => s.at)) : null;
  return {
    kind,
    step,
    rolled_back_after_s: rolledBackAt === null ? null : (rolledBackAt - t0) / 1000,
    last_bad_after_s: lastBad === null ? null : (lastBad - t0) / 1000,
    reason,
    requests: inWindow.length,
    bad_requests: bad.length,
    exposed_share: inWindow.length ? bad.length / inWindow.length : 0,
    users: users.size,
    bad_users: badUsers.size,
    users_exposed_share: users.size ? badUsers.size / users.size : 0,
    failed_requests: inWindow.filter((s) => !s.ok).length,
  };
}

/** The dev config plus a candidate model on a backend of its own, and one deployment per (kind, step). */
function withBenchDeployments(router: RouterConfigInput): RouterConfigInput {
  const stable = router.backends.find((b) => b.id === 'vllm-us-east-8b');
  if (!stable) throw new Error('the dev config has no backend vllm-us-east-8b');
  const { served_name: _served, ...stableModel } = router.models.find((m) => m.id === STABLE_MODEL)!;
  const deployments: Record<string, unknown> = {};
  for (const kind of KINDS) {
    for (const step of STEPS) {
      deployments[deploymentName(kind.name, step)] = {
        serving: 'v1',
        versions: { v1: { model: STABLE_MODEL }, v2: { model: CANDIDATE_MODEL } },
        gate: { required: false },
      };
    }
  }
  return {
    ...router,
    models: [...router.models, { ...stableModel, id: CANDIDATE_MODEL, aliases: [] }],
    backends: [...router.backends, { ...stable, id: CANDIDATE_BACKEND, models: [CANDIDATE_MODEL], url: 'http://127.0.0.1:18199' }],
    prices: { ...router.prices, [CANDIDATE_MODEL]: router.prices?.[STABLE_MODEL] ?? { input: 0, output: 0 } },
    deployments: { ...(router.deployments ?? {}), ...deployments } as RouterConfigInput['deployments'],
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => console.error(`  ${msg}`);
