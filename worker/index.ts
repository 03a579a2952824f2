import { app } from './app';
import type { Env } from './env';

export { KeyRegistry } from '../durable-objects/key-registry';
export { BackendMetrics } from '../durable-objects/backend-metrics';
export { CircuitBreaker } from '../durable-objects/circuit-breaker';
export { TenantQuota } from '../durable-objects/tenant-quota';
export { BackendLifecycle } from '../durable-objects/backend-lifecycle';
export { SemanticIndex } from '../durable-objects/semantic-index';
export { RateLimiter } from '../durable-objects/rate-limiter';

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
