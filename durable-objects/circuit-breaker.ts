import { DurableObject } from 'cloudflare:workers';
import { breakerSchema } from '../worker/config/schema';
import { type Base, type BreakerState, type BreakerSettings, type BreakerStatus, type BreakerDetails, type ReportBatch, type ProbeRequest, type ProbeReply, type ProbeSettlement, TRANSITIONS_KEPT, DEFAULT_PROBE_LEASE_MS, MAX_PROBE_LEASE_MS } from '../worker/protocol/breaker';

// One circuit breaker per backend: `BREAKERS.idFromName(backendId)`. Edge isolates keep a copy of
// its state (worker/routing/breaker-view.ts) and talk to it only from waitUntil, except for the
// one hop that asks for a probe permit while it is half-open.
//
// Every method is synchronous (SQLite in a Durable Object is), so each call runs alone: no two
// reports interleave, and probe permits are handed out strictly. Each takes an optional `now`
// (epoch ms) so tests can drive the clock; callers in the router never pass it.

/** The window is kept in this many buckets (1 s each for 60 s). */
const BUCKETS_PER_WINDOW = 60;

const DEFAULT_SETTINGS: BreakerSettings = breakerSchema.parse({});

interface Core {
  backend: string | null;
  state: BreakerState;
  openedAt: number | null;
  openedUntil: number | null;
  cooldownMs: number | null;
  consecutiveFailures: number;
  halfOpenSuccesses: number;
  tripStreak: number;
  trips: number;
  /** When it last closed (0: never opened). A trip long after that starts the cool-down afresh. */
  closedAt: number;
  probes: { id: string; expiresAt: number }[];
  version: number;
  updatedAt: number | null;
  settings: BreakerSettings | null;
}

const initialCore = (): Core => ({
  backend: null,
  state: 'closed',
  openedAt: null,
  openedUntil: null,
  cooldownMs: null,
  consecutiveFailures: 0,
  halfOpenSuccesses: 0,
  tripStreak: 0,
  trips: 0,
  closedAt: 0,
  probes: [],
  version: 0,
  updatedAt: null,
  settings: null,
});

type TransitionRow = Record<string, SqlStorageValue> & { at: number; from_state: string; to_state: string; cause: string };

/**
 * The breaker for one backend. Closed → open when, over the sliding window with at least
 * `min_requests` requests, the failure share reaches `failure_threshold`, or after
 * `consecutive_failures` failures in a row. Open for the cool-down (`cooldown_ms`, multiplied by
 * `cooldown_multiplier` on each further trip without a lasting recovery, up to `cooldown_max_ms`),
 * then half-open: `acquireProbe()` hands out at most `half_open_max_probes` permits at a time;
 * `close_after_successes` successful probes in a row close it, a failed one opens it again.
 *
 * Only probes move a half-open breaker; outcomes reported while open or half-open (requests
 * that started before an isolate heard of the trip) are counted in the window, nothing more.
 */
export class CircuitBreaker extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;
  private core: Core = initialCore();
  /** The core changed since it was last written (reads write only when time moved it). */
  private dirty = false;
  private settingsJson = '';

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS buckets (start INTEGER PRIMARY KEY, requests INTEGER NOT NULL, failures INTEGER NOT NULL)');
    this.sql.exec(`CREATE TABLE IF NOT EXISTS transitions (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      at INTEGER NOT NULL,
      from_state TEXT NOT NULL,
      to_state TEXT NOT NULL,
      cause TEXT NOT NULL
    )`);
    const row = this.sql.exec<{ v: string }>("SELECT v FROM state WHERE k = 'core'").toArray()[0];
    if (row) {
      try {
        this.core = { ...initialCore(), ...(JSON.parse(row.v) as Partial<Core>) };
        this.settingsJson = JSON.stringify(this.core.settings);
      } catch {
        // An unreadable row is as good as none: closed.
      }
    }
  }

  // ------------------------------------------------------------------ RPC

  /** A batch of outcomes from one isolate, in order. Answers with the state after them. */
  report(batch: ReportBatch): BreakerStatus {
    const now = this.begin(batch);
    const s = this.settings();
    const outcomes = typeof batch.outcomes === 'string' ? batch.outcomes : '';
    const cause = batch.cause ? ` (last: ${clip(batch.cause)})` : '';
    const window = this.windowCounts(now, s);
    let requests = 0;
    let failures = 0;
    for (const ch of outcomes) {
      const failed = ch === 'f';
      if (!failed && ch !== 's') continue;
      requests++;
      if (failed) failures++;
      window.requests++;
      if (failed) window.failures++;
      if (this.core.state !== 'closed') continue;
      this.core.consecutiveFailures = failed ? this.core.consecutiveFailures + 1 : 0;
      if (this.core.consecutiveFailures >= s.consecutive_failures) {
        this.trip(now, s, `${this.core.consecutiveFailures} consecutive failures${cause}`);
      } else if (failed && window.requests >= s.min_requests && window.failures / window.requests >= s.failure_threshold) {
        this.trip(now, s, `${window.failures} of ${window.requests} requests failed in ${seconds(s.window_ms)}${cause}`);
      }
    }
    if (requests > 0) this.count(now, s, requests, failures);
    this.save(now);
    return this.status(now);
  }

  /**
   * A permit for one probe request, while half-open and fewer than `half_open_max_probes` are
   * out. Denied (permit null) when open, or closed (the caller may just go ahead), or full.
   */
  acquireProbe(req: ProbeRequest = {}): ProbeReply {
    const now = this.begin(req);
    const s = this.settings();
    let permit: string | null = null;
    if (this.core.state === 'half-open' && this.core.probes.length < s.half_open_max_probes) {
      const lease = Math.min(Math.max(1, req.lease_ms ?? DEFAULT_PROBE_LEASE_MS), MAX_PROBE_LEASE_MS);
      permit = crypto.randomUUID();
      this.core.probes.push({ id: permit, expiresAt: now + lease });
      this.save(now);
    }
    return { permit, status: this.status(now) };
  }

  /** The outcome of a probe; a permit that expired or was voided (trip, reset) only counts in the window. */
  settleProbe(req: ProbeSettlement): BreakerStatus {
    const now = this.begin(req);
    const s = this.settings();
    const i = this.core.probes.findIndex((p) => p.id === req.permit);
    if (i >= 0) this.core.probes.splice(i, 1);
    if (req.outcome !== 'ignore') this.count(now, s, 1, req.outcome === 'failure' ? 1 : 0);
    if (i >= 0 && this.core.state === 'half-open') {
      if (req.outcome === 'failure') {
        this.trip(now, s, `probe failed${req.cause ? ` (${clip(req.cause)})` : ''}`);
      } else if (req.outcome === 'success' && ++this.core.halfOpenSuccesses >= s.close_after_successes) {
        this.close(now, `${this.core.halfOpenSuccesses} probes succeeded`);
      }
    }
    this.save(now);
    return this.status(now);
  }

  /** The current state (an isolate's background refresh). */
  state(req: Base = {}): BreakerStatus {
    const now = this.begin(req);
    if (this.dirty) this.save(now);
    return this.status(now);
  }

  details(req: Base = {}): BreakerDetails {
    const now = this.begin(req);
    if (this.dirty) this.save(now);
    const s = this.settings();
    const window = this.windowCounts(now, s);
    const rows = this.sql.exec<TransitionRow>('SELECT at, from_state, to_state, cause FROM transitions ORDER BY seq DESC LIMIT ?', TRANSITIONS_KEPT).toArray();
    const c = this.core;
    return {
      backend: c.backend,
      state: c.state,
      window: { window_ms: s.window_ms, requests: window.requests, failures: window.failures },
      consecutive_failures: c.consecutiveFailures,
      opened_at: c.state === 'closed' || c.openedAt === null ? null : iso(c.openedAt),
      opened_until: c.state === 'open' && c.openedUntil !== null ? iso(c.openedUntil) : null,
      cooldown_ms: c.cooldownMs,
      trips: c.trips,
      trip_streak: c.tripStreak,
      half_open: { probes_in_flight: c.state === 'half-open' ? c.probes.length : 0, successes: c.halfOpenSuccesses, needed: s.close_after_successes },
      transitions: rows.map((r) => ({ at: iso(r.at), from: r.from_state as BreakerState, to: r.to_state as BreakerState, cause: r.cause })),
      updated_at: c.updatedAt === null ? null : iso(c.updatedAt),
    };
  }

  /** Closes the breaker and forgets its window, streak and probes (the admin's reset). */
  reset(req: Base & { cause?: string } = {}): BreakerDetails {
    const now = this.begin(req);
    const was = this.core.state;
    this.core.consecutiveFailures = 0;
    this.core.tripStreak = 0;
    this.core.halfOpenSuccesses = 0;
    this.core.probes = [];
    this.sql.exec('DELETE FROM buckets');
    if (was !== 'closed') this.close(now, req.cause ?? 'reset by admin');
    this.save(now);
    return this.details({ now });
  }

  // ------------------------------------------------------------------ internals

  /** Takes the caller's backend name and settings, then lets time pass: expired permits, open → half-open. */
  private begin(req: Base): number {
    const now = typeof req.now === 'number' && Number.isFinite(req.now) ? req.now : Date.now();
    const c = this.core;
    if (typeof req.backend === 'string' && req.backend && req.backend !== c.backend) {
      c.backend = req.backend;
      this.dirty = true;
    }
    if (req.settings && typeof req.settings === 'object') {
      const json = JSON.stringify(req.settings);
      if (json !== this.settingsJson) {
        c.settings = { ...DEFAULT_SETTINGS, ...req.settings };
        this.settingsJson = json;
        this.dirty = true;
      }
    }
    const live = c.probes.filter((p) => p.expiresAt > now);
    if (live.length !== c.probes.length) {
      c.probes = live;
      this.dirty = true;
    }
    if (c.state === 'open' && c.openedUntil !== null && now >= c.openedUntil) {
      this.transition(c.openedUntil, 'half-open', `cool-down of ${seconds(c.cooldownMs ?? 0)} elapsed`);
      c.halfOpenSuccesses = 0;
      c.probes = [];
    }
    return now;
  }

  private settings(): BreakerSettings {
    return this.core.settings ?? DEFAULT_SETTINGS;
  }

  private trip(now: number, s: BreakerSettings, cause: string): void {
    const c = this.core;
    // The cool-down grows with each trip unless the backend stayed closed for a full cap since the last one.
    if (c.state === 'closed' && now - c.closedAt >= s.cooldown_max_ms) c.tripStreak = 0;
    c.tripStreak++;
    c.trips++;
    const cooldown = Math.min(s.cooldown_max_ms, Math.round(s.cooldown_ms * s.cooldown_multiplier ** (c.tripStreak - 1)));
    this.transition(now, 'open', `${cause}; open for ${seconds(cooldown)}`);
    c.openedAt = now;
    c.openedUntil = now + cooldown;
    c.cooldownMs = cooldown;
    c.halfOpenSuccesses = 0;
    c.probes = [];
  }

  private close(now: number, cause: string): void {
    this.transition(now, 'closed', cause);
    const c = this.core;
    c.closedAt = now;
    c.openedUntil = null;
    c.consecutiveFailures = 0;
    c.halfOpenSuccesses = 0;
    c.probes = [];
    // A fresh start: the failures that tripped it must not trip it again.
    this.sql.exec('DELETE FROM buckets');
  }

  private transition(at: number, to: BreakerState, cause: string): void {
    this.dirty = true;
    const from = this.core.state;
    this.core.state = to;
    this.core.version++;
    this.sql.exec('INSERT INTO transitions (at, from_state, to_state, cause) VALUES (?, ?, ?, ?)', at, from, to, cause);
    this.sql.exec('DELETE FROM transitions WHERE seq <= (SELECT MAX(seq) FROM transitions) - ?', TRANSITIONS_KEPT);
  }

  private bucketMs(s: BreakerSettings): number {
    return Math.max(100, Math.floor(s.window_ms / BUCKETS_PER_WINDOW));
  }

  private windowCounts(now: number, s: BreakerSettings): { requests: number; failures: number } {
    const row = this.sql
      .exec<{ requests: number | null; failures: number | null }>(
        'SELECT SUM(requests) AS requests, SUM(failures) AS failures FROM buckets WHERE start > ? AND start <= ?',
        now - s.window_ms,
        now,
      )
      .one();
    return { requests: row.requests ?? 0, failures: row.failures ?? 0 };
  }

  private count(now: number, s: BreakerSettings, requests: number, failures: number): void {
    const start = now - (now % this.bucketMs(s));
    this.sql.exec(
      'INSERT INTO buckets (start, requests, failures) VALUES (?, ?, ?) ON CONFLICT (start) DO UPDATE SET requests = requests + excluded.requests, failures = failures + excluded.failures',
      start,
      requests,
      failures,
    );
    // Keep what any window up to the cap could ask for; the rest is history.
    this.sql.exec('DELETE FROM buckets WHERE start <= ?', now - Math.max(s.window_ms, DEFAULT_SETTINGS.window_ms) - this.bucketMs(s));
  }

  private save(now: number): void {
    this.dirty = false;
    this.core.updatedAt = now;
    this.sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('core', ?)", JSON.stringify(this.core));
  }

  private status(now: number): BreakerStatus {
    const c = this.core;
    const open = c.state === 'open' && c.openedUntil !== null;
    return {
      state: c.state,
      opened_until: open ? c.openedUntil : null,
      retry_in_ms: open ? Math.max(0, c.openedUntil! - now) : 0,
      at: now,
      version: c.version,
    };
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`);
const clip = (s: string) => (s.length > 120 ? `${s.slice(0, 120)}…` : s);
