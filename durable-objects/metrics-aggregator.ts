import { DurableObject } from 'cloudflare:workers';
import { applyDelta, type MetricsDelta, type MetricsSnapshot } from '../worker/protocol/metrics';
import { MINUTES_KEPT, minuteOf, type MinuteBucket } from '../worker/protocol/rules/minute-series';
import type { QualityMinute } from '../worker/protocol/rules/quality-minutes';

// `METRICS.idFromName("global")` (and "shard-<n>" when [metrics].shards > 1): the service-wide sum
// of what isolates counted. Isolates send additive deltas (worker/telemetry/metrics.ts) at most
// every [metrics].flush_interval_ms; this object adds them to cumulative counters and histograms
// and to per-minute buckets of the last hour, all in SQLite, so a restart resets nothing.
// GET /metrics reads snapshot(); the alerts read minutes().
//
// Each (isolate, seq) is applied once: an isolate resends a flush whose reply it lost, and a
// duplicate would double count. Every method is synchronous (SQLite here is), so calls never interleave.

/** Isolates silent this long are forgotten (their next flush, if any, has a newer seq anyway). */
const ISOLATE_TTL_MS = 15 * 60_000;

export class MetricsAggregator extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;
  private readonly counters = new Map<string, number>();
  private readonly histograms = new Map<string, { buckets: number[]; sum: number }>();
  private readonly minuteMap = new Map<string, MinuteBucket>();
  /** Quality signals per minute and deployment version / model (the drift alert's input), same horizon as minuteMap. */
  private readonly qualityMap = new Map<string, QualityMinute>();
  /** isolate → [last applied seq, when]. */
  private readonly isolates = new Map<string, [number, number]>();
  private oldestMinute = Number.POSITIVE_INFINITY;
  private isolatesPrunedAt = 0;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS counters (k TEXT PRIMARY KEY, v REAL NOT NULL)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS histograms (k TEXT PRIMARY KEY, buckets TEXT NOT NULL, sum REAL NOT NULL)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS minutes (k TEXT PRIMARY KEY, minute INTEGER NOT NULL, data TEXT NOT NULL)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS isolates (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS quality_minutes (k TEXT PRIMARY KEY, minute INTEGER NOT NULL, data TEXT NOT NULL)');
    for (const r of this.sql.exec<{ k: string; v: number }>('SELECT k, v FROM counters')) this.counters.set(r.k, r.v);
    for (const r of this.sql.exec<{ k: string; buckets: string; sum: number }>('SELECT k, buckets, sum FROM histograms')) {
      this.histograms.set(r.k, { buckets: JSON.parse(r.buckets) as number[], sum: r.sum });
    }
    for (const r of this.sql.exec<{ k: string; data: string }>('SELECT k, data FROM minutes')) {
      const m = JSON.parse(r.data) as MinuteBucket;
      this.minuteMap.set(r.k, m);
      this.oldestMinute = Math.min(this.oldestMinute, m.minute);
    }
    for (const r of this.sql.exec<{ id: string; seq: number; at: number }>('SELECT id, seq, at FROM isolates')) this.isolates.set(r.id, [r.seq, r.at]);
    for (const r of this.sql.exec<{ k: string; data: string }>('SELECT k, data FROM quality_minutes')) {
      const q = JSON.parse(r.data) as QualityMinute;
      this.qualityMap.set(r.k, q);
      this.oldestMinute = Math.min(this.oldestMinute, q.minute);
    }
  }

  // ------------------------------------------------------------------ RPC

  /** Adds one isolate's flush. Returns false for a flush already applied (a resend). */
  merge(delta: MetricsDelta, now: number = Date.now()): boolean {
    const last = this.isolates.get(delta.isolate);
    if (last && delta.seq <= last[0]) return false;
    this.isolates.set(delta.isolate, [delta.seq, now]);
    this.sql.exec('INSERT OR REPLACE INTO isolates (id, seq, at) VALUES (?, ?, ?)', delta.isolate, delta.seq, now);
    const horizon = minuteOf(now) - (MINUTES_KEPT - 1) * 60_000;
    // A record older than the kept hour (a long stream, a late flush) still counts in the totals.
    const touched = applyDelta(
      { counters: this.counters, histograms: this.histograms, minutes: this.minuteMap, quality: this.qualityMap },
      { ...delta, minutes: delta.minutes.filter((m) => m.minute >= horizon), quality: (delta.quality ?? []).filter((q) => q.minute >= horizon) },
    );
    for (const k of touched.counters) this.sql.exec('INSERT OR REPLACE INTO counters (k, v) VALUES (?, ?)', k, this.counters.get(k)!);
    for (const k of touched.histograms) {
      const h = this.histograms.get(k)!;
      this.sql.exec('INSERT OR REPLACE INTO histograms (k, buckets, sum) VALUES (?, ?, ?)', k, JSON.stringify(h.buckets), h.sum);
    }
    for (const k of touched.minutes) {
      const m = this.minuteMap.get(k)!;
      this.sql.exec('INSERT OR REPLACE INTO minutes (k, minute, data) VALUES (?, ?, ?)', k, m.minute, JSON.stringify(m));
      this.oldestMinute = Math.min(this.oldestMinute, m.minute);
    }
    for (const k of touched.quality) {
      const q = this.qualityMap.get(k)!;
      this.sql.exec('INSERT OR REPLACE INTO quality_minutes (k, minute, data) VALUES (?, ?, ?)', k, q.minute, JSON.stringify(q));
      this.oldestMinute = Math.min(this.oldestMinute, q.minute);
    }
    this.prune(now, horizon);
    return true;
  }

  /** Every cumulative series, for GET /metrics. */
  snapshot(): MetricsSnapshot {
    return {
      counters: [...this.counters],
      histograms: [...this.histograms].map(([k, h]) => [k, h.buckets, h.sum]),
      at: Date.now(),
    };
  }

  /** Minute buckets whose minute is at or after the one holding `sinceMs` (the last hour at most), oldest first. */
  minutes(sinceMs: number, now: number = Date.now()): MinuteBucket[] {
    const from = Math.max(minuteOf(sinceMs), minuteOf(now) - (MINUTES_KEPT - 1) * 60_000);
    return [...this.minuteMap.values()].filter((m) => m.minute >= from).sort((a, b) => a.minute - b.minute);
  }

  /** Quality minutes at or after the one holding `sinceMs` (the last hour at most), oldest first: the drift alert's input. */
  qualityMinutes(sinceMs: number, now: number = Date.now()): QualityMinute[] {
    const from = Math.max(minuteOf(sinceMs), minuteOf(now) - (MINUTES_KEPT - 1) * 60_000);
    return [...this.qualityMap.values()].filter((q) => q.minute >= from).sort((a, b) => a.minute - b.minute);
  }

  // ------------------------------------------------------------------ internals

  /** Cheap on most calls: the minute scan runs when the oldest kept minute fell out, the isolate scan once a minute. */
  private prune(now: number, horizon: number): void {
    if (this.oldestMinute < horizon) {
      this.oldestMinute = Number.POSITIVE_INFINITY;
      for (const [k, m] of this.minuteMap) {
        if (m.minute < horizon) this.minuteMap.delete(k);
        else this.oldestMinute = Math.min(this.oldestMinute, m.minute);
      }
      for (const [k, q] of this.qualityMap) {
        if (q.minute < horizon) this.qualityMap.delete(k);
        else this.oldestMinute = Math.min(this.oldestMinute, q.minute);
      }
      this.sql.exec('DELETE FROM minutes WHERE minute < ?', horizon);
      this.sql.exec('DELETE FROM quality_minutes WHERE minute < ?', horizon);
    }
    if (now - this.isolatesPrunedAt < 60_000) return;
    this.isolatesPrunedAt = now;
    for (const [id, [, at]] of this.isolates) {
      if (now - at > ISOLATE_TTL_MS) {
        this.isolates.delete(id);
        this.sql.exec('DELETE FROM isolates WHERE id = ?', id);
      }
    }
  }
}
