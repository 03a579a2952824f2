/** Time to first token of streamed completions, measured the way a client sees it. */
import { percentile } from './stats';
import type { HttpTarget } from './load';

export interface TtftResult {
  n: number;
  failures: number;
  median_ms: number;
  p99_ms: number;
}

/** `n` sequential streamed requests; TTFT = request start → first chunk holding a `data:` line. */
export async function measureTtft(target: HttpTarget, n: number): Promise<TtftResult> {
  const samples: number[] = [];
  let failures = 0;
  const decoder = new TextDecoder();
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const res = await fetch(target.url, { method: 'POST', headers: target.headers, body: target.nextBody && i > 0 ? target.nextBody() : target.body });
    if (!res.ok || !res.body) {
      failures++;
      await res.body?.cancel();
      continue;
    }
    let first: number | undefined;
    let seen = '';
    // Read to the end so the connection goes back to the pool for the next request.
    const reader = res.body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      if (first === undefined) {
        seen += decoder.decode(r.value, { stream: true });
        if (/^data:/m.test(seen)) first = performance.now() - start;
      }
    }
    if (first === undefined) failures++;
    else samples.push(first);
  }
  return { n, failures, median_ms: percentile(samples, 50), p99_ms: percentile(samples, 99) };
}
