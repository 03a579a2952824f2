// This isolate's copy of each cold-startable backend's lifecycle (durable-objects/backend-lifecycle.ts)
// and the batched reporting of what its requests saw. Only backends with `cold_start_ms` are
// tracked: for the others every function here returns at once.
//
// - coldStateOf() is synchronous and reads memory only: an isolate with no copy yet takes the
//   backend as warm (unknown = warm) and refreshBackendLifecycles() reads the object in waitUntil.
//   A copy older than REFRESH_MS is re-read in the background while the backend is being planned.
// - Attempts report through lifecycleBegin/Answered/Failed/End: O(1) counter updates; a batch per
//   backend goes out in waitUntil (one RPC), and the reply refreshes the copy. Counts ride along
//   within REPORT_INTERVAL_MS; news (the backend answered while it was believed cold, a measured
//   cold start, a failed wake, traffic after a long silence) goes out within URGENT_GAP_MS.
// - An attempt on a backend believed cold is itself the wake-up (serverless platforms and the
//   simulator start on a request): it records a pending wake-up in the object (for the scale
//   scripts, which start Kubernetes backends) and moves this copy to waking.

import type { BackendLifecycle } from '../env';
import type { LifecycleReport, LifecycleStatus } from '../protocol/lifecycle';
import type { BackendState } from '../protocol/backends-api';
import type { CompiledConfig } from '../config/compiled';
import type { BackendConfig } from '../config/schema';
import { background, errorMessage, type WaitUntil } from '../isolate/background';
import { registerIsolateState } from '../isolate/registry';
import { ReportLoop, type ReportLoopSpec } from '../isolate/report-loop';
import { SingleFlight } from '../isolate/single-flight';
import { expectedColdStart, idleSince, IN_FLIGHT_FRESH_MS, lifecycleSettings, tracked, type LifecycleSettings } from '../protocol/rules/lifecycle-rules';

/** A copy older than this is re-read (in the background) when the backend is planned again. */
export const REFRESH_MS = 1_000;
/** Counts (requests, in flight) are reported at most this often per backend. */
export const REPORT_INTERVAL_MS = 1_000;
/** News waits at most this long for the report before it. */
export const URGENT_GAP_MS = 250;
/** A request after this long without any reported one is news (the object may be about to presume it idle). */
const STALE_ACTIVITY_MS = 10_000;
/** Local news (an answer, a wake) is not overwritten by a refresh read for this long. */
const HOLD_MS = 2_000;
/** The allowance for a backend's own answer while this isolate has not timed one yet. */
export const DEFAULT_NORMAL_MS = 500;
/** An answer slower than normal by less than this (or a fifth of the expected start) is no cold start. */
const MIN_OBSERVED_MS = 50;
const EWMA_WEIGHT = 0.2;
/**
 * A report loop hands over after this long: it runs in the waitUntil of the request that started
 * it, which the runtime cuts some time after that response; the next attempt starts a fresh loop.
 */
const LOOP_MAX_MS = 10_000;

type Ns = DurableObjectNamespace<BackendLifecycle>;

interface Entry {
  // The copy: from the object, or local news not yet confirmed.
  state: BackendState;
  /** When the state began (local clock; 0 unknown). */
  since: number;
  expectedMs: number | null;
  remoteLastRequestAt: number;
  remoteInFlight: number;
  replicas: number | null;
  version: number;
  fetchedAt: number;
  heldUntil: number;
  refresh: SingleFlight;
  // What this isolate saw and has not reported yet.
  inFlight: number;
  reportedInFlight: number;
  started: number;
  lastRequestAt: number;
  lastReportedRequestAt: number;
  warmAt: number | null;
  coldAt: number | null;
  observed: number[] | null;
  /** The wake start last measured, so that requests waiting on one wake record it once. */
  observedFor: number;
  urgent: boolean;
  reports: ReportLoop<LoopArgs, LifecycleReport, LifecycleStatus>;
  lastFlushAt: number;
  /** Typical time to the first byte of a warm answer (ms, 0 unknown): [streamed, not streamed]. */
  normal: [number, number];
}

/** What a report loop works with: its backend, and the namespace and settings of the call that started it. */
interface LoopArgs {
  id: string;
  e: Entry;
  ns: Ns;
  s: LifecycleSettings;
}

let entries = new Map<string, Entry>();
let isolateId: string | null = null;
registerIsolateState('lifecycle-view', () => {
  entries = new Map(); // reports in flight land nowhere
});

function entry(id: string): Entry {
  let e = entries.get(id);
  if (!e) {
    e = {
      state: 'unknown',
      since: 0,
      expectedMs: null,
      remoteLastRequestAt: 0,
      remoteInFlight: 0,
      replicas: null,
      version: -1,
      fetchedAt: 0,
      heldUntil: 0,
      refresh: new SingleFlight(),
      inFlight: 0,
      reportedInFlight: 0,
      started: 0,
      lastRequestAt: 0,
      lastReportedRequestAt: 0,
      warmAt: null,
      coldAt: null,
      observed: null,
      observedFor: 0,
      urgent: false,
      reports: new ReportLoop(REPORTS),
      lastFlushAt: Number.NEGATIVE_INFINITY,
      normal: [0, 0],
    };
    entries.set(id, e);
  }
  return e;
}

/** A backend this isolate believes cold or waking, for the planner. */
export interface ColdView {
  state: 'cold' | 'waking';
  /** Start time still to wait for: the expected cold start, less what a wake under way has done. */
  remainingMs: number;
  /** The backend's own answer time once up (this isolate's average, or DEFAULT_NORMAL_MS). */
  allowanceMs: number;
}

/**
 * The backend as this isolate sees it: null when warm (or unknown, or not tracked), else how long
 * its start should take. Synchronous; no I/O. A warm copy that has seen no traffic for the
 * backend's idle window is presumed parked (see lifecycle-rules.ts).
 */
export function coldStateOf(config: CompiledConfig, backend: BackendConfig, stream: boolean, now: number = Date.now()): ColdView | null {
  if (!tracked(backend)) return null;
  const e = entries.get(backend.id);
  if (!e) return null;
  const s = lifecycleSettings(config, backend.id);
  if (e.state === 'warm') {
    const others = now - e.fetchedAt < IN_FLIGHT_FRESH_MS ? e.remoteInFlight : 0;
    const parked = idleSince(s.idle_ms, Math.max(e.lastRequestAt, e.remoteLastRequestAt, e.since), e.inFlight + others, e.replicas, now);
    if (parked !== null) {
      e.state = 'cold';
      e.since = parked;
    }
  }
  if (e.state !== 'cold' && e.state !== 'waking') return null;
  const expected = expectedOf(e, s);
  const remainingMs = e.state === 'cold' ? expected : Math.max(0, expected - (now - e.since));
  // A wake overdue by its expected time: no longer planned around (normal timeouts apply).
  if (remainingMs <= 0) return null;
  return { state: e.state, remainingMs, allowanceMs: e.normal[stream ? 0 : 1] || DEFAULT_NORMAL_MS };
}

/**
 * Called when a request plans these backends: sends reports that are due and re-reads, in
 * waitUntil, each tracked backend whose copy is older than REFRESH_MS (or missing). Returns at once.
 */
export function refreshBackendLifecycles(env: Record<string, unknown>, ctx: WaitUntil, config: CompiledConfig, backends: Iterable<BackendConfig>, now: number = Date.now()): void {
  const ns = namespace(env);
  if (!ns) return;
  for (const b of backends) {
    if (!tracked(b)) continue;
    const e = entry(b.id);
    const s = lifecycleSettings(config, b.id);
    if (hasNews(e)) pump(ctx, ns, b.id, e, s, now);
    if (now - e.fetchedAt < REFRESH_MS || e.refresh.running(now) || e.reports.running(now)) continue;
    const mine = e.refresh.start(now);
    const read = stubOf(ns, b.id)
      .status({ backend: b.id, settings: s })
      .then((status) => apply(e, status, Date.now(), true))
      .catch((err) => console.warn(`lifecycle ${b.id}: refresh failed: ${errorMessage(err)}`))
      .finally(() => e.refresh.done(mine));
    background(ctx, read, 'lifecycle');
  }
}

/**
 * Records a wake-up: this copy moves to waking and, in waitUntil, the backend's object counts a
 * pending wake-up (and moves to waking too: the caller is about to send the backend a request,
 * which starts serverless platforms). Returns false when a wake is already under way here.
 */
export function requestWake(ctx: WaitUntil, env: Record<string, unknown>, config: CompiledConfig, backend: BackendConfig, now: number = Date.now()): boolean {
  if (!tracked(backend)) return false;
  const e = entry(backend.id);
  const s = lifecycleSettings(config, backend.id);
  if (e.state === 'waking' && now - e.since < expectedOf(e, s) + HOLD_MS) return false;
  e.state = 'waking';
  e.since = now;
  e.heldUntil = now + HOLD_MS;
  const ns = namespace(env);
  if (ns) {
    const asked = stubOf(ns, backend.id)
      .wake({ backend: backend.id, settings: s, ping: true })
      .then((status) => apply(e, status, Date.now(), false))
      .catch((err) => console.warn(`lifecycle ${backend.id}: wake-up not recorded: ${errorMessage(err)}`));
    background(ctx, asked, 'lifecycle');
  }
  return true;
}

/** One attempt on a tracked backend, from lifecycleBegin() to lifecycleEnd(). */
export interface LifecycleAttempt {
  readonly id: string;
  readonly e: Entry;
  readonly ctx: WaitUntil;
  readonly ns: Ns | undefined;
  readonly settings: LifecycleSettings;
  readonly startedAt: number;
  readonly stream: boolean;
  /** The start of the wake this attempt waits on (0: the backend was believed warm). */
  readonly wakeFrom: number;
  ended: boolean;
}

/**
 * An attempt starts: counts it (requests, in flight, last request). On a backend believed cold
 * it records the wake-up this request is. Null, and nothing done, for an untracked backend.
 */
export function lifecycleBegin(ctx: WaitUntil, env: Record<string, unknown>, config: CompiledConfig, backend: BackendConfig, stream: boolean, now: number = Date.now()): LifecycleAttempt | null {
  if (!tracked(backend)) return null;
  const e = entry(backend.id);
  if (e.state === 'cold') requestWake(ctx, env, config, backend, now);
  const wakeFrom = e.state === 'waking' ? Math.min(e.since || now, now) : 0;
  if (e.inFlight === 0 && now - e.lastReportedRequestAt >= STALE_ACTIVITY_MS) e.urgent = true;
  e.inFlight++;
  e.started++;
  e.lastRequestAt = now;
  const a: LifecycleAttempt = { id: backend.id, e, ctx, ns: namespace(env), settings: lifecycleSettings(config, backend.id), startedAt: now, stream, wakeFrom, ended: false };
  if (a.ns) pump(ctx, a.ns, a.id, e, a.settings, now);
  return a;
}

/**
 * The backend answered (first chunk of a stream, or the whole answer). After a wake this is a
 * measured cold start: from the wake's start to now, less the backend's normal answer time;
 * otherwise the time feeds that normal time.
 */
export function lifecycleAnswered(a: LifecycleAttempt | null, now: number = Date.now()): void {
  if (!a) return;
  const e = a.e;
  const k = a.stream ? 0 : 1;
  const normal = e.normal[k];
  if (a.wakeFrom > 0) {
    const measured = now - a.wakeFrom - normal;
    const threshold = Math.max(MIN_OBSERVED_MS, expectedOf(e, a.settings) / 5);
    if (measured >= threshold && e.observedFor !== a.wakeFrom) {
      (e.observed ??= []).push(Math.round(measured));
      e.observedFor = a.wakeFrom;
    }
  } else {
    // Clipped, so that one slow answer (an unplanned cold start) does not make the normal time.
    const ms = now - a.startedAt;
    e.normal[k] = normal === 0 ? ms : normal + EWMA_WEIGHT * (Math.min(ms, 4 * normal) - normal);
  }
  if (e.state !== 'warm') {
    if (e.state !== 'unknown') e.urgent = true;
    e.state = 'warm';
    e.since = now;
    e.heldUntil = now + HOLD_MS;
  }
  e.warmAt = now;
  if (a.ns) pump(a.ctx, a.ns, a.id, e, a.settings, now);
}

/**
 * The attempt failed. A connect failure or 503 of an attempt that woke the backend means nothing
 * is starting it (a platform that does not wake on a request): back to cold until a scale event
 * says otherwise. A timeout says nothing (it may still be starting).
 */
export function lifecycleFailed(a: LifecycleAttempt | null, failure: { kind: 'timeout' | 'connect' | 'status'; status?: number }, now: number = Date.now()): void {
  if (!a || a.wakeFrom === 0) return;
  if (failure.kind !== 'connect' && failure.status !== 503) return;
  const e = a.e;
  e.coldAt = now;
  e.urgent = true;
  if (e.state === 'waking') {
    e.state = 'cold';
    e.since = now;
    e.heldUntil = now + HOLD_MS;
  }
  if (a.ns) pump(a.ctx, a.ns, a.id, e, a.settings, now);
}

/** The attempt is over (answer relayed, failed, or abandoned). Idempotent. */
export function lifecycleEnd(a: LifecycleAttempt | null, now: number = Date.now()): void {
  if (!a || a.ended) return;
  a.ended = true;
  const e = a.e;
  e.inFlight = Math.max(0, e.inFlight - 1);
  if (a.ns) pump(a.ctx, a.ns, a.id, e, a.settings, now);
}

/** Installs a status learnt elsewhere (the admin route's answer to a scale event) in this isolate's copy. */
export function noteLifecycle(backendId: string, status: LifecycleStatus, now: number = Date.now()): void {
  apply(entry(backendId), status, now, false);
}

/** This isolate's copy of one backend, for tests and debugging. */
export function lifecycleView(backendId: string): { state: BackendState; since: number; expectedMs: number | null; inFlight: number; fetchedAt: number; normal: [number, number] } | undefined {
  const e = entries.get(backendId);
  return e && { state: e.state, since: e.since, expectedMs: e.expectedMs, inFlight: e.inFlight, fetchedAt: e.fetchedAt, normal: [...e.normal] };
}

// ------------------------------------------------------------------ internals

function namespace(env: Record<string, unknown>): Ns | undefined {
  return env.BACKEND_LIFECYCLE as Ns | undefined;
}

function stubOf(ns: Ns, backendId: string): DurableObjectStub<BackendLifecycle> {
  return ns.get(ns.idFromName(backendId));
}

function expectedOf(e: Entry, s: LifecycleSettings): number {
  return e.expectedMs ?? expectedColdStart([], s.configured_ms) ?? 0;
}

function hasNews(e: Entry): boolean {
  return e.started > 0 || e.warmAt !== null || e.coldAt !== null || e.observed !== null || e.inFlight !== e.reportedInFlight;
}

/** Starts the report loop for a backend unless one is running (it will pick the news up). */
function pump(ctx: WaitUntil, ns: Ns, id: string, e: Entry, s: LifecycleSettings, now: number): void {
  e.reports.pump(ctx, { id, e, ns, s }, now);
}

/**
 * Each backend's report loop: counts ride along within REPORT_INTERVAL_MS, news goes within
 * URGENT_GAP_MS, until nothing is left to say (or LOOP_MAX_MS has passed).
 */
const REPORTS: ReportLoopSpec<LoopArgs, LifecycleReport, LifecycleStatus> = {
  what: 'lifecycle',
  maxLoopMs: LOOP_MAX_MS,
  due(now, { e }) {
    if (!hasNews(e)) return 'idle';
    return Math.max(0, (e.urgent ? URGENT_GAP_MS : REPORT_INTERVAL_MS) - (now - e.lastFlushAt));
  },
  take(now, { id, e, s }) {
    const batch: LifecycleReport = {
      backend: id,
      settings: s,
      isolate: (isolateId ??= crypto.randomUUID()),
      in_flight: e.inFlight,
      requests: e.started,
      last_request_at: e.lastRequestAt || null,
      warm_at: e.warmAt,
      cold_at: e.coldAt,
      observed: e.observed ?? [],
    };
    e.started = 0;
    e.warmAt = null;
    e.coldAt = null;
    e.observed = null;
    e.urgent = false;
    e.reportedInFlight = batch.in_flight;
    e.lastReportedRequestAt = e.lastRequestAt;
    e.lastFlushAt = now;
    return batch;
  },
  send: (batch, { id, ns }) => stubOf(ns, id).report(batch),
  apply: (status, { e }) => apply(e, status, Date.now(), false),
  // Not retried: the object may have counted it. The next batch carries the in-flight count again.
  failed: (err, _batch, { id }) => console.warn(`lifecycle ${id}: report failed: ${errorMessage(err)}`),
};

/**
 * Installs the object's answer. An answer older than the copy is ignored; a background read does
 * not overwrite local news younger than HOLD_MS (the report carrying it is on its way).
 */
function apply(e: Entry, status: LifecycleStatus, now: number, fromRead: boolean): void {
  if (!status || typeof status.state !== 'string' || typeof status.version !== 'number') return;
  if (status.version < e.version) return;
  e.remoteLastRequestAt = status.last_request_at ?? 0;
  e.remoteInFlight = status.in_flight;
  e.replicas = status.replicas;
  e.expectedMs = status.expected_ms;
  e.fetchedAt = now;
  if (fromRead && now < e.heldUntil) return;
  e.version = status.version;
  e.state = status.state;
  e.since = status.since ?? 0;
}
