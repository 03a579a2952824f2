/**
 * The latency model: queueing behind max_num_seqs, prefix-cache hits shortening prefill,
 * client aborts freeing slots, cold start / idle scale-down, run-time config.
 * Assertions use the model's own numbers (/sim/stats) and wait on events (until); the only wall-clock
 * checks are lower bounds on delays the sim must impose (a busy machine cannot fail those). Speed
 * belongs in `npm run bench`.
 */
import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type SimServer, startSimServer } from '../../regional/sim/server';
import { metricValue, parseSse } from '../../regional/sim/testkit';
import { until as waitFor } from '../support/until';

const M = 'm';
const sims: SimServer[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});
async function start(opts: Parameters<typeof startSimServer>[0]): Promise<SimServer> {
  const s = await startSimServer({ models: [M], ...opts });
  sims.push(s);
  return s;
}

const chat = (sim: SimServer, body: Record<string, unknown>, signal?: AbortSignal) =>
  fetch(`${sim.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: M, messages: [{ role: 'user', content: 'hi' }], ...body }),
    signal,
  });
const metric = async (sim: SimServer, name: string) => metricValue(await (await fetch(`${sim.url}/metrics`)).text(), name);
const stats = async (sim: SimServer) => (await (await fetch(`${sim.url}/sim/stats`)).json()) as any;

/** Client-side timing of a stream: when it was sent, when the first content chunk came, when it ended. `onFirst` runs (awaited) at the first content chunk. */
async function timedStream(
  sim: SimServer,
  body: Record<string, unknown>,
  onFirst?: () => Promise<void>,
): Promise<{ sentAt: number; firstAt: number; endAt: number; ttft: number; total: number; text: string }> {
  const sentAt = performance.now();
  const res = await chat(sim, { ...body, stream: true });
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = '';
  let firstAt = -1;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
    if (firstAt < 0 && /"delta":\{"content"/.test(text)) {
      firstAt = performance.now();
      await onFirst?.();
    }
  }
  const endAt = performance.now();
  return { sentAt, firstAt, endAt, ttft: firstAt - sentAt, total: endAt - sentAt, text };
}

/** Waits for a metric or state to reach a value (the shared until(), named by what it reads). */
const until = <T>(what: string, read: () => Promise<T>, want: T) => waitFor(what, read, (v) => v === want);
const state = async (sim: SimServer) => (await (await fetch(`${sim.url}/sim/state`)).json()) as any;

describe('queueing (max_num_seqs)', () => {
  it('a second request waits for the first; waiting shows in /metrics; its TTFT includes the wait', async () => {
    const sim = await start({ latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 30, max_num_seqs: 1 } });
    const first = timedStream(sim, { max_tokens: 12 }); // 11 × 30 ms ≈ 330 ms busy
    await until('the first running', () => metric(sim, 'vllm:num_requests_running'), 1);
    expect(await metric(sim, 'vllm:num_requests_waiting')).toBe(0); // the first did not wait
    // At the second's first token, the sim has already finished (recorded) the first request.
    let doneAtSecondsFirstToken: string[] = [];
    const second = timedStream(sim, { max_tokens: 2 }, async () => {
      doneAtSecondsFirstToken = (await stats(sim)).recent.map((r: { id: string }) => r.id);
    });
    await until('the second waiting', () => metric(sim, 'vllm:num_requests_waiting'), 1);
    expect(await metric(sim, 'vllm:num_requests_running')).toBe(1);
    expect(await metric(sim, 'vllm:kv_cache_usage_perc')).toBeGreaterThan(0);
    const [a, b] = await Promise.all([first, second]);
    expect(a.text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(b.text.endsWith('data: [DONE]\n\n')).toBe(true);
    const recs = (await stats(sim)).recent;
    expect(recs).toHaveLength(2);
    expect(doneAtSecondsFirstToken).toEqual([recs[0].id]);
    expect(recs[1].queue_ms).toBeGreaterThan(0);
    expect(recs[1].ttft_ms).toBeGreaterThanOrEqual(recs[1].queue_ms);
    expect(await metric(sim, 'vllm:num_requests_waiting')).toBe(0);
    expect(await metric(sim, 'vllm:num_requests_running')).toBe(0);
  });

  it('POST /sim/config max_num_seqs admits waiters at once', async () => {
    const sim = await start({ latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 30, max_num_seqs: 1 } });
    const reqs = [1, 2, 3].map(() => chat(sim, { max_tokens: 8 }));
    await until('two waiting', () => metric(sim, 'vllm:num_requests_waiting'), 2);
    const r = await fetch(`${sim.url}/sim/config`, { method: 'POST', body: JSON.stringify({ max_num_seqs: 8 }) });
    expect(((await r.json()) as any).max_num_seqs).toBe(8);
    expect(await metric(sim, 'vllm:num_requests_waiting')).toBe(0);
    expect(await metric(sim, 'vllm:num_requests_running')).toBe(3);
    await Promise.all(reqs);
  });
});

describe('prefix cache', () => {
  it('a repeated long prompt reports cached tokens and a shorter TTFT', async () => {
    const sim = await start({ latency: { base_ttft_ms: 5, prefill_ms_per_token: 0.5, itl_ms: 0, max_num_seqs: 8 } });
    const long = [{ role: 'user', content: 'The quick brown fox jumps over the lazy dog. '.repeat(40) }];
    const r1 = (await (await chat(sim, { messages: long, max_tokens: 1 })).json()) as any;
    const r2 = (await (await chat(sim, { messages: long, max_tokens: 1 })).json()) as any;
    const P = r1.usage.prompt_tokens as number;
    expect(P).toBeGreaterThan(300);
    expect(r1.usage.prompt_tokens_details.cached_tokens).toBe(0);
    const cached = r2.usage.prompt_tokens_details.cached_tokens as number;
    expect(cached).toBe(Math.floor((P - 1) / 16) * 16);
    const [s1, s2] = (await stats(sim)).recent;
    expect(s1.model_ttft_ms).toBeCloseTo(5 + 0.5 * P, 5);
    expect(s2.model_ttft_ms).toBeCloseTo(5 + 0.5 * (P - cached), 5);
    expect(s2.model_ttft_ms).toBeLessThan(s1.model_ttft_ms);
    const text = await (await fetch(`${sim.url}/metrics`)).text();
    expect(metricValue(text, 'vllm:prefix_cache_hits_total')).toBe(cached);
    expect(metricValue(text, 'vllm:prefix_cache_queries_total')).toBe(2 * P);
    // A different continuation of the same conversation reuses the shared blocks only.
    const r3 = (await (await chat(sim, { messages: [...long, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'more' }], max_tokens: 1 })).json()) as any;
    expect(r3.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    expect(r3.usage.prompt_tokens_details.cached_tokens).toBeLessThanOrEqual(P);
    // cache_salt separates caches.
    const r4 = (await (await chat(sim, { messages: long, max_tokens: 1, cache_salt: 'tenant-b' })).json()) as any;
    expect(r4.usage.prompt_tokens_details.cached_tokens).toBe(0);
  });
});

describe('client aborts', () => {
  it('aborting a stream mid-way frees its slot and counts an abort', async () => {
    const sim = await start({ latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 40, max_num_seqs: 4 } });
    const ac = new AbortController();
    const res = await chat(sim, { max_tokens: 60, ignore_eos: true, stream: true }, ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    expect(await metric(sim, 'vllm:num_requests_running')).toBe(1);
    ac.abort();
    await until('the slot freed', () => metric(sim, 'vllm:num_requests_running'), 0);
    const s = await stats(sim);
    expect(s.aborted).toBe(1);
    expect(s.recent[0]).toMatchObject({ aborted: true, finish_reason: 'abort' });
    const text = await (await fetch(`${sim.url}/metrics`)).text();
    expect(metricValue(text, 'vllm:request_success_total', { finished_reason: 'abort' })).toBe(1);
  });

  it('aborting a queued request removes it from the queue', async () => {
    const sim = await start({ latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 30, max_num_seqs: 1 } });
    const first = chat(sim, { max_tokens: 10 });
    await until('the first running', () => metric(sim, 'vllm:num_requests_running'), 1);
    const ac = new AbortController();
    const queued = chat(sim, { max_tokens: 10 }, ac.signal).catch((e: Error) => e);
    await until('one waiting', () => metric(sim, 'vllm:num_requests_waiting'), 1);
    ac.abort();
    await queued;
    await until('the queue empty', () => metric(sim, 'vllm:num_requests_waiting'), 0);
    expect(await metric(sim, 'vllm:num_requests_running')).toBe(1);
    await first;
    expect((await stats(sim)).aborted).toBe(1);
  });

  it('streaming headers are sent at acceptance, before the first token', async () => {
    // A first token 10 minutes away: headers can only have come at acceptance.
    const sim = await start({ latency: { base_ttft_ms: 600_000, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 4 } });
    const { status, running, tokens } = await new Promise<{ status: number; running: number; tokens: number }>((resolve, reject) => {
      const req = httpRequest(
        `${sim.url}/v1/chat/completions`,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          const at = { status: res.statusCode ?? 0 };
          // What the sim says at the moment the headers arrived: the request runs, no token yet.
          void Promise.all([metric(sim, 'vllm:num_requests_running'), metric(sim, 'vllm:generation_tokens_total')])
            .then(([r, t]) => resolve({ ...at, running: r, tokens: t }), reject)
            .finally(() => req.destroy());
        },
      );
      req.on('error', () => {});
      req.end(JSON.stringify({ model: M, messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 2 }));
    });
    expect(status).toBe(200);
    expect(running).toBe(1);
    expect(tokens).toBe(0);
  });
});

describe('cold start and idle scale-down', () => {
  it('after {"cold":true} the first request waits cold_start_ms; state goes waking → warm; health does not wake', async () => {
    const sim = await start({ latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 8 }, cold_start_ms: 300 });
    const set = await fetch(`${sim.url}/sim/state`, { method: 'POST', body: JSON.stringify({ cold: true }) });
    expect(((await set.json()) as any).state).toBe('cold');
    expect((await fetch(`${sim.url}/health`)).status).toBe(503);
    expect((await state(sim)).state).toBe('cold'); // the health check did not wake it
    const t0 = performance.now();
    const a = chat(sim, { max_tokens: 2 });
    await until('waking', async () => (await state(sim)).state, 'waking');
    expect((await fetch(`${sim.url}/health`)).status).toBe(503);
    const b = chat(sim, { max_tokens: 2 }); // joins the same wake
    const [ra, rb] = await Promise.all([a, b]);
    const took = performance.now() - t0;
    expect(ra.status).toBe(200);
    expect(rb.status).toBe(200);
    expect(took).toBeGreaterThanOrEqual(295); // a lower bound: the wake's wait (a slow machine only adds to it)
    const after = (await (await fetch(`${sim.url}/sim/state`)).json()) as any;
    expect(after).toMatchObject({ state: 'warm', wakes: 1, cold_start_ms: 300, running: 0, waiting: 0 });
    expect(after.last_request_at).toEqual(expect.any(String));
    expect((await fetch(`${sim.url}/health`)).status).toBe(200);
  });

  it('{"cold":false} warms immediately and releases waiting requests', async () => {
    // A 10-minute cold start: the request can only be answered within the test because of {"cold":false}.
    const sim = await start({ cold_start_ms: 600_000, start_cold: true, latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 8 } });
    const pending = chat(sim, { max_tokens: 1 });
    await until('the request waking it', async () => (await state(sim)).state, 'waking');
    await fetch(`${sim.url}/sim/state`, { method: 'POST', body: JSON.stringify({ cold: false }) });
    expect((await pending).status).toBe(200);
    expect(await state(sim)).toMatchObject({ state: 'warm', running: 0, waiting: 0 });
  });

  it('goes cold by itself after idle_scale_down_ms without requests', async () => {
    const sim = await start({ idle_scale_down_ms: 1_000, cold_start_ms: 50, latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 8 } });
    expect((await chat(sim, { max_tokens: 1 })).status).toBe(200);
    const after = await state(sim);
    expect(after.state).toBe('warm');
    const cold = await waitFor('idle scale-down', () => state(sim), (s) => s.state === 'cold');
    // Not before its idle window (a lower bound: a slow machine only makes it later).
    expect(Date.now() - Date.parse(after.last_request_at)).toBeGreaterThanOrEqual(1_000);
    expect(cold.wakes).toBe(0);
    expect((await chat(sim, { max_tokens: 1 })).status).toBe(200);
    expect(await state(sim)).toMatchObject({ state: 'warm', wakes: 1 });
  });
});

describe('run-time config', () => {
  it('GET/POST /sim/config reads and merges; invalid input is a 400', async () => {
    const sim = await start({ latency: { base_ttft_ms: 1, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 4 } });
    const got = (await (await fetch(`${sim.url}/sim/config`)).json()) as any;
    expect(got).toEqual({ base_ttft_ms: 1, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 4, cold_start_ms: 1000, idle_scale_down_ms: 0 });
    const upd = (await (await fetch(`${sim.url}/sim/config`, { method: 'POST', body: JSON.stringify({ base_ttft_ms: 250 }) })).json()) as any;
    expect(upd).toMatchObject({ base_ttft_ms: 250, max_num_seqs: 4 });
    await chat(sim, { max_tokens: 1 });
    const rec = (await stats(sim)).recent.at(-1);
    expect(rec.model_ttft_ms).toBe(250);
    expect(rec.ttft_ms).toBeGreaterThan(200); // and waited it (a lower bound, with timers' slack)
    const bad = await fetch(`${sim.url}/sim/config`, { method: 'POST', body: JSON.stringify({ itl_ms: -1 }) });
    expect(bad.status).toBe(400);
    const unknown = await fetch(`${sim.url}/sim/config`, { method: 'POST', body: JSON.stringify({ itl: 1 }) });
    expect(unknown.status).toBe(400);
  });

  it('streams tokens itl_ms apart', async () => {
    const sim = await start({ latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 25, max_num_seqs: 4 } });
    const { ttft, total, text } = await timedStream(sim, { max_tokens: 9 });
    expect(parseSse(text)).toHaveLength(11); // role + 9 tokens + [DONE]
    // A lower bound only (timers may fire early by a ms or two; a busy machine only adds time).
    expect(total - ttft).toBeGreaterThanOrEqual(8 * 25 - 15);
  });
});

describe('shutdown', () => {
  it('close() returns promptly with requests streaming, queued, hung and waiting for a wake', async () => {
    const sim = await startSimServer({ models: [M], cold_start_ms: 60_000, latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 50, max_num_seqs: 1 } });
    const swallow = (p: Promise<Response>) => p.then((r) => r.text()).catch(() => {});
    const inflight = [swallow(chat(sim, { stream: true, max_tokens: 1_000, ignore_eos: true })), swallow(chat(sim, { max_tokens: 5 }))];
    await until('two admitted', async () => sim.state.running + sim.state.waiting, 2);
    await fetch(`${sim.url}/sim/faults`, { method: 'POST', body: JSON.stringify({ hang: true }) });
    inflight.push(swallow(chat(sim, {})));
    await until('one hanging', async () => sim.state.hanging.size, 1);
    sim.state.setFaults({});
    sim.state.setCold(true);
    inflight.push(swallow(chat(sim, {})));
    await until('waking', async () => sim.state.lifecycle.state, 'waking');
    // A stream of 1,000 × 50 ms, a hang and a 60 s wake: close() returning at all (within the test's
    // timeout) shows it did not wait for them.
    await sim.close();
    await Promise.all(inflight);
    expect(sim.state.active.size).toBe(0);
    expect(sim.state.hanging.size).toBe(0);
    expect(sim.state.scheduler.numRunning + sim.state.scheduler.numWaiting).toBe(0);
  });
});
