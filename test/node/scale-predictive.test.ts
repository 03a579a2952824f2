/** Predictive parking (scripts/scale/predictive.ts): the learnt profile and the decisions on top of the reactive policy. */
import { describe, expect, it } from 'vitest';
import { expectedRequests, learnProfile, predictiveDecide } from '../../scripts/scale/predictive';
import type { ScalingConfig } from '../../worker/config/scaling';
import { backendStatus } from '../setup/scale/router';

const DAY = 24 * 3_600_000;
const H = 3_600_000;
const scaling: ScalingConfig = { driver: 'sim', idle_minutes: 15, min_replicas: 0, max_replicas: 1, wake_replicas: 1, keep_warm: [] };

/** Two days of history: "a" busy 09:00-17:00 (10 requests an hour), "b" one batch at 03:00. */
function history() {
  const out: { backend: string; dayMs: number }[] = [];
  for (let day = 0; day < 2; day++) {
    for (let h = 9; h < 17; h++) for (let i = 0; i < 10; i++) out.push({ backend: 'a', dayMs: h * H + i * 6 * 60_000 });
    for (let i = 0; i < 12; i++) out.push({ backend: 'b', dayMs: 3 * H + i * 5_000 });
  }
  return out;
}

describe('daily profile', () => {
  it('averages over the days and smooths over neighbouring slots', () => {
    const p = learnProfile(history(), 2, { dayMs: DAY, slots: 24, smooth: 0 });
    expect(expectedRequests(p, 'a', 9 * H, 17 * H)).toBeCloseTo(80, 6);
    expect(expectedRequests(p, 'a', 0, 9 * H)).toBe(0);
    expect(expectedRequests(p, 'b', 3 * H, 3.5 * H)).toBeCloseTo(6, 6); // half of the 03:00 slot's 12
    expect(expectedRequests(p, 'unknown', 0, DAY)).toBe(0);
    const smoothed = learnProfile(history(), 2, { dayMs: DAY, slots: 24, smooth: 1 });
    expect(expectedRequests(smoothed, 'b', 2 * H, 3 * H)).toBeCloseTo(4, 6); // a third of 12 spills into 02:00
    // Wraps past midnight.
    expect(expectedRequests(smoothed, 'a', 23 * H, DAY + 10 * H)).toBeCloseTo(expectedRequests(smoothed, 'a', 0, 10 * H), 6);
  });
});

describe('predictive decisions', () => {
  const profile = learnProfile(history(), 2, { dayMs: DAY, slots: 96, smooth: 1 });
  let clock = 0;
  const predictive = predictiveDecide({ profile, timeOfDay: () => clock, leadMs: () => 20 * 60_000, wakeAt: 0.5 });
  const now = new Date('2026-06-10T12:00:00Z');
  const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();
  const warmIdle = (id: string, idleMs: number) => backendStatus(id, { state: 'warm', state_since: ago(DAY), last_request_at: ago(idleMs) });

  it('parks a warm backend as soon as its quiet hours begin, before the idle window', () => {
    clock = 17.5 * H; // after a's day
    const d = predictive({ id: 'a', status: warmIdle('a', 5 * 60_000), scaling, now, current: 1 });
    expect(d.action).toBe('scale_to_zero');
    expect(d.reason).toMatch(/predicted quiet/);
  });

  it('keeps it warm while its day is on, and right after a request', () => {
    clock = 12 * H;
    expect(predictive({ id: 'a', status: warmIdle('a', 10 * 60_000), scaling, now, current: 1 }).action).toBe('keep');
    clock = 17.5 * H;
    expect(predictive({ id: 'a', status: warmIdle('a', 30_000), scaling, now, current: 1 }).action).toBe('keep');
  });

  it('wakes a parked backend ahead of its usual ramp, and not otherwise', () => {
    clock = 8.8 * H; // 12 minutes before 09:00, with a 20-minute lead
    const parked = backendStatus('a', { state: 'cold', state_since: ago(H) });
    const d = predictive({ id: 'a', status: parked, scaling, now, current: 0 });
    expect(d).toMatchObject({ action: 'scale_up', target: 1 });
    expect(d.reason).toMatch(/predicted ramp/);
    clock = 6 * H;
    expect(predictive({ id: 'a', status: parked, scaling, now, current: 0 }).action).toBe('keep');
    clock = 2.8 * H; // the nightly batch of b
    expect(predictive({ id: 'b', status: backendStatus('b', { state: 'cold', state_since: ago(H) }), scaling, now, current: 0 }).action).toBe('scale_up');
  });

  it('weighs the threshold by backend: an expensive one parks at traffic a cheap one keeps warm for', () => {
    clock = 16.9 * H; // the last minutes of a's day: about 2 requests left in the next hour
    const weighted = predictiveDecide({ profile, timeOfDay: () => clock, leadMs: () => 20 * 60_000, parkBelow: (id) => (id === 'a' ? 8 * 0.5 : 0.5) });
    expect(weighted({ id: 'a', status: warmIdle('a', 5 * 60_000), scaling, now, current: 1 }).action).toBe('scale_to_zero');
    expect(predictive({ id: 'a', status: warmIdle('a', 5 * 60_000), scaling, now, current: 1 }).action).toBe('keep');
  });

  it('leaves the reactive policy in charge of wake-ups, requests in flight and backends it knows nothing of', () => {
    clock = 17.5 * H;
    expect(predictive({ id: 'a', status: { ...warmIdle('a', H), in_flight: 2 }, scaling, now, current: 1 }).action).toBe('keep');
    expect(predictive({ id: 'a', status: { ...warmIdle('a', H), pending_wakeups: 1 }, scaling, now, current: 1 }).action).toBe('keep');
    expect(predictive({ id: 'z', status: warmIdle('z', 5 * 60_000), scaling, now, current: 1 }).action).toBe('scale_to_zero'); // no history: nothing expected
    const none = learnProfile([], 0, { dayMs: DAY });
    expect(predictiveDecide({ profile: none, timeOfDay: () => clock, leadMs: () => 0 })({ id: 'a', status: warmIdle('a', 5 * 60_000), scaling, now, current: 1 }).action).toBe('keep');
  });
});

describe('profile from the router', () => {
  it('learns hourly slots from /admin/usage?group_by=backend&granularity=hour over the history days', async () => {
    const { listen, json } = await import('../setup/scale/http');
    const asked: string[] = [];
    const now = Date.UTC(2026, 5, 10, 12, 30);
    const server = await listen((req, _body, res) => {
      asked.push(req.url ?? '');
      if (req.headers.authorization !== 'Bearer tok') return json(res, 401, {});
      json(res, 200, {
        rows: [
          { bucket: '2026-06-08T09:00:00.000Z', backend: 'a', requests: 30 },
          { bucket: '2026-06-09T09:00:00.000Z', backend: 'a', requests: 10 },
          { bucket: '2026-06-09T03:00:00.000Z', backend: 'b', requests: 12 },
          { bucket: '2026-06-09T04:00:00.000Z', backend: null, requests: 5 },
        ],
      });
    });
    try {
      const { profileFromRouter } = await import('../../scripts/scale/predictive');
      const p = await profileFromRouter({ router: server.url, adminToken: 'tok', days: 2, now });
      expect(asked[0]).toContain('group_by=backend&granularity=hour');
      expect(asked[0]).toContain('from=2026-06-08T12:00:00.000Z&to=2026-06-10T12:00:00.000Z');
      expect(expectedRequests(p, 'a', 9 * H, 10 * H)).toBeCloseTo(20, 6); // (30 + 10) / 2 days
      expect(expectedRequests(p, 'b', 3 * H, 4 * H)).toBeCloseTo(6, 6);
      expect([...p.perSlot.keys()].sort()).toEqual(['a', 'b']);
      await expect(profileFromRouter({ router: server.url, adminToken: 'bad', days: 2, now })).rejects.toThrow(/HTTP 401/);
    } finally {
      await server.close();
    }
  });
});
