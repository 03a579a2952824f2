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
