// The isolate's side of /metrics: every usage record (and every failed backend attempt) is
// counted in memory, and the counts go to a MetricsAggregator object in waitUntil, one flush at a
// time, when a request ends at least [metrics].flush_interval_ms after the last flush or with
// flush_max_records requests pending. Nothing here is awaited on the request path or throws into it.
//
// Counts not yet due ride on a single timer, held in the waitUntil of the request that armed it, so
// they leave within flush_interval_ms of the request that counted them, with no further traffic:
// an isolate that falls idle has nothing left unsent once its last request's waitUntil is done.
// A flush whose reply is lost is resent as is (same seq) before anything newer: the aggregator
// applies each (isolate, seq) once, so nothing is lost or counted twice while the isolate lives.

import type { MetricsAggregator } from '../env';
import type { MetricsSnapshot } from '../protocol/metrics';
import type { CompiledConfig } from '../config/compiled';
import type { MetricsConfig } from '../config/metrics';
import type { Env } from '../env';
import { upstashHealth } from '../cache/upstash-health';
import { background, errorMessage, stillRunning, type WaitUntil } from '../isolate/background';
import { REQUEST_METRICS as M } from './metric-catalog';
import { MetricsAccumulator } from './metrics-delta';
import type { MetricsDelta } from '../protocol/metrics';
import { mergeMinuteLists, type MinuteBucket } from '../protocol/rules/minute-series';
import type { UsageRecord } from '../protocol/usage-record';
import { mergeQualityLists, type QualityMinute } from '../protocol/rules/quality-minutes';
import type { FeedbackObservation } from './metrics-delta';

export type Send = (delta: MetricsDelta) => Promise<unknown>;

type FlushSettings = Pick<MetricsConfig, 'flush_interval_ms' | 'flush_max_records'>;

/** One isolate's accumulator and flushes. The module keeps one; tests make several to play several isolates. */
export class MetricsIsolate {
  // Lazily: workerd allows no random values in global scope, where the module's instance is made.
  private _id: string | null = null;
  get id(): string {
    return (this._id ??= crypto.randomUUID());
  }
  readonly acc = new MetricsAccumulator();
  private seq = 0;
  /** A flush sent whose reply never came: resent before anything newer. */
  private unacked: MetricsDelta | null = null;
  private lastFlushAt = 0;
  /** Since when a flush has been in flight (null: none). */
  private sending: number | null = null;
  /** The armed flush timer (null: none), and what fires it early. */
  private timer: Promise<void> | null = null;
  wake: (() => void) | null = null;
  /** Upstash counts already handed over, to send only what grew (they are per-isolate totals). */
  private upstashSent = new Map<string, number>();

  /** Counts one record; sends what is pending in `ctx` if a flush is due and none is in flight. */
  observe(record: UsageRecord, ctx: WaitUntil, settings: FlushSettings, send: Send, now: number = Date.now()): void {
    this.acc.observeRecord(record);
    this.schedule(ctx, settings, send, now);
  }

  /** Counts one feedback (POST /v1/feedback); sends like observe(). */
  observeFeedback(f: FeedbackObservation, ctx: WaitUntil, settings: FlushSettings, send: Send, now: number = Date.now()): void {
    this.acc.observeFeedback(f);
    this.schedule(ctx, settings, send, now);
  }

  schedule(ctx: WaitUntil, s: FlushSettings, send: Send, now: number = Date.now()): void {
    // One flush at a time: what arrives meanwhile goes with a later one (a flush older than
    // GIVE_UP_MS is taken as cut short with its waitUntil).
    if (stillRunning(this.sending, now)) return;
    if (this.acc.records < s.flush_max_records && now - this.lastFlushAt < s.flush_interval_ms) {
      // Not due yet: one timer per isolate, inside this request's waitUntil, sends the counts when
      // the interval is up, so a scrape sees them with no further traffic.
      if (this.timer) return;
      const wait = Math.max(0, this.lastFlushAt + s.flush_interval_ms - now);
      const timer = new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        this.wake = () => (clearTimeout(t), resolve());
      }).then(() => {
        this.timer = null;
        this.wake = null;
        this.lastFlushAt = 0; // due now, whatever woke it
        this.schedule(ctx, s, send);
      });
      this.timer = timer;
      background(ctx, timer, 'metrics');
      return;
    }
    const mine = (this.sending = now);
    const flush = this.flushNow(send, now)
      .catch((err) => console.warn(`metrics: flush failed (resent with the next one): ${errorMessage(err)}`))
      .finally(() => {
        if (this.sending === mine) this.sending = null;
        // Counted while this flush was in flight (or a failed one to resend): the timer takes them.
        if (!this.acc.empty || this.unacked) this.schedule(ctx, s, send);
      });
    background(ctx, flush, 'metrics');
  }

  /** Sends what is pending now, whatever the interval (schedule() once due; tests). */
  async flushNow(send: Send, now: number = Date.now()): Promise<void> {
    this.lastFlushAt = now;
    // The aggregator drops a seq at or below the last it applied, so an unacknowledged flush goes
    // (again) before a newer one. A flush given up on may still be sending it: harmless, as only
    // the first copy is applied, and `unacked` is cleared only for the delta that was sent.
    const resend = this.unacked;
    if (resend) {
      await send(resend); // throws: kept for the next try, the new counts wait behind it
      if (this.unacked === resend) this.unacked = null;
    }
    this.takeUpstash();
    if (this.acc.empty) return;
    const delta: MetricsDelta = { isolate: this.id, seq: ++this.seq, ...this.acc.take() };
    this.unacked = delta;
    await send(delta);
    if (this.unacked === delta) this.unacked = null;
  }

  /** Upstash errors and fallbacks are per-isolate totals (worker/cache/upstash-health.ts): send their growth. */
  private takeUpstash(): void {
    for (const row of upstashHealth.snapshot()) {
      for (const [metric, total] of [[M.upstashErrors, row.errors], [M.upstashFallbacks, row.fallbacks]] as const) {
        const k = `${metric.name}\n${row.component}\n${row.op}`;
        const grew = total - (this.upstashSent.get(k) ?? 0);
        // A reset of the health object (tests) makes totals shrink: start over from them.
        if (grew !== 0) this.acc.add(metric, [row.component, row.op], grew > 0 ? grew : total);
        this.upstashSent.set(k, total);
      }
    }
  }
}

let isolate = new MetricsIsolate();
/** The aggregator shard this isolate writes to (chosen once per isolate: its seqs stay in one object); drawn on first use, not in global scope. */
let shardPick: number | null = null;

/** Aggregator object names: "global", then "shard-1" … "shard-<n-1>". */
export const shardNames = (shards: number): string[] => Array.from({ length: shards }, (_, i) => (i === 0 ? 'global' : `shard-${i}`));

function aggregator(env: Env, name: string): DurableObjectStub<MetricsAggregator> {
  return env.METRICS.get(env.METRICS.idFromName(name));
}

/** The shard's object id per namespace and shard count: idFromName hashes, and every request asks. */
const shardIds = new WeakMap<object, Map<number, DurableObjectId>>();

/** This isolate's sender: one shard for the isolate's life. */
function sender(env: Env, config: CompiledConfig): Send {
  const shards = config.raw.metrics.shards;
  let ids = shardIds.get(env.METRICS);
  if (!ids) shardIds.set(env.METRICS, (ids = new Map()));
  let id = ids.get(shards);
  if (!id) {
    shardPick ??= Math.random();
    const names = shardNames(shards);
    ids.set(shards, (id = env.METRICS.idFromName(names[Math.floor(shardPick * names.length)]!)));
  }
  const stub = env.METRICS.get(id);
  return (delta) => stub.merge(delta);
}

/**
 * Counts one request from its usage record (called for every record, when the request ends).
 * Synchronous: the counts leave in `ctx.waitUntil`, batched.
 */
export function observeRequest(record: UsageRecord, env: Env, ctx: { waitUntil(p: Promise<unknown>): void }, config: CompiledConfig): void {
  if (!env.METRICS) return;
  try {
    isolate.observe(record, ctx, config.raw.metrics, sender(env, config));
  } catch (err) {
    console.warn(`metrics: record not counted: ${errorMessage(err)}`);
  }
}

/** Counts one feedback in /metrics and the drift series (the feedback route's call, after it is stored). */
export function observeFeedback(f: FeedbackObservation, env: Env, ctx: WaitUntil, config: CompiledConfig): void {
  if (!env.METRICS) return;
  try {
    isolate.observeFeedback(f, ctx, config.raw.metrics, sender(env, config));
  } catch (err) {
    console.warn(`metrics: feedback not counted: ${errorMessage(err)}`);
  }
}

export type AttemptFailureKind = { kind: 'timeout' | 'connect' | 'status'; status?: number };

/** The cause label of a failed attempt: timeout, connect, http_429, http_5xx, http_4xx. */
export function attemptCause(f: AttemptFailureKind): string {
  if (f.kind !== 'status' || f.status === undefined) return f.kind;
  return f.status === 429 ? 'http_429' : `http_${Math.floor(f.status / 100)}xx`;
}

/** Counts a failed backend attempt (the executor's call): it rides on the next flush of the request's record. */
export function countAttemptFailure(backendId: string, failure: AttemptFailureKind): void {
  isolate.acc.add(M.attemptFailures, [backendId, attemptCause(failure)]);
}

/** Every shard's cumulative series (GET /metrics adds them up). */
export async function readSnapshots(env: Env, config: CompiledConfig): Promise<MetricsSnapshot[]> {
  // RPC typing widens tuples to arrays; structured clone keeps them as they were sent.
  return (await Promise.all(shardNames(config.raw.metrics.shards).map((n) => aggregator(env, n).snapshot()))) as unknown as MetricsSnapshot[];
}

/** The minute buckets since `sinceMs`, merged across shards (with one shard: the "global" object's minutes()). */
export async function readMinutes(env: Env, config: CompiledConfig, sinceMs: number): Promise<MinuteBucket[]> {
  const lists = await Promise.all(shardNames(config.raw.metrics.shards).map((n) => aggregator(env, n).minutes(sinceMs)));
  return lists.length === 1 ? lists[0]! : mergeMinuteLists(lists);
}

/** The quality minutes since `sinceMs`, merged across shards: the drift alert's input. */
export async function readQualityMinutes(env: Env, config: CompiledConfig, sinceMs: number): Promise<QualityMinute[]> {
  const lists = (await Promise.all(shardNames(config.raw.metrics.shards).map((n) => aggregator(env, n).qualityMinutes(sinceMs)))) as QualityMinute[][];
  return lists.length === 1 ? lists[0]! : mergeQualityLists(lists);
}

/**
 * Fires the armed flush timer now. For the in-process tests, whose helper waits for every request's
 * waitUntil (the timer included) before it returns the answer.
 */
export function flushMetricsSoon(): void {
  isolate.wake?.();
}

/** For tests: a fresh isolate's state (what was not flushed is dropped). */
export function resetMetricsIsolate(): MetricsIsolate {
  return (isolate = new MetricsIsolate());
}
