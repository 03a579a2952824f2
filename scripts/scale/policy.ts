/**
 * The scale-to-zero decision for one backend: a pure function of what the router reports, the
 * backend's [scaling] policy, the time and the replicas the driver sees. plan, apply and watch
 * all call it; nothing here talks to the network.
 *
 * Order matters and is the policy:
 *   1. pending wake-ups win: start (at least) wake_replicas, never park;
 *   2. a state the router does not know yet is left alone;
 *   3. above max_replicas: down to max;  below the floor (min_replicas, keep-warm window): up to it;
 *   4. requests in flight: keep; at zero with a zero floor: keep (parked);
 *   5. idle for idle_minutes (since the last request, wake-up or state change): down to the floor,
 *      which is zero outside keep-warm windows when min_replicas = 0.
 */
import type { BackendStatus } from '../../worker/protocol/backends-api';
import type { ScalingConfig } from '../../worker/config/scaling';
import { activeWindow, describeWindow } from './schedule';

export type ScaleAction = 'scale_to_zero' | 'scale_up' | 'set_replicas' | 'keep' | 'skip';

export interface Decision {
  action: ScaleAction;
  /** Replicas wanted; for keep, the current count (null when unknown); null for skip. */
  target: number | null;
  reason: string;
}

export interface PolicyInput {
  status: BackendStatus | undefined;
  scaling: ScalingConfig | undefined;
  /** The router's clock (its `now`), so idle times compare timestamps from one clock. */
  now: Date;
  /** Replicas as the driver reports them; null when it cannot tell. */
  current: number | null;
}

export function decide({ status, scaling, now, current }: PolicyInput): Decision {
  if (!scaling) return { action: 'skip', target: null, reason: 'no [scaling] table' };
  if (scaling.driver === 'none') return { action: 'skip', target: null, reason: 'driver "none": not scaled by these scripts' };

  const keep = (reason: string): Decision => ({ action: 'keep', target: current, reason });
  /** The action that takes `current` to `target`, or keep when it is there already. */
  const to = (target: number, reason: string): Decision => {
    if (current === target) return keep(`${reason}; already ${plural(target, 'replica')}`);
    if (target === 0) return { action: 'scale_to_zero', target, reason };
    if (current === null || target > current) return { action: 'scale_up', target, reason };
    return { action: 'set_replicas', target, reason };
  };

  if (!status) return keep('the router does not report this backend');

  const max = scaling.max_replicas;
  const window = activeWindow(scaling.keep_warm, now);
  const floor = Math.min(max, Math.max(scaling.min_replicas, window?.replicas ?? 0));
  const floorWhy = window ? `keep-warm ${describeWindow(window)}` : `min_replicas = ${scaling.min_replicas}`;

  if (status.pending_wakeups > 0) {
    const want = Math.min(max, Math.max(floor, scaling.wake_replicas));
    const since = status.wakeup_requested_at ? ` (since ${ago(now, status.wakeup_requested_at)})` : '';
    const why = `${plural(status.pending_wakeups, 'wake-up')} pending${since}`;
    if (current !== null && current >= want) return keep(`${why}; ${plural(current, 'replica')} already`);
    return to(want, why);
  }
  if (status.state === 'unknown') return keep('state unknown to the router (no event or request yet)');

  if (current !== null && current > max) return to(max, `above max_replicas = ${max}`);
  if (floor > 0 && (current === null || current < floor)) return to(floor, floorWhy);

  if (status.in_flight > 0) return keep(`${plural(status.in_flight, 'request')} in flight`);
  if (current === 0 && floor === 0) return keep('parked');

  const last = lastActivity(status);
  if (last === undefined) return keep('no activity recorded by the router');
  const idleMs = now.getTime() - last;
  const windowMs = scaling.idle_minutes * 60_000;
  if (idleMs < windowMs) return keep(`active ${duration(Math.max(0, idleMs))} ago; idle after ${duration(windowMs)}`);
  const idle = `idle ${duration(idleMs)} (≥ ${duration(windowMs)})`;
  return to(floor, floor > 0 ? `${idle}, down to ${floorWhy}` : idle);
}

/** Latest of the last request, the oldest pending wake-up and the last state change (a fresh wake counts as activity). */
export function lastActivity(s: BackendStatus): number | undefined {
  const times = [s.last_request_at, s.wakeup_requested_at, s.state_since]
    .map((t) => (t === null ? Number.NaN : Date.parse(t)))
    .filter((t) => Number.isFinite(t));
  return times.length ? Math.max(...times) : undefined;
}

export function duration(ms: number): string {
  const m = Math.floor(ms / 60_000);
  if (m < 1) return `${Math.floor(ms / 1000)}s`;
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d`;
}

function ago(now: Date, iso: string): string {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? `${duration(Math.max(0, now.getTime() - t))} ago` : iso;
}

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
