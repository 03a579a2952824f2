import { app } from './app';
import type { Env } from './env';
import { scheduled } from './alerts/scheduled';
import { batchQueue, BATCH_QUEUES } from './batch/consumer';
import { asyncQueue, ASYNC_QUEUE } from './async/consumer';

export { KeyRegistry } from '../durable-objects/key-registry';
export { BackendMetrics } from '../durable-objects/backend-metrics';
export { CircuitBreaker } from '../durable-objects/circuit-breaker';
export { TenantQuota } from '../durable-objects/tenant-quota';
export { BackendLifecycle } from '../durable-objects/backend-lifecycle';
export { SemanticIndex } from '../durable-objects/semantic-index';
export { RateLimiter } from '../durable-objects/rate-limiter';
export { UsageLedger } from '../durable-objects/usage-ledger';
export { MetricsAggregator } from '../durable-objects/metrics-aggregator';
export { AlertState } from '../durable-objects/alert-state';
export { DeploymentState } from '../durable-objects/deployment-state';
export { BatchStore } from '../durable-objects/batch-store';
export { RequestStore } from '../durable-objects/request-store';

export default {
  fetch: app.fetch,
  // Every minute (wrangler.toml [triggers]): the alert detectors (worker/alerts/).
  scheduled,
  // Queue consumers, by queue name (wrangler.toml [[queues.consumers]]): one line per queue.
  async queue(batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) {
    if (BATCH_QUEUES.has(batch.queue)) return batchQueue(batch, env, ctx);
    if (batch.queue === ASYNC_QUEUE) return asyncQueue(batch, env, ctx);
    console.error(JSON.stringify({ msg: 'queue: no consumer', queue: batch.queue }));
    batch.retryAll();
  },
} satisfies ExportedHandler<Env>;
