// This isolate's copy of every backend's circuit breaker (durable-objects/circuit-breaker.ts), and
// the batched reporting of outcomes to them.
//
// - breakerAllows() is synchronous and reads memory only: the planner drops a backend it sees
//   open without asking anyone; a healthy (closed) backend never waits on a breaker object.
// - reportOutcome() appends to a per-backend batch and returns; batches go out in waitUntil, one
//   RPC per backend, and the reply (the breaker's state) updates the copy. Successes are sent
//   once report_interval_ms has passed since the last report or report_max_batch have piled up;
//   a failure is news, so a batch holding one goes out within FAILURE_FLUSH_MS (but still at
//   most one report in flight per backend: what arrives meanwhile rides on the next).
// - refreshBreakers(), called on every request, sends batches that are due and, in waitUntil,
//   re-reads breakers this isolate consulted lately whose copy is older than refresh_ms, so a
//   trip seen by other isolates reaches this one within a few seconds.
// - A half-open breaker is the one case that pays a hop on the request path: acquireProbe() asks
//   its object for a probe permit, so that at most half_open_max_probes probes run edge-wide.

import type { BreakerSettings, BreakerState, BreakerStatus } from '../protocol/breaker';
import type { CircuitBreaker } from '../env';
import type { CompiledConfig } from '../config/compiled';
import { managedKinds, type BackendKind } from '../config/schema';
import { background as backgroundTask, errorMessage as message, type WaitUntil } from '../isolate/background';
import { registerIsolateState } from '../isolate/registry';
import { ReportLoop, type ReportLoopSpec } from '../isolate/report-loop';
import { SingleFlight } from '../isolate/single-flight';

export type BreakerOutcome = 'success' | 'failure' | 'ignore';

/** A permit from acquireProbe(): pass it to reportOutcome() with the probe's outcome. */
export interface ProbePermit {
  backend: string;
  id: string;
}

type Stub = DurableObjectStub<CircuitBreaker>;

/** A failure waits at most this long for the report in flight before it (or its own gap) is over. */
export const FAILURE_FLUSH_MS = 50;
/** After a denied probe permit, this isolate skips the half-open backend this long without asking. */
export const PROBE_DENIED_MS = 500;
/** Breakers consulted within this long are kept fresh by refreshBreakers(). */
const IN_USE_MS = 60_000;

interface Batch {
  outcomes: string;
  failures: number;
  cause: string | null;
}

interface Entry {
  state: BreakerState;
  /** Local clock: when an open breaker's cool-down ends. */
  openUntil: number;
  version: number;
  /** Local clock: when this copy was last confirmed by the object (0: never). */
  fetchedAt: number;
  /** Local clock: last breakerAllows() for it. */
  askedAt: number;
  refresh: SingleFlight;
  reports: ReportLoop<LoopArgs, Batch, BreakerStatus>;
  lastFlushAt: number;
  batch: Batch | null;
  /** Expiry (local clock) of each probe permit this isolate holds. */
  probes: number[];
  maxProbes: number;
  probeDeniedUntil: number;
}

/** What a report loop works with: its backend, and the namespace and settings of the call that started it. */
interface LoopArgs {
  id: string;
  e: Entry;
  ns: DurableObjectNamespace<CircuitBreaker>;
  s: BreakerSettings;
}

let entries = new Map<string, Entry>();
registerIsolateState('breaker-view', () => {
  entries = new Map(); // reports in flight land nowhere
});
const settingsCache = new WeakMap<CompiledConfig, Map<string, BreakerSettings>>();

function entry(id: string): Entry {
  let e = entries.get(id);
  if (!e) {
    e = {
      state: 'closed',
      openUntil: 0,
      version: -1,
      fetchedAt: 0,
      askedAt: 0,
      refresh: new SingleFlight(),
      reports: new ReportLoop(REPORTS),
      lastFlushAt: Number.NEGATIVE_INFINITY,
      batch: null,
      probes: [],
      maxProbes: 1,
      probeDeniedUntil: 0,
    };
    entries.set(id, e);
  }
  return e;
}

/** The backend's breaker settings: the router's [breaker] with the backend's own overrides. */
export function breakerSettings(config: CompiledConfig, backendId: string): BreakerSettings {
  let byBackend = settingsCache.get(config);
  if (!byBackend) settingsCache.set(config, (byBackend = new Map()));
  let s = byBackend.get(backendId);
  if (!s) {
    s = { ...config.raw.breaker, ...config.backends.get(backendId)?.breaker };
    byBackend.set(backendId, s);
  }
  return s;
}

/**
 * What the planner should do with a backend, from this isolate's copy. Synchronous; no I/O.
 * - 'closed': use it.
 * - 'open': skip it (also while this isolate holds all the probes it may, or was just denied one).
 * - 'half-open': it may be tried as a probe: call acquireProbe() first (one hop), skip it on null.
 */
export function breakerAllows(backendId: string, now: number = Date.now()): BreakerState {
  const e = entries.get(backendId);
  if (!e) {
    entry(backendId).askedAt = now; // unknown: closed, and refreshed in the background
    return 'closed';
  }
  e.askedAt = now;
  if (e.state === 'closed') return 'closed';
  if (e.state === 'open' && now < e.openUntil) return 'open';
  if (now < e.probeDeniedUntil) return 'open';
  if (e.probes.length > 0) {
    e.probes = e.probes.filter((t) => t > now);
    if (e.probes.length >= e.maxProbes) return 'open';
  }
  return 'half-open';
}

const isManaged = (kind: BackendKind | undefined) => kind !== undefined && managedKinds.includes(kind);

/**
 * How a failed attempt counts: connect errors, timeouts and a missing answer are failures; an
 * HTTP status only when `failure_statuses` lists it (default 5xx and 429). Anything else, e.g.
 * the client's own 4xx, is 'ignore'.
 */
export function breakerOutcomeOf(
  config: CompiledConfig,
  backendId: string,
  failure: { kind: 'timeout' | 'connect' | 'status'; status?: number },
): 'failure' | 'ignore' {
  if (failure.kind !== 'status' || failure.status === undefined) return 'failure';
  const status = failure.status;
  if (status === 429 && isManaged(config.backends.get(backendId)?.kind)) return 'ignore'; // a provider's rate limit: provider-throttle.ts
  const cls = `${Math.floor(status / 100)}xx`;
  return breakerSettings(config, backendId).failure_statuses.some((f) => f === status || f === cls) ? 'failure' : 'ignore';
}

/**
 * Records one attempt's outcome. Synchronous: the report goes out in `ctx.waitUntil`, batched
 * per backend. With a probe permit, the outcome settles the probe at once (one RPC, in waitUntil).
 * 'ignore' only returns a permit. `cause` (e.g. "HTTP 503") shows in the transition log.
 */
export function reportOutcome(
  ctx: WaitUntil,
  env: Record<string, unknown>,
  config: CompiledConfig,
  backendId: string,
  outcome: BreakerOutcome,
  options: { probe?: ProbePermit | null; cause?: string; now?: number } = {},
): void {
  const s = breakerSettings(config, backendId);
  if (!s.enabled) return;
  const ns = namespace(env);
  const now = options.now ?? Date.now();
  const e = entry(backendId);
  const probe = options.probe;
  if (probe) {
    e.probes.shift(); // the oldest permit: they are interchangeable here
    if (!ns) return;
    const settle = stubOf(ns, backendId)
      .settleProbe({ backend: backendId, settings: s, permit: probe.id, outcome, ...(options.cause ? { cause: options.cause } : {}) })
      .then((status) => apply(e, status, Date.now()))
      .catch((err) => console.warn(`breaker ${backendId}: probe not settled: ${message(err)}`));
    background(ctx, settle);
    return;
  }
  if (outcome === 'ignore') return;
  const b = (e.batch ??= { outcomes: '', failures: 0, cause: null });
  b.outcomes += outcome === 'failure' ? 'f' : 's';
  if (outcome === 'failure') {
    b.failures++;
    if (options.cause) b.cause = options.cause;
  }
  if (ns) e.reports.pump(ctx, { id: backendId, e, ns, s }, now);
}

/**
 * Asks the backend's breaker for a probe permit (the one hop on the request path, taken only for
 * a backend this isolate sees half-open). Returns the permit; 'closed' when the breaker turned
 * out closed (go ahead, report as usual); or null: skip the backend (open, probes taken, or the
 * object could not be reached).
 */
export async function acquireProbe(
  env: Record<string, unknown>,
  config: CompiledConfig,
  backendId: string,
  options: { leaseMs?: number; now?: number } = {},
): Promise<ProbePermit | 'closed' | null> {
  const s = breakerSettings(config, backendId);
  if (!s.enabled) return 'closed';
  const ns = namespace(env);
  const e = entry(backendId);
  e.maxProbes = s.half_open_max_probes;
  if (!ns) return 'closed';
  const leaseMs = options.leaseMs ?? 30_000;
  try {
    const reply = await stubOf(ns, backendId).acquireProbe({ backend: backendId, settings: s, lease_ms: leaseMs });
    const now = options.now ?? Date.now();
    apply(e, reply.status, now);
    if (reply.permit) {
      e.probes.push(now + leaseMs);
      return { backend: backendId, id: reply.permit };
    }
    if (reply.status.state === 'closed') return 'closed';
    e.probeDeniedUntil = now + PROBE_DENIED_MS;
    return null;
  } catch (err) {
    console.warn(`breaker ${backendId}: no probe permit: ${message(err)}`);
    e.probeDeniedUntil = (options.now ?? Date.now()) + PROBE_DENIED_MS;
    return null;
  }
}

/**
 * Called on every request (like refreshLoad): sends batches that are due, and re-reads in
 * waitUntil each breaker consulted in the last minute whose copy is older than refresh_ms.
 * Returns at once; errors are logged, never thrown.
 */
export function refreshBreakers(env: Record<string, unknown>, ctx: WaitUntil, config: CompiledConfig, now: number = Date.now()): void {
  const ns = namespace(env);
  if (!ns) return;
  for (const [id, e] of entries) {
    if (!config.backends.has(id)) continue;
    const s = breakerSettings(config, id);
    if (!s.enabled) {
      // Switched off: whatever the object last said no longer counts here.
      e.state = 'closed';
      e.batch = null;
      continue;
    }
    if (e.batch) e.reports.pump(ctx, { id, e, ns, s }, now);
    if (now - e.askedAt > IN_USE_MS || now - e.fetchedAt < s.refresh_ms) continue;
    // A report in flight brings the state back too.
    if (e.refresh.running(now) || e.reports.running(now)) continue;
    const mine = e.refresh.start(now);
    const read = stubOf(ns, id)
      .state({ backend: id, settings: s })
      .then((status) => apply(e, status, Date.now()))
      .catch((err) => console.warn(`breaker ${id}: refresh failed: ${message(err)}`))
      .finally(() => e.refresh.done(mine));
    background(ctx, read);
  }
}

/** Installs a state learnt elsewhere (e.g. the admin reset's answer) in this isolate's copy. */
export function noteBreakerStatus(backendId: string, status: BreakerStatus, now: number = Date.now()): void {
  apply(entry(backendId), status, now);
}

/** This isolate's copy of one breaker, for tests and debugging. */
export function breakerView(backendId: string): { state: BreakerState; openUntil: number; fetchedAt: number; pending: string } | undefined {
  const e = entries.get(backendId);
  return e && { state: e.state, openUntil: e.openUntil, fetchedAt: e.fetchedAt, pending: e.batch?.outcomes ?? '' };
}

// ------------------------------------------------------------------ internals

function namespace(env: Record<string, unknown>): DurableObjectNamespace<CircuitBreaker> | undefined {
  return env.BREAKERS as DurableObjectNamespace<CircuitBreaker> | undefined;
}

function stubOf(ns: DurableObjectNamespace<CircuitBreaker>, backendId: string): Stub {
  return ns.get(ns.idFromName(backendId));
}

const background = (ctx: WaitUntil, p: Promise<unknown>): void => void backgroundTask(ctx, p, 'breaker');

const failureGap = (s: BreakerSettings) => Math.min(FAILURE_FLUSH_MS, s.report_interval_ms);

/**
 * Each backend's report loop. A batch is due once report_max_batch outcomes piled up or
 * report_interval_ms passed since the last report; a batch with a failure waits out only the
 * failure gap (in the loop); one of successes only is left for later traffic (refreshBreakers).
 */
const REPORTS: ReportLoopSpec<LoopArgs, Batch, BreakerStatus> = {
  what: 'breaker',
  due(now, { e, s }) {
    const b = e.batch;
    if (!b) return 'idle';
    const since = now - e.lastFlushAt;
    if (b.outcomes.length >= s.report_max_batch || since >= s.report_interval_ms || (b.failures > 0 && since >= failureGap(s))) return 0;
    if (b.failures === 0) return 'idle';
    return Math.min(failureGap(s), Math.max(0, failureGap(s) - since));
  },
  take(now, { e }) {
    const b = e.batch!;
    e.batch = null;
    e.lastFlushAt = now;
    return b;
  },
  send: (b, { id, ns, s }) => stubOf(ns, id).report({ backend: id, settings: s, outcomes: b.outcomes, ...(b.cause ? { cause: b.cause } : {}) }),
  apply: (status, { e }) => apply(e, status, Date.now()),
  failed: (err, b, { id }) => console.warn(`breaker ${id}: report of ${b.outcomes.length} outcomes failed: ${message(err)}`),
};

function apply(e: Entry, status: BreakerStatus, now: number): void {
  if (!status || typeof status.state !== 'string' || typeof status.version !== 'number') return;
  if (status.version < e.version) return; // an answer older than what this copy holds
  e.version = status.version;
  e.state = status.state;
  e.openUntil = status.state === 'open' ? now + Math.max(0, status.retry_in_ms) : 0;
  e.fetchedAt = now;
  if (status.state !== 'half-open') e.probeDeniedUntil = 0;
}
