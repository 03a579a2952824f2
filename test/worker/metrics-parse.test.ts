import { describe, expect, it } from 'vitest';
import { parseMetrics, parseTrtllmPrometheus, parseTrtllmStats, parseVllmMetrics } from '../../worker/protocol/rules/metrics-parse';

const NOW = 1_700_000_000_000;

// What vLLM V1 serves with --data-parallel-size 2: one label set per engine, histograms and
// counters around the gauges, prometheus_client's number formatting, process metrics first.
const VLLM_DP2 = `# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12345.0
python_gc_objects_collected_total{generation="1"} 678.0
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.147483648e+09
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:num_requests_waiting_by_reason Number of requests waiting, by reason.
# TYPE vllm:num_requests_waiting_by_reason gauge
vllm:num_requests_waiting_by_reason{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",reason="capacity"} 3.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct",reason="deferred"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.25
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 81920.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.005",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 40.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 40.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.2100000000000004
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="meta-llama/Llama-3.1-8B-Instruct"} 38.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
`;

// vLLM V0 (before 0.8): gpu_cache_usage_perc, model_name only, CRLF line ends from a proxy.
const VLLM_V0 = [
  '# HELP vllm:num_requests_running Number of requests currently running on GPU.',
  '# TYPE vllm:num_requests_running gauge',
  'vllm:num_requests_running{model_name="mistral-7b"} 2.0',
  '# HELP vllm:num_requests_swapped Number of requests swapped to CPU.',
  '# TYPE vllm:num_requests_swapped gauge',
  'vllm:num_requests_swapped{model_name="mistral-7b"} 0.0',
  '# HELP vllm:num_requests_waiting Number of requests waiting to be processed.',
  '# TYPE vllm:num_requests_waiting gauge',
  'vllm:num_requests_waiting{model_name="mistral-7b"} 1.0',
  '# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.',
  '# TYPE vllm:gpu_cache_usage_perc gauge',
  'vllm:gpu_cache_usage_perc{model_name="mistral-7b"} 0.0625',
  '',
].join('\r\n');

// One iteration of trtllm-serve's /metrics (fields as TensorRT-LLM's executor serializes them).
const trtIteration = (iter: number, active: number, queued: number | undefined, used: number, max = 1000) => ({
  cpuMemUsage: 2_000_000_000,
  gpuMemUsage: 56_401_920_000,
  inflightBatchingStats: { avgNumDecodedTokensPerIter: 1, microBatchId: 0, numContextRequests: 1, numCtxTokens: 512, numGenRequests: active - 1, numPausedRequests: 0, numScheduledRequests: active },
  iter,
  iterLatencyMS: 16.505143404006958,
  kvCacheStats: { allocNewBlocks: 3, allocTotalBlocks: used, cacheHitRate: 0.85, freeNumBlocks: max - used, maxNumBlocks: max, missedBlocks: 7, reusedBlocks: 21, tokensPerBlock: 64, usedNumBlocks: used },
  maxBatchSizeRuntime: 64,
  maxBatchSizeStatic: 256,
  maxNumActiveRequests: 256,
  newActiveRequestsQueueLatencyMS: 0.0007503032684326172,
  numActiveRequests: active,
  numCompletedRequests: 0,
  ...(queued === undefined ? {} : { numQueuedRequests: queued }),
  pinnedMemUsage: 0,
  timestamp: '03-21-2025 14:05:33',
});

describe('parseVllmMetrics', () => {
  it('sums running and waiting over engines, averages KV usage, ignores look-alike names', () => {
    expect(parseVllmMetrics(VLLM_DP2, NOW)).toEqual({ running: 12, waiting: 3, kvCacheUsage: 0.375, scrapedAt: NOW });
  });

  it('reads older vLLM (gpu_cache_usage_perc) and CRLF line ends', () => {
    expect(parseVllmMetrics(VLLM_V0, NOW)).toEqual({ running: 2, waiting: 1, kvCacheUsage: 0.0625, scrapedAt: NOW });
  });

  it('sums over several model names, and handles unlabelled samples, timestamps, odd labels and # EOF', () => {
    const text = [
      '# TYPE vllm:num_requests_running gauge',
      'vllm:num_requests_running{model_name="a} b",engine="0"} 1 1712345678000',
      'vllm:num_requests_running{model_name="say \\"hi\\"\\n"} 2.0',
      'vllm:num_requests_running 3',
      '  vllm:num_requests_waiting{model_name="a"}   4.0',
      'vllm:kv_cache_usage_perc{model_name="a"} 1.7',
      '# EOF',
    ].join('\n');
    expect(parseVllmMetrics(text, NOW)).toEqual({ running: 6, waiting: 4, kvCacheUsage: 1, scrapedAt: NOW });
  });

  it('defaults what is missing: no waiting gauge is 0 waiting, no KV gauge is 0 usage', () => {
    expect(parseVllmMetrics('vllm:num_requests_running{engine="0"} 4.0\n', NOW)).toEqual({ running: 4, waiting: 0, kvCacheUsage: 0, scrapedAt: NOW });
  });

  it('skips NaN, +Inf and negative values rather than poisoning the sum', () => {
    const text = 'vllm:num_requests_running{engine="0"} NaN\nvllm:num_requests_running{engine="1"} 2.0\nvllm:num_requests_waiting{engine="0"} +Inf\nvllm:num_requests_waiting{engine="1"} -3\n';
    expect(parseVllmMetrics(text, NOW)).toEqual({ running: 2, waiting: 0, kvCacheUsage: 0, scrapedAt: NOW });
  });

  it('returns null for garbage, never throws', () => {
    const garbage: unknown[] = [
      '',
      '\n\n\n',
      '<html><body>502 Bad Gateway</body></html>',
      '{"detail":"Not Found"}',
      '[]',
      '# HELP only comments\n# TYPE x gauge\n',
      'process_resident_memory_bytes 1e9\nsome_other_metric{a="b"} 3\n',
      'vllm:num_requests_running{engine="0" 4.0\n', // unclosed labels
      'vllm:num_requests_running{engine="0"}\n', // no value
      '\u0000\u0001\u0002 binary \uFFFD junk',
      'x'.repeat(100_000),
      undefined,
      null,
      42,
      { running: 1 },
    ];
    for (const g of garbage) expect(parseVllmMetrics(g as string, NOW)).toBeNull();
  });
});

describe('TensorRT-LLM', () => {
  it("reads trtllm-serve's JSON iteration stats: the latest iteration wins", () => {
    const body = JSON.stringify([trtIteration(41, 9, 4, 900), trtIteration(42, 6, 2, 250)]);
    expect(parseTrtllmStats(body, NOW)).toEqual({ running: 6, waiting: 2, kvCacheUsage: 0.25, scrapedAt: NOW });
  });

  it('numQueuedRequests may be absent (PyTorch backend); KV from free blocks when used is missing', () => {
    const it1 = trtIteration(1, 3, undefined, 100) as Record<string, any>;
    delete it1.kvCacheStats.usedNumBlocks;
    expect(parseTrtllmStats(JSON.stringify([it1]), NOW)).toEqual({ running: 3, waiting: 0, kvCacheUsage: 0.1, scrapedAt: NOW });
  });

  it('an empty array is an idle engine (no iteration ran since the last scrape)', () => {
    expect(parseTrtllmStats('[]', NOW)).toEqual({ running: 0, waiting: 0, kvCacheUsage: 0, scrapedAt: NOW });
  });

  it('a single object is one iteration; objects without request counts are skipped', () => {
    expect(parseTrtllmStats(JSON.stringify({ numActiveRequests: 2, numQueuedRequests: 1 }), NOW)).toEqual({ running: 2, waiting: 1, kvCacheUsage: 0, scrapedAt: NOW });
    expect(parseTrtllmStats(JSON.stringify([trtIteration(1, 4, 0, 0), { iter: 2 }]), NOW)?.running).toBe(4);
  });

  it('returns null for JSON garbage', () => {
    for (const g of ['', '{', 'null', '"x"', '7', '[1,2,3]', '[{"iter":1}]', '{"numActiveRequests":"5"}', '[null]', '<html>']) {
      expect(parseTrtllmStats(g, NOW), g).toBeNull();
    }
  });

  it('reads the Prometheus names (/prometheus/metrics; Dynamo re-exports as trtllm_ or trtllm:)', () => {
    const text = [
      '# HELP trtllm_num_requests_running Number of active requests',
      '# TYPE trtllm_num_requests_running gauge',
      'trtllm_num_requests_running{engine_type="undefined",model_name="undefined"} 5.0',
      '# HELP trtllm_num_requests_waiting Number of queued requests',
      '# TYPE trtllm_num_requests_waiting gauge',
      'trtllm_num_requests_waiting{engine_type="undefined",model_name="undefined"} 3.0',
      '# HELP trtllm_kv_cache_utilization KV cache utilization',
      '# TYPE trtllm_kv_cache_utilization gauge',
      'trtllm_kv_cache_utilization{engine_type="undefined",model_name="undefined"} 0.6',
      'trtllm_e2e_request_latency_seconds_bucket{le="0.3",engine_type="undefined",model_name="undefined"} 1.0',
    ].join('\n');
    expect(parseTrtllmPrometheus(text, NOW)).toEqual({ running: 5, waiting: 3, kvCacheUsage: 0.6, scrapedAt: NOW });
    const dynamo = 'trtllm:num_requests_running{model_name="m"} 1\ntrtllm:kv_cache_used_blocks{model_name="m"} 30\ntrtllm:kv_cache_max_blocks{model_name="m"} 120\n';
    expect(parseTrtllmPrometheus(dynamo, NOW)).toEqual({ running: 1, waiting: 0, kvCacheUsage: 0.25, scrapedAt: NOW });
  });
});

describe('parseMetrics by backend kind', () => {
  const trtJson = JSON.stringify([trtIteration(7, 5, 3, 600)]);

  it('vllm: Prometheus text; JSON is not vLLM', () => {
    expect(parseMetrics('vllm', 'text/plain; version=0.0.4; charset=utf-8', VLLM_DP2, NOW)?.running).toBe(12);
    expect(parseMetrics('vllm', 'application/json', trtJson, NOW)).toBeNull();
  });

  it('trtllm: JSON by content type or by shape, Prometheus text otherwise', () => {
    expect(parseMetrics('trtllm', 'application/json', trtJson, NOW)).toEqual({ running: 5, waiting: 3, kvCacheUsage: 0.6, scrapedAt: NOW });
    expect(parseMetrics('trtllm', null, `\n  ${trtJson}`, NOW)?.running).toBe(5);
    expect(parseMetrics('trtllm', 'text/plain', 'trtllm_num_requests_running{a="b"} 2.0\n', NOW)?.running).toBe(2);
    expect(parseMetrics('trtllm', 'text/plain', VLLM_DP2, NOW)).toBeNull();
  });

  it('openai: vLLM names when the server has them, else null', () => {
    expect(parseMetrics('openai', 'text/plain', VLLM_V0, NOW)?.running).toBe(2);
    expect(parseMetrics('openai', 'text/plain', 'http_requests_total{code="200"} 5\n', NOW)).toBeNull();
    expect(parseMetrics('openai', 'application/json', '{"object":"list"}', NOW)).toBeNull();
  });

  it('never throws on garbage or an unknown kind', () => {
    expect(parseMetrics('vllm', undefined, '\u0000garbage', NOW)).toBeNull();
    expect(parseMetrics('trtllm', 'application/json', '{not json', NOW)).toBeNull();
    expect(parseMetrics('nope' as 'vllm', 'text/plain', VLLM_DP2, NOW)).toBeNull();
    expect(parseMetrics('vllm', 'text/plain', null as unknown as string, NOW)).toBeNull();
  });
});
