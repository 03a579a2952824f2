import type { CompiledConfig } from '../config/compiled';
import type { UsageConfig } from '../config/usage';
import { BatchQueue, type BatchPolicy } from './batch-queue';
import type { UsageRecord } from '../protocol/usage-record';
import type { Env, UsageLedger } from '../env';
import type { WaitUntil } from '../isolate/background';
import { observeRequest } from './metrics';

// The one fan-out point for usage records: every finished request's record comes here once
// (the pipeline's usage participant, worker/pipeline/inference.ts), and goes to each sink that is on. Nothing here is awaited on the
// hot path: Analytics Engine's writeDataPoint is a local, non-blocking call; the ledger and the
// collector are batched per isolate and written in waitUntil (batch-queue.ts).

/** What the sinks need of the environment; structural, so tests can pass fakes. */
export interface UsageEnv {
  /** Workers Analytics Engine dataset (wrangler.toml [[analytics_engine_datasets]]); absent locally. */
  USAGE?: { writeDataPoint(point: { indexes?: string[]; blobs?: (string | null)[]; doubles?: number[] }): void };
  USAGE_LEDGER?: DurableObjectNamespace<UsageLedger>;
  [secret: string]: unknown;
}

type Subscriber = (record: UsageRecord, env: UsageEnv, ctx: WaitUntil, config: CompiledConfig) => void;
const subscribers: Subscriber[] = [];

/**
 * Another consumer of every record (e.g. Prometheus metrics): called synchronously, after the
 * sinks, once per record. Must be cheap and must not throw (a throw is logged and ignored).
 * Returns a function that unsubscribes.
 */
export function onUsageRecord(fn: Subscriber): () => void {
  subscribers.push(fn);
  return () => {
    const i = subscribers.indexOf(fn);
    if (i >= 0) subscribers.splice(i, 1);
  };
}

/** The ledger shard of a tenant: one object per tenant (durable-objects/usage-ledger.ts says why). */
export const ledgerName = (tenant: string) => `tenant:${tenant}`;

const ledgerQueue = new BatchQueue('ledger', async (destination, batch) => {
  const { env, config } = current(destination);
  const ns = env.USAGE_LEDGER;
  if (!ns) return;
  await ns.get(ns.idFromName(destination)).append(batch, config.retention_days);
});

const collectorQueue = new BatchQueue('collector', async (destination, batch) => {
  const { env, config } = current(destination);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const secret = config.collector_secret ? env[config.collector_secret] : undefined;
  if (typeof secret === 'string' && secret) headers.authorization = `Bearer ${secret}`;
  const res = await fetch(destination, { method: 'POST', headers, body: JSON.stringify({ records: batch }) });
  await res.body?.cancel();
  if (res.ok) return;
  // A 4xx other than 408/429 will not get better by retrying: log the batch and drop it at once.
  if (res.status < 500 && res.status !== 408 && res.status !== 429) {
    console.error(JSON.stringify({ msg: 'usage: collector refused a batch', status: res.status, request_ids: batch.map((r) => r.request_id) }));
    return;
  }
  throw new Error(`collector answered ${res.status}`);
});

// The latest env and settings per destination: a flush runs after the request that armed it.
const latest = new Map<string, { env: UsageEnv; config: UsageConfig }>();
function current(destination: string) {
  const c = latest.get(destination);
  if (!c) throw new Error(`usage: no env for ${destination}`);
  return c;
}

/** Sends one finished request's record to every sink that is on, and to the subscribers. Never throws. */
export function recordUsage(env: UsageEnv, ctx: WaitUntil, config: CompiledConfig, record: UsageRecord): void {
  // /metrics counts every request, whether or not usage records are kept (observeRequest never throws).
  observeRequest(record, env as unknown as Env, ctx, config);
  const u = config.raw.usage;
  if (!u.enabled) return;
  const policy: BatchPolicy = { flushIntervalMs: u.flush_interval_ms, maxBatch: u.max_batch, retryBaseMs: u.retry_base_ms, maxAttempts: u.max_attempts };
  try {
    if (u.analytics_engine && env.USAGE) env.USAGE.writeDataPoint(analyticsPoint(record));
  } catch (e) {
    console.error(JSON.stringify({ msg: 'usage: analytics engine write failed', request_id: record.request_id, error: String(e) }));
  }
  if (u.ledger && env.USAGE_LEDGER) {
    const name = ledgerName(record.tenant);
    latest.set(name, { env, config: u });
    ledgerQueue.push(ctx, policy, name, record);
  }
  if (u.collector_url) {
    latest.set(u.collector_url, { env, config: u });
    collectorQueue.push(ctx, policy, u.collector_url, record);
  }
  for (const fn of subscribers) {
    try {
      fn(record, env, ctx, config);
    } catch (e) {
      console.error(JSON.stringify({ msg: 'usage: subscriber failed', error: String(e) }));
    }
  }
}

/**
 * The Analytics Engine row of a record (README "Usage and cost" documents the columns): index1 =
 * tenant (AE samples per index); blob1..blob19 (blob16: client_request_id; blob17..19: deployment, deployment_version, finish_reason, added last) and double1..double13 (double13: refused, 1/0, -1 when not judged) in the order below. AE has
 * no unique key: deduplicate by blob1 (request_id) in queries if a record may have been written twice.
 */
export function analyticsPoint(r: UsageRecord) {
  return {
    indexes: [r.tenant],
    blobs: [
      r.request_id, r.tenant, r.key_id, r.user, r.feature, r.endpoint, r.requested_model, r.model, r.backend, r.region, r.tier,
      r.outcome, r.cache, r.path.join('>'), r.error_code, r.client_request_id ?? null,
      r.deployment ?? null, r.deployment_version ?? null, r.finish_reason ?? null,
    ],
    doubles: [
      r.ts, r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.tokens_estimated ? 1 : 0, r.cost_usd, r.saved_usd, r.latency_ms,
      r.ttft_ms ?? -1, r.tokens_per_s ?? -1, r.status, r.attempts,
      r.refused === true ? 1 : r.refused === false ? 0 : -1,
    ],
  };
}
