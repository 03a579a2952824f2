import type { BackendMetrics } from '../durable-objects/backend-metrics';
import type { CircuitBreaker } from '../durable-objects/circuit-breaker';
import type { KeyRegistry } from '../durable-objects/key-registry';
import type { CompiledConfig } from './config/compiled';
import type { KeyRecord } from '../durable-objects/key-registry';

/** The Worker's bindings (wrangler.toml) and secrets. Backend secrets are looked up by name. */
export interface Env {
  ROUTER: unknown;
  KEY_REGISTRY: DurableObjectNamespace<KeyRegistry>;
  /** Scrapes backends' /metrics on an alarm; one instance, "global" (worker/routing/load-snapshot.ts). */
  BACKEND_METRICS: DurableObjectNamespace<BackendMetrics>;
  /** One circuit breaker per backend, idFromName(backendId) (worker/routing/breaker-view.ts). */
  BREAKERS: DurableObjectNamespace<CircuitBreaker>;
  ADMIN_TOKEN?: string;
  [secret: string]: unknown;
}

/** What middleware hands to the routes below it. */
export interface Variables {
  requestId: string;
  config: CompiledConfig;
  key: KeyRecord;
}

export type AppEnv = { Bindings: Env; Variables: Variables };
