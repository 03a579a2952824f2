/**
 * autocannon runs with latencies at full resolution: autocannon's own histogram keeps whole
 * milliseconds, too coarse for a sub-millisecond overhead, so each response's float
 * `responseTime` is collected from its `response` event instead.
 */
import autocannon from 'autocannon';
import { percentile } from './stats';

export interface HttpTarget {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** A fresh body per request (e.g. a new prompt, so caches miss); `body` is then the first. */
  nextBody?: () => string;
}

export interface LoadResult {
  connections: number;
  duration_s: number;
  requests: number;
  req_per_s: number;
  non_2xx: number;
  errors: number;
  latency_ms: { p50: number; p90: number; p99: number; mean: number };
}

export async function runLoad(target: HttpTarget, connections: number, durationS: number): Promise<LoadResult> {
  const latencies: number[] = [];
  const instance = autocannon({
    url: target.url,
    method: 'POST',
    headers: target.headers,
    body: target.body,
    ...(target.nextBody ? { requests: [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, body: target.nextBody!() }) }] } : {}),
    connections,
    duration: durationS,
    timeout: 30,
  });
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status >= 200 && status < 300) latencies.push(ms);
  });
  const r = await instance;
  const ok = r['2xx'];
  return {
    connections,
    duration_s: r.duration,
    requests: ok,
    req_per_s: ok / r.duration,
    non_2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    latency_ms: {
      p50: percentile(latencies, 50),
      p90: percentile(latencies, 90),
      p99: percentile(latencies, 99),
      mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    },
  };
}

/** Slices per variant in interleaved(): drift (thermal, other load) then hits every variant alike. */
export const SLICES = 3;

/**
 * Runs `keys` in turn, `slices` times (`SLICES`; 1 in a smoke run), `sliceS` seconds each, and
 * merges each key's slices: requests and errors add up, percentiles are the mean of the slices'.
 */
export async function interleaved<K extends string>(keys: readonly K[], target: (k: K) => HttpTarget, connections: number, sliceS: number, slices = SLICES): Promise<Record<K, LoadResult>> {
  const runs = Object.fromEntries(keys.map((k) => [k, [] as LoadResult[]])) as unknown as Record<K, LoadResult[]>;
  for (let i = 0; i < slices; i++) for (const k of keys) runs[k].push(await runLoad(target(k), connections, sliceS));
  const out = {} as Record<K, LoadResult>;
  for (const k of keys) {
    const rs = runs[k];
    const mean = (f: (r: LoadResult) => number) => rs.reduce((n, r) => n + f(r), 0) / rs.length;
    const duration = rs.reduce((n, r) => n + r.duration_s, 0);
    const requests = rs.reduce((n, r) => n + r.requests, 0);
    out[k] = {
      connections,
      duration_s: duration,
      requests,
      req_per_s: requests / duration,
      non_2xx: rs.reduce((n, r) => n + r.non_2xx, 0),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      latency_ms: { p50: mean((r) => r.latency_ms.p50), p90: mean((r) => r.latency_ms.p90), p99: mean((r) => r.latency_ms.p99), mean: mean((r) => r.latency_ms.mean) },
    };
  }
  return out;
}

/**
 * One request at a time with `gapMs` of silence after each answer, for `durationS`: an isolate
 * that is idle between requests, as most are at low traffic. Each request then pays what load
 * shares out (a cold cache, a woken thread, its own timers and flushes), so its CPU per request is
 * closer to what a lightly used Worker is billed than a c=32 run's. Returns the requests answered 2xx and the failures.
 */
export async function runSpaced(target: HttpTarget, gapMs: number, durationS: number): Promise<{ requests: number; failures: number }> {
  let requests = 0;
  let failures = 0;
  const end = Date.now() + durationS * 1000;
  for (let first = true; Date.now() < end; first = false) {
    const body = first || !target.nextBody ? target.body : target.nextBody();
    try {
      const res = await fetch(target.url, { method: 'POST', headers: target.headers, body });
      await res.arrayBuffer();
      if (res.status >= 200 && res.status < 300) requests++;
      else failures++;
    } catch {
      failures++;
    }
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return { requests, failures };
}
