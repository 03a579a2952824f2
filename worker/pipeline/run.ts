import { RouterError } from '../http/errors';
import type { Settled } from '../routing/types';
import type { InferenceRequest, Participant, RequestEnd, Stage } from './types';

/**
 * Runs the stages in order until one answers, then closes every participant exactly once (see
 * `Participant`): `finish` when the response is made, then `settle` (what a served answer used;
 * for a relayed stream when it ends) or `release` (nothing used). A thrown RouterError becomes its
 * response here, so every participant sees the status the client gets; anything else is an
 * internal error (500), logged.
 *
 * The request's `closed` promise is handed to waitUntil before the first stage: when the client
 * leaves, the runtime keeps running the request until every participant has been closed, so a
 * dropped stream is settled, recorded and its backend slot freed like any other.
 */
export class PipelineRun {
  private readonly participants: Participant[] = [];
  private settled = false;
  private released = false;
  private relaying = false;
  private resolveClosed!: () => void;
  /** Resolves once every participant is closed (for a relayed stream: when it ends). */
  readonly closed = new Promise<void>((resolve) => (this.resolveClosed = resolve));

  constructor(private readonly requestId: string) {}

  join(p: Participant): void {
    this.participants.push(p);
  }

  /** The stages' run, to its response (never throws). */
  async run(r: InferenceRequest, stages: readonly Stage[], prepare: () => Promise<void> | void): Promise<Response> {
    let response: Response | undefined;
    let error: RouterError | null = null;
    try {
      await prepare();
      for (const stage of stages) if (stage.prefetch) guardPrefetch(stage, r);
      for (const stage of stages) {
        // Most stages are synchronous: await only a promise (each await is a microtask turn).
        const ran = stage.run(r);
        const out = ran instanceof Promise ? await ran : ran;
        if (out) {
          response = out;
          break;
        }
      }
      if (!response) throw new Error('the pipeline ended without an answer');
    } catch (e) {
      error = e instanceof RouterError ? e : new RouterError(500, 'Internal router error.', 'internal_error');
      if (!(e instanceof RouterError)) console.error(JSON.stringify({ msg: 'unhandled error', request_id: this.requestId, error: String(e), stack: (e as Error)?.stack }));
      response = error.toResponse();
    }
    this.end({ response, error, relaying: this.relaying });
    return response;
  }

  /** The executor's onStreamEvent fan-out (null when nobody listens). */
  streamEvents(): ((data: string) => void) | undefined {
    const listeners = this.participants.filter((p) => p.onStreamEvent);
    if (listeners.length === 0) return undefined;
    return (data) => {
      for (const p of listeners) guard(p, 'onStreamEvent', () => p.onStreamEvent!(data));
    };
  }

  /** The executor's onSettled: the served answer's real usage, fanned out once to every participant. */
  readonly settle = (s: Settled): void => {
    if (this.settled || this.released) return;
    this.settled = true;
    for (const p of this.participants) if (p.settle) guard(p, 'settle', () => p.settle!(s));
    if (this.ended) this.resolveClosed();
  };

  /** The executor returned a relayed stream: settle() comes when it ends, not at the end of the run. */
  markRelaying(): void {
    this.relaying = true;
  }

  private ended = false;

  private end(end: RequestEnd): void {
    this.ended = true;
    for (const p of this.participants) if (p.finish) guard(p, 'finish', () => p.finish!(end));
    if (this.settled) return this.resolveClosed();
    if (end.relaying && end.response.status === 200) return; // settle() follows when the stream ends
    this.released = true;
    for (const p of this.participants) if (p.release) guard(p, 'release', () => p.release!());
    this.resolveClosed();
  }
}

function guardPrefetch(stage: Stage, r: InferenceRequest): void {
  try {
    stage.prefetch!(r);
  } catch {
    // The stage's run meets the same error and answers it.
  }
}

function guard(p: Participant, step: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    console.error(JSON.stringify({ msg: 'participant failed', participant: p.name, step, error: String(e) }));
  }
}
