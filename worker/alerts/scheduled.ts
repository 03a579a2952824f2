// The cron handler (wrangler.toml [triggers], every minute): reads the last hour of per-minute
// metrics from the MetricsAggregator DO (readMinutes, worker/telemetry/metrics.ts), runs the
// detectors, lets the AlertState DO decide what changed (fire once, resolve once) and sends what
// it owes to the [alerts] webhooks, signed.
// A missing binding, a failed read or an invalid config skips the run (logged): a scheduled
// handler that throws only produces noise, and the next minute tries again.

import type { Delivery } from '../protocol/alerts';
import type { AlertsConfig } from '../config/alerts';
import { loadConfig } from '../config/compiled';
import type { Env } from '../env';
import { sendSignedWebhook, webhookSecret } from '../protocol/rules/signed-webhook';
import { readMinutes, readQualityMinutes } from '../telemetry/metrics';
import type { MinuteBucket } from '../protocol/rules/minute-series';
import type { QualityMinute } from '../protocol/rules/quality-minutes';
import { detectAll, lookbackMs } from './detectors';
import { batchBacklogAlerts } from '../batch/queue-report';
import { asyncBacklogAlerts } from '../async/queue-report';
import { runbookForAlert, runbookUrl } from './runbooks';

export const ALERT_EVENT = 'router.alert';

export interface AlertRunReport {
  skipped?: string;
  active?: string[];
  fired?: string[];
  resolved?: string[];
  delivered?: number;
  failed?: number;
}

const log = (msg: string, extra: Record<string, unknown> = {}) => console.log(JSON.stringify({ msg, ...extra }));
const iso = (ms: number) => new Date(ms).toISOString();

/** The webhook body; `sent_at` is per attempt, so the body (and its signature) is built at send time. */
export function alertPayload(d: Delivery, sentAt: number, runbookBase = 'docs/runbooks'): string {
  return JSON.stringify({
    type: ALERT_EVENT,
    status: d.status,
    alert: d.alert,
    runbook_url: runbookUrl(runbookBase, runbookForAlert(d.alert.id)),
    started_at: iso(d.started_at),
    ...(d.resolved_at !== null ? { resolved_at: iso(d.resolved_at) } : {}),
    sent_at: iso(sentAt),
  });
}

/** One run at `now` (the cron's scheduled time). Never throws. */
export async function runAlerts(env: Env, now: number): Promise<AlertRunReport> {
  const loaded = loadConfig(env.ROUTER);
  if (!loaded.ok) {
    log('alerts: skipped, invalid config', { errors: loaded.errors.slice(0, 5) });
    return { skipped: 'invalid_config' };
  }
  const { slo, alerts } = loaded.config.raw;
  if (!alerts.enabled) return { skipped: 'disabled' };
  if (!env.METRICS) {
    log('alerts: skipped, no METRICS binding');
    return { skipped: 'no_metrics' };
  }
  if (!env.ALERTS) {
    log('alerts: skipped, no ALERTS binding');
    return { skipped: 'no_state' };
  }
  let buckets: MinuteBucket[];
  let quality: QualityMinute[] = [];
  try {
    // Merged across the aggregator's shards ([metrics].shards) by the metrics code.
    const since = now - lookbackMs(alerts);
    [buckets, quality] = await Promise.all([
      readMinutes(env, loaded.config, since),
      alerts.drift_enabled ? readQualityMinutes(env, loaded.config, since) : Promise.resolve([]),
    ]);
    if (!Array.isArray(buckets) || !Array.isArray(quality)) throw new Error('minutes() did not answer an array');
  } catch (e) {
    log('alerts: skipped, metrics read failed', { error: String(e) });
    return { skipped: 'metrics_failed' };
  }
  const found = detectAll({ buckets, quality, slo, alerts, now });
  found.push(...(await batchBacklogAlerts(env, loaded.config, now))); // README "Batch and async"
  found.push(...(await asyncBacklogAlerts(env, loaded.config, now))); // README "Async requests"
  try {
    const state = env.ALERTS.get(env.ALERTS.idFromName('global'));
    const reply = await state.evaluate({
      now,
      alerts: found,
      targets: alerts.webhooks.map((w) => w.url),
      resolve_after_runs: alerts.resolve_after_runs,
      max_attempts: alerts.max_attempts,
      // Held by this run for most of a minute: the next run retries what this one failed to send.
      lease_ms: 50_000,
    });
    for (const id of reply.fired) log('alert firing', { id });
    for (const id of reply.resolved) log('alert resolved', { id });
    const { delivered, failed } = await deliver(env, alerts, reply.deliveries);
    if (delivered.length > 0) await state.ack(delivered);
    return { active: found.map((a) => a.id), fired: reply.fired, resolved: reply.resolved, delivered: delivered.length, failed };
  } catch (e) {
    log('alerts: run failed', { error: String(e) });
    return { skipped: 'state_failed' };
  }
}

/** Sends each webhook its messages in order (a resolve never overtakes its firing); webhooks in parallel. */
async function deliver(env: Env, cfg: AlertsConfig, deliveries: Delivery[]): Promise<{ delivered: { delivery_id: string; target: string }[]; failed: number }> {
  const byTarget = new Map<string, Delivery[]>();
  for (const d of deliveries) byTarget.set(d.target, [...(byTarget.get(d.target) ?? []), d]);
  const delivered: { delivery_id: string; target: string }[] = [];
  let failed = 0;
  await Promise.all(
    [...byTarget].map(async ([url, list]) => {
      const hook = cfg.webhooks.find((w) => w.url === url);
      for (const d of list) {
        try {
          await sendSignedWebhook({
            url,
            event: ALERT_EVENT,
            deliveryId: d.delivery_id,
            body: alertPayload(d, Date.now(), cfg.runbook_base_url),
            secret: webhookSecret(env, hook?.secret),
            attempt: d.attempt,
            userAgent: 'edge-router-alerts',
            timeoutMs: cfg.webhook_timeout_ms,
          });
          delivered.push({ delivery_id: d.delivery_id, target: url });
        } catch (e) {
          failed++;
          log('alert webhook failed', { url, delivery_id: d.delivery_id, attempt: d.attempt, error: String(e) });
          break; // keep this webhook's order: the rest waits for the next run
        }
      }
    }),
  );
  return { delivered, failed };
}

/** The Worker's `scheduled` entry point. */
export async function scheduled(controller: ScheduledController, env: Env, _ctx: ExecutionContext): Promise<void> {
  await runAlerts(env, controller.scheduledTime);
}
