import { env as testEnv } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { detectDrift } from '../../worker/alerts/drift';
import { runbookForAlert } from '../../worker/alerts/runbooks';
import { runAlerts } from '../../worker/alerts/scheduled';
import { alertsSchema } from '../../worker/config/alerts';
import type { Env } from '../../worker/env';
import { emptyQuality, type QualityMinute } from '../../worker/protocol/rules/quality-minutes';
import { baseConfig, envWith } from './support';

// The drift alert (README "Quality signals and drift"): a deployment version's (or a model's)
// refusal rate, truncation rate, mean output length or negative feedback rate against its trailing
// baseline; as a pure detector, then through the cron with the real aggregator and alert state.

const MIN = 60_000;
const base = testEnv as unknown as Env;
const NOW = Date.UTC(2026, 4, 1, 12, 0, 30);
const A = alertsSchema.parse({});

type Shape = Partial<Omit<QualityMinute, 'minute' | 'deployment' | 'version' | 'model'>>;

/** Minutes [end − 60, end): the 45 baseline minutes shaped by `baseline`, the 15 window minutes by `window`. */
function series(end: number, baseline: Shape, window: Shape, who: { deployment: string | null; version: string | null; model: string | null } = { deployment: 'bot', version: 'v2', model: 'm' }): QualityMinute[] {
  const out: QualityMinute[] = [];
  for (let i = 60; i >= 1; i--) {
    const minute = end - i * MIN;
    out.push({ ...emptyQuality({ minute, ...who }), ...(i > 15 ? baseline : window) });
  }
  return out;
}

const end = Math.floor(NOW / MIN) * MIN;
const steady: Shape = { answered: 10, refusals: 1, truncations: 1, output_tokens: 1_000, feedback: 10, feedback_negative: 1 };

describe('detectDrift', () => {
  it('fires on a refusal rate that moved more than 5% and more than a point, naming the version and both numbers', () => {
    const alerts = detectDrift(series(end, steady, { ...steady, refusals: 2 }), A, NOW);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      id: 'quality_drift:refusal_rate:deployment:bot@v2',
      severity: 'warning',
      details: { signal: 'refusal_rate', deployment: 'bot', version: 'v2', value: 0.2, baseline: 0.1, relative_change: 1, window_samples: 150, baseline_samples: 450, window_minutes: 15, baseline_minutes: 45 },
    });
    expect(alerts[0]!.summary).toBe('Refusal rate of deployment bot version v2 moved 10% → 20% (+100%) over the last 15 min against the 45 min before');
    expect(runbookForAlert(alerts[0]!.id)).toBe('quality-drift');
    // The same shapes from the other side: a drop is drift too.
    expect(detectDrift(series(end, { ...steady, refusals: 2 }, steady), A, NOW).map((a) => a.id)).toEqual(['quality_drift:refusal_rate:deployment:bot@v2']);
  });

  it('stays quiet within 5%, under the absolute floor, below the minimum samples, without a baseline, or when off', () => {
    // 10% → 10.4%: +4% relative.
    const within = series(end, { ...steady, answered: 100, refusals: 10 }, { ...steady, answered: 100, refusals: 10.4 });
    expect(detectDrift(within, A, NOW)).toEqual([]);
    // 0.5% → 0.7%: +40% relative but 0.2 points, under the 1-point floor.
    expect(detectDrift(series(end, { ...steady, answered: 1_000, refusals: 5, truncations: 100, output_tokens: 100_000, feedback: 0 }, { ...steady, answered: 1_000, refusals: 7, truncations: 100, output_tokens: 100_000, feedback: 0 }), A, NOW)).toEqual([]);
    // Window with 90 answered requests (6 a minute): under drift_min_samples (100).
    expect(detectDrift(series(end, steady, { answered: 6, refusals: 3, output_tokens: 600 }), A, NOW)).toEqual([]);
    // Only the window's minutes: no baseline.
    expect(detectDrift(series(end, steady, { ...steady, refusals: 5 }).slice(-15), A, NOW)).toEqual([]);
    expect(detectDrift(series(end, steady, { ...steady, refusals: 5 }), { ...A, drift_enabled: false }, NOW)).toEqual([]);
  });

  it('fires from a zero baseline past the floor; on mean output length past 8 tokens; on negative feedback; per model off deployments', () => {
    expect(detectDrift(series(end, { ...steady, refusals: 0 }, { ...steady, refusals: 0.2 }), A, NOW)[0]).toMatchObject({ details: { baseline: 0, value: 0.02, relative_change: null } });
    // 100 → 80 tokens on average: down 20% and 20 tokens.
    const shorter = detectDrift(series(end, steady, { ...steady, output_tokens: 800 }), A, NOW);
    expect(shorter.map((a) => a.id)).toEqual(['quality_drift:mean_output_tokens:deployment:bot@v2']);
    expect(shorter[0]!.summary).toContain('100 tokens → 80 tokens (-20%)');
    // 100 → 106: 6% but 6 tokens, under the floor.
    expect(detectDrift(series(end, steady, { ...steady, output_tokens: 1_060 }), A, NOW)).toEqual([]);
    expect(detectDrift(series(end, steady, { ...steady, feedback_negative: 3 }), A, NOW).map((a) => a.id)).toEqual(['quality_drift:negative_feedback_rate:deployment:bot@v2']);
    const model = detectDrift(series(end, steady, { ...steady, truncations: 3 }, { deployment: null, version: null, model: 'llama' }), A, NOW);
    expect(model.map((a) => a.id)).toEqual(['quality_drift:truncation_rate:model:llama']);
    expect(model[0]!.details).toMatchObject({ deployment: null, version: null, model: 'llama' });
  });
});

/** A namespace that hands out the real objects under names of this test's own (the cron asks for "global"). */
function own<T extends keyof Env>(binding: T, suffix: string): Env[T] {
  const real = base[binding] as unknown as DurableObjectNamespace;
  return { idFromName: (n: string) => real.idFromName(`${n}:${suffix}`), get: (id: DurableObjectId) => real.get(id) } as unknown as Env[T];
}

describe('drift through the alert cron', () => {
  it('fires from the aggregator\'s quality minutes and resolves when the signal is back', async () => {
    const tag = crypto.randomUUID();
    const cfg = baseConfig();
    cfg.alerts = { resolve_after_runs: 1 };
    const now = Date.now();
    const realEnd = Math.floor(now / MIN) * MIN;
    // The aggregator keeps the last hour: 44 baseline minutes, 15 window minutes.
    const seed = async (name: string, window: Shape) => {
      const agg = base.METRICS.get(base.METRICS.idFromName(`global:${name}`));
      const quality = series(realEnd, steady, window).filter((q) => q.minute >= realEnd - 59 * MIN);
      expect(await agg.merge({ isolate: `drift-${name}`, seq: 1, counters: [], histograms: [], minutes: [], quality })).toBe(true);
    };
    await seed(`bad-${tag}`, { ...steady, refusals: 3 });
    await seed(`good-${tag}`, steady);

    const alerts = own('ALERTS', tag);
    const bad = { ...envWith(cfg), METRICS: own('METRICS', `bad-${tag}`), ALERTS: alerts } as Env;
    const good = { ...envWith(cfg), METRICS: own('METRICS', `good-${tag}`), ALERTS: alerts } as Env;

    const fired = await runAlerts(bad, now);
    expect(fired.fired).toEqual(['quality_drift:refusal_rate:deployment:bot@v2']);
    const state = base.ALERTS.get(base.ALERTS.idFromName(`global:${tag}`));
    const active = await state.active();
    expect(active.map((a) => a.alert.id)).toEqual(['quality_drift:refusal_rate:deployment:bot@v2']);
    expect(active[0]!.alert.summary).toMatch(/deployment bot version v2 moved 10% → 30%/);
    expect(active[0]!.alert.details).toMatchObject({ baseline: 0.1, value: 0.3 });
    // Still there on the next run: no second firing.
    expect((await runAlerts(bad, now + 1)).fired).toEqual([]);

    const resolved = await runAlerts(good, now + 2);
    expect(resolved.resolved).toEqual(['quality_drift:refusal_rate:deployment:bot@v2']);
    expect(await state.active()).toEqual([]);
  });
});
