// Pure parsers for what a backend's /metrics answers, reduced to the load the router needs.
// None of them throws: whatever the body, the answer is a BackendLoad or null.
//
// vLLM (`vllm serve`), Prometheus text 0.0.4:
//   vllm:num_requests_running, vllm:num_requests_waiting     summed over label sets (engine, model_name)
//   vllm:kv_cache_usage_perc (V1) | vllm:gpu_cache_usage_perc (V0)   a fraction 0..1, averaged over label sets
//
// TensorRT-LLM (`trtllm-serve`):
//   GET /metrics answers JSON: the engine's iteration stats queued since the previous call, an
//   array of objects (`[]` when no iteration ran), each like
//     { "iter": 7, "numActiveRequests": 5, "numQueuedRequests": 3, "maxNumActiveRequests": 10,
//       "kvCacheStats": { "maxNumBlocks": 1000, "freeNumBlocks": 400, "usedNumBlocks": 600,
//                         "tokensPerBlock": 64, "cacheHitRate": 0.85, ... },
//       "inflightBatchingStats": { "numContextRequests": 2, "numGenRequests": 3, ... }, ... }
//   The last element is the latest. TensorRT-LLM's own Prometheus collector maps
//   numActiveRequests → trtllm_num_requests_running, numQueuedRequests → trtllm_num_requests_waiting,
//   usedNumBlocks / maxNumBlocks → trtllm_kv_cache_utilization; so do we.
//   Newer versions started with return_perf_metrics also serve Prometheus text at
//   /prometheus/metrics with those trtllm_* names (Dynamo re-exports them as trtllm_* or, in older
//   releases, trtllm:*); a body in that format is understood too.

import type { BackendConfig } from '../../config/schema';

export interface BackendLoad {
  /** Requests in the backend's running batch. */
  running: number;
  /** Requests queued at the backend, not yet running. */
  waiting: number;
  /** KV-cache usage, 0..1. */
  kvCacheUsage: number;
  /** When this was read (epoch ms). */
  scrapedAt: number;
}

/** A backend kind from the config (`vllm`, `trtllm`, `openai`, `modal`, `replicate`, `triton`). */
export type MetricsKind = BackendConfig['kind'];

/** Bodies beyond this are not parsed (a real vLLM /metrics is well under 1 MiB). */
export const MAX_METRICS_BODY_CHARS = 4 * 1024 * 1024;

// ------------------------------------------------------------------ Prometheus text

/** What we want from a Prometheus text body: metric name → role. */
type Role = 'running' | 'waiting' | 'kv' | 'kvUsed' | 'kvMax';
type Wanted = ReadonlyMap<string, Role>;

interface Totals {
  running: number;
  runningSeen: boolean;
  waiting: number;
  waitingSeen: boolean;
  kvSum: number;
  kvCount: number;
  kvUsed: number;
  kvMax: number;
}

const VLLM: Wanted = new Map<string, Role>([
  ['vllm:num_requests_running', 'running'],
  ['vllm:num_requests_waiting', 'waiting'],
  ['vllm:kv_cache_usage_perc', 'kv'],
  ['vllm:gpu_cache_usage_perc', 'kv'],
]);

const TRTLLM: Wanted = new Map<string, Role>(
  ['trtllm_', 'trtllm:'].flatMap((p): [string, Role][] => [
    [`${p}num_requests_running`, 'running'],
    [`${p}num_requests_waiting`, 'waiting'],
    [`${p}kv_cache_utilization`, 'kv'],
    [`${p}kv_cache_used_blocks`, 'kvUsed'],
    [`${p}kv_cache_max_blocks`, 'kvMax'],
  ]),
);

function isNameChar(c: number): boolean {
  // [a-zA-Z0-9_:]
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 58;
}

/**
 * Walks a Prometheus text body line by line and adds up the samples of the wanted metrics.
 * Labels are skipped (quoted values may hold "}" or spaces); comments, histograms and other
 * metrics are passed over. Returns false when the body is not Prometheus text at all.
 */
function scanPrometheus(text: string, wanted: Wanted, t: Totals): boolean {
  const n = text.length;
  let pos = 0;
  let samples = 0;
  let malformed = 0;
  while (pos < n) {
    let end = text.indexOf('\n', pos);
    if (end === -1) end = n;
    let i = pos;
    pos = end + 1;
    // Leading blanks.
    while (i < end && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
    if (i >= end) continue;
    const first = text.charCodeAt(i);
    if (first === 35 /* # */) continue; // HELP, TYPE, EOF, comments
    // Metric name.
    const nameStart = i;
    while (i < end && isNameChar(text.charCodeAt(i))) i++;
    if (i === nameStart) {
      malformed++;
      continue;
    }
    const name = text.slice(nameStart, i);
    // Labels.
    if (i < end && text.charCodeAt(i) === 123 /* { */) {
      i++;
      let inQuotes = false;
      let closed = false;
      for (; i < end; i++) {
        const c = text.charCodeAt(i);
        if (inQuotes) {
          if (c === 92 /* \ */) i++;
          else if (c === 34 /* " */) inQuotes = false;
        } else if (c === 34) inQuotes = true;
        else if (c === 125 /* } */) {
          closed = true;
          i++;
          break;
        }
      }
      if (!closed) {
        malformed++;
        continue;
      }
    }
    // Value: the next blank-separated token (an optional timestamp may follow).
    while (i < end && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
    let j = i;
    while (j < end && text.charCodeAt(j) !== 32 && text.charCodeAt(j) !== 9 && text.charCodeAt(j) !== 13) j++;
    if (j === i) {
      malformed++;
      continue;
    }
    samples++;
    const role = wanted.get(name);
    if (role === undefined) continue;
    // "3.0", "1e-05"; "+Inf" and "NaN" come out NaN and are skipped like any non-finite value.
    const v = Number(text.slice(i, j));
    if (!Number.isFinite(v)) continue;
    switch (role) {
      case 'running':
        t.running += Math.max(0, v);
        t.runningSeen = true;
        break;
      case 'waiting':
        t.waiting += Math.max(0, v);
        t.waitingSeen = true;
        break;
      case 'kv':
        t.kvSum += v;
        t.kvCount++;
        break;
      case 'kvUsed':
        t.kvUsed += Math.max(0, v);
        break;
      case 'kvMax':
        t.kvMax += Math.max(0, v);
        break;
    }
  }
  // Mostly lines that are not samples: this is not Prometheus text (HTML, JSON, …).
  return samples > 0 && malformed <= samples;
}

function clamp01(v: number): number {
  return v > 1 ? 1 : v > 0 ? v : 0;
}

function prometheusLoad(text: unknown, wanted: Wanted, now: number): BackendLoad | null {
  try {
    if (typeof text !== 'string' || text.length === 0 || text.length > MAX_METRICS_BODY_CHARS) return null;
    const t: Totals = { running: 0, runningSeen: false, waiting: 0, waitingSeen: false, kvSum: 0, kvCount: 0, kvUsed: 0, kvMax: 0 };
    if (!scanPrometheus(text, wanted, t)) return null;
    if (!t.runningSeen && !t.waitingSeen) return null;
    const kv = t.kvCount > 0 ? t.kvSum / t.kvCount : t.kvMax > 0 ? t.kvUsed / t.kvMax : 0;
    return { running: t.running, waiting: t.waiting, kvCacheUsage: clamp01(kv), scrapedAt: now };
  } catch {
    return null;
  }
}

/**
 * vLLM's /metrics (Prometheus text): requests running and waiting summed over every label set
 * (several engines with data parallelism, several model names), KV-cache usage averaged over them.
 * Null when the body has neither request gauge.
 */
export function parseVllmMetrics(text: string, now: number = Date.now()): BackendLoad | null {
  return prometheusLoad(text, VLLM, now);
}

/** TensorRT-LLM's Prometheus names (`/prometheus/metrics`, or Dynamo's re-export): trtllm_* or trtllm:*. */
export function parseTrtllmPrometheus(text: string, now: number = Date.now()): BackendLoad | null {
  return prometheusLoad(text, TRTLLM, now);
}

// ------------------------------------------------------------------ TensorRT-LLM JSON

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One iteration-stats object → load, or null when it has no request counts. */
function iterationLoad(stat: Record<string, unknown>, now: number): BackendLoad | null {
  const running = num(stat.numActiveRequests);
  if (running === undefined) return null;
  const waiting = num(stat.numQueuedRequests) ?? 0;
  let kv = 0;
  const kvStats = stat.kvCacheStats;
  if (isRecord(kvStats)) {
    const max = num(kvStats.maxNumBlocks);
    const free = num(kvStats.freeNumBlocks);
    const used = num(kvStats.usedNumBlocks) ?? (max !== undefined && free !== undefined ? max - free : undefined);
    if (max !== undefined && max > 0 && used !== undefined) kv = used / max;
  }
  return { running: Math.max(0, running), waiting: Math.max(0, waiting), kvCacheUsage: clamp01(kv), scrapedAt: now };
}

/**
 * trtllm-serve's /metrics: JSON iteration stats (an array, latest last; a single object is taken
 * as one iteration). An empty array means no iteration ran since the previous scrape: the engine
 * iterates while any request is active, so it is idle. Null for anything else.
 */
export function parseTrtllmStats(body: string, now: number = Date.now()): BackendLoad | null {
  try {
    if (typeof body !== 'string' || body.length === 0 || body.length > MAX_METRICS_BODY_CHARS) return null;
    const value: unknown = JSON.parse(body);
    if (Array.isArray(value)) {
      if (value.length === 0) return { running: 0, waiting: 0, kvCacheUsage: 0, scrapedAt: now };
      for (let i = value.length - 1; i >= 0; i--) {
        const stat: unknown = value[i];
        if (isRecord(stat)) {
          const load = iterationLoad(stat, now);
          if (load) return load;
        }
      }
      return null;
    }
    return isRecord(value) ? iterationLoad(value, now) : null;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ dispatch

function looksLikeJson(contentType: string | null | undefined, body: string): boolean {
  if (contentType && /\bjson\b/i.test(contentType)) return true;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 0xfeff) continue;
    return c === 91 /* [ */ || c === 123 /* { */;
  }
  return false;
}

/**
 * The load in a backend's /metrics answer, by backend kind:
 * - `vllm`: vLLM's Prometheus names;
 * - `trtllm`: trtllm-serve's JSON iteration stats, or TensorRT-LLM's Prometheus names;
 * - `openai` (any OpenAI-compatible server) and `modal` (vLLM on Modal): vLLM's names if it has them;
 * - `triton` (its metrics_url): TensorRT-LLM's names or JSON, as for `trtllm`.
 * Replicate is never scraped. Null when the body says nothing usable; never throws.
 */
export function parseMetrics(kind: MetricsKind, contentType: string | null | undefined, body: string, now: number = Date.now()): BackendLoad | null {
  try {
    if (typeof body !== 'string') return null;
    switch (kind) {
      case 'vllm':
      case 'openai':
      case 'modal':
        return looksLikeJson(contentType, body) ? null : parseVllmMetrics(body, now);
      case 'trtllm':
      case 'triton':
        return looksLikeJson(contentType, body) ? parseTrtllmStats(body, now) : parseTrtllmPrometheus(body, now);
      default:
        return null;
    }
  } catch {
    return null;
  }
}
