// This isolate's copy of each deployment's split (durable-objects/deployment-state.ts), and the
// batched reports of rollout requests' outcomes to it.
//
// - splitOf() reads memory: a warm isolate assigns a request without a hop. A copy older than
//   [rollout].refresh_ms is re-read in the background (waitUntil), so a rollback or a promotion
//   reaches every isolate within about refresh_ms. The first request of an isolate for a
//   deployment waits for one read (the TOML default would send it to a version that may no longer
//   serve); if the object does not answer within FIRST_READ_MS it goes by the TOML default.
// - reportOutcome() appends to the deployment's batch; a report loop sends it at most every
//   [rollout].report_interval_ms (or at once when REPORT_MAX_BATCH pile up), and the reply refreshes the copy.

import type { CompiledConfig } from '../config/compiled';
import type { DeploymentConfig } from '../config/deployments';
import type { DeploymentState } from '../env';
import { background, errorMessage, type WaitUntil } from '../isolate/background';
import { registerIsolateState } from '../isolate/registry';
import { ReportLoop, type ReportLoopSpec } from '../isolate/report-loop';
import { SingleFlight } from '../isolate/single-flight';
import type { DeploymentDef, OutcomeReport, SplitSnapshot } from '../protocol/deployments';

const FIRST_READ_MS = 1_000;
const REPORT_MAX_BATCH = 500;

type Namespace = DurableObjectNamespace<DeploymentState>;

interface Entry {
  snap: SplitSnapshot | null;
  /** Local clock of the last confirmed copy. */
  fetchedAt: number;
  first: Promise<void> | null;
  refresh: SingleFlight;
  batch: OutcomeReport[];
  lastSentAt: number;
  reports: ReportLoop<LoopArgs, OutcomeReport[], SplitSnapshot>;
}

interface LoopArgs {
  name: string;
  e: Entry;
  ns: Namespace;
  def: DeploymentDef;
}

let entries = new Map<string, Entry>();
registerIsolateState('deployment-view', () => {
  entries = new Map();
});

const REPORTS: ReportLoopSpec<LoopArgs, OutcomeReport[], SplitSnapshot> = {
  what: 'deployment reports',
  due: (now, { e, def }) => (e.batch.length === 0 ? 'idle' : e.batch.length >= REPORT_MAX_BATCH ? 0 : Math.max(0, e.lastSentAt + def.config.rollout.report_interval_ms - now)),
  take: (now, { e }) => {
    e.lastSentAt = now;
    return e.batch.splice(0, e.batch.length);
  },
  send: (batch, { name, ns, def }) => stub(ns, name).report(def, batch),
  apply: (snap, { e }) => install(e, snap, Date.now()),
  failed: (err, batch, { name }) => console.warn(`deployment ${name}: ${batch.length} outcome reports lost: ${errorMessage(err)}`),
  maxLoopMs: 10_000,
};

const defs = new WeakMap<CompiledConfig, Map<string, DeploymentDef>>();

/** The definition every call to the object carries (cached per config object). */
export function deploymentDef(config: CompiledConfig, name: string): DeploymentDef {
  let byName = defs.get(config);
  if (!byName) defs.set(config, (byName = new Map()));
  let def = byName.get(name);
  if (!def) {
    const a = config.raw.alerts;
    def = {
      name,
      config: config.raw.deployments[name] as DeploymentConfig,
      alerts: { webhooks: a.enabled ? a.webhooks.map((w) => ({ url: w.url, secret: w.secret })) : [], timeout_ms: a.webhook_timeout_ms },
    };
    byName.set(name, def);
  }
  return def;
}

export const stub = (ns: Namespace, name: string) => ns.get(ns.idFromName(name));

/** The TOML default: the configured serving version, no rollout. */
function defaultSplit(cfg: DeploymentConfig): SplitSnapshot {
  return { epoch: -1, serving: cfg.serving, runtimeVersions: {}, rollout: null };
}

function entry(name: string): Entry {
  let e = entries.get(name);
  if (!e) {
    e = { snap: null, fetchedAt: 0, first: null, refresh: new SingleFlight(), batch: [], lastSentAt: Number.NEGATIVE_INFINITY, reports: new ReportLoop(REPORTS) };
    entries.set(name, e);
  }
  return e;
}

function install(e: Entry, snap: SplitSnapshot, now: number): void {
  if (!e.snap || snap.epoch >= e.snap.epoch) e.snap = snap;
  e.fetchedAt = now;
}

/** The deployment's split as this isolate knows it; waits only for an isolate's first read of it. */
export async function splitOf(env: { DEPLOYMENTS?: Namespace }, ctx: WaitUntil, config: CompiledConfig, name: string, now = Date.now()): Promise<SplitSnapshot> {
  const cfg = config.raw.deployments[name]!;
  const ns = env.DEPLOYMENTS;
  if (!ns) return defaultSplit(cfg);
  const e = entry(name);
  if (e.snap) {
    if (now - e.fetchedAt > cfg.rollout.refresh_ms && !e.refresh.running(now)) {
      const token = e.refresh.start(now);
      const read = stub(ns, name)
        .snapshot(deploymentDef(config, name))
        .then((snap) => install(e, snap, Date.now()))
        .catch((err) => console.warn(`deployment ${name}: split not refreshed: ${errorMessage(err)}`))
        .finally(() => e.refresh.done(token));
      background(ctx, read, 'deployment refresh');
    }
    return e.snap;
  }
  e.first ??= stub(ns, name)
    .snapshot(deploymentDef(config, name))
    .then((snap) => install(e, snap, Date.now()))
    .catch((err) => console.warn(`deployment ${name}: split not read: ${errorMessage(err)}`))
    .finally(() => (e.first = null));
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([e.first, new Promise<void>((r) => (timer = setTimeout(r, FIRST_READ_MS)))]);
  if (timer !== undefined) clearTimeout(timer);
  return e.snap ?? defaultSplit(cfg);
}

/** One finished request of a rollout: batched to the deployment's object. Synchronous. */
export function reportOutcome(env: { DEPLOYMENTS?: Namespace }, ctx: WaitUntil, config: CompiledConfig, name: string, report: OutcomeReport, now = Date.now()): void {
  const ns = env.DEPLOYMENTS;
  if (!ns) return;
  const e = entry(name);
  e.batch.push(report);
  e.reports.pump(ctx, { name, e, ns, def: deploymentDef(config, name) }, now);
}
