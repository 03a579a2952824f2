import type { CompiledConfig } from '../config/compiled';
import type { BackendConfig } from '../config/schema';
import { countAttemptFailure } from '../telemetry/metrics';
import { lifecycleAnswered, lifecycleBegin, lifecycleEnd, lifecycleFailed } from './backend-lifecycle-view';
import { breakerOutcomeOf, reportOutcome, type ProbePermit } from './breaker-view';
import { isolateState } from './isolate-state';
import { ttftHistory } from './ttft-history';

/** Why an attempt failed (timeouts, connect errors, an HTTP status). */
export type Failure = { kind: 'timeout' | 'connect' | 'status'; message: string; status?: number; retryAfterMs?: number | null };

export interface AttemptStart {
  config: CompiledConfig;
  env: Record<string, unknown>;
  ctx: { waitUntil(p: Promise<unknown>): void };
  backend: BackendConfig;
  /** The client asked for a stream (the lifecycle keeps a normal answer time for each kind). */
  stream: boolean;
  probe: ProbePermit | null;
  at: number;
}

/**
 * What one subsystem does over one backend attempt. The executor calls, in this order:
 * `answered` when the backend first answers (first chunk, or the whole body), then exactly one of
 * `succeeded` (the attempt is the request's answer) or `failed`, then `end` exactly once.
 * `counts` is false when the failure says nothing about the backend (the client left, or the
 * backend judged the request itself invalid).
 */
export interface AttemptTrace {
  answered?(at: number): void;
  succeeded?(): void;
  failed?(failure: Failure, counts: boolean): void;
  end?(): void;
}

export interface AttemptObserver {
  readonly name: string;
  begin(a: AttemptStart): AttemptTrace;
}

/** This isolate's in-flight count and recent failures per backend (isolate-state.ts). */
const isolateHealth: AttemptObserver = {
  name: 'isolate-health',
  begin({ backend }) {
    const release = isolateState.begin(backend.id);
    return {
      succeeded: () => isolateState.success(backend.id),
      failed: (_f, counts) => counts && isolateState.failure(backend.id),
      end: release,
    };
  },
};

/** Cold-start tracking for backends with cold_start_ms (backend-lifecycle-view.ts); a no-op for the rest. */
const lifecycle: AttemptObserver = {
  name: 'lifecycle',
  begin({ ctx, env, config, backend, stream, at }) {
    const a = lifecycleBegin(ctx, env, config, backend, stream, at);
    if (!a) return {};
    return {
      answered: (now) => lifecycleAnswered(a, now),
      failed: (f, counts) => counts && lifecycleFailed(a, f),
      end: () => lifecycleEnd(a),
    };
  },
};

/** The backend's circuit breaker: outcomes in batches, or a probe settled at once. */
const breakerOutcomes: AttemptObserver = {
  name: 'breaker',
  begin({ ctx, env, config, backend, probe }) {
    return {
      succeeded: () => reportOutcome(ctx, env, config, backend.id, 'success', { probe }),
      failed: (f, counts) => reportOutcome(ctx, env, config, backend.id, counts ? breakerOutcomeOf(config, backend.id, f) : 'ignore', { probe, cause: f.message }),
    };
  },
};

/** router_attempt_failures_total: why retries and fallbacks happened. */
const attemptFailureMetric: AttemptObserver = {
  name: 'attempt-failures',
  begin({ backend }) {
    return { failed: (f, counts) => counts && countAttemptFailure(backend.id, f) };
  },
};

/** Every observer of backend attempts, in the order they hear of each event. */
export const ATTEMPT_OBSERVERS: readonly AttemptObserver[] = [isolateHealth, lifecycle, breakerOutcomes, attemptFailureMetric, ttftHistory];

/** One attempt's traces, fanned out: each event reaches every observer once, in list order; `end` at most once. */
export function traceAttempt(start: AttemptStart, observers: readonly AttemptObserver[] = ATTEMPT_OBSERVERS): Required<AttemptTrace> {
  const traces = observers.map((o) => o.begin(start));
  let ended = false;
  let decided = false;
  return {
    answered: (at) => traces.forEach((t) => t.answered?.(at)),
    succeeded: () => {
      if (decided) return;
      decided = true;
      traces.forEach((t) => t.succeeded?.());
    },
    failed: (f, counts) => {
      if (decided) return;
      decided = true;
      traces.forEach((t) => t.failed?.(f, counts));
    },
    end: () => {
      if (ended) return;
      ended = true;
      traces.forEach((t) => t.end?.());
    },
  };
}
