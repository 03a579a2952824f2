/**
 * plan, apply and watch: one round reads /admin/backends, asks each backend's driver what runs,
 * decides (policy.ts) and, for apply, acts and reports events. Backends are handled independently
 * (Promise.allSettled): one driver failing marks its row failed and leaves the others alone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendEvent, BackendList, BackendStatus } from '../../worker/protocol/backends-api';
import type { ScaleBackend } from './config';
import type { Drivers } from './drivers';
import { errorMessage, type CurrentScale, type ScaleTarget } from './drivers/types';
import { eventsFor } from './events';
import { decide, type Decision, type PolicyInput } from './policy';
import type { RouterClient } from './router-client';

export interface ScaleContext {
  router: RouterClient;
  backends: readonly ScaleBackend[];
  drivers: Drivers;
  /** The decision per backend (default policy.ts decide); predictive.ts provides another. */
  decide?: (input: PolicyInput & { id: string }) => Decision;
}

export interface Row {
  id: string;
  /** Driver name, "none", or "-" for a backend the config does not know. */
  driver: string;
  status: BackendStatus | undefined;
  current?: CurrentScale;
  decision?: Decision;
  /** What the driver did (apply). */
  result?: string;
  /** Events reported to the router (apply). */
  events: BackendEvent[];
  error?: string;
}

export interface Round {
  rows: Row[];
  /** The router's clock at the read the decisions used. */
  routerNow: Date;
  failed: boolean;
}

const SCALING_ACTIONS = new Set<Decision['action']>(['scale_to_zero', 'scale_up', 'set_replicas']);

/** Read-only: what apply would do now. */
export async function planRound(ctx: ScaleContext): Promise<Round> {
  const list = await ctx.router.backends();
  const routerNow = clock(list);
  const rows = await settleAll(rowIds(ctx, list), (id) => inspect(ctx, id, list, routerNow));
  return { rows, routerNow, failed: rows.some((r) => r.error) };
}

export async function applyRound(ctx: ScaleContext): Promise<Round> {
  const planned = await planRound(ctx);
  let { rows } = planned;
  const { routerNow } = planned;

  // Parking is the one action that can hurt, and the first read may be a few seconds old by now
  // (drivers were called): re-read the router and re-decide before any scale-down.
  const downs = rows.filter((r) => r.decision && (r.decision.action === 'scale_to_zero' || r.decision.action === 'set_replicas'));
  if (downs.length) {
    let fresh: BackendList | undefined;
    let freshError = '';
    try {
      fresh = await ctx.router.backends();
    } catch (e) {
      freshError = errorMessage(e);
    }
    rows = rows.map((r) => {
      if (!downs.includes(r)) return r;
      if (!fresh) return { ...r, error: `not scaled down: could not re-check the router (${freshError})` };
      const status = fresh.data.find((s) => s.id === r.id);
      const scaling = ctx.backends.find((b) => b.id === r.id)?.scaling;
      return { ...r, status, decision: (ctx.decide ?? decide)({ id: r.id, status, scaling, now: clock(fresh), current: r.current?.replicas ?? null }) };
    });
  }

  rows = await settleAll(
    rows.map((r) => r.id),
    async (id) => {
      const row = rows.find((r) => r.id === id)!;
      if (row.error || !row.decision || !row.current) return row;
      const backend = ctx.backends.find((b) => b.id === id)!;
      const scaling = backend.scaling!;
      const out: Row = { ...row, events: [] };
      const acted = SCALING_ACTIONS.has(row.decision.action) && row.decision.target !== null;
      if (acted && scaling.driver !== 'none') {
        const driver = await ctx.drivers(scaling.driver);
        const target: ScaleTarget = { id, url: backend.url, scaling, status: row.status };
        try {
          out.result = (await driver.scale(target, row.decision.target!)).detail;
        } catch (e) {
          return { ...out, error: errorMessage(e) };
        }
      }
      const events = eventsFor({ status: row.status, before: row.current, decision: row.decision, acted, routerNow });
      for (const event of events) {
        try {
          await ctx.router.report(id, event);
          out.events.push(event);
        } catch (e) {
          return { ...out, error: `${acted ? 'scaled, but ' : ''}reporting ${event.type} failed: ${errorMessage(e)}` };
        }
      }
      return out;
    },
  );
  return { rows, routerNow, failed: rows.some((r) => r.error) };
}

export interface WatchOptions {
  ctx: ScaleContext;
  /** Between rounds when nothing waits (default 30 s). */
  intervalMs?: number;
  /** Between rounds while a wake-up is pending or a start is being watched for readiness (default 2 s). */
  wakeIntervalMs?: number;
  /** After each round (a table for the operator, a hook for tests). */
  onRound?: (round: Round, n: number) => void;
  /** A round that could not run at all (router unreachable, …); the loop goes on. */
  onError?: (error: unknown, n: number) => void;
}

/**
 * apply in a loop until `signal` aborts. Rounds come every intervalMs, and every wakeIntervalMs
 * while the router has wake-ups pending or a backend is waking and its driver can see readiness
 * (so `ready` is reported within seconds of the replicas serving).
 */
export async function watch(opts: WatchOptions, signal: AbortSignal): Promise<{ rounds: number }> {
  const interval = opts.intervalMs ?? 30_000;
  const fast = Math.min(interval, opts.wakeIntervalMs ?? 2_000);
  let n = 0;
  while (!signal.aborted) {
    n += 1;
    let urgent = false;
    try {
      const round = await applyRound(opts.ctx);
      urgent = round.rows.some((r) => needsFollowUp(r, round.routerNow));
      opts.onRound?.(round, n);
    } catch (e) {
      opts.onError?.(e, n);
    }
    if (signal.aborted) break;
    try {
      await sleep(urgent ? fast : interval, undefined, { signal });
    } catch {
      break; // aborted
    }
  }
  return { rounds: n };
}

/** Longest a start is watched at the fast pace (the schema's largest cold_start_ms). */
const WAKE_WATCH_MS = 30 * 60_000;

export function needsFollowUp(r: Row, routerNow: Date): boolean {
  const s = r.status;
  // A failing backend is retried at the normal pace, not every few seconds.
  if (!s || r.error || r.decision?.action === 'skip') return false;
  if (s.pending_wakeups > 0) return true;
  // Readiness is only worth polling for when the driver can see it (not Replicate), and not forever.
  if (r.current?.ready === null || r.current?.ready === undefined) return false;
  if (r.events.some((e) => e.type === 'waking')) return true;
  const since = s.state_since === null ? Number.NaN : Date.parse(s.state_since);
  return s.state === 'waking' && Number.isFinite(since) && routerNow.getTime() - since < WAKE_WATCH_MS;
}

/** Config order first, then backends only the router reports (shown, never acted on). */
function rowIds(ctx: ScaleContext, list: BackendList): string[] {
  const ids = ctx.backends.map((b) => b.id);
  for (const s of list.data) if (!ids.includes(s.id)) ids.push(s.id);
  return ids;
}

async function inspect(ctx: ScaleContext, id: string, list: BackendList, routerNow: Date): Promise<Row> {
  const status = list.data.find((s) => s.id === id);
  const backend = ctx.backends.find((b) => b.id === id);
  if (!backend) return { id, driver: '-', status, events: [], decision: { action: 'skip', target: null, reason: 'not in the config' } };
  const scaling = backend.scaling;
  const row: Row = { id, driver: scaling?.driver ?? 'none', status, events: [] };
  const decideFor = ctx.decide ?? decide;
  if (!scaling || scaling.driver === 'none') return { ...row, decision: decideFor({ id, status, scaling, now: routerNow, current: null }) };
  try {
    row.current = await (await ctx.drivers(scaling.driver)).current({ id, url: backend.url, scaling, status });
  } catch (e) {
    return { ...row, error: errorMessage(e) };
  }
  return { ...row, decision: decideFor({ id, status, scaling, now: routerNow, current: row.current.replicas }) };
}

async function settleAll(ids: readonly string[], fn: (id: string) => Promise<Row>): Promise<Row[]> {
  const settled = await Promise.allSettled(ids.map(fn));
  return settled.map((s, i) => (s.status === 'fulfilled' ? s.value : { id: ids[i]!, driver: '?', status: undefined, events: [], error: errorMessage(s.reason) }));
}

/** The router's `now` (its clock is the one last_request_at and state_since were written with). */
function clock(list: BackendList): Date {
  const t = Date.parse(list.now);
  return Number.isFinite(t) ? new Date(t) : new Date();
}
