import type { CompiledConfig } from '../config/compiled';
import type { Env } from '../env';
import type { AsyncQueueStats } from '../protocol/async-jobs';
import { detectQueueBacklog } from '../alerts/detectors';
import type { Alert } from '../protocol/alerts';
import type { Family } from '../telemetry/exposition';
import { STATE_METRICS as S } from '../telemetry/metric-catalog';
import { ASYNC_QUEUE } from './consumer';
import { requestStore } from './store';

// The async queue (Prefer: respond-async, README "Async requests") as the tenants' RequestStores
// see it, summed over the configured tenants (one call each, as the batch report reads BatchStore):
// jobs waiting (depth) or running, the oldest one's age, retries, dead letters. Read by GET
// /admin/queues, /metrics and the queue_backlog alert.

export interface AsyncQueueReport {
  queue: string;
  /** Jobs not yet done: queued or running (as the batch queue's depth counts lines). */
  depth: number;
  queued: number;
  running: number;
  oldest_age_seconds: number | null;
  retries: number;
  /** Jobs that failed after their last retry (since the objects were created). */
  dead_letters: number;
  /** Failed jobs still kept (GET /v1/async/{id} answers them until [async].ttl_seconds), and the dead letters among them. */
  failed: number;
  dead_letters_kept: number;
  jobs_done: number;
  by_tenant: Record<string, AsyncQueueStats>;
}

export async function asyncQueueReport(env: Env, config: CompiledConfig, now = Date.now()): Promise<AsyncQueueReport> {
  const tenants = Object.keys(config.raw.tenants);
  const stats = (await Promise.all(tenants.map((t) => requestStore(env, t).queueStats(now)))) as AsyncQueueStats[];
  const r: AsyncQueueReport = { queue: ASYNC_QUEUE, depth: 0, queued: 0, running: 0, oldest_age_seconds: null, retries: 0, dead_letters: 0, failed: 0, dead_letters_kept: 0, jobs_done: 0, by_tenant: {} };
  let oldest: number | null = null;
  stats.forEach((s, i) => {
    r.by_tenant[tenants[i]!] = s;
    r.queued += s.queued;
    r.running += s.running;
    r.retries += s.retries;
    r.dead_letters += s.dead_letters;
    r.failed += s.failed;
    r.dead_letters_kept += s.dead_letters_kept;
    r.jobs_done += s.jobs_done;
    if (s.oldest_created_at !== null && (oldest === null || s.oldest_created_at < oldest)) oldest = s.oldest_created_at;
  });
  r.depth = r.queued + r.running;
  r.oldest_age_seconds = oldest === null ? null : Math.max(0, Math.round((now - oldest) / 1000));
  return r;
}

/** The queue_backlog alert for the async queue ([async].alert_oldest_age_seconds); none without the binding or when unreadable (logged). */
export async function asyncBacklogAlerts(env: Env, config: CompiledConfig, now: number): Promise<Alert[]> {
  if (!env.ASYNC_JOBS) return [];
  try {
    return detectQueueBacklog(await asyncQueueReport(env, config, now), config.raw.async.alert_oldest_age_seconds, 'job');
  } catch (e) {
    console.warn(JSON.stringify({ msg: 'alerts: async queue unreadable', error: String(e) }));
    return [];
  }
}

/** GET /metrics: the async queue's gauges and counters (none without the ASYNC_JOBS binding). */
export async function asyncQueueFamilies(env: Env, config: CompiledConfig): Promise<Family[]> {
  if (!env.ASYNC_JOBS) return [];
  const q = await asyncQueueReport(env, config);
  const one = (value: number) => [{ values: [q.queue], value }];
  return [
    { def: S.asyncDepth, samples: one(q.depth) },
    { def: S.asyncRunning, samples: one(q.running) },
    { def: S.asyncOldest, samples: one(q.oldest_age_seconds ?? 0) },
    { def: S.asyncRetries, samples: one(q.retries) },
    { def: S.asyncDeadLetters, samples: one(q.dead_letters) },
    { def: S.asyncDone, samples: one(q.jobs_done) },
  ];
}
