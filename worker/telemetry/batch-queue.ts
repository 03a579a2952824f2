import type { UsageRecord } from '../protocol/usage-record';
import { afterResponsesRan, type WaitUntil } from '../isolate/background';

export interface BatchPolicy {
  flushIntervalMs: number;
  maxBatch: number;
  retryBaseMs: number;
  maxAttempts: number;
}

/**
 * An isolate's buffer of usage records for one kind of sink, one batch per destination (a
 * tenant's ledger, the collector). A record is written within flush_interval_ms (at once when
 * its batch is full; with 0, at once, and records that arrive while a write is in flight go in the
 * next one) by a drain that runs inside a request's waitUntil, so the runtime keeps the isolate
 * alive until it is done. A failed write is retried with the same batch, exponential
 * backoff with full jitter, at most max_attempts times: the sinks are idempotent by request_id, so
 * a retry after a write that half-landed (or whose answer was lost) never counts a record twice.
 * After the last attempt the batch is logged (its request ids) and dropped from this sink only.
 */
export class BatchQueue {
  private readonly pending = new Map<string, UsageRecord[]>();
  /** Destinations with a drain running (waiting out the interval, or writing). */
  private readonly draining = new Map<string, { wake: () => void }>();

  constructor(
    readonly name: string,
    private readonly write: (destination: string, batch: UsageRecord[]) => Promise<void>,
  ) {}

  push(ctx: WaitUntil, policy: BatchPolicy, destination: string, record: UsageRecord): void {
    let batch = this.pending.get(destination);
    if (!batch) this.pending.set(destination, (batch = []));
    batch.push(record);
    const running = this.draining.get(destination);
    if (running) {
      if (batch.length >= policy.maxBatch) running.wake(); // a full batch does not wait out the interval
      return;
    }
    // One drain per destination, in this request's waitUntil: records that arrive meanwhile (while it
    // waits out flush_interval_ms, or while a write is in flight) ride along in its next batch.
    const state = { wake: () => {} };
    this.draining.set(destination, state);
    track(ctx, this.drain(destination, policy, state));
  }

  private async drain(destination: string, policy: BatchPolicy, state: { wake: () => void }): Promise<void> {
    try {
      if (policy.flushIntervalMs > 0 && (this.pending.get(destination)?.length ?? 0) < policy.maxBatch) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, policy.flushIntervalMs);
          state.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      for (;;) {
        const all = this.pending.get(destination);
        if (!all?.length) return;
        const batch = all.splice(0, policy.maxBatch);
        await this.deliver(destination, batch, policy);
      }
    } finally {
      this.draining.delete(destination);
    }
  }

  private async deliver(destination: string, batch: UsageRecord[], policy: BatchPolicy): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.write(destination, batch);
        return;
      } catch (e) {
        if (attempt >= policy.maxAttempts) {
          console.error(JSON.stringify({ msg: 'usage: batch dropped after retries', sink: this.name, destination, attempts: attempt, error: String(e), request_ids: batch.map((r) => r.request_id) }));
          return;
        }
        await sleep(Math.random() * policy.retryBaseMs * 2 ** (attempt - 1));
      }
    }
  }
}

const inflight = new Set<Promise<unknown>>();

/** Runs a write in the background (waitUntil), visible to usageWritesSettled(). */
export function track(ctx: WaitUntil, p: Promise<unknown>): void {
  const done = p.catch((e) => console.error(JSON.stringify({ msg: 'usage: write failed', error: String(e) }))).finally(() => inflight.delete(done));
  inflight.add(done);
  ctx.waitUntil(done);
}

/** Resolves once every usage write started so far (and any they start) has finished: for tests and the bench. */
export async function usageWritesSettled(): Promise<void> {
  await afterResponsesRan(); // records reach the queues after their response went out
  while (inflight.size > 0) await Promise.allSettled([...inflight]);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
