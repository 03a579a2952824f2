/**
 * Predictive parking: park and wake by the daily shape of each backend's traffic, learnt from its
 * request history, instead of waiting out a fixed idle window.
 *
 * The profile: for each backend, the mean number of requests in each slot of the day (96 slots of
 * 15 minutes by default) over the days of history, smoothed over the neighbouring slots (a
 * Poisson count of one day is noisy; a burst that recurs daily keeps its slot).
 *
 * The decision, per backend, on top of the reactive policy (policy.ts), which still handles pending
 * wake-ups, unknown states, floors and requests in flight:
 *   - warm, nothing in flight, no request for `min_idle_ms`, and the traffic expected over the next
 *     `horizon_ms` is below `park_below` requests: keeping it warm over that window costs more GPU
 *     time than the expected cold starts it would spare (a start is paid once by the first request,
 *     the window is paid whole) → park now, without waiting for the idle window;
 *   - parked, and the traffic expected between now and `lead_ms` ahead (its cold start plus a
 *     margin) reaches `wake_at` requests → start it now, so it is warm when the ramp arrives.
 * A profile that says nothing (no history) leaves the reactive decision as it is.
 */
import type { BackendStatus } from '../../worker/protocol/backends-api';
import { decide, type Decision, type PolicyInput } from './policy';

export interface ProfileOptions {
  dayMs: number;
  /** Slots per day (default 96: 15 minutes of a real day). */
  slots?: number;
  /** Slots on each side averaged in (default 1). */
  smooth?: number;
}

export interface DailyProfile {
  dayMs: number;
  slots: number;
  /** Mean requests per slot, by backend. */
  perSlot: Map<string, number[]>;
}

/**
 * Learns each backend's daily profile from request history: (backend, time of day in ms) pairs
 * over `days` days; `count` (default 1) when one entry stands for several requests (an hourly row).
 */
export function learnProfile(history: Iterable<{ backend: string; dayMs: number; count?: number }>, days: number, o: ProfileOptions): DailyProfile {
  const slots = o.slots ?? 96;
  const smooth = o.smooth ?? 1;
  const counts = new Map<string, number[]>();
  for (const h of history) {
    const slot = Math.min(slots - 1, Math.max(0, Math.floor((((h.dayMs % o.dayMs) + o.dayMs) % o.dayMs) / (o.dayMs / slots))));
    const c = counts.get(h.backend) ?? new Array<number>(slots).fill(0);
    c[slot]! += h.count ?? 1;
    counts.set(h.backend, c);
  }
  const perSlot = new Map<string, number[]>();
  for (const [id, c] of counts) {
    perSlot.set(
      id,
      c.map((_, i) => {
        let sum = 0;
        for (let d = -smooth; d <= smooth; d++) sum += c[(i + d + slots) % slots]!;
        return sum / (2 * smooth + 1) / Math.max(1, days);
      }),
    );
  }
  return { dayMs: o.dayMs, slots, perSlot };
}

/** Requests the profile expects for `backend` between two times of day (ms; wraps past midnight). */
export function expectedRequests(p: DailyProfile, backend: string, fromMs: number, toMs: number): number {
  const per = p.perSlot.get(backend);
  if (!per || toMs <= fromMs) return 0;
  const slotMs = p.dayMs / p.slots;
  let total = 0;
  for (let t = fromMs; t < toMs; ) {
    const inDay = ((t % p.dayMs) + p.dayMs) % p.dayMs;
    const slot = Math.floor(inDay / slotMs);
    const slotEnd = t - inDay + (slot + 1) * slotMs;
    // At a slot boundary, float rounding can put slotEnd at t itself: step over to the next slot.
    const end = slotEnd > t ? Math.min(toMs, slotEnd) : Math.min(toMs, t + slotMs);
    total += per[Math.min(slot, per.length - 1)]! * ((end - t) / slotMs);
    t = end;
  }
  return total;
}

export interface PredictiveOptions {
  profile: DailyProfile;
  /** The time of day now (ms since midnight, on the profile's clock). */
  timeOfDay: () => number;
  /** Window whose expected traffic decides a park (default: an hour of the profile's day). */
  horizonMs?: number;
  /**
   * Park when fewer requests than this are expected over the horizon (default 0.5). By backend, it
   * weighs what a warm hour costs against what a cold start costs: a backend with 8 GPUs pays for
   * its warm window 8 times what a 1-GPU one does, so it may park at 8 times the traffic.
   */
  parkBelow?: number | ((backendId: string) => number);
  /** No park within this long of the last request (default: 2 minutes of the profile's day). */
  minIdleMs?: number;
  /** How far ahead a parked backend looks for its ramp, by backend (its cold start plus a margin). */
  leadMs: (backendId: string) => number;
  /**
   * Start a parked backend when at least this many requests are expected within the lead. Default:
   * the park threshold's rate over the lead (parkBelow × lead / horizon), so it wakes for the
   * traffic it would not park in.
   */
  wakeAt?: number | ((backendId: string) => number);
}

export type DecideFn = (input: PolicyInput & { id: string }) => Decision;

/** A decision function for the scale round (ScaleContext.decide) that parks and wakes by the profile. */
export function predictiveDecide(o: PredictiveOptions): DecideFn {
  const hour = o.profile.dayMs / 24;
  const horizon = o.horizonMs ?? hour;
  const parkBelowOf = (id: string) => (typeof o.parkBelow === 'function' ? o.parkBelow(id) : (o.parkBelow ?? 0.5));
  const minIdle = o.minIdleMs ?? hour / 30;
  const wakeAtOf = (id: string, lead: number) => (typeof o.wakeAt === 'function' ? o.wakeAt(id) : (o.wakeAt ?? (parkBelowOf(id) * lead) / horizon));
  return (input) => {
    const base = decide(input);
    const { status, scaling, current, id } = input;
    if (!status || !scaling || scaling.driver === 'none' || !o.profile.perSlot.size) return base;
    // The reactive policy's own reasons to act or hold come first: wake-ups, floors, unknown state.
    if (base.action === 'scale_up' || base.action === 'set_replicas' || status.pending_wakeups > 0 || status.state === 'unknown') return base;
    if (base.action === 'skip' || status.in_flight > 0) return base;
    const now = o.timeOfDay();
    if (current === 0) {
      const lead = o.leadMs(id);
      const ahead = expectedRequests(o.profile, id, now, now + lead);
      if (ahead > 0 && ahead >= wakeAtOf(id, lead)) return { action: 'scale_up', target: Math.max(1, scaling.wake_replicas), reason: `predicted ramp: ${ahead.toFixed(2)} requests expected within ${Math.round(lead)} ms` };
      return base;
    }
    if (base.action === 'scale_to_zero') return base;
    const idle = idleFor(status, input.now);
    if (idle !== undefined && idle < minIdle) return base;
    const next = expectedRequests(o.profile, id, now, now + horizon);
    const parkBelow = parkBelowOf(id);
    if (next < parkBelow && (current ?? 1) > 0) {
      return { action: 'scale_to_zero', target: 0, reason: `predicted quiet: ${next.toFixed(2)} requests expected in the next ${Math.round(horizon)} ms (< ${parkBelow})` };
    }
    return base;
  };
}

function idleFor(s: BackendStatus, now: Date): number | undefined {
  const t = s.last_request_at === null ? Number.NaN : Date.parse(s.last_request_at);
  return Number.isFinite(t) ? now.getTime() - t : undefined;
}

const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/**
 * The router's own request history as a profile: `/admin/usage?group_by=backend&granularity=hour`
 * over the last `days` days (UTC), 24 slots a day, each hour's requests in its slot.
 */
export async function profileFromRouter(o: { router: string; adminToken: string; days: number; now?: number; fetch?: typeof fetch }): Promise<DailyProfile> {
  const now = o.now ?? Date.now();
  const to = Math.floor(now / HOUR_MS) * HOUR_MS; // complete hours only
  const from = to - o.days * DAY_MS;
  const url = `${o.router.replace(/\/+$/, '')}/admin/usage?group_by=backend&granularity=hour&from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`;
  const res = await (o.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${o.adminToken}` }, signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`GET /admin/usage (request history): HTTP ${res.status}`);
  const body = (await res.json()) as { rows?: Array<{ bucket?: unknown; backend?: unknown; requests?: unknown }> };
  const history = (body.rows ?? []).flatMap((r) => {
    const t = typeof r.bucket === 'string' ? Date.parse(r.bucket) : Number.NaN;
    return typeof r.backend === 'string' && typeof r.requests === 'number' && Number.isFinite(t) ? [{ backend: r.backend, dayMs: (t % DAY_MS) + HOUR_MS / 2, count: r.requests }] : [];
  });
  return learnProfile(history, o.days, { dayMs: DAY_MS, slots: 24, smooth: 0 });
}
