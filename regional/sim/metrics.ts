/**
 * `/metrics` in the Prometheus text exposition format (0.0.4), with vLLM V1's metric
 * names, HELP strings, histogram buckets and labels (`engine="0"`, `model_name`), and
 * numbers printed the way Python's prometheus_client prints them ("3.0", "1e-05", "+Inf").
 */

export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0,
  2560.0,
];
export const TPOT_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
export const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
];

/** Formats a number like Python's `repr(float)`. */
export function pyFloat(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) {
    const [m, e] = v.toExponential().split('e') as [string, string];
    const sign = e.startsWith('-') ? '-' : '+';
    const digits = e.replace(/^[+-]/, '').padStart(2, '0');
    return `${m}e${sign}${digits}`;
  }
  if (Number.isInteger(v)) return `${v}.0`;
  return String(v);
}

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Array<number>(bounds.length).fill(0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= (b[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export type FinishedReason = 'stop' | 'length' | 'abort';

export interface GaugeValues {
  running: number;
  waiting: number;
  kvCacheUsage: number;
}

export class SimMetrics {
  promptTokens = 0;
  generationTokens = 0;
  prefixQueries = 0;
  prefixHits = 0;
  preemptions = 0;
  readonly success: Record<FinishedReason, number> = { stop: 0, length: 0, abort: 0 };
  readonly ttft = new Histogram(TTFT_BUCKETS);
  readonly tpot = new Histogram(TPOT_BUCKETS);
  readonly e2e = new Histogram(REQUEST_LATENCY_BUCKETS);
  readonly queue = new Histogram(REQUEST_LATENCY_BUCKETS);
  private readonly labels: string;

  constructor(modelName: string) {
    this.labels = `engine="0",model_name="${escapeLabel(modelName)}"`;
  }

  reset(): void {
    this.promptTokens = 0;
    this.generationTokens = 0;
    this.prefixQueries = 0;
    this.prefixHits = 0;
    this.preemptions = 0;
    this.success.stop = 0;
    this.success.length = 0;
    this.success.abort = 0;
    this.ttft.reset();
    this.tpot.reset();
    this.e2e.reset();
    this.queue.reset();
  }

  render(g: GaugeValues): string {
    const L = this.labels;
    const out: string[] = [];
    const gauge = (name: string, help: string, v: number): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}{${L}} ${pyFloat(v)}`);
    };
    const counter = (name: string, help: string, v: number): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name}{${L}} ${pyFloat(v)}`);
    };
    const histogram = (name: string, help: string, h: Histogram): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
      // The engine label sorts before "le", model_name after (prometheus_client sorts label names).
      let cum = 0;
      for (let i = 0; i < h.bounds.length; i++) {
        cum += h.counts[i] as number;
        out.push(`${name}_bucket{engine="0",le="${pyFloat(h.bounds[i] as number)}",${L.slice(L.indexOf('model_name'))}} ${pyFloat(cum)}`);
      }
      out.push(`${name}_bucket{engine="0",le="+Inf",${L.slice(L.indexOf('model_name'))}} ${pyFloat(h.count)}`);
      out.push(`${name}_count{${L}} ${pyFloat(h.count)}`);
      out.push(`${name}_sum{${L}} ${pyFloat(h.sum)}`);
    };

    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', g.running);
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', g.waiting);
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', g.kvCacheUsage);
    counter('vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.', this.prefixQueries);
    counter('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.', this.prefixHits);
    counter('vllm:num_preemptions_total', 'Cumulative number of preemption from the engine.', this.preemptions);
    counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.', this.promptTokens);
    counter('vllm:generation_tokens_total', 'Number of generation tokens processed.', this.generationTokens);
    out.push(
      '# HELP vllm:request_success_total Count of successfully processed requests.',
      '# TYPE vllm:request_success_total counter',
    );
    const M = L.slice(L.indexOf('model_name'));
    for (const r of ['stop', 'length', 'abort'] as const) {
      out.push(`vllm:request_success_total{engine="0",finished_reason="${r}",${M}} ${pyFloat(this.success[r])}`);
    }
    histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', this.ttft);
    histogram('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds.', this.tpot);
    histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', this.e2e);
    histogram('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', this.queue);
    out.push('');
    return out.join('\n');
  }
}
