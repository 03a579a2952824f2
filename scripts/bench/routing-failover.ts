/**
 * Failover under load: the dev stack (three regions) with short timeouts, clients near us-east
 * sending a steady mix of streamed and non-streamed `small` requests, each with a deadline
 * (x-router-timeout-ms). Mid-run, us-east's 8B simulator first answers every request with 503,
 * then hangs (accepts and never answers, not even headers), then recovers.
 *
 * Per phase (a request belongs to the phase it started in): how many were answered successfully
 * (2xx, not the degraded stand-in, and for a stream `[DONE]` without an error event), latency
 * against the deadline, and which backends served. The isolate's only protection today is its
 * local skip list (3 consecutive failures → skip the backend for 10 s), so the hang phase shows
 * what every request pays until that kicks in, and again each time it expires.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack } from '../dev/stack';
import type { BenchSection, BenchTable } from './lib/section';
import { percentile } from './lib/stats';
import { answeredOk, callChat } from './lib/workload-client';

const PRIMARY = 'vllm-us-east-8b';
const GEO = '40.7,-74.0'; // New York: us-east is the nearest region
const MODEL = 'small';
const TIMEOUTS = { connect_ms: 500, ttft_ms: 1_500, total_ms: 3_000 };
const MAX_ATTEMPTS = 3;
const DEADLINE_MS = 4_000;
const MARGIN_MS = 250;
const CLIENTS = 16;
const MAX_TOKENS = 16;
/** Breaker settings merged over the dev config's [breaker] for experiments, e.g. '{"cooldown_ms":4000}' or '{"enabled":false}'. */
const BREAKER_EXTRA = JSON.parse(process.env.BENCH_FAILOVER_BREAKER ?? '{}') as Record<string, unknown>;

/** Phase shares of the run, and the faults set on the primary's sim at the start of each. */
const PHASES = [
  { name: 'healthy', share: 0.15, faults: {} },
  { name: 'us-east 503', share: 0.2, faults: { error_rate: 1, status: 503 } },
  { name: 'us-east hangs', share: 0.4, faults: { hang: true } },
  { name: 'recovered', share: 0.25, faults: {} },
] as const;

interface Sample {
  phase: number;
  /** Seconds since the run started. */
  t: number;
  stream: boolean;
  ok: boolean;
  status: number;
  latency_ms: number;
  ttft_ms: number | null;
  backend: string | null;
  attempts: number | null;
  fallback: string | null;
  degraded: boolean;
  error: string | null;
}

export const routingFailover: BenchSection = {
  name: 'routing-failover',
  description: `us-east's 8B sim fails mid-run (503, then hang, then recovery) under ${CLIENTS} concurrent clients with a ${DEADLINE_MS} ms deadline`,
  async run(ctx) {
    const totalS = ctx.durationS ?? 40;
    const stack = await startStack({
      port: 0,
      ephemeralBackends: true,
      persist: false,
      directSocket: true,
      configPatch: (router: RouterConfigInput) => ({ ...router, timeouts: TIMEOUTS, max_attempts: MAX_ATTEMPTS, breaker: { ...router.breaker, ...BREAKER_EXTRA } }),
    });
    try {
      const primaryUrl = stack.backends[PRIMARY];
      if (!primaryUrl) throw new Error(`the dev config has no backend ${PRIMARY}`);
      const setFaults = async (faults: object) => {
        const res = await fetch(`${primaryUrl}/sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(faults) });
        if (!res.ok) throw new Error(`/sim/faults answered ${res.status}: ${await res.text()}`);
      };
      await setFaults({});

      const url = `${stack.routerUrl}/v1/chat/completions`;
      const headers = { authorization: `Bearer ${stack.keys.demo}`, 'x-router-debug-geo': GEO, 'x-router-timeout-ms': String(DEADLINE_MS) };
      const probe = await callChat({ url, headers, body: { model: MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 4 } });
      if (probe.router.backend !== PRIMARY) throw new Error(`a client at ${GEO} was served by ${probe.router.backend ?? `nothing (${probe.status})`}, expected ${PRIMARY}`);

      const bounds: number[] = []; // phase start, in s since run start
      let acc = 0;
      for (const p of PHASES) {
        bounds.push(acc);
        acc += p.share * totalS;
      }
      const samples: Sample[] = [];
      const t0 = performance.now();
      const t0Wall = Date.now();
      const now = () => (performance.now() - t0) / 1000;
      const phaseAt = (t: number) => bounds.findLastIndex((b) => t >= b);
      let stop = false;

      const client = async (i: number) => {
        const stream = i % 2 === 0;
        for (let n = 0; !stop; n++) {
          const t = now();
          const r = await callChat({
            url,
            headers,
            body: { model: MODEL, messages: [{ role: 'user', content: `Client ${i}, request ${n}: give me a short status line.` }], max_tokens: MAX_TOKENS, ...(stream ? { stream: true } : {}) },
            clientTimeoutMs: DEADLINE_MS + 5_000,
            idleTimeoutMs: 2_000,
          });
          const ok = answeredOk(r);
          samples.push({
            phase: phaseAt(t),
            t,
            stream,
            ok,
            status: r.status,
            latency_ms: r.latencyMs,
            ttft_ms: r.ttftMs,
            backend: r.router.backend ?? null,
            attempts: r.router.attempts ? Number(r.router.attempts) : null,
            fallback: r.router.fallback ?? null,
            degraded: r.router.degraded === 'true',
            error: ok ? null : (r.error ?? r.errorEvent ?? (r.router.degraded === 'true' ? 'degraded answer' : r.stream && !r.done ? 'stream without [DONE]' : `status ${r.status}`)),
          });
        }
      };

      const conductor = async () => {
        for (let p = 0; p < PHASES.length; p++) {
          const wait = bounds[p]! - now();
          if (wait > 0) await sleep(wait * 1000);
          await setFaults(PHASES[p]!.faults);
          log(`${now().toFixed(1)} s: phase "${PHASES[p]!.name}" (faults ${JSON.stringify(PHASES[p]!.faults)})`);
        }
        await sleep(Math.max(0, totalS - now()) * 1000);
        stop = true;
      };
      await Promise.all([conductor(), ...Array.from({ length: CLIENTS }, (_, i) => client(i))]);
      await setFaults({});
      const breaker = await breakerOf(stack.routerUrl, stack.adminToken, PRIMARY);
      const transitions = (breaker?.transitions ?? [])
        .map((x) => ({ at_s: (Date.parse(x.at) - t0Wall) / 1000, from: x.from, to: x.to, cause: x.cause }))
        .reverse();

      const phases = PHASES.map((p, i) => summarize(p.name, samples.filter((s) => s.phase === i)));
      const json = {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, loadavg_1m: os.loadavg()[0] },
        setup: { breaker: { ...stack.router.breaker }, primary: PRIMARY, geo: GEO, model: MODEL, timeouts: TIMEOUTS, max_attempts: MAX_ATTEMPTS, deadline_ms: DEADLINE_MS, margin_ms: MARGIN_MS, clients: CLIENTS, streaming_clients: CLIENTS / 2, max_tokens: MAX_TOKENS, total_s: totalS, phases: PHASES.map((p, i) => ({ ...p, starts_at_s: bounds[i] })) },
        phases,
        aims: {
          every_request_answered: phases.every((p) => p.failed === 0),
          none_past_deadline: phases.every((p) => p.past_deadline === 0),
        },
        timeline: timeline(samples, totalS),
        breaker: breaker ? { ...breaker, transitions } : null,
        samples,
      };
      const tables = buildTables(phases, samples, bounds, totalS);
      tables.push({
        title: `Breaker of ${PRIMARY} (${breaker ? `now ${breaker.state}, ${breaker.trips} trip(s)` : 'not readable'}; settings ${JSON.stringify(breakerShort(breaker?.settings ?? stack.router.breaker))})`,
        columns: ['at', 'phase', 'from', 'to', 'cause'],
        rows: transitions.map((x) => [`${x.at_s.toFixed(1)} s`, PHASES[Math.max(0, bounds.findLastIndex((b) => x.at_s >= b))]!.name, x.from, x.to, x.cause]),
        notes: transitions.length === 0 ? ['no transitions'] : [],
      });
      return { tables, json };
    } finally {
      await stack.close();
    }
  },
};

interface PhaseSummary {
  phase: string;
  requests: number;
  ok: number;
  failed: number;
  ok_share: number;
  past_deadline: number;
  max_latency_ms: number;
  p50_ms: number;
  p99_ms: number;
  streams: { requests: number; ok: number; p50_ms: number; p99_ms: number; max_ms: number; ttft_p99_ms: number };
  non_streams: { requests: number; ok: number; p50_ms: number; p99_ms: number; max_ms: number };
  served_by: Record<string, number>;
  with_fallback: number;
  degraded: number;
  errors: Record<string, number>;
}

function summarize(name: string, s: Sample[]): PhaseSummary {
  const lat = s.map((x) => x.latency_ms);
  const ok = s.filter((x) => x.ok);
  const kind = (stream: boolean) => {
    const k = s.filter((x) => x.stream === stream);
    const l = k.map((x) => x.latency_ms);
    return { requests: k.length, ok: k.filter((x) => x.ok).length, p50_ms: percentile(l, 50), p99_ms: percentile(l, 99), max_ms: l.length ? Math.max(...l) : NaN };
  };
  const ttfts = s.filter((x) => x.stream && x.ttft_ms !== null).map((x) => x.ttft_ms!);
  return {
    phase: name,
    requests: s.length,
    ok: ok.length,
    failed: s.length - ok.length,
    ok_share: s.length ? ok.length / s.length : NaN,
    past_deadline: s.filter((x) => x.latency_ms > DEADLINE_MS + MARGIN_MS).length,
    max_latency_ms: lat.length ? Math.max(...lat) : NaN,
    p50_ms: percentile(lat, 50),
    p99_ms: percentile(lat, 99),
    streams: { ...kind(true), ttft_p99_ms: percentile(ttfts, 99) },
    non_streams: kind(false),
    served_by: tally(ok.map((x) => x.backend ?? 'none')),
    with_fallback: s.filter((x) => x.fallback !== null).length,
    degraded: s.filter((x) => x.degraded).length,
    errors: tally(s.filter((x) => !x.ok).map((x) => x.error ?? '?')),
  };
}

/** Per 2-second bucket: requests started, how many were served by the primary, fallbacks, worst latency. */
function timeline(samples: Sample[], totalS: number) {
  const step = totalS > 20 ? 2 : 1;
  const rows: { from_s: number; requests: number; primary: number; fallback: number; failed: number; max_ms: number; over_1s: number }[] = [];
  for (let from = 0; from < totalS; from += step) {
    const b = samples.filter((x) => x.t >= from && x.t < from + step);
    rows.push({
      from_s: from,
      requests: b.length,
      primary: b.filter((x) => x.ok && x.backend === PRIMARY).length,
      fallback: b.filter((x) => x.fallback !== null).length,
      failed: b.filter((x) => !x.ok).length,
      max_ms: b.length ? Math.max(...b.map((x) => x.latency_ms)) : 0,
      over_1s: b.filter((x) => x.latency_ms > 1_000).length,
    });
  }
  return rows;
}

function buildTables(phases: PhaseSummary[], samples: Sample[], bounds: number[], totalS: number): BenchTable[] {
  const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '-');
  const short = (id: string) => id.replace(/^vllm-|^trtllm-/, '');
  const main: BenchTable = {
    title: `Failover: ${PRIMARY} fails mid-run (${CLIENTS} clients near us-east, half streaming, deadline ${DEADLINE_MS} ms, ${os.cpus().length} cores)`,
    columns: ['phase', 'requests', 'answered ok', 'past deadline+250ms', 'max latency', 'p50', 'p99', 'fallbacks', 'served by'],
    rows: phases.map((p) => [
      p.phase,
      String(p.requests),
      `${p.ok} (${(p.ok_share * 100).toFixed(1)}%)`,
      String(p.past_deadline),
      ms(p.max_latency_ms),
      ms(p.p50_ms),
      ms(p.p99_ms),
      String(p.with_fallback),
      Object.entries(p.served_by)
        .sort(([, a], [, b]) => b - a)
        .map(([b, n]) => `${short(b)} ${n}`)
        .join(', ') || '-',
    ]),
    notes: [
      `phases start at ${bounds.map((b) => `${b.toFixed(1)} s`).join(', ')} of ${totalS} s; faults on ${PRIMARY}'s sim: ${PHASES.map((p) => `${p.name} ${JSON.stringify(p.faults)}`).join(', ')}`,
      `router: timeouts ${JSON.stringify(TIMEOUTS)}, max_attempts ${MAX_ATTEMPTS}; each request: x-router-timeout-ms ${DEADLINE_MS}, x-router-debug-geo ${GEO}; a request counts in the phase it started in`,
      `the router's own deadline is min(x-router-timeout-ms, timeouts.total_ms) = ${Math.min(DEADLINE_MS, TIMEOUTS.total_ms)} ms; "past deadline" is against the client's ${DEADLINE_MS} ms`,
      `answered ok = 2xx, not x-router-degraded, and for streams [DONE] without an error event; fallbacks = requests with x-router-fallback (more than one backend tried)`,
      `aim: every request answered while another region can serve: ${phases.every((p) => p.failed === 0) ? 'met' : 'NOT met'}; none past its deadline (+${MARGIN_MS} ms): ${phases.every((p) => p.past_deadline === 0) ? 'met' : 'NOT met'}`,
      ...phases.filter((p) => p.failed > 0).map((p) => `failures in "${p.phase}": ${Object.entries(p.errors).map(([e, n]) => `${n}× ${e}`).join('; ')}`),
    ],
  };
  const kinds: BenchTable = {
    title: 'By request kind',
    columns: ['phase', 'kind', 'requests', 'ok', 'p50', 'p99', 'max', 'TTFT p99'],
    rows: phases.flatMap((p) => [
      [p.phase, 'stream', String(p.streams.requests), String(p.streams.ok), ms(p.streams.p50_ms), ms(p.streams.p99_ms), ms(p.streams.max_ms), ms(p.streams.ttft_p99_ms)],
      [p.phase, 'non-stream', String(p.non_streams.requests), String(p.non_streams.ok), ms(p.non_streams.p50_ms), ms(p.non_streams.p99_ms), ms(p.non_streams.max_ms), '-'],
    ]),
  };
  const tl = timeline(samples, totalS);
  const time: BenchTable = {
    title: 'Timeline (by request start)',
    columns: ['from', 'phase', 'requests', `served by ${short(PRIMARY)}`, 'fallbacks', 'failed', '> 1 s', 'max latency'],
    rows: tl.map((r) => [`${r.from_s} s`, PHASES[bounds.findLastIndex((b) => r.from_s >= b - 1e-9)]!.name, String(r.requests), String(r.primary), String(r.fallback), String(r.failed), String(r.over_1s), ms(r.max_ms)]),
  };
  return [main, kinds, time];
}

interface BreakerView {
  state: string;
  trips: number;
  settings?: Record<string, unknown>;
  transitions: { at: string; from: string; to: string; cause: string }[];
}

/** The breaker's admin view (GET /admin/breakers/:backend), or null if the router has none. */
async function breakerOf(routerUrl: string, adminToken: string, id: string): Promise<BreakerView | null> {
  try {
    const res = await fetch(`${routerUrl}/admin/breakers/${id}`, { headers: { authorization: `Bearer ${adminToken}` } });
    return res.ok ? ((await res.json()) as BreakerView) : null;
  } catch {
    return null;
  }
}

function breakerShort(b: unknown): Record<string, unknown> {
  const keys = ['enabled', 'consecutive_failures', 'min_requests', 'failure_threshold', 'cooldown_ms', 'half_open_max_probes', 'close_after_successes'];
  const o = (b ?? {}) as Record<string, unknown>;
  return Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]));
}

const tally = (keys: string[]) => keys.reduce<Record<string, number>>((m, k) => ((m[k] = (m[k] ?? 0) + 1), m), {});
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
