import type { RouterError } from '../http/errors';
import type { Usage } from '../openai/usage';
import type { Candidate } from './plan';
import type { StreamOutcome } from './sse-relay';

// What the executor hands back, in a module of its own so that the telemetry and the pipeline can
// name it without importing the executor (and, through it, everything it calls).

export interface Settled {
  candidate: Candidate;
  status: StreamOutcome['status'];
  usage: Usage | null;
  ttftMs: number | null;
  totalMs: number;
}

export interface ExecuteResult {
  /** The answer, or the error to answer with. */
  response: Response;
  served: Candidate | null;
  attempts: number;
  /** Backend ids tried, in order. */
  path: string[];
  /** Every attempt failed upstream (or none could start): the chain may end in a degraded answer. */
  upstreamFailed: boolean;
  /** The error the response carries, when it is one. */
  error?: RouterError;
}

