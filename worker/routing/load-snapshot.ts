// This isolate's view of every backend's own load, as scraped from its /metrics by the
// BackendMetrics Durable Object (durable-objects/backend-metrics.ts). Reading it is synchronous
// and from memory; refreshing it happens in waitUntil, so a request never waits on the scrape
// or on the Durable Object. A backend whose entry is missing, failed or older than
// routing.load_stale_ms has no known load (undefined): the planner falls back to in-flight counts.

import type { CompiledConfig } from '../config/compiled';
import type { BackendMetrics, Env } from '../env';
import { background, errorMessage, type WaitUntil } from '../isolate/background';
import { registerIsolateState } from '../isolate/registry';
import { SingleFlight } from '../isolate/single-flight';
import type { LoadSnapshot } from '../protocol/backend-metrics';
import type { BackendLoad } from '../protocol/rules/metrics-parse';

/** Backend id → its last good load. Only entries with a load are kept. */
let loads = new Map<string, BackendLoad>();
/** takenAt of the snapshot `loads` came from (0: none). */
let takenAt = 0;
let staleMs = 30_000;
/** When this isolate last started a refresh (success or not, so failures back off one interval). */
let lastRefreshAt = Number.NEGATIVE_INFINITY;
/** The refresh in flight, if any. */
let refresh = new SingleFlight();
/** Bumped by a reset so a refresh started before it cannot install its answer. */
let generation = 0;

registerIsolateState('load-snapshot', () => {
  loads = new Map();
  takenAt = 0;
  staleMs = 30_000;
  lastRefreshAt = Number.NEGATIVE_INFINITY;
  refresh = new SingleFlight();
  generation++;
});

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
  ctx: WaitUntil,
  config: CompiledConfig,
  now: number = Date.now(),
): void {
  const routing = config.raw.routing;
  staleMs = routing.load_stale_ms;
  if (now - lastRefreshAt < routing.scrape_interval_ms) return;
  if (refresh.running(now)) return;
  const ns = env.BACKEND_METRICS;
  if (!ns) return;
  lastRefreshAt = now;
  const flight = refresh;
  const mine = flight.start(now);
  if (!background(ctx, fetchSnapshot(ns, flight, mine, generation), 'load-snapshot')) flight.done(mine);
}

async function fetchSnapshot(ns: DurableObjectNamespace<BackendMetrics>, flight: SingleFlight, mine: number, gen: number): Promise<void> {
  try {
    const stub = ns.get(ns.idFromName('global'));
    const snap = await stub.snapshot();
    if (gen === generation) install(snap);
  } catch (e) {
    console.warn(`load-snapshot: refresh failed: ${errorMessage(e)}`);
  } finally {
    flight.done(mine);
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
