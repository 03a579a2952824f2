import { DurableObject } from 'cloudflare:workers';
import type { BackendState } from '../worker/protocol/backends-api';
import { expectedColdStart, idleSince, IN_FLIGHT_FRESH_MS, OBSERVED_KEPT, type LifecycleSettings } from '../worker/protocol/rules/lifecycle-rules';
import type { Base, LifecycleStatus, LifecycleReport, WakeRequest, EventRequest } from '../worker/protocol/lifecycle';

// One per backend: `BACKEND_LIFECYCLE.idFromName(backendId)`. The authority on whether the
// backend is warm, cold (parked) or waking, fed by three sources:
//   - scale events from the scale scripts (POST /admin/backends/:id/events → event());
//   - traffic: isolates report requests, in-flight counts and answers in batches (report()), and a
//     backend the platform parks by itself is presumed cold after its idle window;
//   - the backend's own answers: a success means warm; a connect failure or 503 of a wake-up ping
//     means nothing is starting it (back to cold).
// Isolates keep a copy (worker/routing/backend-lifecycle-view.ts) and talk to it only from
// waitUntil. Every method is synchronous (SQLite in a Durable Object is), so calls never interleave.

const RATE_MINUTES = 5;
/** Bounds the per-isolate table whatever happens (stale entries go first). */
const MAX_ISOLATES = 500;

interface Core {
  backend: string | null;
  state: BackendState;
  since: number | null;
  /** Who said it is waking: a ping from an isolate (undone by a failed ping) or a scale event. */
  wakingBy: 'ping' | 'event' | null;
  lastRequestAt: number | null;
  /** isolate id → [in flight, reported at]. */
  isolates: Record<string, [number, number]>;
  /** [minute (epoch ms / 60 000), requests], oldest first, the last RATE_MINUTES minutes. */
  buckets: [number, number][];
  pending: number;
  pendingSince: number | null;
  observed: number[];
  replicas: number | null;
  version: number;
  settings: LifecycleSettings | null;
}

const initialCore = (): Core => ({
  backend: null,
  state: 'unknown',
  since: null,
  wakingBy: null,
  lastRequestAt: null,
  isolates: {},
  buckets: [],
  pending: 0,
  pendingSince: null,
  observed: [],
  replicas: null,
  version: 0,
  settings: null,
});

export class BackendLifecycle extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;
  private core: Core = initialCore();
  private dirty = false;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL)');
    const row = this.sql.exec<{ v: string }>("SELECT v FROM state WHERE k = 'core'").toArray()[0];
    if (row) {
      try {
        this.core = { ...initialCore(), ...(JSON.parse(row.v) as Partial<Core>) };
      } catch {
        // An unreadable row is as good as none: unknown.
      }
    }
  }

  // ------------------------------------------------------------------ RPC

  /** A batch from one isolate. Answers with the status after it. */
  report(batch: LifecycleReport): LifecycleStatus {
    const now = this.begin(batch);
    const c = this.core;
    if (typeof batch.isolate === 'string' && batch.isolate) {
      c.isolates[batch.isolate] = [count(batch.in_flight), now];
      this.dirty = true;
    }
    const requests = count(batch.requests);
    if (requests > 0) this.countRequests(now, requests);
    const last = time(batch.last_request_at, now);
    if (last !== null && last > (c.lastRequestAt ?? 0)) {
      c.lastRequestAt = last;
      this.dirty = true;
    }
    // A failure only undoes a wake-up an isolate started (a scale event's waking stands: the
    // platform is starting it and refuses until then). News older than the state is stale.
    const coldAt = time(batch.cold_at, now);
    if (coldAt !== null && c.state === 'waking' && c.wakingBy === 'ping' && coldAt >= (c.since ?? 0)) this.to('cold', coldAt);
    const warmAt = time(batch.warm_at, now);
    if (warmAt !== null && warmAt >= (c.since ?? 0)) {
      this.to('warm', warmAt);
      // The backend answers: whatever wake-up was asked for has happened.
      if (c.pending > 0 && warmAt >= (c.pendingSince ?? 0)) this.clearPending();
    }
    if (Array.isArray(batch.observed)) for (const ms of batch.observed) this.observe(ms);
    this.save();
    return this.statusAt(now);
  }

  /** A scale event (the scale scripts through the admin route). */
  event(req: EventRequest): LifecycleStatus {
    const now = this.begin(req);
    const c = this.core;
    const e = req.event;
    switch (e.type) {
      case 'scaled_down':
        c.replicas = e.replicas;
        // Fewer replicas but some left: still serving.
        if (e.replicas === 0) this.to('cold', now);
        else this.to('warm', now);
        break;
      case 'waking':
        c.replicas = e.replicas ?? positiveOrNull(c.replicas);
        this.clearPending(); // a start answers the wake-ups asked for
        // A backend already answering stays warm while it adds replicas.
        if (c.state !== 'warm') this.to('waking', now, 'event');
        break;
      case 'ready':
        c.replicas = e.replicas ?? positiveOrNull(c.replicas);
        this.clearPending();
        this.to('warm', now);
        if (e.cold_start_ms !== undefined) this.observe(e.cold_start_ms);
        break;
    }
    this.dirty = true;
    this.save();
    return this.statusAt(now);
  }

  /**
   * A wake-up asked for by an isolate that routed around the backend (or is waiting on it): it
   * stays pending until a scale event or an answer of the backend says it is up.
   */
  wake(req: WakeRequest): LifecycleStatus {
    const now = this.begin(req);
    const c = this.core;
    c.pending++;
    c.pendingSince ??= now;
    if (req.ping === true && (c.state === 'cold' || c.state === 'unknown')) this.to('waking', now, 'ping');
    this.dirty = true;
    this.save();
    return this.statusAt(now);
  }

  /** The current status (an isolate's background refresh, /admin/backends). */
  status(req: Base = {}): LifecycleStatus {
    const now = this.begin(req);
    this.save();
    return this.statusAt(now);
  }

  // ------------------------------------------------------------------ internals

  /** Takes the caller's backend name and settings, drops stale isolates, and applies the idle presumption. */
  private begin(req: Base): number {
    const now = typeof req.now === 'number' && Number.isFinite(req.now) ? req.now : Date.now();
    const c = this.core;
    if (typeof req.backend === 'string' && req.backend && req.backend !== c.backend) {
      c.backend = req.backend;
      this.dirty = true;
    }
    if (req.settings && typeof req.settings === 'object' && JSON.stringify(req.settings) !== JSON.stringify(c.settings)) {
      c.settings = { configured_ms: req.settings.configured_ms ?? null, idle_ms: req.settings.idle_ms ?? null };
      this.dirty = true;
    }
    const ids = Object.keys(c.isolates);
    for (const id of ids) {
      if (now - c.isolates[id]![1] > IN_FLIGHT_FRESH_MS) {
        delete c.isolates[id];
        this.dirty = true;
      }
    }
    if (ids.length > MAX_ISOLATES) {
      const keep = Object.entries(c.isolates).sort((a, b) => b[1][1] - a[1][1]).slice(0, MAX_ISOLATES);
      c.isolates = Object.fromEntries(keep);
      this.dirty = true;
    }
    if (c.state === 'warm') {
      const parked = idleSince(c.settings?.idle_ms ?? null, Math.max(c.lastRequestAt ?? 0, c.since ?? 0), this.inFlight(), c.replicas, now);
      if (parked !== null) this.to('cold', parked);
    }
    return now;
  }

  private to(state: BackendState, at: number, wakingBy: Core['wakingBy'] = null): void {
    const c = this.core;
    if (c.state === state && (state !== 'waking' || c.wakingBy === wakingBy)) return;
    if (c.state !== state) {
      c.since = at;
      c.version++;
    }
    c.state = state;
    c.wakingBy = state === 'waking' ? wakingBy : null;
    this.dirty = true;
  }

  private clearPending(): void {
    this.core.pending = 0;
    this.core.pendingSince = null;
    this.dirty = true;
  }

  private observe(ms: unknown): void {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return;
    const c = this.core;
    c.observed.push(Math.round(ms));
    if (c.observed.length > OBSERVED_KEPT) c.observed.splice(0, c.observed.length - OBSERVED_KEPT);
    c.version++;
    this.dirty = true;
  }

  private countRequests(now: number, n: number): void {
    const minute = Math.floor(now / 60_000);
    const b = this.core.buckets;
    const last = b[b.length - 1];
    if (last && last[0] === minute) last[1] += n;
    else b.push([minute, n]);
    while (b.length && b[0]![0] <= minute - RATE_MINUTES) b.shift();
    this.dirty = true;
  }

  private inFlight(): number {
    let n = 0;
    for (const id in this.core.isolates) n += this.core.isolates[id]![0];
    return n;
  }

  private save(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('core', ?)", JSON.stringify(this.core));
  }

  private statusAt(now: number): LifecycleStatus {
    const c = this.core;
    const minute = Math.floor(now / 60_000);
    let recent = 0;
    for (const [m, n] of c.buckets) if (m > minute - RATE_MINUTES && m <= minute) recent += n;
    return {
      backend: c.backend,
      state: c.state,
      since: c.since,
      last_request_at: c.lastRequestAt,
      in_flight: this.inFlight(),
      rate_per_min: Math.round((recent / RATE_MINUTES) * 100) / 100,
      pending_wakeups: c.pending,
      wakeup_requested_at: c.pendingSince,
      observed: [...c.observed],
      expected_ms: expectedColdStart(c.observed, c.settings?.configured_ms ?? null),
      replicas: c.replicas,
      version: c.version,
      at: now,
    };
  }
}

/** A non-negative integer from an isolate's report (0 for anything else). */
const count = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? Math.floor(x) : 0);
/** A reported time, never in this object's future (clocks of isolates drift a little). */
const time = (x: unknown, now: number): number | null => (typeof x === 'number' && Number.isFinite(x) && x > 0 ? Math.min(x, now) : null);
const positiveOrNull = (n: number | null): number | null => (n !== null && n > 0 ? n : null);
