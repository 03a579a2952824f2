import { app } from './app';
import type { Env } from './env';
import { scheduled } from './alerts/scheduled';

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

export default {
  fetch: app.fetch,
  // Every minute (wrangler.toml [triggers]): the alert detectors (worker/alerts/).
  scheduled,
} satisfies ExportedHandler<Env>;
