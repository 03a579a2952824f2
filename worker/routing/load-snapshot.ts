// This isolate's view of every backend's own load, as scraped from its /metrics by the
// BackendMetrics Durable Object (durable-objects/backend-metrics.ts). Reading it is synchronous
// and from memory; refreshing it happens in waitUntil, so a request never waits on the scrape
// or on the Durable Object. A backend whose entry is missing, failed or older than
// routing.load_stale_ms has no known load (undefined): the planner falls back to in-flight counts.

import type { BackendMetrics } from '../env';
import type { LoadSnapshot } from '../protocol/backend-metrics';
import type { CompiledConfig } from '../config/compiled';
import type { Env } from '../env';
import type { BackendLoad } from '../protocol/rules/metrics-parse';


/** A refresh that has not settled after this long is taken as lost (its waitUntil was cut short). */
const REFRESH_GIVE_UP_MS = 15_000;

/** Backend id → its last good load. Only entries with a load are kept. */
let loads = new Map<string, BackendLoad>();
/** takenAt of the snapshot `loads` came from (0: none). */
let takenAt = 0;
let staleMs = 30_000;
/** When this isolate last started a refresh (success or not, so failures back off one interval). */
let lastRefreshAt = Number.NEGATIVE_INFINITY;
/** The refresh in flight, if any. */
let inFlight: { since: number } | null = null;
/** Bumped by resetLoadSnapshot so a refresh started before it cannot install its answer. */
let generation = 0;

/**
 * The backend's load from the last snapshot this isolate holds, or undefined when there is
 * none, its scrape failed, or it is older than routing.load_stale_ms. Synchronous; no I/O.
 */
export function backendLoad(id: string, now: number = Date.now()): BackendLoad | undefined {
  const load = loads.get(id);
  return load !== undefined && now - load.scrapedAt <= staleMs ? load : undefined;
}

/**
 * Called on every request: when this isolate last refreshed more than routing.scrape_interval_ms
 * ago and no refresh is in flight, asks the BackendMetrics object for its snapshot in
 * `ctx.waitUntil`. Returns at once; errors are logged, never thrown.
 */
export function refreshLoad(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  now: number = Date.now(),
): void {
  const routing = config.raw.routing;
  staleMs = routing.load_stale_ms;
  if (now - lastRefreshAt < routing.scrape_interval_ms) return;
  if (inFlight !== null && now - inFlight.since < REFRESH_GIVE_UP_MS) return;
  const ns = env.BACKEND_METRICS;
  if (!ns) return;
  lastRefreshAt = now;
  const mine = (inFlight = { since: now });
  try {
    ctx.waitUntil(fetchSnapshot(ns, mine, generation));
  } catch (e) {
    inFlight = null;
    console.warn(`load-snapshot: refresh not started: ${message(e)}`);
  }
}

async function fetchSnapshot(ns: DurableObjectNamespace<BackendMetrics>, mine: { since: number }, gen: number): Promise<void> {
  try {
    const stub = ns.get(ns.idFromName('global'));
    const snap = await stub.snapshot();
    if (gen === generation) install(snap);
  } catch (e) {
    console.warn(`load-snapshot: refresh failed: ${message(e)}`);
  } finally {
    if (inFlight === mine) inFlight = null;
  }
}

function install(snap: LoadSnapshot): void {
  if (typeof snap !== 'object' || snap === null || typeof snap.takenAt !== 'number') return;
  if (snap.takenAt < takenAt) return; // a late answer to an abandoned refresh
  const next = new Map<string, BackendLoad>();
  for (const [id, entry] of Object.entries(snap.backends ?? {})) {
    if (entry && typeof (entry as BackendLoad).running === 'number' && typeof (entry as BackendLoad).scrapedAt === 'number') {
      next.set(id, entry as BackendLoad);
    }
  }
  loads = next;
  takenAt = snap.takenAt;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** For tests: forget the snapshot and any refresh in flight, as a fresh isolate would. */
export function resetLoadSnapshot(): void {
  loads = new Map();
  takenAt = 0;
  staleMs = 30_000;
  lastRefreshAt = Number.NEGATIVE_INFINITY;
  inFlight = null;
  generation++;
}
