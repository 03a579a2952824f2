/**
 * Run-time state of one sim server: warm/cold lifecycle (scale to zero, wake on the next
 * request, idle scale-down) and the counters behind `GET /sim/stats`.
 */

export type Lifecycle = 'warm' | 'cold' | 'waking';

/**
 * Scale-to-zero model.
 *
 * - `cold`: the next /v1 request starts a wake (state `waking`) that takes
 *   `cold_start_ms`; every request arriving while waking waits for that same wake.
 * - `/health` never wakes it (and answers 503 unless warm).
 * - `idle_scale_down_ms` > 0: after that long with no request arriving or finishing and
 *   nothing in flight, it goes cold by itself.
 */
export class LifecycleState {
  state: Lifecycle = 'warm';
  wakes = 0;
  /** Epoch ms of the last /v1 request arrival (null before the first). */
  lastRequestAt: number | null = null;
  private lastActivity = Date.now();
  private waiters = new Set<() => void>();
  private wakeTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    public coldStartMs: number,
    public idleScaleDownMs: number,
    /** Requests in flight (running + waiting + hanging + waking); idle scale-down waits for 0. */
    private readonly busy: () => number,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.armIdle();
  }

  get warm(): boolean {
    return this.state === 'warm';
  }

  /**
   * Called for every /v1 request. Returns null when warm (proceed synchronously). Otherwise
   * `onWarm` runs once the wake completes, and the returned function unregisters it
   * (call it when the client goes away first).
   */
  whenWarm(onWarm: () => void): (() => void) | null {
    if (this.state === 'warm') return null;
    if (this.state === 'cold') this.startWake();
    if ((this.state as Lifecycle) === 'warm') return null; // cold_start_ms 0: woke synchronously
    this.waiters.add(onWarm);
    return () => {
      this.waiters.delete(onWarm);
    };
  }

  get waitingForWake(): number {
    return this.waiters.size;
  }

  /** Marks activity (request arrival or completion) for idle scale-down. */
  touch(now = Date.now()): void {
    this.lastActivity = now;
  }

  noteRequest(now = Date.now()): void {
    this.lastRequestAt = now;
    this.lastActivity = now;
  }

  /** `POST /sim/state`. cold=true scales to zero (a no-op while already cold/waking); false warms now. */
  setCold(cold: boolean): void {
    if (cold) {
      if (this.state === 'warm') {
        this.state = 'cold';
        this.log('scaled to zero (cold)');
        this.disarmIdle();
      }
    } else if (this.state !== 'warm') {
      this.finishWake(false);
    }
  }

  setTimes(coldStartMs: number | undefined, idleScaleDownMs: number | undefined): void {
    if (coldStartMs !== undefined) this.coldStartMs = coldStartMs;
    if (idleScaleDownMs !== undefined) {
      this.idleScaleDownMs = idleScaleDownMs;
      this.disarmIdle();
      this.armIdle();
    }
  }

  close(): void {
    this.closed = true;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    this.disarmIdle();
    this.waiters.clear();
  }

  private startWake(): void {
    this.state = 'waking';
    this.log(`waking (cold start ${this.coldStartMs} ms)`);
    if (this.coldStartMs <= 0) {
      this.finishWake(true);
      return;
    }
    this.wakeTimer = setTimeout(() => this.finishWake(true), this.coldStartMs);
  }

  private finishWake(countWake: boolean): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    this.state = 'warm';
    if (countWake) this.wakes++;
    this.lastActivity = Date.now();
    this.log('warm');
    this.armIdle();
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  private armIdle(): void {
    if (this.closed || this.idleScaleDownMs <= 0 || this.state !== 'warm' || this.idleTimer) return;
    this.scheduleIdleCheck(this.idleScaleDownMs);
  }

  private scheduleIdleCheck(ms: number): void {
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.closed || this.state !== 'warm' || this.idleScaleDownMs <= 0) return;
      const idleFor = Date.now() - this.lastActivity;
      if (this.busy() > 0) {
        this.scheduleIdleCheck(this.idleScaleDownMs);
      } else if (idleFor >= this.idleScaleDownMs) {
        this.state = 'cold';
        this.log(`idle for ${idleFor} ms: scaled to zero (cold)`);
      } else {
        this.scheduleIdleCheck(this.idleScaleDownMs - idleFor);
      }
    }, Math.max(1, ms));
    this.idleTimer.unref();
  }

  private disarmIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

/** One inference request as the backend saw it (`GET /sim/stats` → `recent`). */
export interface RequestRecord {
  id: string;
  endpoint: string;
  model: string;
  stream: boolean;
  status: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  /** Time spent waiting for a sequence slot. */
  queue_ms: number;
  /** The latency model's TTFT once running: base_ttft_ms + prefill_ms_per_token × uncached tokens. */
  model_ttft_ms: number;
  /** Measured: submission to the scheduler → first token (includes queue_ms). */
  ttft_ms: number | null;
  /** Measured: submission → last byte (or abort). */
  e2e_ms: number;
  finish_reason: string | null;
  aborted: boolean;
}

const RECENT_MAX = 100;

export class SimStats {
  /**
   * Requests received (counted on arrival, before auth, faults or validation) by endpoint:
   * chat, completions, embeddings, models, health, ping, metrics, version, load,
   * control (/sim/*), other.
   */
  requests: Record<string, number> = {};
  /** Inference requests by requested model. */
  by_model: Record<string, number> = {};
  /** Responses by HTTP status (hangs and drops have none). */
  responses: Record<string, number> = {};
  completed = 0;
  aborted = 0;
  streams = 0;
  faults = { errors: 0, delayed: 0, hangs: 0, drops: 0 };
  /** Requests made worse by the quality knobs (`/sim/config` error_rate, refusal_rate). */
  quality = { errors: 0, refusals: 0 };
  tokens = { prompt: 0, cached: 0, completion: 0 };
  private recent: RequestRecord[] = [];
  private recentHead = 0;

  countRequest(path: string): void {
    this.requests[path] = (this.requests[path] ?? 0) + 1;
  }

  countModel(model: string): void {
    this.by_model[model] = (this.by_model[model] ?? 0) + 1;
  }

  countResponse(status: number): void {
    this.responses[status] = (this.responses[status] ?? 0) + 1;
  }

  addRecord(r: RequestRecord): void {
    if (this.recent.length < RECENT_MAX) this.recent.push(r);
    else {
      this.recent[this.recentHead] = r;
      this.recentHead = (this.recentHead + 1) % RECENT_MAX;
    }
  }

  /** Oldest first. */
  recentRecords(): RequestRecord[] {
    return [...this.recent.slice(this.recentHead), ...this.recent.slice(0, this.recentHead)];
  }

  reset(): void {
    this.requests = {};
    this.by_model = {};
    this.responses = {};
    this.completed = 0;
    this.aborted = 0;
    this.streams = 0;
    this.faults = { errors: 0, delayed: 0, hangs: 0, drops: 0 };
    this.quality = { errors: 0, refusals: 0 };
    this.tokens = { prompt: 0, cached: 0, completion: 0 };
    this.recent = [];
    this.recentHead = 0;
  }
}
