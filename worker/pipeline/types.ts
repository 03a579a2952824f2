import type { BudgetHandle } from '../budget/lease';
import type { CacheSavings, CacheStatus } from '../cache/exact';
import type { CompiledConfig } from '../config/compiled';
import type { Env } from '../env';
import type { RouterError } from '../http/errors';
import type { EndpointKind, endpoints } from '../openai/schemas';
import type { KeyRecord } from '../protocol/keys';
import type { ColdStartPlan } from '../routing/cold-start';
import type { Candidate } from '../routing/plan';
import type { ResolvedRoute } from '../routing/resolve-model';
import type { ExecuteResult, Settled } from '../routing/types';
import type { AnswerWatch } from '../quality/answer-signals';
import type { DeploymentAssignment } from '../deployments/assign';

export type InferenceBody = Record<string, unknown> & { model: string };

/**
 * How a request ended, as its participants hear it once in `finish`: the response the client gets
 * (headers still mutable), the error it carries if one was thrown, and whether a relayed stream is
 * still running (then `settle` comes when it ends).
 */
export interface RequestEnd {
  response: Response;
  error: RouterError | null;
  /** A stream is being relayed: `settle` follows when it ends (completed, failed, or the client left). */
  relaying: boolean;
}

/**
 * Anything that holds something for one request and must hear how it ended: the rate-limit hold,
 * the budget reservation, the usage record, the cache writer. The runner (run.ts) guarantees, on
 * every exit (answer, error, fallback, degraded answer, cache hit, deadline, client gone):
 * - `finish` exactly once, when the response is made (headers may still be set);
 * - then exactly one of `settle` (an upstream answer was served: what it really used, for a relayed
 *   stream when it ends) or `release` (nothing was used).
 * Methods must not throw (a throw is logged and the others still run).
 */
export interface Participant {
  readonly name: string;
  /** Each upstream SSE event's data as it is relayed (the exact cache assembles the stream from it). */
  onStreamEvent?(data: string): void;
  settle?(actual: Settled): void;
  release?(): void;
  finish?(end: RequestEnd): void;
}

/** One request's state as it moves through the stages; replaces the handler's closure variables. */
export interface InferenceRequest {
  readonly kind: EndpointKind;
  readonly spec: (typeof endpoints)[EndpointKind];
  readonly config: CompiledConfig;
  readonly env: Env;
  readonly ctx: { waitUntil(p: Promise<unknown>): void };
  readonly key: KeyRecord;
  readonly tenantId: string;
  /** The router's id for this request: the ledger key, unique, never the client's. */
  readonly requestId: string;
  readonly raw: Request;
  /** Aborts when the client goes away. */
  readonly signal: AbortSignal;
  readonly started: number;
  readonly deadline: number;
  /** The validated body; request transforms edit it (before the cache stages they change the cache key). */
  body: InferenceBody;
  user: string | null;
  route: ResolvedRoute;
  /** Set by the rate-limit stage. */
  limits: import('../ratelimit/request').RateLimitHold | null;
  /** Set by the soft-limit stage: the tenant's budget, null without one. */
  budget: BudgetHandle | null;
  /** The tier a soft limit downgraded the request to. */
  downgradedTo: string | null;
  cache: { status: CacheStatus; savings: CacheSavings | null };
  /** Refusals that wait until every cache lookup has missed (a hit costs nothing, so it is still served). */
  deferred: RouterError[];
  /** Set by the plan stage. */
  candidates: readonly Candidate[];
  cold: ColdStartPlan | null;
  /** Set by the execute stage. */
  result: ExecuteResult | null;
  /** Set by the execute stage: the answer is the configured degraded one. */
  degraded: boolean;
  /** The deployment version this request was assigned (README "Rollouts and quality"), when `model` names a deployment. */
  deployment: DeploymentAssignment | null;
  /** The served answer's verdict (finish_reason, refusal), for whoever listens (answer-signals stage). */
  readonly signals: AnswerWatch;
  /** Registers a participant (run.ts closes it on every exit). */
  join(p: Participant): void;
  /** The runner's side of the executor (run.ts): settle fan-out, stream-event fan-out, "a stream is being relayed". */
  readonly lifecycle: {
    settle(s: Settled): void;
    streamEvents(): ((data: string) => void) | undefined;
    relaying(): void;
  };
}

/** One step of the request path. Returning a Response ends the path there (a cache hit, an answer). */
export interface Stage {
  readonly name: string;
  /**
   * Starts, before the first stage runs, a remote read this stage will wait for, so that its round
   * trip overlaps the stages before it (a cold isolate's budget sync beside its rate-limit lease).
   * Only reads: nothing taken or counted. Never throws; `run` meets any error again.
   */
  prefetch?(r: InferenceRequest): void;
  run(r: InferenceRequest): Promise<Response | void> | Response | void;
}
