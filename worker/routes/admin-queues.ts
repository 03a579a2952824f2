import { Hono } from 'hono';
import { batchStore } from '../batch/store';
import type { AppEnv, Env } from '../env';
import type { CompiledConfig } from '../config/compiled';
import { objectCall } from '../http/object-call';
import type { QueueStats } from '../protocol/batch';

/**
 * GET /admin/queues (README "Batch and async"): the batch queue as the ledger sees it, summed over
 * the configured tenants' BatchStores: lines waiting or running (depth), the age of the oldest,
 * retries and dead letters so far. Queues has no depth API a Worker can call; the ledger is exact.
 */
export const adminQueues = new Hono<AppEnv>();

const rpc = objectCall('batch service', 'batches_unavailable');

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

adminQueues.get('/', async (c) => {
  const report = await rpc(() => batchQueueReport(c.env, c.get('config')));
  return c.json({ object: 'list', data: [{ object: 'queue', ...report }] });
});
