/**
 * The scale-to-zero decision (scripts/scale/policy.ts), keep-warm windows in their time zone
 * (schedule.ts) and the events a round reports (events.ts): pure functions, no network.
 */
import { describe, expect, it } from 'vitest';
import { scalingSchema, type ScalingConfig } from '../../worker/config/scaling';
import { scaleConfigFromToml } from '../../scripts/scale/config';
import { eventsFor } from '../../scripts/scale/events';
import { decide, type Decision } from '../../scripts/scale/policy';
import { inWindow, localTime } from '../../scripts/scale/schedule';
import { backendStatus } from '../setup/scale/router';

const NOW = new Date('2026-06-10T12:00:00Z'); // a Wednesday
const minutesAgo = (m: number, now = NOW) => new Date(now.getTime() - m * 60_000).toISOString();

function policy(over: Record<string, unknown> = {}): ScalingConfig {
  return scalingSchema.parse({ driver: 'kubernetes', kubernetes: { deployment: 'vllm' }, ...over });
}

describe('decide', () => {
  it('parks a backend idle for idle_minutes since its last request', () => {
    const d = decide({ status: backendStatus('b', { last_request_at: minutesAgo(16) }), scaling: policy(), now: NOW, current: 1 });
    expect(d).toMatchObject({ action: 'scale_to_zero', target: 0 });
    expect(d.reason).toMatch(/idle 16m/);
  });

  it('keeps a backend used more recently than idle_minutes', () => {
    const d = decide({ status: backendStatus('b', { last_request_at: minutesAgo(14) }), scaling: policy(), now: NOW, current: 1 });
    expect(d).toMatchObject({ action: 'keep', target: 1 });
    expect(d.reason).toMatch(/active 14m ago; idle after 15m/);
  });

  it('honours a custom idle window', () => {
    const status = backendStatus('b', { last_request_at: minutesAgo(45) });
    expect(decide({ status, scaling: policy({ idle_minutes: 60 }), now: NOW, current: 1 }).action).toBe('keep');
    expect(decide({ status, scaling: policy({ idle_minutes: 30 }), now: NOW, current: 1 }).action).toBe('scale_to_zero');
  });

  it('never parks a backend with requests in flight, however idle it looks', () => {
    const d = decide({ status: backendStatus('b', { last_request_at: minutesAgo(600), in_flight: 2 }), scaling: policy(), now: NOW, current: 1 });
    expect(d).toMatchObject({ action: 'keep', target: 1, reason: '2 requests in flight' });
  });

  it('never parks a backend with a pending wake-up; starts wake_replicas instead', () => {
    const status = backendStatus('b', { state: 'cold', last_request_at: minutesAgo(600), pending_wakeups: 3, wakeup_requested_at: minutesAgo(0.5) });
    const d = decide({ status, scaling: policy({ wake_replicas: 2, max_replicas: 4 }), now: NOW, current: 0 });
    expect(d).toMatchObject({ action: 'scale_up', target: 2 });
    expect(d.reason).toMatch(/3 wake-ups pending \(since 30s ago\)/);
    // Already running: keep (events.ts answers the wake-up).
    expect(decide({ status, scaling: policy({ wake_replicas: 2, max_replicas: 4 }), now: NOW, current: 3 })).toMatchObject({ action: 'keep', target: 3 });
  });

  it('a pending wake-up wins over an unknown state', () => {
    const status = backendStatus('b', { state: 'unknown', pending_wakeups: 1 });
    expect(decide({ status, scaling: policy(), now: NOW, current: 0 })).toMatchObject({ action: 'scale_up', target: 1 });
  });

  it('leaves unknown states and backends the router does not report alone', () => {
    expect(decide({ status: backendStatus('b', { state: 'unknown', last_request_at: minutesAgo(600) }), scaling: policy(), now: NOW, current: 1 })).toMatchObject({ action: 'keep', target: 1, reason: expect.stringMatching(/unknown/) });
    expect(decide({ status: undefined, scaling: policy(), now: NOW, current: 2 })).toMatchObject({ action: 'keep', target: 2, reason: 'the router does not report this backend' });
  });

  it('keeps a backend with no recorded activity at all', () => {
    expect(decide({ status: backendStatus('b'), scaling: policy(), now: NOW, current: 1 })).toMatchObject({ action: 'keep', reason: 'no activity recorded by the router' });
  });

  it('measures idle from the latest of last request and state change (a fresh start is not idle)', () => {
    const status = backendStatus('b', { last_request_at: minutesAgo(120), state_since: minutesAgo(3) });
    expect(decide({ status, scaling: policy(), now: NOW, current: 1 }).action).toBe('keep');
  });

  it('is already done when parked: keep, not another scale call', () => {
    const status = backendStatus('b', { state: 'cold', last_request_at: minutesAgo(600), state_since: minutesAgo(500) });
    expect(decide({ status, scaling: policy(), now: NOW, current: 0 })).toMatchObject({ action: 'keep', target: 0, reason: 'parked' });
    // Just parked (the state change is seconds old): still parked, not "active".
    const fresh = backendStatus('b', { state: 'cold', last_request_at: minutesAgo(600), state_since: minutesAgo(0.1) });
    expect(decide({ status: fresh, scaling: policy(), now: NOW, current: 0 })).toMatchObject({ action: 'keep', target: 0, reason: 'parked' });
  });

  it('clamps to min_replicas and max_replicas', () => {
    const idle = backendStatus('b', { last_request_at: minutesAgo(600) });
    expect(decide({ status: idle, scaling: policy({ min_replicas: 1, max_replicas: 3 }), now: NOW, current: 3 })).toMatchObject({ action: 'set_replicas', target: 1 });
    expect(decide({ status: idle, scaling: policy({ min_replicas: 2, max_replicas: 3 }), now: NOW, current: 0 })).toMatchObject({ action: 'scale_up', target: 2, reason: 'min_replicas = 2' });
    const busy = backendStatus('b', { last_request_at: minutesAgo(1), in_flight: 5 });
    expect(decide({ status: busy, scaling: policy({ max_replicas: 2 }), now: NOW, current: 5 })).toMatchObject({ action: 'set_replicas', target: 2, reason: 'above max_replicas = 2' });
    // A wake-up never asks for more than max_replicas.
    const waking = backendStatus('b', { state: 'cold', pending_wakeups: 1 });
    expect(decide({ status: waking, scaling: policy({ max_replicas: 2, wake_replicas: 2, min_replicas: 0 }), now: NOW, current: 0 }).target).toBe(2);
  });

  it('treats an unknown driver count as "not there yet"', () => {
    const idle = backendStatus('b', { last_request_at: minutesAgo(600) });
    expect(decide({ status: idle, scaling: policy(), now: NOW, current: null })).toMatchObject({ action: 'scale_to_zero', target: 0 });
  });

  it('skips backends without a policy or with driver "none"', () => {
    const status = backendStatus('b', { last_request_at: minutesAgo(600) });
    expect(decide({ status, scaling: undefined, now: NOW, current: null }).action).toBe('skip');
    expect(decide({ status, scaling: scalingSchema.parse({ driver: 'none' }), now: NOW, current: null })).toMatchObject({ action: 'skip', reason: expect.stringMatching(/none/) });
  });

  describe('keep-warm windows', () => {
    const paris = policy({ keep_warm: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '09:00', to: '18:00', time_zone: 'Europe/Paris', replicas: 2 }], max_replicas: 4 });
    const idle = (now: Date) => backendStatus('b', { last_request_at: minutesAgo(600, now) });

    it('holds the window replicas inside the window even when idle, and parks after it', () => {
      const inside = new Date('2026-06-10T10:00:00Z'); // Wed 12:00 CEST
      expect(decide({ status: idle(inside), scaling: paris, now: inside, current: 0 })).toMatchObject({ action: 'scale_up', target: 2, reason: 'keep-warm mon,tue,wed,thu,fri 09:00-18:00 Europe/Paris' });
      expect(decide({ status: idle(inside), scaling: paris, now: inside, current: 2 }).action).toBe('keep');
      const after = new Date('2026-06-10T16:30:00Z'); // Wed 18:30 CEST
      expect(decide({ status: idle(after), scaling: paris, now: after, current: 2 })).toMatchObject({ action: 'scale_to_zero', target: 0 });
      const saturday = new Date('2026-06-13T10:00:00Z');
      expect(decide({ status: idle(saturday), scaling: paris, now: saturday, current: 2 }).action).toBe('scale_to_zero');
    });

    it('follows the zone across DST: 09:00 Paris is 08:00Z in winter and 07:00Z in summer', () => {
      const w = { days: ['mon', 'tue', 'wed', 'thu', 'fri'] as const, from: '09:00', to: '18:00', time_zone: 'Europe/Paris', replicas: 1 };
      const win = { ...w, days: [...w.days] };
      // Friday before the change (CET, UTC+1) and Monday after it (CEST, UTC+2), 2026-03-29.
      expect(inWindow(win, new Date('2026-03-27T07:30:00Z'))).toBe(false); // 08:30 CET
      expect(inWindow(win, new Date('2026-03-27T08:30:00Z'))).toBe(true); // 09:30 CET
      expect(inWindow(win, new Date('2026-03-30T07:30:00Z'))).toBe(true); // 09:30 CEST
      expect(inWindow(win, new Date('2026-03-30T06:30:00Z'))).toBe(false); // 08:30 CEST
      // The end moves too: 16:30Z is 17:30 CET (inside) but 18:30 CEST (outside).
      expect(inWindow(win, new Date('2026-03-27T16:30:00Z'))).toBe(true); // 17:30 CET
      expect(inWindow(win, new Date('2026-03-30T16:30:00Z'))).toBe(false); // 18:30 CEST
    });

    it('reads the weekday in the zone, not in UTC', () => {
      // Monday 08:00 in Tokyo is still Sunday 23:00 UTC.
      const tokyo = { days: ['mon' as const], from: '07:00', to: '10:00', time_zone: 'Asia/Tokyo', replicas: 1 };
      expect(localTime(new Date('2026-06-14T23:00:00Z'), 'Asia/Tokyo')).toEqual({ day: 'mon', minutes: 8 * 60 });
      expect(inWindow(tokyo, new Date('2026-06-14T23:00:00Z'))).toBe(true);
      expect(inWindow({ ...tokyo, time_zone: 'UTC' }, new Date('2026-06-14T23:00:00Z'))).toBe(false);
    });

    it('handles windows across midnight (they belong to the day they start) and whole days', () => {
      const night = { days: ['fri' as const], from: '22:00', to: '06:00', time_zone: 'America/New_York', replicas: 1 };
      expect(inWindow(night, new Date('2026-06-13T03:00:00Z'))).toBe(true); // Fri 23:00 EDT
      expect(inWindow(night, new Date('2026-06-13T08:00:00Z'))).toBe(true); // Sat 04:00 EDT
      expect(inWindow(night, new Date('2026-06-13T11:00:00Z'))).toBe(false); // Sat 07:00 EDT
      expect(inWindow(night, new Date('2026-06-12T08:00:00Z'))).toBe(false); // Fri 04:00 EDT: Thursday's night, not listed
      const allDay = { days: ['sun' as const], from: '00:00', to: '00:00', time_zone: 'UTC', replicas: 1 };
      expect(inWindow(allDay, new Date('2026-06-14T23:59:00Z'))).toBe(true);
      expect(inWindow(allDay, new Date('2026-06-15T00:00:00Z'))).toBe(false);
    });

    it('takes the largest of overlapping windows and min_replicas', () => {
      const s = policy({
        min_replicas: 1,
        max_replicas: 5,
        keep_warm: [
          { from: '00:00', to: '00:00', days: ['wed'], replicas: 1 },
          { from: '11:00', to: '13:00', days: ['wed'], replicas: 3 },
        ],
      });
      expect(decide({ status: idle(NOW), scaling: s, now: NOW, current: 1 })).toMatchObject({ action: 'scale_up', target: 3 });
    });
  });
});

describe('eventsFor', () => {
  const act = (action: Decision['action'], target: number): Decision => ({ action, target, reason: 'test' });

  it('reports what a scale call did', () => {
    const status = backendStatus('b', { state: 'warm' });
    expect(eventsFor({ status, before: { replicas: 2, ready: 2 }, decision: act('scale_to_zero', 0), acted: true, routerNow: NOW })).toEqual([{ type: 'scaled_down', replicas: 0 }]);
    expect(eventsFor({ status, before: { replicas: 3, ready: 3 }, decision: act('set_replicas', 1), acted: true, routerNow: NOW })).toEqual([{ type: 'scaled_down', replicas: 1 }]);
    expect(eventsFor({ status, before: { replicas: 0, ready: 0 }, decision: act('scale_up', 2), acted: true, routerNow: NOW })).toEqual([{ type: 'waking', replicas: 2 }]);
  });

  it('reports ready with the cold start timed on the router clock once a waking backend serves', () => {
    const status = backendStatus('b', { state: 'waking', state_since: minutesAgo(1.5) });
    expect(eventsFor({ status, before: { replicas: 1, ready: 1 }, decision: act('keep', 1), acted: false, routerNow: NOW })).toEqual([{ type: 'ready', replicas: 1, cold_start_ms: 90_000 }]);
    expect(eventsFor({ status, before: { replicas: 1, ready: 0 }, decision: act('keep', 1), acted: false, routerNow: NOW })).toEqual([]);
  });

  it('answers a wake-up for replicas that already run', () => {
    const status = backendStatus('b', { state: 'cold', pending_wakeups: 1 });
    expect(eventsFor({ status, before: { replicas: 1, ready: 1 }, decision: act('keep', 1), acted: false, routerNow: NOW })).toEqual([{ type: 'ready', replicas: 1 }]);
    expect(eventsFor({ status, before: { replicas: 1, ready: null }, decision: act('keep', 1), acted: false, routerNow: NOW })).toEqual([{ type: 'waking', replicas: 1 }]);
  });

  it('tells the router when its state is stale, and says nothing in a steady state', () => {
    const warm = backendStatus('b', { state: 'warm' });
    expect(eventsFor({ status: warm, before: { replicas: 0, ready: 0 }, decision: act('keep', 0), acted: false, routerNow: NOW })).toEqual([{ type: 'scaled_down', replicas: 0 }]);
    expect(eventsFor({ status: warm, before: { replicas: 2, ready: 2 }, decision: act('keep', 2), acted: false, routerNow: NOW })).toEqual([]);
    const cold = backendStatus('b', { state: 'cold' });
    expect(eventsFor({ status: cold, before: { replicas: 0, ready: 0 }, decision: act('keep', 0), acted: false, routerNow: NOW })).toEqual([]);
    // Pods still terminating after a park: not a start.
    expect(eventsFor({ status: cold, before: { replicas: 0, ready: 1 }, decision: act('keep', 0), acted: false, routerNow: NOW })).toEqual([]);
  });
});

describe('loading the scaling config', () => {
  const toml = (backend: string) => `
[vars.ROUTER]
[[vars.ROUTER.regions]]
id = "r"
latitude = 0
longitude = 0
[[vars.ROUTER.models]]
id = "m"
[[vars.ROUTER.backends]]
id = "b"
kind = "vllm"
region = "r"
url = "https://b.example.com"
models = ["m"]
${backend}
[vars.ROUTER.tenants.t]
models = ["*"]
`;

  it('reads [scaling] with its defaults, from the top level or an [env.*]', () => {
    const [b] = scaleConfigFromToml(toml('cold_start_ms = 60000\nscaling = { driver = "kubernetes", kubernetes = { deployment = "d" } }'), 'w.toml');
    expect(b!.scaling).toMatchObject({ driver: 'kubernetes', idle_minutes: 15, min_replicas: 0, max_replicas: 1, wake_replicas: 1, kubernetes: { namespace: 'default', deployment: 'd' } });
    const env = toml('cold_start_ms = 60000\nscaling = { driver = "replicate", replicate = { deployment = "o/n" } }').replaceAll('vars.ROUTER', 'env.prod.vars.ROUTER');
    expect(scaleConfigFromToml(env, 'w.toml', 'prod')[0]!.scaling?.driver).toBe('replicate');
    expect(() => scaleConfigFromToml(env, 'w.toml', 'staging')).toThrow('w.toml: no [env.staging] (environments: prod)');
  });

  it('refuses a driver without cold_start_ms (the router would not track its traffic), a bad zone, a missing target table', () => {
    expect(() => scaleConfigFromToml(toml('scaling = { driver = "kubernetes", kubernetes = { deployment = "d" } }'), 'w.toml')).toThrow(
      /router\.backends\[0\]\.cold_start_ms: scaling with driver "kubernetes" needs cold_start_ms/,
    );
    expect(scaleConfigFromToml(toml('scaling = { driver = "none" }'), 'w.toml')[0]!.scaling?.driver).toBe('none');
    expect(() => scaleConfigFromToml(toml('cold_start_ms = 1\nscaling = { driver = "modal", keep_warm = [{ from = "09:00", to = "17:00", time_zone = "Europe/Pariss" }], modal = { app = "a", function = "f" } }'), 'w.toml')).toThrow(
      'router.backends[0].scaling.keep_warm[0].time_zone: unknown time zone "Europe/Pariss"',
    );
    expect(() => scaleConfigFromToml(toml('cold_start_ms = 1\nscaling = { driver = "modal" }'), 'w.toml')).toThrow(/driver "modal" needs a \[modal\] table/);
  });
});
