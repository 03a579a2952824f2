import { background, type WaitUntil } from './background';
import { SingleFlight } from './single-flight';

/** What a report loop needs from its view; `C` is what the caller passes with each pump (namespace, settings). */
export interface ReportLoopSpec<C, Batch, Reply> {
  /** Names the view in log lines ("breaker", "lifecycle"). */
  readonly what: string;
  /** How long the pending batch must still wait (0: send now), or 'idle': nothing to send. */
  due(now: number, c: C): number | 'idle';
  /** Cuts the pending batch (and notes when it left). */
  take(now: number, c: C): Batch;
  send(batch: Batch, c: C): Promise<Reply>;
  /** Installs the object's answer in the view. */
  apply(reply: Reply, c: C): void;
  /** A send (or apply) threw; not retried: the object may have counted it before the reply was lost. */
  failed(err: unknown, batch: Batch, c: C): void;
  /**
   * A loop hands over after this long (it runs in the waitUntil of the request that started it,
   * which the runtime cuts some time after that response; the next pump starts a fresh one).
   */
  readonly maxLoopMs?: number;
}

/**
 * Batched reports from an isolate view to its Durable Object: one report in flight at a time;
 * what arrives meanwhile rides on the next one, and news (a due rule of 0) jumps the wait.
 * pump() is synchronous: the loop runs in waitUntil until nothing is due.
 */
export class ReportLoop<C, Batch, Reply> {
  private readonly flight = new SingleFlight();

  constructor(private readonly spec: ReportLoopSpec<C, Batch, Reply>) {}

  /** True while a loop (one report in flight, or a wait for the next) is running. */
  running(now: number): boolean {
    return this.flight.running(now);
  }

  /** Starts the loop unless one is running (it will pick the batch up) or nothing is due. */
  pump(ctx: WaitUntil, c: C, now: number = Date.now()): void {
    if (this.flight.running(now) || this.spec.due(now, c) === 'idle') return;
    const token = this.flight.start(now);
    background(ctx, this.drain(token, c, now), this.spec.what);
  }

  /** Sends the batch whenever it is due, one report at a time, until nothing is due. */
  private async drain(token: number, c: C, startedAt: number): Promise<void> {
    const { spec } = this;
    let now = startedAt;
    try {
      for (;;) {
        if (!this.flight.holds(token)) return;
        if (spec.maxLoopMs !== undefined && Date.now() - startedAt > spec.maxLoopMs) return;
        const wait = spec.due(now, c);
        if (wait === 'idle') return;
        if (wait > 0) {
          await new Promise((r) => setTimeout(r, wait));
          now = Math.max(Date.now(), now + wait);
          continue;
        }
        const batch = spec.take(now, c);
        try {
          spec.apply(await spec.send(batch, c), c);
        } catch (err) {
          spec.failed(err, batch, c);
        }
        now = Date.now();
      }
    } finally {
      this.flight.done(token);
    }
  }
}
