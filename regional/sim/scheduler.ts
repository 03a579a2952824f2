/**
 * The latency model.
 *
 * - At most `max_num_seqs` requests run at once; the rest wait in a FIFO queue
 *   (vLLM's `num_requests_running` / `num_requests_waiting`).
 * - When a request gets a slot: time to first token = `base_ttft_ms` +
 *   `prefill_ms_per_token` × (prompt tokens not served from the prefix cache).
 *   Seen from the client, TTFT also includes the time spent waiting for the slot.
 * - Then one token every `itl_ms`: token k (0-based) is due at TTFT + k × itl.
 * - All three delays zero ⇒ the request completes synchronously inside `submit()`:
 *   no timers at all, not even setTimeout(0).
 *
 * The scheduler only hands out slots; the request's own timers live in engine.ts.
 */
import type { Latency } from './options.js';

export interface SchedJob {
  /** Called once, when the job is granted a sequence slot. May call `release` synchronously. */
  start(): void;
  /** Scheduler bookkeeping: 0 new, 1 waiting, 2 running, 3 done. */
  schedState: number;
  enqueuedAt: number;
}

export class Scheduler {
  readonly running = new Set<SchedJob>();
  private queue: (SchedJob | null)[] = [];
  private head = 0;
  private waitingCount = 0;
  private pumping = false;

  constructor(public maxNumSeqs: number) {}

  get numRunning(): number {
    return this.running.size;
  }

  get numWaiting(): number {
    return this.waitingCount;
  }

  /** Runs the job now if a slot is free and nobody is waiting, else queues it (FIFO). */
  submit(job: SchedJob): void {
    if (this.running.size < this.maxNumSeqs && this.waitingCount === 0) {
      job.schedState = 2;
      this.running.add(job);
      job.start();
      return;
    }
    job.schedState = 1;
    this.queue.push(job);
    this.waitingCount++;
  }

  /** A running job finished (or was aborted): frees its slot and admits waiters. */
  release(job: SchedJob): void {
    if (job.schedState === 2) {
      job.schedState = 3;
      this.running.delete(job);
      this.pump();
    } else if (job.schedState === 1) {
      this.cancel(job);
    }
  }

  /** A waiting job was aborted: drops it from the queue. */
  cancel(job: SchedJob): void {
    if (job.schedState !== 1) return;
    job.schedState = 3;
    this.waitingCount--;
    const i = this.queue.indexOf(job, this.head);
    if (i >= 0) this.queue[i] = null;
    this.compact();
  }

  setMaxNumSeqs(n: number): void {
    this.maxNumSeqs = n;
    this.pump();
  }

  private pump(): void {
    // Non-reentrant: a job that completes synchronously inside start() calls release(),
    // which lands here again; the outer loop keeps admitting instead of recursing.
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.waitingCount > 0 && this.running.size < this.maxNumSeqs) {
        const job = this.queue[this.head];
        this.queue[this.head++] = null;
        if (job === null || job === undefined) continue;
        this.waitingCount--;
        job.schedState = 2;
        this.running.add(job);
        job.start();
      }
    } finally {
      this.pumping = false;
      this.compact();
    }
  }

  private compact(): void {
    if (this.waitingCount === 0) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/** The latency model's time to first token once running (excludes queue wait). */
export function modelTtftMs(lat: Pick<Latency, 'base_ttft_ms' | 'prefill_ms_per_token'>, uncachedTokens: number): number {
  return lat.base_ttft_ms + lat.prefill_ms_per_token * uncachedTokens;
}

/** True when every delay is zero: requests complete synchronously, with no timers. */
export function isInstant(lat: Pick<Latency, 'base_ttft_ms' | 'prefill_ms_per_token' | 'itl_ms'>): boolean {
  return lat.base_ttft_ms === 0 && lat.prefill_ms_per_token === 0 && lat.itl_ms === 0;
}
