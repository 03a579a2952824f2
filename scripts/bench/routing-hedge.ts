/**
 * Hedging (README "Hedging"): the dev stack, clients near us-east sending `small` requests (half
 * streamed) at a fixed concurrency. Three runs of the same load: healthy; us-east's 8B simulator
 * slow (its time to first token 10× its normal, not failing) with hedging off; the same with
 * hedging on. p50/p99 latency of each, and p99 against the healthy p99 (aim: within 1.5×).
 */
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack } from '../dev/stack';
import type { BenchSection } from './lib/section';
import { percentile } from './lib/stats';
import { answeredOk, callChat } from './lib/workload-client';

const PRIMARY = 'vllm-us-east-8b';
const GEO = '40.7,-74.0'; // New York: us-east is the nearest region
const CONCURRENCY = 8;
const NORMAL_TTFT_MS = 25; // the dev profile's 8B base_ttft_ms (scripts/dev/sim-profiles.ts)

interface Run {
  name: string;
  latencies: number[];
  failed: number;
  hedged: number;
}

export const routingHedge: BenchSection = {
  name: 'routing-hedge',
  description: "one backend's TTFT 10x its normal (not failing): p99 latency with hedging off and on, against the healthy p99",
  async run(ctx) {
    const perRun = ctx.smoke ? 16 : 400;
    const runs: Run[] = [];
    for (const hedging of [false, true]) {
      const stack = await startStack({
        port: 0,
        ephemeralBackends: true,
        persist: false,
        directSocket: true,
        configPatch: (router: RouterConfigInput) => ({ ...router, routing: { ...router.routing, hedging: { enabled: hedging, multiplier: 3, min_ms: 50, max_ms: 2_000, min_samples: 20 } } }),
      });
      try {
        const primary = stack.backends[PRIMARY]!;
        const setTtft = async (ms: number) => {
          const res = await fetch(`${primary}/sim/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ base_ttft_ms: ms }) });
          if (!res.ok) throw new Error(`/sim/config answered ${res.status}: ${await res.text()}`);
        };
        const url = `${stack.routerUrl}/v1/chat/completions`;
        const headers = { authorization: `Bearer ${stack.keys.demo}`, 'x-router-debug-geo': GEO };
        const load = async (name: string): Promise<Run> => {
          const run: Run = { name, latencies: [], failed: 0, hedged: 0 };
          let next = 0;
          await Promise.all(
            Array.from({ length: CONCURRENCY }, async (_, c) => {
              while (next < perRun) {
                const n = next++;
                const r = await callChat({ url, headers, body: { model: 'small', messages: [{ role: 'user', content: `Client ${c}, request ${n}: a status line.` }], max_tokens: 16, ...(n % 2 ? { stream: true } : {}) }, clientTimeoutMs: 30_000 });
                if (!answeredOk(r)) run.failed++;
                if (r.router.backend !== PRIMARY) run.hedged++;
                run.latencies.push(r.latencyMs);
              }
            }),
          );
          return run;
        };
        await setTtft(NORMAL_TTFT_MS);
        const healthy = await load(hedging ? 'healthy, hedging on' : 'healthy');
        if (!hedging) runs.push(healthy);
        await setTtft(NORMAL_TTFT_MS * 10);
        runs.push(await load(hedging ? 'slow primary, hedging on' : 'slow primary, hedging off'));
      } finally {
        await stack.close();
      }
    }
    const healthyP99 = percentile(runs[0]!.latencies, 99);
    const rows = runs.map((r) => {
      const p99 = percentile(r.latencies, 99);
      return [r.name, String(r.latencies.length), `${percentile(r.latencies, 50).toFixed(1)} ms`, `${p99.toFixed(1)} ms`, `x${(p99 / healthyP99).toFixed(2)}`, `${r.hedged}`, `${r.failed}`];
    });
    return {
      tables: [
        {
          title: `Hedging: ${PRIMARY} at 10x its normal TTFT (${NORMAL_TTFT_MS * 10} ms), ${CONCURRENCY} clients near us-east, small, max_tokens 16, half streamed`,
          columns: ['run', 'requests', 'p50', 'p99', 'p99 / healthy p99', `answered off ${PRIMARY}`, 'failed'],
          rows,
          notes: ['aim: p99 with hedging within 1.5x of the healthy p99', 'hedge delay: 3 x the p95 TTFT this isolate saw on the backend, within [50, 2000] ms (2000 until 20 samples)'],
        },
      ],
      json: runs.map((r) => ({ name: r.name, n: r.latencies.length, p50: percentile(r.latencies, 50), p99: percentile(r.latencies, 99), hedged: r.hedged, failed: r.failed })),
    };
  },
};
