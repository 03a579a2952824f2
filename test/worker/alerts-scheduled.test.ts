import { createExecutionContext, createScheduledController, env as testEnv, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { lookbackMs } from '../../worker/alerts/detectors';
import { runAlerts } from '../../worker/alerts/scheduled';
import { alertsSchema } from '../../worker/config/alerts';
import type { Env } from '../../worker/env';
import { verifyWebhook } from '../../worker/protocol/rules/signed-webhook';
import worker from '../../worker/index';
import { LATENCY_BUCKETS_MS, type MinuteBucket } from '../../worker/protocol/rules/minute-series';
import { baseConfig, envWith } from './support';
import { spawnWebhook, type WebhookCall } from '../support/webhook';

const base = testEnv as unknown as Env;
const MIN = 60_000;
const SECRET_NAME = 'ALERT_HOOK_KEY';
const SECRET = 'test-alert-hook-key';
// A minute start on the real clock's scale (the receiver checks timestamps against its own clock).
const T0 = Math.floor(Date.now() / MIN) * MIN;
const LOOKBACK = lookbackMs(alertsSchema.parse({}));


/** The last 10 complete minutes before `now`, 100 requests each, `errors` of them failed. */
function minutes(now: number, errors: number): MinuteBucket[] {
  const end = Math.floor(now / MIN) * MIN;
  const empty = () => new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  return Array.from({ length: 10 }, (_, i) => ({
    minute: end - (10 - i) * MIN,
    tenant: 'acme',
    key_id: 'key_a',
    model: 'm',
    requests: 100,
    errors,
    prompt_tokens: 1_000,
    completion_tokens: 1_000,
    cost_usd: 0.01,
    ttft_ms_buckets: empty(),
    latency_ms_buckets: empty(),
  }));
}

/** A METRICS binding whose minutes() answers what `source` says (or throws), and records the `since` asked. */
function fakeMetrics(source: (since: number) => MinuteBucket[]) {
  const asked: number[] = [];
  const ns = {
    idFromName: (name: string) => name,
    get: () => ({
      minutes: async (since: number) => {
        asked.push(since);
        return source(since);
      },
      qualityMinutes: async () => [], // no quality traffic: the drift detector has nothing to say
    }),
  };
  return { ns: ns as unknown as Env['METRICS'], asked };
}

/** The real AlertState objects under a name of this test's own (the handler asks for "global"). */
function ownAlertState() {
  const suffix = crypto.randomUUID();
  const real = base.ALERTS;
  const ns = { idFromName: (n: string) => real.idFromName(`${n}:${suffix}`), get: (id: DurableObjectId) => real.get(id) };
  return { ns: ns as unknown as Env['ALERTS'], stub: real.get(real.idFromName(`global:${suffix}`)) };
}

/** An env where the error rate is `state.errors` per 100, alerts go to `hookUrl`, signed. */
function alertEnv(hookUrl: string, extra: Record<string, unknown> = {}) {
  const state = { errors: 0 };
  // The handler asks since (run time − lookback): the series ends at the run's minute.
  const metrics = fakeMetrics((since) => minutes(since + LOOKBACK, state.errors));
  const alerts = ownAlertState();
  const cfg = baseConfig();
  cfg.slo = { availability: 0.5 }; // only the error-rate detector speaks in these tests
  cfg.alerts = { webhooks: [{ url: hookUrl, secret: SECRET_NAME }], resolve_after_runs: 1, ...extra };
  const e = { ...envWith(cfg), METRICS: metrics.ns, ALERTS: alerts.ns, [SECRET_NAME]: SECRET } as Env;
  return { e, state, metrics, alerts };
}

async function tick(e: Env, scheduledTime: number): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled!(createScheduledController({ scheduledTime, cron: '* * * * *' }), e, ctx);
  await waitOnExecutionContext(ctx);
}

const payload = (c: WebhookCall) => JSON.parse(c.body) as { type: string; status: string; alert: { id: string; severity: string; summary: string }; started_at: string; resolved_at?: string; sent_at: string };

describe('scheduled alerts', () => {
  it('fires once while the condition lasts and resolves once when it ends, signed with HMAC-SHA256', async () => {
    const hook = await spawnWebhook();
    const { e, state, metrics } = alertEnv(hook.url);

    state.errors = 3; // 3% in every minute
    await tick(e, T0);
    expect(metrics.asked[0]).toBe(T0 - LOOKBACK);
    expect(LOOKBACK).toBeGreaterThanOrEqual(65 * MIN); // far enough back for the key baselines
    await tick(e, T0 + MIN); // still firing: nothing new
    let calls = await hook.calls();
    expect(calls).toHaveLength(1);
    const firing = payload(calls[0]!);
    expect(firing).toMatchObject({ type: 'router.alert', status: 'firing', alert: { id: 'error_rate', severity: 'critical' }, started_at: new Date(T0).toISOString() });
    expect(firing.resolved_at).toBeUndefined();
    expect(calls[0]!.headers['x-router-event']).toBe('router.alert');
    expect(calls[0]!.headers['x-router-delivery']).toMatch(/^alrt_[0-9a-f]{32}$/);

    state.errors = 0;
    await tick(e, T0 + 2 * MIN);
    await tick(e, T0 + 3 * MIN); // already resolved: nothing more
    calls = await hook.calls();
    expect(calls.map((c) => payload(c).status)).toEqual(['firing', 'resolved']);
    const resolved = payload(calls[1]!);
    expect(resolved).toMatchObject({ alert: { id: 'error_rate' }, started_at: new Date(T0).toISOString(), resolved_at: new Date(T0 + 2 * MIN).toISOString() });
    expect(calls[1]!.headers['x-router-delivery']).not.toBe(calls[0]!.headers['x-router-delivery']);

    for (const c of calls) {
      const h = { signature: c.headers['x-router-signature'], timestamp: c.headers['x-router-timestamp'] };
      expect(await verifyWebhook(SECRET, h, c.body)).toBe(true);
      expect(await verifyWebhook('wrong-key', h, c.body)).toBe(false);
      expect(await verifyWebhook(SECRET, h, c.body.replace('error_rate', 'error_ratf'))).toBe(false);
    }
  });

  it('resolves only after resolve_after_runs clear runs, and a returning condition fires anew', async () => {
    const hook = await spawnWebhook();
    const { e, state, alerts } = alertEnv(hook.url, { resolve_after_runs: 2 });
    state.errors = 3;
    await tick(e, T0);
    state.errors = 0;
    await tick(e, T0 + MIN); // one clear run: still in force
    expect((await alerts.stub.active()).map((a) => a.alert.id)).toEqual(['error_rate']);
    state.errors = 3;
    await tick(e, T0 + 2 * MIN); // back: the count starts over, nothing sent
    state.errors = 0;
    await tick(e, T0 + 3 * MIN);
    expect((await hook.calls()).map((c) => payload(c).status)).toEqual(['firing']);
    await tick(e, T0 + 4 * MIN);
    expect((await hook.calls()).map((c) => payload(c).status)).toEqual(['firing', 'resolved']);
    expect(await alerts.stub.active()).toEqual([]);
    state.errors = 3;
    await tick(e, T0 + 5 * MIN);
    const calls = await hook.calls();
    expect(calls.map((c) => payload(c).status)).toEqual(['firing', 'resolved', 'firing']);
    expect(payload(calls[2]!).started_at).toBe(new Date(T0 + 5 * MIN).toISOString());
  });

  it('retries a failed delivery on the next run with the same delivery id, and keeps each webhook’s order', async () => {
    const hook = await spawnWebhook({ fail_first: 1 });
    const { e, state, alerts } = alertEnv(hook.url);
    state.errors = 3;
    const first = await runAlerts(e, T0);
    expect(first).toMatchObject({ fired: ['error_rate'], delivered: 0, failed: 1 });
    expect(await alerts.stub.pending()).toBe(1);
    state.errors = 0; // resolved in the same run as the retry: the firing must still go first
    const second = await runAlerts(e, T0 + MIN);
    expect(second).toMatchObject({ fired: [], resolved: ['error_rate'], delivered: 2, failed: 0 });
    const calls = await hook.calls();
    expect(calls.map((c) => [c.status, payload(c).status, c.headers['x-router-attempt']])).toEqual([
      [500, 'firing', '1'],
      [200, 'firing', '2'],
      [200, 'resolved', '1'],
    ]);
    expect(calls[1]!.headers['x-router-delivery']).toBe(calls[0]!.headers['x-router-delivery']);
    expect(await alerts.stub.pending()).toBe(0);
  });

  it('a repeated run (same scheduled time) sends nothing twice', async () => {
    const hook = await spawnWebhook();
    const { e, state } = alertEnv(hook.url, { resolve_after_runs: 2 });
    state.errors = 3;
    await tick(e, T0);
    await tick(e, T0);
    state.errors = 0;
    await tick(e, T0 + MIN);
    await tick(e, T0 + MIN); // the same clear run again: not a second one
    expect((await hook.calls()).map((c) => payload(c).status)).toEqual(['firing']);
  });

  it('reads the real MetricsAggregator: buckets merged into it raise the alert', async () => {
    const hook = await spawnWebhook();
    const { e, alerts } = alertEnv(hook.url);
    // The real objects under names of this test's own ("global" → "global:<uuid>").
    const suffix = crypto.randomUUID();
    const real = base.METRICS;
    const metricsNs = { idFromName: (n: string) => real.idFromName(`${n}:${suffix}`), get: (id: DurableObjectId) => real.get(id) };
    // minutes() keeps the last hour on the object's own clock: seed around the real time.
    const now = Math.floor(Date.now() / MIN) * MIN + 1_000;
    const seeded = await real.get(real.idFromName(`global:${suffix}`)).merge({ isolate: 'test', seq: 1, counters: [], histograms: [], minutes: minutes(now, 3) });
    expect(seeded).toBe(true);
    const report = await runAlerts({ ...e, METRICS: metricsNs as unknown as Env['METRICS'] }, now);
    expect(report).toMatchObject({ active: ['error_rate'], fired: ['error_rate'], delivered: 1 });
    expect((await alerts.stub.active()).map((x) => x.alert.id)).toEqual(['error_rate']);
    expect((await hook.calls()).map((c) => payload(c).alert.id)).toEqual(['error_rate']);
  });

  it('skips the run, without throwing, when the metrics cannot be read or the config is invalid', async () => {
    const hook = await spawnWebhook();
    const { e } = alertEnv(hook.url);
    const noMetrics = { ...e, METRICS: undefined } as unknown as Env;
    expect(await runAlerts(noMetrics, T0)).toEqual({ skipped: 'no_metrics' });
    await tick(noMetrics, T0); // the entry point too
    const failing = { ...e, METRICS: fakeMetrics(() => { throw new Error('aggregator down'); }).ns } as Env;
    expect(await runAlerts(failing, T0)).toEqual({ skipped: 'metrics_failed' });
    const invalid = { ...e, ROUTER: { ...baseConfig(), alerts: { error_rate: 2 } } } as Env;
    expect(await runAlerts(invalid, T0)).toEqual({ skipped: 'invalid_config' });
    const off = { ...e, ROUTER: { ...baseConfig(), alerts: { enabled: false } } } as Env;
    expect(await runAlerts(off, T0)).toEqual({ skipped: 'disabled' });
    expect(await hook.calls()).toEqual([]);
  });

  it('a webhook whose secret is not set gets nothing unsigned: the message waits and is retried', async () => {
    const hook = await spawnWebhook();
    const { e, state, alerts } = alertEnv(hook.url);
    const unset = { ...e, [SECRET_NAME]: undefined } as Env;
    state.errors = 3;
    expect(await runAlerts(unset, T0)).toMatchObject({ fired: ['error_rate'], delivered: 0, failed: 1 });
    expect(await hook.calls()).toEqual([]);
    expect(await alerts.stub.pending()).toBe(1);
    expect(await runAlerts(e, T0 + MIN)).toMatchObject({ delivered: 1 });
    expect((await hook.calls()).map((c) => c.headers['x-router-attempt'])).toEqual(['2']);
  });
});
