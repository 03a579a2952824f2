import { env as testEnv } from 'cloudflare:test';
import { resetIsolate } from '../../worker/isolate/registry';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import { baseConfig, call, chat, createKey, envWith, errorOf } from './support';
import { FAST, simulatedConfig, type Sim } from './sims';
import { sse } from '../support/sse';
import { spawnWebhook } from '../support/webhook';

const PARIS = '48.86,2.35,FR';
const SINGAPORE = '1.29,103.85,SG';
const hi = [{ role: 'user', content: 'Say hello.' }];

let key: string;
let env: Env;
let sims: Record<string, Sim>;

beforeAll(async () => {
  const s = await simulatedConfig();
  sims = s.sims;
  env = envWith(s.cfg);
  key = (await createKey('demo', env)).key;
});

// Each test starts as a fresh isolate would: no memory of backends failing in an earlier test.
beforeEach(async () => {
  resetIsolate();
  // Breakers outlive a test (Durable Object storage is shared by the tests of a file): start closed.
  const ns = (testEnv as unknown as Env).BREAKERS;
  await Promise.all(baseConfig().backends.map((b: { id: string }) => b.id).map((id: string) => ns.get(ns.idFromName(id)).reset()));
});

describe('chat completions through the router', () => {
  it('answers a non-streamed request in OpenAI format with the routing headers', async () => {
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 8, seed: 1 }, { env });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.object).toBe('chat.completion');
    expect(body.choices[0].message.role).toBe('assistant');
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(res.headers.get('x-router-backend')).toBe('vllm-us-east-8b');
    expect(res.headers.get('x-router-region')).toBe('us-east');
    expect(res.headers.get('x-router-tier')).toBe('fast');
    expect(res.headers.get('x-router-attempts')).toBe('1');
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  });

  it('routes to the nearest region from the debug geo header, with the backend auth secret', async () => {
    const eu = await chat(key, { model: 'large', messages: hi, max_tokens: 4 }, { env, headers: { 'x-router-debug-geo': PARIS } });
    expect(eu.status).toBe(200);
    expect(eu.headers.get('x-router-backend')).toBe('trtllm-eu-west-70b');
    expect(eu.headers.get('x-router-tier')).toBe('balanced');
    // Its simulator checks the key (auth_secret TRTLLM_EU_WEST_KEY): without the secret the router
    // sends none, the backend answers 401, and the request moves on to another backend.
    const refusals = async () => (((await sims['trtllm-eu-west-70b']!.stats()).responses ?? {}) as Record<string, number>)['401'] ?? 0;
    expect(await refusals()).toBe(0);
    const noSecret = { ...env, TRTLLM_EU_WEST_KEY: undefined } as unknown as Env;
    const refused = await chat(key, { model: 'large', messages: hi, max_tokens: 4 }, { env: noSecret, headers: { 'x-router-debug-geo': PARIS } });
    expect(refused.headers.get('x-router-backend')).not.toBe('trtllm-eu-west-70b');
    expect(await refusals()).toBe(1);
    const ap = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env, headers: { 'x-router-debug-geo': SINGAPORE } });
    expect(ap.headers.get('x-router-region')).toBe('ap-southeast');
  });

  it('routes by request.cf, and ignores the debug header when the config does not allow it', async () => {
    const res = await call('/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'small', messages: hi, max_tokens: 4 }),
      env,
      cf: { latitude: '1.29', longitude: '103.85', country: 'SG' },
    });
    expect(res.headers.get('x-router-region')).toBe('ap-southeast');

    const off = envWith({ ...(env.ROUTER as object), debug_geo_header: false });
    const ignored = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: off, headers: { 'x-router-debug-geo': SINGAPORE } });
    expect(ignored.headers.get('x-router-region')).toBe('us-east');
  });

  it('a tier name as model runs in that tier', async () => {
    const fast = await chat(key, { model: 'fast', messages: hi, max_tokens: 4 }, { env });
    expect(fast.headers.get('x-router-backend')).toBe('vllm-us-east-8b');
    expect(fast.headers.get('x-router-tier')).toBe('fast');
    const balanced = await chat(key, { model: 'balanced', messages: hi, max_tokens: 4 }, { env });
    expect(balanced.headers.get('x-router-backend')).toBe('vllm-us-east-70b');
  });

  it('passes unknown sampling fields through to the backend and asks it for the served model name', async () => {
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4, top_k: 5, repetition_penalty: 1.1 }, { env });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).model).toBe('meta-llama/Llama-3.1-8B-Instruct');
    // What the backend received: a recording receiver as the only backend (its answer is not a
    // completion, so the router's reply is an error: only the request it sent matters here).
    const hook = await spawnWebhook();
    const cfg = {
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'm', served_name: 'org/served-m' }],
      backends: [{ id: 'recorder', kind: 'vllm', region: 'here', url: hook.url, models: ['m'] }],
      tenants: { demo: { models: ['*'] } },
      max_attempts: 1,
    };
    const recorded = envWith(cfg);
    await (await chat((await createKey('demo', recorded)).key, { model: 'm', messages: hi, max_tokens: 4, top_k: 5, repetition_penalty: 1.1 }, { env: recorded })).arrayBuffer();
    const sent = (await hook.calls()).filter((c) => c.path === '/v1/chat/completions');
    expect(sent).toHaveLength(1);
    expect(JSON.parse(sent[0]!.body)).toMatchObject({ model: 'org/served-m', top_k: 5, repetition_penalty: 1.1, max_tokens: 4 });
  });

  it('streams chunk by chunk, strips the usage chunk the client did not ask for, keeps it when asked', async () => {
    const plain = await chat(key, { model: 'small', messages: hi, max_tokens: 6, stream: true }, { env });
    expect(plain.status).toBe(200);
    expect(plain.headers.get('content-type')).toContain('text/event-stream');
    const a = await sse(plain);
    expect(a.done).toBe(true);
    expect(a.events.length).toBeGreaterThan(2);
    expect(a.events.filter((c) => !(c.object === 'chat.completion.chunk' && c.choices.length > 0 && !c.usage))).toEqual([]);

    const withUsage = await chat(key, { model: 'small', messages: hi, max_tokens: 6, stream: true, stream_options: { include_usage: true } }, { env });
    const b = await sse(withUsage);
    expect(b.done).toBe(true);
    const last = b.events.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('relays a stream whose events arrive split across reads, to the end', async () => {
    const { cfg } = await simulatedConfig({ ...FAST, itl_ms: 3 });
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 25, ignore_eos: true, stream: true }, { env: envWith(cfg) });
    const { events, done } = await sse(res);
    expect(done).toBe(true);
    const content = events.filter((c) => c.choices[0]?.delta?.content);
    expect(content).toHaveLength(25);
  });

  it('assembles a non-streamed answer from a stream sent a token at a time: the same text as the stream, every token counted', async () => {
    const { cfg } = await simulatedConfig({ ...FAST, itl_ms: 1 });
    const ask = { model: 'small', messages: hi, max_tokens: 120, ignore_eos: true };
    const streamed = await sse(await chat(key, { ...ask, stream: true }, { env: envWith(cfg) }));
    const text = streamed.events.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    const res = await chat(key, ask, { env: envWith(cfg) });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as any;
    expect(answer.choices[0].message.content).toBe(text);
    expect(answer.usage.completion_tokens).toBe(120);
  });

  it('serves /v1/completions and /v1/embeddings', async () => {
    const comp = await call('/v1/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'small', prompt: 'Once upon a time', max_tokens: 5 }),
      env,
    });
    expect(comp.status).toBe(200);
    expect(((await comp.json()) as any).object).toBe('text_completion');

    const emb = await call('/v1/embeddings', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bge-small-en', input: ['a', 'b'] }),
      env,
    });
    expect(emb.status).toBe(200);
    const body = (await emb.json()) as any;
    expect(body.data).toHaveLength(2);
    expect(emb.headers.get('x-router-backend')).toBe('vllm-us-east-8b');
  });

  it('lists models, aliases, tiers and auto', async () => {
    const res = await call('/v1/models', { headers: { authorization: `Bearer ${key}` }, env });
    const ids = ((await res.json()) as any).data.map((m: any) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['llama-3.1-8b', 'small', 'llama-3.1-70b', 'large', 'bge-small-en', 'fast', 'balanced', 'advanced', 'auto']));
  });
});

describe('upstream failures', () => {
  it('moves to the next nearest region when a backend fails, and says so', async () => {
    const { cfg, sims } = await simulatedConfig();
    const e = envWith(cfg);
    await sims['vllm-us-east-8b']!.faults({ error_rate: 1, status: 503 });
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: e });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-attempts')).toBe('2');
    expect(res.headers.get('x-router-backend')).toBe('vllm-eu-west-8b');
  });

  it('502 when every backend refuses, 504 when they hang past the timeout', async () => {
    const { cfg, sims } = await simulatedConfig();
    delete cfg.degraded_answer;
    for (const id of ['vllm-us-east-8b', 'vllm-eu-west-8b', 'vllm-ap-southeast-8b']) await sims[id]!.faults({ error_rate: 1, status: 500 });
    const e = envWith(cfg);
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: e });
    expect(res.status).toBe(502);
    expect((await errorOf(res)).type).toBe('upstream_error');
    expect(res.headers.get('x-router-attempts')).toBe('3');

    for (const id of ['vllm-us-east-8b', 'vllm-eu-west-8b', 'vllm-ap-southeast-8b']) await sims[id]!.faults({ hang: true });
    const slow = envWith({ ...cfg, timeouts: { connect_ms: 300, ttft_ms: 300, total_ms: 300 } });
    const started = Date.now();
    const hung = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: slow });
    expect(hung.status).toBe(504);
    expect((await errorOf(hung)).code).toBe('upstream_timeout');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('502 when a backend is unreachable', async () => {
    const { cfg } = await simulatedConfig();
    delete cfg.degraded_answer;
    for (const b of cfg.backends) b.url = 'http://127.0.0.1:9';
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: envWith(cfg) });
    expect(res.status).toBe(502);
  });

  it('returns a request the backend rejects (context too long) as 400, without retrying', async () => {
    const { cfg, sims } = await simulatedConfig();
    const res = await chat(key, { model: 'small', messages: [{ role: 'user', content: 'word '.repeat(9000) }], max_tokens: 4 }, { env: envWith(cfg) });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toMatch(/context length/);
    expect(res.headers.get('x-router-attempts')).toBe('1');
    expect((await sims['vllm-eu-west-8b']!.stats()).requests.chat ?? 0).toBe(0);
    expect((await sims['vllm-us-east-8b']!.stats()).requests.chat).toBe(1);
  });

  it('falls back when the first token does not come in time (stream not yet committed)', async () => {
    const { cfg, sims } = await simulatedConfig();
    await sims['vllm-us-east-8b']!.config({ base_ttft_ms: 3_000 });
    const e = envWith({ ...cfg, timeouts: { connect_ms: 1_000, ttft_ms: 300, total_ms: 10_000 } });
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4, stream: true }, { env: e });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe('vllm-eu-west-8b');
    expect((await res.text()).trim().endsWith('data: [DONE]')).toBe(true);
  });

  it('a backend may shorten its own timeouts; the keys it does not set stay the router\'s', async () => {
    const { cfg, sims } = await simulatedConfig();
    await sims['vllm-us-east-8b']!.config({ base_ttft_ms: 3_000 });
    cfg.timeouts = { connect_ms: 1_000, ttft_ms: 20_000, total_ms: 10_000 };
    cfg.backends.find((b: any) => b.id === 'vllm-us-east-8b').timeouts = { ttft_ms: 300 };
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4, stream: true }, { env: envWith(cfg) });
    expect(res.headers.get('x-router-backend')).toBe('vllm-eu-west-8b');
    await res.text();
  });

  it('ends a stream that breaks mid-way with an SSE error event, cleanly', async () => {
    const { cfg, sims } = await simulatedConfig({ ...FAST, itl_ms: 2 });
    await sims['vllm-us-east-8b']!.faults({ drop_after_tokens: 3 });
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 20, ignore_eos: true, stream: true }, { env: envWith(cfg) });
    expect(res.status).toBe(200);
    const { events, data } = await sse(res);
    expect(events.at(-1).error.code).toBe('upstream_stream_error');
    expect(data).not.toContain('[DONE]');
  });

  it('a client that goes away aborts the upstream request', async () => {
    const { cfg, sims } = await simulatedConfig({ base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 50, max_num_seqs: 8 });
    const sim = sims['vllm-us-east-8b']!;
    // ignore_eos (a vLLM extra) keeps it generating all 200 tokens, so only the abort can end it early.
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 200, ignore_eos: true, stream: true }, { env: envWith(cfg) });
    const reader = res.body!.getReader();
    await reader.read();
    expect(await sim.metric('vllm:num_requests_running')).toBe(1);
    await reader.cancel();
    let running = 1;
    for (let i = 0; i < 40 && running !== 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      running = await sim.metric('vllm:num_requests_running');
    }
    expect(running).toBe(0);
  });
});
