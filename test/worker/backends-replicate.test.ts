import { beforeAll, describe, expect, it } from 'vitest';
import { ANSWER, ANSWER_TOKENS, fakeRouter, jsonEvents, spawnFake, streamedText, type FakeServer } from './fakes';
import { sseData } from '../support/sse';

// Replicate predictions behind the router, end to end, against the stand-in of
// scripts/dev/standins/replicate.ts (create with Prefer: wait, polling, urls.stream, urls.cancel).

const TOKEN = 'r8_test_token';
let replicate: FakeServer;
beforeAll(async () => {
  replicate = await spawnFake('replicate', { token: TOKEN });
});

const secrets = { REPLICATE_API_TOKEN: TOKEN };
const backend = (settings: Record<string, unknown> = { model: 'meta/llama-fake' }, extra: Record<string, unknown> = {}) => ({
  kind: 'replicate',
  url: replicate.url,
  auth_secret: 'REPLICATE_API_TOKEN',
  replicate: settings,
  ...extra,
});
const creates = async (marker: string) =>
  (await replicate.calls()).filter((c) => c.method === 'POST' && c.path.endsWith('/predictions') && c.body.includes(marker)).map((c) => ({ ...c, json: JSON.parse(c.body) as Record<string, any> }));
const cancels = async () => (await replicate.calls()).filter((c) => c.method === 'POST' && /^\/v1\/predictions\/[^/]+\/cancel$/.test(c.path));

describe('replicate backend', () => {
  it('non-streamed: creates on the model with Prefer: wait, maps the inputs, answers with Replicate\'s token counts', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const res = await r.chat({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hello r1.' },
      ],
      max_tokens: 100,
      temperature: 0.3,
      top_p: 0.8,
      stop: ['END', 'STOP'],
      seed: 4,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-usage')).toBeNull();
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ object: 'chat.completion', model: 'org/sl-model' });
    expect(body.choices).toEqual([{ index: 0, message: { role: 'assistant', content: ANSWER, refusal: null }, logprobs: null, finish_reason: 'stop' }]);
    // metrics.input_token_count counts the prompt's words in the stand-in: "Be brief." + "Say hello r1."
    expect(body.usage).toEqual({ prompt_tokens: 5, completion_tokens: ANSWER_TOKENS.length, total_tokens: 5 + ANSWER_TOKENS.length });

    const [create] = await creates('r1');
    expect(create!.path).toBe('/v1/models/meta/llama-fake/predictions');
    expect(create!.headers.prefer).toMatch(/^wait=\d+$/);
    expect(Number(create!.headers.prefer!.slice(5))).toBeLessThanOrEqual(60);
    expect(create!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(create!.json).toEqual({
      input: { prompt: 'Say hello r1.', system_prompt: 'Be brief.', max_tokens: 100, temperature: 0.3, top_p: 0.8, stop_sequences: 'END,STOP', seed: 4 },
    });
  });

  it('deployments and pinned versions use their own create paths', async () => {
    const dep = await fakeRouter(backend({ deployment: 'acme/llama-prod' }), { secrets });
    expect((await dep.chat({ messages: [{ role: 'user', content: 'r2' }] })).status).toBe(200);
    expect((await creates('r2'))[0]!.path).toBe('/v1/deployments/acme/llama-prod/predictions');

    const version = 'a'.repeat(64);
    const pinned = await fakeRouter(backend({ model: 'meta/llama-fake', version }), { secrets });
    expect((await pinned.chat({ messages: [{ role: 'user', content: 'r3' }] })).status).toBe(200);
    const [c] = await creates('r3');
    expect(c!.path).toBe('/v1/predictions');
    expect(c!.json.version).toBe(version);
  });

  it('polls urls.get when Prefer: wait returns before the output', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const res = await r.chat({ messages: [{ role: 'user', content: 'r4 [slow]' }] });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).choices[0].message.content).toBe(ANSWER);
    // The stand-in answers the third GET of urls.get.
    const calls = await replicate.calls();
    const gets = calls.slice(calls.findIndex((c) => c.body.includes('r4'))).filter((c) => c.method === 'GET' && /^\/v1\/predictions\/[^/]+$/.test(c.path));
    expect(gets).toHaveLength(3);
    expect(gets.filter((g) => g.headers.authorization !== `Bearer ${TOKEN}`)).toEqual([]);
  });

  it('no token counts from the model: usage estimated and marked, header included', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const res = await r.chat({ messages: [{ role: 'user', content: 'r5 [no-metrics]' }] });
    expect(res.headers.get('x-router-usage')).toBe('estimated');
    expect(((await res.json()) as any).usage).toMatchObject({ estimated: true });
  });

  it('a failed prediction, bad JSON, a bad token: 502 in OpenAI format; invalid input: 400', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const failed = await r.chat({ messages: [{ role: 'user', content: 'r6 [fail]' }] });
    expect(failed.status).toBe(502);
    expect(((await failed.json()) as any).error.message).toContain('CUDA error');
    const bad = await r.chat({ messages: [{ role: 'user', content: 'r7 [bad-json]' }] });
    expect(bad.status).toBe(502);
    expect(((await bad.json()) as any).error).toMatchObject({ type: 'upstream_error', code: 'upstream_error' });

    const wrongKey = await fakeRouter(backend(), { secrets: { REPLICATE_API_TOKEN: 'r8_wrong' } });
    const denied = await wrongKey.chat({ messages: [{ role: 'user', content: 'r8' }] });
    expect(denied.status).toBe(502);
    expect(((await denied.json()) as any).error.message).toContain('valid authentication token');

    const misnamed = await fakeRouter(backend({ model: 'meta/llama-fake', input: { prompt: 'text' } }), { secrets });
    const rejected = await misnamed.chat({ messages: [{ role: 'user', content: 'r9' }] });
    expect(rejected.status).toBe(400);
    expect(((await rejected.json()) as any).error).toMatchObject({ code: 'upstream_rejected_request' });
  });

  it('streamed: created with stream, read from urls.stream, OpenAI chunks, usage from the finished prediction', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const res = await r.chat({ messages: [{ role: 'user', content: 's1' }], stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const events = await sseData(res);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = jsonEvents(events);
    expect(chunks[0]!.choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(streamedText(chunks)).toBe(ANSWER); // "!\n" came as two data lines
    expect(chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0].finish_reason)).toEqual(['stop']);
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 1, completion_tokens: ANSWER_TOKENS.length, total_tokens: 1 + ANSWER_TOKENS.length });

    const [create] = await creates('s1');
    expect(create!.headers.prefer).toBeUndefined();
    expect(create!.json.stream).toBe(true);
    const calls = await replicate.calls();
    const stream = calls.find((c) => c.path.startsWith('/stream/') && calls.indexOf(c) > calls.indexOf(calls.find((x) => x.body.includes('s1'))!));
    expect(stream?.headers.accept).toBe('text/event-stream');
  });

  it('an error event on the stream: an OpenAI error event, no [DONE]', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const events = await sseData(await r.chat({ messages: [{ role: 'user', content: 's2 [fail]' }], stream: true }));
    expect(events).not.toContain('[DONE]');
    const chunks = jsonEvents(events);
    expect(streamedText(chunks)).toBe(ANSWER_TOKENS[0]);
    expect(chunks.at(-1)!.error).toMatchObject({ code: 'upstream_stream_error' });
    expect(chunks.at(-1)!.error.message).toContain('CUDA error');
  });

  it('a client that leaves mid-stream cancels the prediction through urls.cancel', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const res = await r.chat({ messages: [{ role: 'user', content: 's3 [stream-hold]' }], stream: true });
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"role":"assistant"');
    const [create] = await creates('s3');
    expect(create).toBeDefined();
    const before = await replicate.calls();
    const created = before.filter((c) => c.path.startsWith('/stream/')).at(-1)!.path.slice('/stream/'.length);
    await reader.cancel();
    const cancel = await replicate.waitFor((c) => c.method === 'POST' && c.path === `/v1/predictions/${created}/cancel`);
    expect(cancel).toBeDefined();
    expect(cancel!.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('a client that leaves while Replicate holds the create call: the prediction it names is cancelled', async () => {
    const r = await fakeRouter(backend(), { secrets });
    const before = (await cancels()).length;
    const ctrl = new AbortController();
    const pending = r.chat({ messages: [{ role: 'user', content: 'r10 [hold]' }] }, { signal: ctrl.signal });
    expect(await replicate.waitFor((c) => c.body.includes('r10'))).toBeDefined();
    ctrl.abort();
    await replicate.release(); // the held create call now answers: a prediction still "processing"
    await pending.catch(() => undefined);
    for (let i = 0; i < 300 && (await cancels()).length === before; i++) await new Promise((res) => setTimeout(res, 10));
    const after = await cancels();
    expect(after).toHaveLength(before + 1);
    expect(after.at(-1)!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    // Nothing else came of it: one create call, no polling of a prediction nobody waits for.
    expect((await replicate.calls()).filter((c) => c.body.includes('r10'))).toHaveLength(1);
  });

  it('several turns without a template: system_prompt plus a transcript; with chat_template: one rendered prompt', async () => {
    const turns = [
      { role: 'system', content: 'Sys.' },
      { role: 'user', content: 'Hi t1' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'Again.' },
    ];
    const plain = await fakeRouter(backend(), { secrets });
    expect((await plain.chat({ messages: turns })).status).toBe(200);
    expect((await creates('t1'))[0]!.json.input).toMatchObject({ system_prompt: 'Sys.', prompt: 'User: Hi t1\n\nAssistant: Hello.\n\nUser: Again.\n\nAssistant:' });

    const templated = await fakeRouter(backend({ model: 'meta/llama-fake', chat_template: 'chatml', extra_input: { prompt_template: '{prompt}' }, input: { max_tokens: 'max_new_tokens', system_prompt: false } }), { secrets });
    const res = await templated.chat({ messages: turns.map((m) => ({ ...m, content: m.content.replace('t1', 't2') })), max_tokens: 2 });
    expect(res.status).toBe(200);
    const input = (await creates('t2'))[0]!.json.input;
    expect(input).toEqual({
      prompt_template: '{prompt}',
      prompt: '<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nHi t2<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nAgain.<|im_end|>\n<|im_start|>assistant\n',
      max_new_tokens: 2,
    });
  });
});
