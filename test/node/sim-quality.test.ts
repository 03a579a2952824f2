/**
 * A worse model version (`POST /sim/config` error_rate, refusal_rate, length_scale; itl_ms for
 * slower tokens): deterministic, merged with the rest of the config, invisible at the defaults.
 * Answers are checked through the official `openai` client where a router would see them.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REFUSAL_TEXT } from '../../regional/sim/quality';
import { type SimServer, startSimServer } from '../../regional/sim/server';
import { parseSse } from '../../regional/sim/testkit';
import { isRefusal } from '../../worker/quality/refusal';

const M = 'm';
const DEFAULT_CONFIG = { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 16, cold_start_ms: 1000, idle_scale_down_ms: 0 };
let sim: SimServer;
let client: OpenAI;
beforeAll(async () => {
  sim = await startSimServer({ models: [M], embedding_models: ['e'], latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 16 } });
  client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await sim?.close();
});
beforeEach(async () => {
  await config({ error_rate: 0, refusal_rate: 0, length_scale: 1, itl_ms: 0 });
  await fetch(`${sim.url}/sim/reset`, { method: 'POST' });
});

const config = async (c: unknown) => fetch(`${sim.url}/sim/config`, { method: 'POST', body: JSON.stringify(c) });
const getConfig = async () => (await (await fetch(`${sim.url}/sim/config`)).json()) as Record<string, unknown>;
const stats = async () => (await (await fetch(`${sim.url}/sim/stats`)).json()) as any;
const ask = (content: string, extra: Record<string, unknown> = {}) =>
  client.chat.completions.create({ model: M, messages: [{ role: 'user', content }], ...extra }) as Promise<OpenAI.ChatCompletion>;
const chatRaw = (body: Record<string, unknown> = {}) =>
  fetch(`${sim.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: M, messages: [{ role: 'user', content: 'hi' }], ...body }),
  });

describe('/sim/config quality knobs', () => {
  it('defaults leave GET /sim/config as it was; set knobs show up, merge, and go away at their defaults', async () => {
    expect(await getConfig()).toEqual(DEFAULT_CONFIG);
    const r = await config({ error_rate: 0.1, refusal_rate: 0.2 });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ...DEFAULT_CONFIG, error_rate: 0.1, refusal_rate: 0.2 });
    await config({ length_scale: 0.5, base_ttft_ms: 1 });
    expect(await getConfig()).toEqual({ ...DEFAULT_CONFIG, base_ttft_ms: 1, error_rate: 0.1, refusal_rate: 0.2, length_scale: 0.5 });
    await config({ error_rate: 0, refusal_rate: 0, length_scale: 1, base_ttft_ms: 0 });
    expect(await getConfig()).toEqual(DEFAULT_CONFIG);
  });

  it('out-of-range values are a 400 and change nothing', async () => {
    await config({ refusal_rate: 0.5 });
    for (const bad of [{ error_rate: 1.5 }, { error_rate: -0.1 }, { refusal_rate: 2 }, { length_scale: 0 }, { length_scale: 1.5 }, { length_scale: 'short' }]) {
      const r = await config({ ...bad, itl_ms: 99 });
      expect(r.status, JSON.stringify(bad)).toBe(400);
      expect(((await r.json()) as any).error.type).toBe('BadRequestError');
    }
    expect(await getConfig()).toEqual({ ...DEFAULT_CONFIG, refusal_rate: 0.5 });
  });
});

describe('error_rate', () => {
  it('0.25 → exactly every 4th chat/completions request is a vLLM-style 503; embeddings are untouched', async () => {
    await config({ error_rate: 0.25 });
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await chatRaw({ max_tokens: 2 })).status);
    expect(codes).toEqual([200, 200, 200, 503, 200, 200, 200, 503]);
    const emb = await fetch(`${sim.url}/v1/embeddings`, { method: 'POST', body: JSON.stringify({ model: 'e', input: 'x' }) });
    expect(emb.status).toBe(200);
    // Requests 9..12 over completions through the SDK: the 12th fails.
    const outcomes: (number | string)[] = [];
    for (let i = 0; i < 4; i++) {
      outcomes.push(await client.completions.create({ model: M, prompt: 'Say', max_tokens: 2 }).then(() => 'ok', (e: { status: number }) => e.status));
    }
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 503]);
    await config({ error_rate: 1 });
    const raw = await chatRaw();
    expect(raw.headers.get('content-type')).toBe('application/json');
    expect(await raw.json()).toEqual({ error: { message: expect.any(String), type: 'ServiceUnavailableError', param: null, code: 503 } });
    await expect(ask('hi')).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    const s = await stats();
    expect(s.quality.errors).toBe(5);
    expect(s.faults.errors).toBe(0);
  });

  it('setting the rate restarts its count; /sim/reset restarts it and keeps the knob', async () => {
    await config({ error_rate: 0.5 });
    expect((await chatRaw()).status).toBe(200);
    await config({ error_rate: 0.5 }); // count restarts: the next is request 1 again
    expect((await chatRaw()).status).toBe(200);
    expect((await chatRaw()).status).toBe(503);
    expect((await chatRaw()).status).toBe(200);
    await fetch(`${sim.url}/sim/reset`, { method: 'POST' });
    expect((await getConfig()).error_rate).toBe(0.5);
    expect((await chatRaw()).status).toBe(200);
    expect((await chatRaw()).status).toBe(503);
  });
});

describe('refusal_rate', () => {
  it('0.5 → every 2nd answer is the refusal (finish_reason stop), which worker/quality/refusal.ts detects; the rest are not', async () => {
    expect(isRefusal(REFUSAL_TEXT)).toBe(true);
    await config({ refusal_rate: 0.5 });
    const answers: OpenAI.ChatCompletion[] = [];
    for (let i = 0; i < 6; i++) answers.push(await ask(`question ${i}`, { max_tokens: 100 }));
    const refused = answers.map((a) => isRefusal(a.choices[0]!.message.content ?? ''));
    expect(refused).toEqual([false, true, false, true, false, true]);
    const r = answers[1]!;
    expect(r.choices[0]!.message.content).toBe("I'm sorry, but I can't help with that request.");
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage!.completion_tokens).toBe(11);
    expect((await stats()).quality.refusals).toBe(3);
  });

  it('refuses in streams, in completions and in every choice; max_tokens cuts it (length)', async () => {
    await config({ refusal_rate: 1 });
    const stream = await client.chat.completions.create({
      model: M,
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 50,
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    const text = ['', ''];
    const finish: (string | null)[] = [null, null];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        text[c.index] += c.delta?.content ?? '';
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    expect(text).toEqual([REFUSAL_TEXT, REFUSAL_TEXT]);
    expect(finish).toEqual(['stop', 'stop']);
    const comp = await client.completions.create({ model: M, prompt: 'Write a poem', max_tokens: 50 });
    expect(comp.choices[0]!.text).toBe(REFUSAL_TEXT);
    const cut = await ask('x', { max_tokens: 6 });
    expect(cut.choices[0]!.message.content).toBe("I'm sorry, but I can't");
    expect(cut.choices[0]!.finish_reason).toBe('length');
    // A request that fails validation is not answered and does not count.
    await config({ refusal_rate: 0.5 });
    expect((await chatRaw({ max_tokens: 0 })).status).toBe(400);
    expect(isRefusal((await ask('a')).choices[0]!.message.content ?? '')).toBe(false);
    expect(isRefusal((await ask('b')).choices[0]!.message.content ?? '')).toBe(true);
  });
});

describe('length_scale', () => {
  it('scales natural lengths down (same words, earlier end, at least 1 token); 1 gives back the same answers', async () => {
    const prompts = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
    const natural: OpenAI.ChatCompletion[] = [];
    for (const p of prompts) natural.push(await ask(p));
    await config({ length_scale: 0.25 });
    for (let i = 0; i < prompts.length; i++) {
      const full = natural[i]!;
      const short = await ask(prompts[i]!);
      const n = full.usage!.completion_tokens;
      expect(full.choices[0]!.finish_reason).toBe('stop');
      expect(short.choices[0]!.finish_reason).toBe('stop');
      expect(short.usage!.completion_tokens).toBe(Math.max(1, Math.round(n * 0.25)));
      const s = short.choices[0]!.message.content!;
      expect(s.endsWith('.')).toBe(true);
      expect(full.choices[0]!.message.content!.startsWith(s.slice(0, -1))).toBe(true);
    }
    await config({ length_scale: 0.001 });
    const tiny = await ask(prompts[0]!);
    expect(tiny.usage!.completion_tokens).toBe(1);
    expect(tiny.choices[0]!.message.content).toBe('.');
    await config({ length_scale: 1 });
    for (let i = 0; i < prompts.length; i++) expect((await ask(prompts[i]!)).choices[0]!.message.content).toBe(natural[i]!.choices[0]!.message.content);
  });
});

describe('itl_ms (slower tokens)', () => {
  it('a run-time itl_ms spaces streamed tokens for requests admitted afterwards', async () => {
    await config({ itl_ms: 20 });
    const sentAt = Date.now();
    const res = await chatRaw({ max_tokens: 10, stream: true });
    const body = await res.text();
    const elapsed = Date.now() - sentAt;
    expect(parseSse(body)).toHaveLength(12); // role + 10 tokens + [DONE]
    const rec = (await stats()).recent.at(-1);
    expect(rec.completion_tokens).toBe(10);
    // Lower bounds only (timers may fire a ms early; a busy machine only adds time).
    expect(rec.e2e_ms - rec.ttft_ms).toBeGreaterThanOrEqual(9 * 20 - 15);
    expect(elapsed).toBeGreaterThanOrEqual(9 * 20 - 15);
  });
});
