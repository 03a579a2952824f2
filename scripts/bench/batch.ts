/**
 * Batch alongside interactive traffic (README "Batch and async"): the dev stack (simulators shaped
 * like GPUs), steady streamed interactive requests near us-east; first alone, then while a
 * 10,000-line batch (smoke: 200) of the same model drains through the batch queue. Interactive p95
 * TTFT with and without the batch (aim: within 10%), batch lines per second, and the warm 8B
 * backends' utilisation (running / max_num_seqs, from the simulators' own /metrics) while it runs.
 */
import OpenAI, { toFile } from 'openai';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import type { BenchSection } from './lib/section';
import { percentile, round } from './lib/stats';
import { answeredOk, callChat } from './lib/workload-client';

const GEO = '40.7,-74.0'; // New York: us-east is the nearest region
const INTERACTIVE_CLIENTS = 4;
/** The dev profile's 8B simulators run this many sequences at once (scripts/dev/sim-profiles.ts); the router is told the same. */
const MAX_NUM_SEQS = 64;
const EIGHT_B = ['vllm-us-east-8b', 'vllm-eu-west-8b', 'vllm-ap-southeast-8b'];

interface Interactive {
  ttfts: number[];
  failed: number;
}

interface Sample {
  at: number;
  running: Record<string, number>;
  waiting: Record<string, number>;
}

export const batch: BenchSection = {
  name: 'batch',
  description: 'a 10,000-line batch alongside steady interactive traffic: interactive p95 TTFT with and without it, batch lines/s, warm backends utilisation',
  async run(ctx) {
    const lines = ctx.smoke ? 200 : 10_000;
    const baselineS = ctx.durationS ?? 20;
    const stack = await startStack({
      port: 0,
      ephemeralBackends: true,
      persist: false,
      directSocket: true,
      configPatch: (router: RouterConfigInput) => ({
        ...router,
        // The router's view of a backend's capacity is the simulator's: batch lines may fill 80% of it.
        backends: router.backends.map((b) => (EIGHT_B.includes(b.id) ? { ...b, max_concurrency: MAX_NUM_SEQS } : b)),
        routing: { ...router.routing, scrape_interval_ms: 500 },
        // BENCH_BATCH_CONCURRENCY: lines one consumer delivery runs at once (default [batch].max_concurrency).
        ...(process.env.BENCH_BATCH_CONCURRENCY ? { batch: { ...router.batch, max_concurrency: Number(process.env.BENCH_BATCH_CONCURRENCY) } } : {}),
      }),
    });
    try {
      const url = `${stack.routerUrl}/v1/chat/completions`;
      const headers = { authorization: `Bearer ${stack.keys.demo}`, 'x-router-debug-geo': GEO };
      const interactive = (stop: () => boolean): Promise<Interactive> => {
        const out: Interactive = { ttfts: [], failed: 0 };
        let n = 0;
        return Promise.all(
          Array.from({ length: INTERACTIVE_CLIENTS }, async (_, c) => {
            while (!stop()) {
              const r = await callChat({ url, headers, body: { model: 'small', stream: true, max_tokens: 16, messages: [{ role: 'user', content: `Client ${c}, request ${n++}: a status line.` }] }, clientTimeoutMs: 30_000 });
              if (!answeredOk(r) || r.ttftMs === null) out.failed++;
              else out.ttfts.push(r.ttftMs);
            }
          }),
        ).then(() => out);
      };

      // 1. Interactive alone.
      const t0 = Date.now();
      const alone = await interactive(() => Date.now() - t0 > baselineS * 1000);

      // 2. The batch, with the same interactive load until it is done.
      const client = new OpenAI({ apiKey: stack.keys.demo, baseURL: `${stack.routerUrl}/v1`, maxRetries: 2 });
      const jsonl = Array.from({ length: lines }, (_, i) =>
        JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'llama-3.1-8b', max_tokens: 16, messages: [{ role: 'user', content: `Batch line ${i}: summarise in one line.` }] } }),
      ).join('\n');
      const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), 'bench.jsonl'), purpose: 'batch' });
      const started = Date.now();
      const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      let finished = false;
      const samples: Sample[] = [];
      const sampler = (async () => {
        while (!finished) {
          samples.push(await sampleSims(stack));
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      const during = interactive(() => finished);
      let final = created;
      const deadline = Date.now() + (ctx.smoke ? 120_000 : 1_800_000);
      while (!['completed', 'failed', 'expired', 'cancelled'].includes(final.status)) {
        if (Date.now() > deadline) throw new Error(`batch not done in time: ${JSON.stringify(final.request_counts)}`);
        await new Promise((r) => setTimeout(r, 500));
        final = await client.batches.retrieve(created.id);
      }
      const elapsedS = (Date.now() - started) / 1000;
      finished = true;
      const withBatch = await during;
      await sampler;

      const p95a = percentile(alone.ttfts, 95);
      const p95b = percentile(withBatch.ttfts, 95);
      const util = (id: string) => mean(samples.map((s) => (s.running[id] ?? 0) / MAX_NUM_SEQS));
      const waiting = (id: string) => mean(samples.map((s) => s.waiting[id] ?? 0));
      const counts = final.request_counts!;
      const json = {
        lines,
        status: final.status,
        request_counts: counts,
        batch_seconds: round(elapsedS, 1),
        lines_per_second: round(counts.completed / elapsedS, 1),
        interactive: {
          alone: { n: alone.ttfts.length, failed: alone.failed, p50_ttft_ms: round(percentile(alone.ttfts, 50), 1), p95_ttft_ms: round(p95a, 1) },
          with_batch: { n: withBatch.ttfts.length, failed: withBatch.failed, p50_ttft_ms: round(percentile(withBatch.ttfts, 50), 1), p95_ttft_ms: round(p95b, 1) },
          p95_ratio: round(p95b / p95a, 3),
        },
        utilisation: Object.fromEntries(EIGHT_B.map((id) => [id, { mean_running_share: round(util(id), 3), mean_waiting: round(waiting(id), 2) }])),
        samples: samples.length,
      };
      return {
        tables: [
          {
            title: `Interactive (${INTERACTIVE_CLIENTS} clients near us-east, small, streamed, max_tokens 16): alone ${baselineS} s, then while the batch runs`,
            columns: ['run', 'requests', 'failed', 'p50 TTFT', 'p95 TTFT', 'p95 / alone'],
            rows: [
              ['alone', String(alone.ttfts.length), String(alone.failed), `${percentile(alone.ttfts, 50).toFixed(1)} ms`, `${p95a.toFixed(1)} ms`, 'x1.00'],
              ['with the batch', String(withBatch.ttfts.length), String(withBatch.failed), `${percentile(withBatch.ttfts, 50).toFixed(1)} ms`, `${p95b.toFixed(1)} ms`, `x${(p95b / p95a).toFixed(2)}`],
            ],
            notes: ['aim: p95 TTFT with the batch within 10% of alone'],
          },
          {
            title: `Batch: ${lines} lines, llama-3.1-8b, max_tokens 16 (dev profile: 25 ms TTFT, 10 ms/token, ${MAX_NUM_SEQS} sequences per 8B simulator)`,
            columns: ['status', 'completed', 'failed', 'seconds', 'lines/s'],
            rows: [[final.status, String(counts.completed), String(counts.failed), elapsedS.toFixed(1), (counts.completed / elapsedS).toFixed(1)]],
          },
          {
            title: 'Warm 8B backends while the batch ran (simulators\' /metrics every 500 ms)',
            columns: ['backend', 'mean running / max_num_seqs', 'mean waiting'],
            rows: EIGHT_B.map((id) => [id, `${(util(id) * 100).toFixed(0)}%`, waiting(id).toFixed(2)]),
            notes: ['aim: above 70% on the backends the batch drains into, with waiting near 0 (interactive keeps its slots)'],
          },
        ],
        json,
      };
    } finally {
      await stack.close();
    }
  },
};

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

async function sampleSims(stack: Stack): Promise<Sample> {
  const s: Sample = { at: Date.now(), running: {}, waiting: {} };
  await Promise.all(
    EIGHT_B.map(async (id) => {
      const text = await (await fetch(`${stack.backends[id]}/metrics`)).text();
      const read = (name: string) => text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1) ?? 0), 0);
      s.running[id] = read('vllm:num_requests_running');
      s.waiting[id] = read('vllm:num_requests_waiting');
    }),
  );
  return s;
}
