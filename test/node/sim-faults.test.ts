/**
 * Fault injection: deterministic error rate, extra latency, hangs that release on client
 * disconnect, connections cut mid-stream.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type SimServer, startSimServer } from '../../regional/sim/server';
import { metricValue, parseSse } from '../../regional/sim/testkit';

const M = 'm';
let sim: SimServer;
beforeAll(async () => {
  sim = await startSimServer({ models: [M], embedding_models: ['e'], latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 16 } });
});
afterAll(async () => {
  await sim?.close();
});
beforeEach(async () => {
  await fetch(`${sim.url}/sim/reset`, { method: 'POST' });
  await fetch(`${sim.url}/sim/config`, { method: 'POST', body: JSON.stringify({ itl_ms: 0, base_ttft_ms: 0 }) });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const faults = async (f: unknown) => fetch(`${sim.url}/sim/faults`, { method: 'POST', body: JSON.stringify(f) });
const chat = (body: Record<string, unknown> = {}, signal?: AbortSignal) =>
  fetch(`${sim.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: M, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, ...body }),
    signal,
  });
const metric = async (name: string) => metricValue(await (await fetch(`${sim.url}/metrics`)).text(), name);
const stats = async () => (await (await fetch(`${sim.url}/sim/stats`)).json()) as any;

/** Raw HTTP POST that records what arrived before the connection ended, and how it ended. */
function rawPost(path: string, body: unknown): Promise<{ status: number | null; data: string; error: string | null; complete: boolean }> {
  return new Promise((resolve) => {
    let data = '';
    let status: number | null = null;
    let done = false;
    const finish = (error: string | null, complete: boolean) => {
      if (done) return;
      done = true;
      resolve({ status, data, error, complete });
    };
    const req = httpRequest(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      status = res.statusCode ?? null;
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => finish(null, res.complete));
      res.on('error', (e) => finish(e.message, false));
      res.on('aborted', () => finish('aborted', false));
      res.on('close', () => finish(res.complete ? null : 'closed', res.complete));
    });
    req.on('error', (e) => finish(e.message, false));
    req.end(JSON.stringify(body));
  });
}

describe('error_rate', () => {
  it('1 → every inference request fails with the status and a vLLM-style JSON error; others still work', async () => {
    const set = await faults({ error_rate: 1, status: 503 });
    expect(await set.json()).toEqual({ error_rate: 1, status: 503, latency_ms: 0, hang: false, drop_after_tokens: null });
    for (let i = 0; i < 3; i++) {
      const r = await chat();
      expect(r.status).toBe(503);
      expect(r.headers.get('content-type')).toBe('application/json');
      expect(await r.json()).toEqual({ error: { message: expect.any(String), type: 'ServiceUnavailableError', param: null, code: 503 } });
    }
    const emb = await fetch(`${sim.url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ model: 'e', input: 'x' }) });
    expect(emb.status).toBe(503);
    expect((await fetch(`${sim.url}/v1/models`)).status).toBe(200);
    expect((await fetch(`${sim.url}/health`)).status).toBe(200);
    expect((await stats()).faults.errors).toBe(4);
  });

  it('0.5 → exactly every other request fails (2nd, 4th, …); another status is used as given', async () => {
    await faults({ error_rate: 0.5, status: 429 });
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await chat()).status);
    expect(codes).toEqual([200, 429, 200, 429, 200, 429, 200, 429]);
    await faults({ error_rate: 1, status: 429 });
    expect(((await (await chat()).json()) as any).error.type).toBe('TooManyRequestsError');
  });

  it('{} clears every fault; GET returns the current set; bad input is a 400', async () => {
    await faults({ error_rate: 1, hang: true });
    expect(((await (await fetch(`${sim.url}/sim/faults`)).json()) as any).hang).toBe(true);
    await faults({});
    expect(await (await fetch(`${sim.url}/sim/faults`)).json()).toEqual({ error_rate: 0, status: 503, latency_ms: 0, hang: false, drop_after_tokens: null });
    expect((await chat()).status).toBe(200);
    for (const bad of [{ error_rate: 2 }, { hang: 'yes' }, { status: 200 }, { typo: 1 }, [1]]) {
      const r = await faults(bad);
      expect(r.status).toBe(400);
      expect(((await r.json()) as any).error.message).toEqual(expect.any(String));
    }
    const notJson = await fetch(`${sim.url}/sim/faults`, { method: 'POST', body: '{oops' });
    expect(notJson.status).toBe(400);
  });
});

describe('latency_ms', () => {
  it('delays handling by the given time', async () => {
    await faults({ latency_ms: 200 });
    const t0 = performance.now();
    expect((await chat()).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
    expect((await stats()).faults.delayed).toBe(1);
  });
});

describe('hang', () => {
  it('reads the request, never answers, and releases everything when the client goes away', async () => {
    await faults({ hang: true });
    const ac = new AbortController();
    const pending = chat({ stream: true }, ac.signal).catch((e: Error) => e);
    for (let i = 0; i < 200 && (await metric('vllm:num_requests_running')) !== 1; i++) await sleep(5);
    expect(await metric('vllm:num_requests_running')).toBe(1);
    expect((await fetch(`${sim.url}/health`)).status).toBe(200);
    const s = await stats();
    expect(s.faults.hangs).toBe(1);
    expect(s.hanging).toBe(1);
    ac.abort();
    expect(await pending).toBeInstanceOf(Error);
    let running = 1;
    for (let i = 0; i < 40 && running !== 0; i++) {
      await sleep(10);
      running = await metric('vllm:num_requests_running');
    }
    expect(running).toBe(0);
    expect((await stats()).hanging).toBe(0);
    await faults({});
    expect((await chat()).status).toBe(200);
  });
});

describe('drop_after_tokens', () => {
  it('cuts a stream after N content tokens: truncated, no [DONE]', async () => {
    await faults({ drop_after_tokens: 3 });
    const r = await rawPost('/v1/chat/completions', { model: M, messages: [{ role: 'user', content: 'hi' }], max_tokens: 20, stream: true });
    expect(r.status).toBe(200);
    expect(r.complete).toBe(false);
    const events = parseSse(r.data);
    expect(events).not.toContain('[DONE]');
    const content = events.map((e) => JSON.parse(e)).filter((c) => c.choices[0]?.delta?.content);
    expect(content).toHaveLength(3);
    expect((await stats()).faults.drops).toBe(1);
    expect(await metric('vllm:num_requests_running')).toBe(0);
  });

  it('also cuts a stream produced on timers (itl > 0)', async () => {
    await fetch(`${sim.url}/sim/config`, { method: 'POST', body: JSON.stringify({ itl_ms: 5 }) });
    await faults({ drop_after_tokens: 2 });
    const r = await rawPost('/v1/completions', { model: M, prompt: 'hello', max_tokens: 20, stream: true });
    expect(r.complete).toBe(false);
    const events = parseSse(r.data);
    expect(events).not.toContain('[DONE]');
    expect(events).toHaveLength(2);
  });

  it('a non-streaming request gets its connection closed instead of an answer', async () => {
    await faults({ drop_after_tokens: 0 });
    const r = await rawPost('/v1/chat/completions', { model: M, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    expect(r.status).toBeNull();
    expect(r.error).toEqual(expect.any(String));
    await faults({});
    expect((await chat()).status).toBe(200);
  });
});

describe('/sim/stats', () => {
  it('counts what reached the backend per endpoint and model', async () => {
    await chat();
    await fetch(`${sim.url}/v1/completions`, { method: 'POST', body: JSON.stringify({ model: M, prompt: 'x', max_tokens: 1 }) });
    await fetch(`${sim.url}/v1/models`);
    const s = await stats();
    expect(s.requests).toMatchObject({ chat: 1, completions: 1, models: 1 });
    expect(s.by_model).toEqual({ m: 2 });
    expect(s.responses['200']).toBeGreaterThanOrEqual(3);
    expect(s.completed).toBe(2);
    expect(s.tokens.completion).toBe(4);
  });
});
