import { DurableObject } from 'cloudflare:workers';
import { metricsSecret, metricsUrlOf } from '../worker/protocol/rules/backend-endpoints';
import { loadConfig } from '../worker/config/compiled';
import type { BackendConfig } from '../worker/config/schema';
import { MAX_METRICS_BODY_CHARS, parseMetrics, type BackendLoad } from '../worker/protocol/rules/metrics-parse';
import type { BackendLoadError, BackendLoadEntry, LoadSnapshot, ScrapeTarget, ScrapeOverride } from '../worker/protocol/backend-metrics';

/** Per-backend time limit of one scrape. */
export const SCRAPE_TIMEOUT_MS = 2_000;
/** trtllm-serve's /metrics waits up to 2 s for iteration stats when none are queued (an idle engine). */
export const TRTLLM_SCRAPE_TIMEOUT_MS = 3_000;
/** The alarm stops after this many intervals without a snapshot() call. */
export const IDLE_INTERVALS = 10;
/** snapshot() scrapes before answering when what it holds is older than this many intervals. */
export const STALE_INTERVALS = 2;
const DEFAULT_INTERVAL_MS = 5_000;

const ACCEPT = 'text/plain;version=0.0.4;q=1, application/json;q=0.9, */*;q=0.1';

type StateRow = Record<string, SqlStorageValue> & { k: string; v: string };

/**
 * Scrapes every backend's /metrics on an alarm, outside any request, and keeps the last
 * snapshot in memory (and in SQLite, for a restarted object). One instance, named "global".
 *
 * The alarm runs every `routing.scrape_interval_ms` while someone asks for snapshots; after
 * IDLE_INTERVALS intervals without a `snapshot()` call it stops rescheduling itself, and the
 * next `snapshot()` starts it again. Edge isolates call `snapshot()` only from `waitUntil`
 * (worker/routing/load-snapshot.ts), so a request never waits on this object.
 */
export class BackendMetrics extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;
  private last: LoadSnapshot | null = null;
  private lastAskedAt = 0;
  private overrideTargets: ScrapeOverride | null = null;
  /** Whether the alarm loop is alive; undefined until checked after a (re)start. */
  private alarmLive: boolean | undefined;
  private scraping: Promise<LoadSnapshot> | null = null;
  private configWarned = false;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL)');
    for (const row of this.sql.exec<StateRow>('SELECT k, v FROM state').toArray()) {
      try {
        if (row.k === 'snapshot') this.last = JSON.parse(row.v) as LoadSnapshot;
        else if (row.k === 'asked_at') this.lastAskedAt = Number(row.v) || 0;
        else if (row.k === 'override') this.overrideTargets = JSON.parse(row.v) as ScrapeOverride;
      } catch {
        // A row we cannot read is as good as none.
      }
    }
  }

  /**
   * The last snapshot, from memory. Keeps the alarm running; when what it holds is older than
   * STALE_INTERVALS intervals (a cold or long-idle object), it scrapes once before answering.
   */
  async snapshot(): Promise<LoadSnapshot> {
    const now = Date.now();
    this.lastAskedAt = now;
    const intervalMs = this.intervalMs();
    await this.ensureAlarm(now, intervalMs);
    if (this.last === null || now - this.last.takenAt > STALE_INTERVALS * intervalMs) return this.scrape();
    return this.last;
  }

  /** Tests and tools: scrape these targets instead of env.ROUTER's backends (null: back to the config). */
  async configure(override: ScrapeOverride | null): Promise<void> {
    this.overrideTargets = override === null ? null : { backends: override.backends.map((b) => ({ ...b })), scrape_interval_ms: override.scrape_interval_ms };
    if (this.overrideTargets === null) this.sql.exec("DELETE FROM state WHERE k = 'override'");
    else this.sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('override', ?)", JSON.stringify(this.overrideTargets));
    // The old snapshot describes other targets.
    this.last = null;
    this.sql.exec("DELETE FROM state WHERE k = 'snapshot'");
  }

  override async alarm(): Promise<void> {
    const started = Date.now();
    await this.scrape();
    const now = Date.now();
    const intervalMs = this.intervalMs();
    if (now - this.lastAskedAt > IDLE_INTERVALS * intervalMs) {
      // Nobody has asked for a while: stop until the next snapshot().
      this.alarmLive = false;
      return;
    }
    this.alarmLive = true;
    await this.ctx.storage.setAlarm(Math.max(now, started + intervalMs));
  }

  // ------------------------------------------------------------------ internals

  private async ensureAlarm(now: number, intervalMs: number): Promise<void> {
    if (this.alarmLive === undefined) this.alarmLive = (await this.ctx.storage.getAlarm()) !== null;
    if (this.alarmLive) return;
    this.alarmLive = true;
    await this.ctx.storage.setAlarm(now + intervalMs);
  }

  private intervalMs(): number {
    if (this.overrideTargets) return this.overrideTargets.scrape_interval_ms ?? DEFAULT_INTERVAL_MS;
    const result = loadConfig(this.env.ROUTER);
    return result.ok ? result.config.raw.routing.scrape_interval_ms : DEFAULT_INTERVAL_MS;
  }

  private targets(): ScrapeTarget[] {
    if (this.overrideTargets) return this.overrideTargets.backends;
    const result = loadConfig(this.env.ROUTER);
    if (!result.ok) {
      if (!this.configWarned) console.error(`backend-metrics: invalid router config, nothing to scrape: ${result.errors.join('; ')}`);
      this.configWarned = true;
      return [];
    }
    this.configWarned = false;
    // Backends without load metrics (Modal, Replicate, Triton unless metrics_url says where) are not scraped.
    return result.config.raw.backends.flatMap((b) => {
      const metricsUrl = metricsUrlOf(b);
      return metricsUrl === null ? [] : [{ id: b.id, url: b.url, metrics_url: metricsUrl, kind: b.kind, auth_header: b.auth_header, secret: metricsSecret(b, this.env) }];
    });
  }

  /** One scrape round at a time: callers arriving during one share it. */
  private scrape(): Promise<LoadSnapshot> {
    if (!this.scraping) {
      this.scraping = this.scrapeAll().finally(() => {
        this.scraping = null;
      });
    }
    return this.scraping;
  }

  private async scrapeAll(): Promise<LoadSnapshot> {
    const targets = this.targets();
    const entries = await Promise.all(targets.map((t) => scrapeOne(t)));
    const backends: Record<string, BackendLoadEntry> = {};
    targets.forEach((t, i) => {
      backends[t.id] = entries[i] as BackendLoadEntry;
    });
    const snap: LoadSnapshot = { takenAt: Date.now(), backends };
    this.last = snap;
    this.sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('snapshot', ?)", JSON.stringify(snap));
    this.sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('asked_at', ?)", String(this.lastAskedAt));
    return snap;
  }
}

/** GET <url>/metrics with the backend's key, under a time limit; a failure is an entry, never a throw. */
export async function scrapeOne(target: ScrapeTarget, fetcher: typeof fetch = fetch): Promise<BackendLoadEntry> {
  const timeoutMs = target.kind === 'trtllm' ? TRTLLM_SCRAPE_TIMEOUT_MS : SCRAPE_TIMEOUT_MS;
  // A timer cleared on completion (AbortSignal.timeout would stay pending after a fast answer).
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new DOMException(`timeout after ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
  try {
    const headers: Record<string, string> = { accept: ACCEPT };
    if (target.secret) {
      const header = target.auth_header ?? 'authorization';
      headers[header] = header.toLowerCase() === 'authorization' ? `Bearer ${target.secret}` : target.secret;
    }
    const res = await fetcher(target.metrics_url ?? target.url.replace(/\/+$/, '') + '/metrics', { headers, signal: ctrl.signal });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      return failed(`HTTP ${res.status} from /metrics`);
    }
    const body = await readCapped(res, MAX_METRICS_BODY_CHARS);
    if (body === null) return failed(`/metrics answer larger than ${MAX_METRICS_BODY_CHARS} bytes`);
    const load = parseMetrics(target.kind, res.headers.get('content-type'), body, Date.now());
    return load ?? failed('no load metrics in the /metrics answer');
  } catch (e) {
    if (ctrl.signal.aborted) return failed(`timeout after ${timeoutMs} ms`);
    return failed(e instanceof Error ? e.message : String(e));
  } finally {
    clearTimeout(timer);
  }
}

function failed(error: string): BackendLoadError {
  return { error, scrapedAt: Date.now() };
}

/** The body as text, or null when it is longer than maxBytes (the rest is not read). */
async function readCapped(res: Response, maxBytes: number): Promise<string | null> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    return null;
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      await reader.cancel().catch(() => {});
      return null;
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}
