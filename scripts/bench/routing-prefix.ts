/**
 * Prefix-aware routing against round-robin, on a multi-turn chat workload at high load, measured
 * against the simulators: one region with REPLICAS replicas of one model, whose latency model
 * makes prefill (of the tokens NOT in the replica's prefix cache) dominate time to first token.
 * Each policy gets a fresh stack, so prefix caches start cold, and sends exactly the same
 * conversations (same system prompts, same user turns; each assistant turn is the text the
 * router returned, which the sim derives from the prompt, so it is the same under both policies).
 *
 * Per policy: client-side TTFT (first SSE chunk with content), the prefix-cache hit rate from the
 * simulators' own counters (vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total,
 * deltas over the run, summed over replicas), the sims' own queue time, and where requests went.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import type { SimOverrides } from '../dev/sim-profiles';
import type { BenchSection, BenchTable } from './lib/section';
import { percentile, round } from './lib/stats';
import { chatWorkload, type ChatWorkload } from './lib/workload-chat';
import { answeredOk, callChat, metricSum, scrape, type ChatResult } from './lib/workload-client';

type Policy = 'prefix-affinity' | 'round-robin' | 'least-loaded';
const POLICIES: Policy[] = (process.env.BENCH_PREFIX_POLICIES?.split(',') as Policy[] | undefined) ?? ['prefix-affinity', 'round-robin'];

const MODEL = 'llama-3.1-8b';
const REGION = 'us-east';
const REPLICAS = 4;
const REPLICA_IDS = Array.from({ length: REPLICAS }, (_, i) => `vllm-r${i}`);
const num = (name: string, dflt: number) => (process.env[name] ? Number(process.env[name]) : dflt);

/** Prefill dominates TTFT: 2,000 uncached tokens = 200 ms against a 5 ms base. */
const SIM: SimOverrides = {
  latency: { base_ttft_ms: 5, prefill_ms_per_token: 0.1, itl_ms: 5, max_num_seqs: num('BENCH_PREFIX_MAX_NUM_SEQS', 8) },
  // 1,024 blocks × 16 tokens = 16k tokens per replica: about five whole conversations (a
  // ~2.3k-token system prompt plus history), fewer than the six system prompts (~880 blocks)
  // plus the active histories, so which replica a turn lands on matters. (With 2,048 every
  // replica holds all six system prompts and round-robin hits ~80% too; see the report.) Caveat:
  // 8 running sequences of ~190 blocks exceed 90% of it, so the router's load figure adds its
  // KV-pressure penalty once the 5 s scrape sees a full replica (the sim does not preempt).
  prefix_cache_blocks: num('BENCH_PREFIX_CACHE_BLOCKS', 1024),
  cold_start_ms: 0,
};
const WORKLOAD = {
  systemPrompts: 6,
  systemTokens: [1_500, 3_000] as [number, number],
  conversations: num('BENCH_PREFIX_CONVERSATIONS', 128),
  turns: 6,
  userTokens: [60, 250] as [number, number],
};
const CONCURRENCY = num('BENCH_PREFIX_CONCURRENCY', 32);
const MAX_TOKENS = 16;
const AIM_RATIO = 2;
/** Extra routing config for experiments, e.g. BENCH_PREFIX_ROUTING='{"affinity_load_slack":2}'. */
const ROUTING_EXTRA = JSON.parse(process.env.BENCH_PREFIX_ROUTING ?? '{}') as Partial<NonNullable<RouterConfigInput['routing']>>;
/** Runs per policy, in ABBA order, each on a fresh stack. */
const ROUNDS = num('BENCH_PREFIX_ROUNDS', 2);
/** A stream silent this long after its headers is stalled (the router never ends it by itself). */
const STALL_MS = 2_000;

interface Sample {
  conv: number;
  turn: number;
  system: number;
  ok: boolean;
  status: number;
  ttft_ms: number | null;
  latency_ms: number;
  backend: string | null;
  affinity: string | null;
  prompt_tokens: number | null;
  cached_tokens: number | null;
  error: string | null;
}

interface PolicyResult {
  policy: Policy;
  runs: number;
  wall_s: number;
  cut_by_cap: boolean;
  requests: number;
  failed: number;
  errors: Record<string, number>;
  ttft_ms: { mean: number; p50: number; p95: number; p99: number };
  latency_ms: { mean: number; p95: number };
  req_per_s: number;
  /** From the sims' own /metrics, summed over replicas (deltas over the run). */
  sim: { prefix_queries: number; prefix_hits: number; hit_rate: number; uncached_tokens_per_request: number; ttft_mean_ms: number; queue_mean_ms: number; requests: number };
  /** From the usage chunks the clients received: cached_tokens / prompt_tokens. */
  client_cached_share: number;
  by_backend: Record<string, number>;
  affinity: Record<string, number>;
  /** System prompt index → backend → requests. */
  system_to_backend: Record<string, Record<string, number>>;
  ttft_by_turn_ms: number[];
  /** By x-router-affinity decision: requests, mean uncached prompt tokens (usage) and mean TTFT. */
  by_decision: Record<string, { requests: number; uncached_tokens: number; ttft_ms: number }>;
}

export const routingPrefix: BenchSection = {
  name: 'routing-prefix',
  description: `prefix-affinity vs round-robin: multi-turn chat over ${REPLICAS} replicas, prefill-bound TTFT (fresh stack per policy)`,
  async run(ctx) {
    // A run takes ~5-7 s here; the cap only bites when streams stall. A smoke run: one round of
    // 8 conversations, capped at durationS (1 s) per policy.
    const capS = ctx.durationS ?? 10;
    const rounds = ctx.smoke ? 1 : ROUNDS;
    const workload = chatWorkload(ctx.smoke ? { ...WORKLOAD, conversations: 8 } : WORKLOAD);
    log(`workload: ${workload.conversations.length} conversations × ${WORKLOAD.turns} turns, system prompts of ${workload.systemTokens.join(', ')} tokens, ${CONCURRENCY} at a time; cap ${capS} s per policy`);
    const runs: Run[] = [];
    for (let round = 0; round < rounds; round++) {
      // ABBA order: slow drift on a shared machine hits both policies alike.
      for (const policy of round % 2 === 0 ? POLICIES : [...POLICIES].reverse()) runs.push(await runPolicy(policy, workload, capS, round));
    }
    const results = POLICIES.map((p) => aggregate(p, runs.filter((r) => r.policy === p)));
    const samples = Object.fromEntries(POLICIES.map((p) => [p, runs.filter((r) => r.policy === p).flatMap((r) => r.records)]));
    const perRound = Array.from({ length: rounds }, (_, round) => {
      const of = (p: Policy) => runs.find((r) => r.round === round && r.policy === p);
      const pa = of('prefix-affinity');
      const rr = of('round-robin');
      return pa && rr
        ? { round, client_ratio: rr.ttftMean / pa.ttftMean, sim_ratio: rr.simTtftMean / pa.simTtftMean, router_ttft_ms: { 'prefix-affinity': pa.routerTtftMean, 'round-robin': rr.routerTtftMean }, client_ttft_ms: { 'prefix-affinity': pa.ttftMean, 'round-robin': rr.ttftMean }, sim_ttft_ms: { 'prefix-affinity': pa.simTtftMean, 'round-robin': rr.simTtftMean } }
        : { round };
    });
    const byPolicy = Object.fromEntries(results.map((r) => [r.policy, r]));
    const pa = byPolicy['prefix-affinity'];
    const rr = byPolicy['round-robin'];
    const ratio = pa && rr ? rr.ttft_ms.mean / pa.ttft_ms.mean : null;
    const simRatio = pa && rr ? rr.sim.ttft_mean_ms / pa.sim.ttft_mean_ms : null;
    const json = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, loadavg_1m: os.loadavg()[0] },
      setup: {
        model: MODEL,
        region: REGION,
        replicas: REPLICA_IDS,
        sim: SIM,
        workload: { ...WORKLOAD, system_prompt_tokens: workload.systemTokens, system_of_conversation: workload.conversations.map((c) => c.system) },
        concurrency: CONCURRENCY,
        max_tokens: MAX_TOKENS,
        cap_s: capS,
        rounds,
        routing: { defaults: 'prefix_block_chars 256 × prefix_max_blocks 8, affinity_load_slack 8, scrape_interval_ms 5000', overrides: ROUTING_EXTRA },
      },
      results,
      ratio_rr_over_prefix_mean_ttft: ratio,
      ratio_rr_over_prefix_sim_ttft: simRatio,
      per_round: perRound,
      aim: { ratio_min: AIM_RATIO, met: ratio !== null && ratio >= AIM_RATIO },
      samples,
    };
    return { tables: buildTables(results, workload, capS, ratio, simRatio, perRound), json };
  },
};

function routerPatch(policy: Policy) {
  return (router: RouterConfigInput): RouterConfigInput => {
    const { degraded_answer: _drop, ...rest } = router;
    // One tier is left: per-tier cache settings naming the others would no longer validate.
    const cache = router.cache && { ...router.cache, tiers: Object.fromEntries(Object.entries(router.cache.tiers ?? {}).filter(([t]) => t === 'fast')) };
    const region = router.regions.find((r) => r.id === REGION);
    const model = router.models.find((m) => m.id === MODEL);
    if (!region || !model) throw new Error(`wrangler.toml has no region ${REGION} or model ${MODEL}`);
    return {
      ...rest,
      regions: [region],
      models: [model],
      backends: REPLICA_IDS.map((id, i) => ({ id, kind: 'vllm' as const, region: REGION, url: `http://127.0.0.1:${18201 + i}`, models: [MODEL], max_concurrency: 256 })),
      tiers: { fast: { models: [MODEL] } },
      ...(cache ? { cache } : {}),
      splits: {},
      deployments: {}, // they name models this stack no longer has
      prices: router.prices?.[MODEL] ? { [MODEL]: router.prices[MODEL] } : {},
      routing: { ...router.routing, ...ROUTING_EXTRA, policy },
    };
  };
}

interface Run {
  policy: Policy;
  round: number;
  records: Sample[];
  wallS: number;
  cut: boolean;
  /** Metric deltas over the run, summed over the replicas. */
  delta: Record<string, number>;
  ttftMean: number;
  simTtftMean: number;
  /** The router's own TTFT (request start to first token relayed), from router_ttft_seconds on its /metrics. */
  routerTtftMean: number;
}

/**
 * Mean of router_ttft_seconds over the run (a fresh stack, so its totals are this run's), once the
 * isolate has flushed every request it counted (flush_interval_ms); NaN if that never happens.
 */
async function routerTtft(stack: Stack, requests: number): Promise<number> {
  const deadline = performance.now() + 5_000;
  while (performance.now() < deadline) {
    const res = await fetch(`${stack.routerUrl}/metrics`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    const text = await res.text();
    const count = metricSum(text, 'router_ttft_seconds_count');
    if (count >= requests) return (1000 * metricSum(text, 'router_ttft_seconds_sum')) / count;
    await new Promise((r) => setTimeout(r, 250));
  }
  return NaN;
}

const DELTAS = [
  'vllm:prefix_cache_queries_total',
  'vllm:prefix_cache_hits_total',
  'vllm:time_to_first_token_seconds_sum',
  'vllm:time_to_first_token_seconds_count',
  'vllm:request_queue_time_seconds_sum',
  'vllm:request_queue_time_seconds_count',
];

async function runPolicy(policy: Policy, workload: ChatWorkload, capS: number, round: number): Promise<Run> {
  const stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, directSocket: true, configPatch: routerPatch(policy), simOverrides: () => SIM });
  try {
    const sims = REPLICA_IDS.map((id) => stack.backends[id]!);
    const before = await Promise.all(sims.map(scrape));
    const started = performance.now();
    const { records, cut } = await drive(stack, workload, capS);
    const wallS = (performance.now() - started) / 1000;
    const after = await Promise.all(sims.map(scrape));
    const delta = Object.fromEntries(DELTAS.map((name) => [name, after.reduce((s, t, i) => s + metricSum(t, name) - metricSum(before[i]!, name), 0)]));
    const routerTtftMean = await routerTtft(stack, records.length);
    const ttftMean = mean(records.filter((r) => r.ttft_ms !== null).map((r) => r.ttft_ms!));
    const simTtftMean = (1000 * delta['vllm:time_to_first_token_seconds_sum']!) / delta['vllm:time_to_first_token_seconds_count']!;
    const hitRate = delta['vllm:prefix_cache_hits_total']! / delta['vllm:prefix_cache_queries_total']!;
    log(`round ${round + 1}, ${policy}: ${records.length} requests in ${wallS.toFixed(1)} s, mean TTFT ${ttftMean.toFixed(1)} ms (router ${routerTtftMean.toFixed(1)} ms, sim ${simTtftMean.toFixed(1)} ms), sim prefix hit rate ${(hitRate * 100).toFixed(1)}%`);
    return { policy, round, records, wallS, cut, delta, ttftMean, simTtftMean, routerTtftMean };
  } finally {
    await stack.close();
  }
}

function aggregate(policy: Policy, runs: Run[]): PolicyResult {
  const records = runs.flatMap((r) => r.records);
  const wallS = runs.reduce((s, r) => s + r.wallS, 0);
  const d = (name: string) => runs.reduce((s, r) => s + r.delta[name]!, 0);
  const ok = records.filter((r) => r.ok);
  // TTFT of every request whose first token arrived, even if its stream failed later.
  const ttfts = records.filter((r) => r.ttft_ms !== null).map((r) => r.ttft_ms!);
  const lat = ok.map((r) => r.latency_ms);
  const count = <K extends string | null>(keys: K[]) => keys.reduce<Record<string, number>>((m, k) => ((m[k ?? 'none'] = (m[k ?? 'none'] ?? 0) + 1), m), {});
  const systemToBackend: Record<string, Record<string, number>> = {};
  for (const r of records) {
    const m = (systemToBackend[`system ${r.system}`] ??= {});
    m[r.backend ?? 'none'] = (m[r.backend ?? 'none'] ?? 0) + 1;
  }
  const byTurn = Array.from({ length: WORKLOAD.turns }, (_, t) => mean(records.filter((r) => r.turn === t && r.ttft_ms !== null).map((r) => r.ttft_ms!)));
  const queries = d('vllm:prefix_cache_queries_total');
  const hits = d('vllm:prefix_cache_hits_total');
  const ttftCount = d('vllm:time_to_first_token_seconds_count');
  const queueCount = d('vllm:request_queue_time_seconds_count');
  const prompt = ok.reduce((s, r) => s + (r.prompt_tokens ?? 0), 0);
  const cached = ok.reduce((s, r) => s + (r.cached_tokens ?? 0), 0);
  return {
    policy,
    runs: runs.length,
    wall_s: wallS,
    cut_by_cap: runs.some((r) => r.cut),
    requests: records.length,
    failed: records.length - ok.length,
    errors: count(records.filter((r) => !r.ok).map((r) => r.error)),
    ttft_ms: { mean: mean(ttfts), p50: percentile(ttfts, 50), p95: percentile(ttfts, 95), p99: percentile(ttfts, 99) },
    latency_ms: { mean: mean(lat), p95: percentile(lat, 95) },
    req_per_s: ok.length / wallS,
    sim: {
      prefix_queries: queries,
      prefix_hits: hits,
      hit_rate: queries > 0 ? hits / queries : NaN,
      uncached_tokens_per_request: ttftCount > 0 ? (queries - hits) / ttftCount : NaN,
      ttft_mean_ms: ttftCount > 0 ? (1000 * d('vllm:time_to_first_token_seconds_sum')) / ttftCount : NaN,
      queue_mean_ms: queueCount > 0 ? (1000 * d('vllm:request_queue_time_seconds_sum')) / queueCount : NaN,
      requests: ttftCount,
    },
    client_cached_share: prompt > 0 ? cached / prompt : NaN,
    by_backend: count(records.map((r) => r.backend)),
    affinity: count(records.map((r) => r.affinity)),
    system_to_backend: systemToBackend,
    ttft_by_turn_ms: byTurn,
    by_decision: Object.fromEntries(
      [...new Set(records.map((r) => r.affinity ?? 'none'))].map((k) => {
        const rs = records.filter((r) => (r.affinity ?? 'none') === k);
        const u = rs.filter((r) => r.prompt_tokens !== null && r.cached_tokens !== null);
        return [k, { requests: rs.length, uncached_tokens: mean(u.map((r) => r.prompt_tokens! - r.cached_tokens!)), ttft_ms: mean(rs.filter((r) => r.ttft_ms !== null).map((r) => r.ttft_ms!)) }];
      }),
    ),
  };
}

/** CONCURRENCY workers, each taking the next conversation and playing all its turns in order. */
async function drive(stack: Stack, workload: ChatWorkload, capS: number): Promise<{ records: Sample[]; cut: boolean }> {
  const queue = [...workload.conversations];
  const records: Sample[] = [];
  const capAt = performance.now() + capS * 1000;
  let cut = false;
  const url = `${stack.routerUrl}/v1/chat/completions`;
  const headers = { authorization: `Bearer ${stack.keys.demo}` };
  const worker = async () => {
    for (let conv = queue.shift(); conv; conv = queue.shift()) {
      const messages: { role: string; content: string }[] = [{ role: 'system', content: workload.systems[conv.system]! }];
      for (let turn = 0; turn < conv.users.length; turn++) {
        if (performance.now() >= capAt) {
          cut = true;
          return;
        }
        messages.push({ role: 'user', content: conv.users[turn]! });
        const r: ChatResult = await callChat({
          url,
          headers,
          body: { model: MODEL, messages, stream: true, stream_options: { include_usage: true }, max_tokens: MAX_TOKENS },
          clientTimeoutMs: 60_000,
          idleTimeoutMs: STALL_MS,
        });
        const ok = answeredOk(r) && r.ttftMs !== null;
        records.push({
          conv: conv.id,
          turn,
          system: conv.system,
          ok,
          status: r.status,
          ttft_ms: r.ttftMs,
          latency_ms: r.latencyMs,
          backend: r.router.backend ?? null,
          affinity: r.router.affinity ?? null,
          prompt_tokens: r.usage?.prompt_tokens ?? null,
          cached_tokens: r.usage?.cached_tokens ?? null,
          error: ok ? null : (r.error ?? r.errorEvent ?? `status ${r.status}`),
        });
        // The sim caches prompt blocks only, so a stand-in answer after a failure keeps the
        // conversation (and the load) going without changing what the caches can hold.
        messages.push({ role: 'assistant', content: ok ? r.content : `(no answer to turn ${turn + 1})` });
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { records, cut };
}

function buildTables(
  results: PolicyResult[],
  workload: ChatWorkload,
  capS: number,
  ratio: number | null,
  simRatio: number | null,
  perRound: { round: number; client_ratio?: number; sim_ratio?: number }[],
): BenchTable[] {
  const ms = (x: number) => (Number.isFinite(x) ? `${round(x, 1).toFixed(1)} ms` : '-');
  const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '-');
  const main: BenchTable = {
    title: `Prefix-aware routing vs round-robin (${REPLICAS} replicas of ${MODEL}, ${CONCURRENCY} concurrent conversations, ${os.cpus().length} cores)`,
    columns: ['policy', 'requests', 'failed', 'TTFT mean', 'TTFT p50', 'TTFT p95', 'TTFT p99', 'sim prefix hit rate', 'uncached tok/req', 'sim TTFT mean', 'sim queue mean', 'req/s'],
    rows: results.map((r) => [
      r.policy + (r.cut_by_cap ? ' (cut)' : ''),
      String(r.requests),
      String(r.failed),
      ms(r.ttft_ms.mean),
      ms(r.ttft_ms.p50),
      ms(r.ttft_ms.p95),
      ms(r.ttft_ms.p99),
      pct(r.sim.hit_rate),
      r.sim.uncached_tokens_per_request.toFixed(0),
      ms(r.sim.ttft_mean_ms),
      ms(r.sim.queue_mean_ms),
      r.req_per_s.toFixed(0),
    ]),
    notes: [
      `workload: ${workload.conversations.length} conversations × ${WORKLOAD.turns} turns over ${workload.systems.length} system prompts (${workload.systemTokens.join(', ')} tokens), user turns ${WORKLOAD.userTokens.join('–')} tokens, streamed, max_tokens ${MAX_TOKENS}; cap ${capS} s per run; ${ROUNDS} run(s) per policy (ABBA order, fresh stack each), pooled`,
      `sim per replica: base_ttft ${SIM.latency!.base_ttft_ms} ms + ${SIM.latency!.prefill_ms_per_token} ms per uncached prompt token, itl ${SIM.latency!.itl_ms} ms, max_num_seqs ${SIM.latency!.max_num_seqs}, prefix cache ${SIM.prefix_cache_blocks} blocks of 16 tokens`,
      `TTFT at the client through the router (first SSE chunk with content); hit rate = Σ vllm:prefix_cache_hits_total / Σ vllm:prefix_cache_queries_total over the replicas, deltas over the run; sim TTFT / queue = the sims' own vllm:time_to_first_token_seconds / vllm:request_queue_time_seconds means (no router, no client CPU)`,
      ...(ratio !== null && simRatio !== null
        ? [
            `round-robin mean TTFT / prefix-affinity mean TTFT = x${ratio.toFixed(2)} at the client (x${simRatio.toFixed(2)} in the sims); aim x${AIM_RATIO}: ${ratio >= AIM_RATIO ? 'met' : 'NOT met'}`,
            `per round (client / sim): ${perRound.map((r) => `x${r.client_ratio?.toFixed(2)} / x${r.sim_ratio?.toFixed(2)}`).join(', ')}`,
          ]
        : []),
      `client, router and sims share this machine (1-min load average ${os.loadavg()[0]!.toFixed(1)} at the end): client TTFT carries their CPU contention, the sim columns do not.`,
      ...results.filter((r) => r.failed > 0).map((r) => `failed under ${r.policy}: ${Object.entries(r.errors).map(([e, n]) => `${n}× ${e}`).join('; ')} (TTFT still counts requests whose first token arrived)`),
      ...(results.some((r) => r.cut_by_cap) ? ['(cut) = the cap stopped the run before every conversation finished: compare with care.'] : []),
    ],
  };
  const where: BenchTable = {
    title: 'Where requests went',
    columns: ['policy', ...REPLICA_IDS, 'x-router-affinity (uncached tok/req, TTFT)', 'mean TTFT by turn (1..n)', 'cached share (usage)'],
    rows: results.map((r) => [
      r.policy,
      ...REPLICA_IDS.map((id) => String(r.by_backend[id] ?? 0)),
      Object.entries(r.by_decision)
        .filter(([k]) => k !== 'none')
        .map(([k, v]) => `${k} ${v.requests} (${v.uncached_tokens.toFixed(0)}, ${v.ttft_ms.toFixed(0)} ms)`)
        .join('; ') || '-',
      r.ttft_by_turn_ms.map((x) => (Number.isFinite(x) ? x.toFixed(0) : '-')).join(' / '),
      pct(r.client_cached_share),
    ]),
    notes: results
      .filter((r) => r.policy === 'prefix-affinity')
      .map((r) => `prefix-affinity, system prompt → replica (requests): ${Object.entries(r.system_to_backend)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([s, m]) => `${s}: ${Object.entries(m).sort(([, x], [, y]) => y - x).map(([b, n]) => `${b.replace('vllm-', '')} ${n}`).join(' ')}`)
        .join('; ')}`),
  };
  return [main, where];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
