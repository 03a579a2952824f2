import type { BackendConfig, RoutingConfig } from '../../config/schema';

export interface ReplicaContext {
  /** Hash of the request's prompt prefix (system prompt and first turns), or null if it has none. */
  prefixKey: number | null;
  /** Current load of a backend: requests in flight at this edge plus its own running and waiting. */
  loadOf: (backend: BackendConfig) => number;
  /** Pool key for policies with per-pool state (round-robin): region + model. */
  pool: string;
  routing: RoutingConfig;
}

export interface ReplicaOrder {
  /** The replicas, first choice first (the rest are its fallbacks inside the region). */
  ordered: BackendConfig[];
  /** What decided the first choice, for the x-router-affinity header. */
  decision: 'affinity' | 'yielded' | 'least-loaded' | 'round-robin' | 'single';
}

/**
 * One policy for choosing among a region's replicas of a model. Policies are small and
 * pluggable (config `routing.policy`), in the manner of vLLM production-stack's routing_logic
 * and llm-d's scorers.
 */
export interface ReplicaPolicy {
  order(replicas: readonly BackendConfig[], ctx: ReplicaContext): ReplicaOrder;
}
