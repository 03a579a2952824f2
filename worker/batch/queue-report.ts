import type { CompiledConfig } from '../config/compiled';
import type { Env } from '../env';
import type { QueueStats } from '../protocol/batch';
import { detectQueueBacklog } from '../alerts/detectors';
import type { Alert } from '../protocol/alerts';
import { batchStore } from './store';
import type { Family } from '../telemetry/exposition';
import { STATE_METRICS as S } from '../telemetry/metric-catalog';

// The batch queue as the per-line ledger sees it, summed over the configured tenants' BatchStores:
// lines waiting or running (depth), the age of the oldest, retries and dead letters so far. Queues
// has no depth API a Worker can call; the ledger is exact. Read by GET /admin/queues, /metrics and
// the queue_backlog alert.

export interface QueueReport {
  queue: string;
  depth: number;
  running: number;
  oldest_age_seconds: number | null;
  retries: number;
  dead_letters: number;
  lines_done: number;
  redelivered: number;
  by_tenant: Record<string, QueueStats>;
}

/** The batch queue's figures across tenants (also read by /metrics and the alert detector). */
export async function batchQueueReport(env: Env, config: CompiledConfig, now = Date.now()): Promise<QueueReport> {
  const tenants = Object.keys(config.raw.tenants);
  const stats = await Promise.all(tenants.map((t) => batchStore(env, t).stats()));
  const report: QueueReport = { queue: 'edge-router-batch', depth: 0, running: 0, oldest_age_seconds: null, retries: 0, dead_letters: 0, lines_done: 0, redelivered: 0, by_tenant: {} };
  let oldest: number | null = null;
  stats.forEach((s, i) => {
    report.by_tenant[tenants[i]!] = s;
    report.depth += s.pending;
    report.running += s.running;
    report.retries += s.retries;
    report.dead_letters += s.dead_letters;
    report.lines_done += s.lines_done;
    report.redelivered += s.redelivered;
    if (s.oldest_enqueued_at !== null && (oldest === null || s.oldest_enqueued_at < oldest)) oldest = s.oldest_enqueued_at;
  });
  report.oldest_age_seconds = oldest === null ? null : Math.max(0, Math.round((now - oldest) / 1000));
  return report;
}


/** The queue_backlog alert, for the scheduled run; none when batches are not configured or the objects cannot be read (logged). */
export async function batchBacklogAlerts(env: Env, config: CompiledConfig, now: number): Promise<Alert[]> {
  if (!env.BATCHES) return [];
  try {
    return detectQueueBacklog(await batchQueueReport(env, config, now), config.raw.batch.alert_oldest_age_seconds);
  } catch (e) {
    console.warn(JSON.stringify({ msg: 'alerts: batch queue unreadable', error: String(e) }));
    return [];
  }
}

/** GET /metrics: the batch queue's gauges and counters (none without the BATCHES binding). */
export async function batchQueueFamilies(env: Env, config: CompiledConfig): Promise<Family[]> {
  if (!env.BATCHES) return [];
  const q = await batchQueueReport(env, config);
  const one = (value: number) => [{ values: [q.queue], value }];
  return [
    { def: S.batchDepth, samples: one(q.depth) },
    { def: S.batchOldest, samples: one(q.oldest_age_seconds ?? 0) },
    { def: S.batchRetries, samples: one(q.retries) },
    { def: S.batchDeadLetters, samples: one(q.dead_letters) },
    { def: S.batchDone, samples: one(q.lines_done) },
  ];
}
