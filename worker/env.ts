import type { BackendLifecycle } from '../durable-objects/backend-lifecycle';
import type { BackendMetrics } from '../durable-objects/backend-metrics';
import type { CircuitBreaker } from '../durable-objects/circuit-breaker';
import type { KeyRegistry } from '../durable-objects/key-registry';
import type { TenantQuota } from '../durable-objects/tenant-quota';
import type { SemanticIndex } from '../durable-objects/semantic-index';
import type { RateLimiter } from '../durable-objects/rate-limiter';
import type { UsageLedger } from '../durable-objects/usage-ledger';
import type { UsageDraft } from './telemetry/usage-draft';
import type { MetricsAggregator } from '../durable-objects/metrics-aggregator';
import type { AlertState } from '../durable-objects/alert-state';
import type { DeploymentState } from '../durable-objects/deployment-state';
import type { BatchStore } from '../durable-objects/batch-store';
import type { RequestStore } from '../durable-objects/request-store';
import type { RateLimitHold } from './ratelimit/request';
import type { CompiledConfig } from './config/compiled';
import type { KeyRecord } from './protocol/keys';
import type { CacheSavings } from './cache/exact';

// The one place in worker/ that names the Durable Object classes (as types, for namespaces and
// stubs); their wire types are worker/protocol/. test/node/import-directions.test.ts keeps it so.
export type { AlertState, BackendLifecycle, BatchStore, DeploymentState, BackendMetrics, CircuitBreaker, KeyRegistry, MetricsAggregator, RateLimiter, RequestStore, SemanticIndex, TenantQuota, UsageLedger };

/** The Worker's bindings (wrangler.toml) and secrets. Backend secrets are looked up by name. */
export interface Env {
  ROUTER: unknown;
  KEY_REGISTRY: DurableObjectNamespace<KeyRegistry>;
  /** Scrapes backends' /metrics on an alarm; one instance, "global" (worker/routing/load-snapshot.ts). */
  BACKEND_METRICS: DurableObjectNamespace<BackendMetrics>;
  /** One circuit breaker per backend, idFromName(backendId) (worker/routing/breaker-view.ts). */
  BREAKERS: DurableObjectNamespace<CircuitBreaker>;
  /** One budget per tenant (or tenant/feature), idFromName(key) (worker/budget/lease.ts). */
  QUOTAS: DurableObjectNamespace<TenantQuota>;
  /** One lifecycle (warm / cold / waking) per backend, idFromName(backendId) (worker/routing/backend-lifecycle-view.ts). */
  BACKEND_LIFECYCLE: DurableObjectNamespace<BackendLifecycle>;
  /** Semantic cache index, one per tenant, idFromName(tenant) (worker/cache/semantic/). */
  SEMANTIC_INDEX: DurableObjectNamespace<SemanticIndex>;
  /** Embedded rate limiter: one per tenant ("tenant:<id>") and one "global" (worker/ratelimit/embedded.ts). */
  RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
  /** Usage ledger, one per tenant, idFromName("tenant:<id>") (worker/telemetry/record.ts, /admin/usage). */
  USAGE_LEDGER: DurableObjectNamespace<UsageLedger>;
  /** Workers Analytics Engine dataset for usage records (production; absent locally). */
  USAGE?: AnalyticsEngineDataset;
  /** GET /metrics: the service-wide sums, "global" (and "shard-<n>") (worker/telemetry/metrics.ts). */
  METRICS: DurableObjectNamespace<MetricsAggregator>;
  /** Alerts in force and webhook messages owed, "global" (worker/alerts/scheduled.ts). */
  ALERTS: DurableObjectNamespace<AlertState>;
  /** One per deployment, idFromName(name): versions, rollouts, gates, history (worker/deployments/). */
  DEPLOYMENTS?: DurableObjectNamespace<DeploymentState>;
  /** Batches and their per-line ledger, one per tenant, idFromName("tenant:<id>") (worker/batch/, README "Batch and async"). */
  BATCHES?: DurableObjectNamespace<BatchStore>;
  /** Files API storage (R2): "<tenant>/<file id>" (worker/routes/files.ts). */
  FILES?: R2Bucket;
  /** One message per batch line (worker/batch/consumer.ts), and its dead-letter queue. */
  ROUTER_BATCH?: Queue<unknown>;
  ROUTER_BATCH_DLQ?: Queue<unknown>;
  /** Async jobs and Idempotency-Key records, one per tenant, idFromName("tenant:<id>") (worker/async/, worker/idempotency/). */
  ASYNC_JOBS?: DurableObjectNamespace<RequestStore>;
  /** One message per Prefer: respond-async job (worker/async/consumer.ts). */
  ROUTER_ASYNC?: Queue<unknown>;
  ADMIN_TOKEN?: string;
  /** Upstash Redis REST token, when [upstash].redis_url is set (the secret's name is [upstash].redis_token_secret; this is its default). */
  UPSTASH_REDIS_REST_TOKEN?: string;
  /** Upstash Vector REST token, when [upstash].vector_url is set (the secret's name is [upstash].vector_token_secret; this is its default). */
  UPSTASH_VECTOR_REST_TOKEN?: string;
  [secret: string]: unknown;
}

/** What middleware hands to the routes below it. */
export interface Variables {
  requestId: string;
  config: CompiledConfig;
  key: KeyRecord;
}

export type AppEnv = { Bindings: Env; Variables: Variables };
