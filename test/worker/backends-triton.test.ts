import { beforeAll, describe, expect, it } from 'vitest';
import { backgroundSettled } from '../../worker/isolate/background';
import { budgetView, resetBudgetView } from '../../worker/budget/lease';
import { FAST, spawnSim } from './sims';
import { ADMIN_TOKEN, call } from './support';
import { ANSWER, ANSWER_TOKENS, fakeRouter, jsonEvents, spawnFake, streamedText, type FakeServer } from './fakes';
import { sseData } from '../support/sse';

// Triton + TensorRT-LLM (generate / generate_stream) behind the router, end to end, against the
// stand-in of scripts/dev/standins/triton.ts.

let triton: FakeServer;
beforeAll(async () => {
  triton = await spawnFake('triton');
});

const tritonBackend = (extra: Record<string, unknown> = {}) => ({ kind: 'triton', url: triton.url, triton: { model: 'ensemble', ...extra } });
const conversation = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Say hello.' },
];
const lastGenerate = async (marker: string) => {
  const calls = await triton.calls();
  const c = calls.filter((x) => x.body.includes(marker)).at(-1)!;
  return { path: c.path, body: JSON.parse(c.body) as Record<string, any> };
};

describe('triton backend', () => {
  it('non-streamed chat: the llama3 template in text_input, parameters by name, an OpenAI answer with estimated usage', async () => {
    const r = await fakeRouter(tritonBackend());
    const res = await r.chat({ messages: [...conversation, { role: 'user', content: 'm1' }], max_tokens: 50, temperature: 0.2, top_p: 0.9, stop: ['END'], seed: 7 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe(r.id);
    expect(res.headers.get('x-router-usage')).toBe('estimated');
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ object: 'chat.completion', model: 'org/sl-model' });
    expect(body.id).toMatch(/^chatcmpl-/);
    // The echoed input (TensorRT-LLM's default) is not part of the answer.
    expect(body.choices).toEqual([{ index: 0, message: { role: 'assistant', content: ANSWER, refusal: null }, logprobs: null, finish_reason: 'stop' }]);
    expect(body.usage).toMatchObject({ estimated: true });
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);

    const sent = await lastGenerate('m1');
    expect(sent.path).toBe('/v2/models/ensemble/generate');
    expect(sent.body).toEqual({
      text_input:
        '<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nSay hello.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nm1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
      max_tokens: 50,
      temperature: 0.2,
      top_p: 0.9,
      stop_words: ['END'],
      random_seed: 7,
    });
  });

  it('finish_reason is "length" when the answer used all of max_tokens', async () => {
    const r = await fakeRouter(tritonBackend());
    const body = (await (await r.chat({ messages: conversation, max_tokens: 3 })).json()) as any;
    expect(body.choices[0].message.content).toBe(ANSWER_TOKENS.slice(0, 3).join(''));
    expect(body.choices[0].finish_reason).toBe('length');
  });

  it('streamed chat: role first, deltas, finish, the usage chunk when asked, [DONE]', async () => {
    const r = await fakeRouter(tritonBackend());
    const res = await r.chat({ messages: [...conversation, { role: 'user', content: 's1' }], stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('x-router-usage')).toBe('estimated');
    const events = await sseData(res);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = jsonEvents(events);
    expect(chunks[0]!.choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.filter((c) => !(c.object === 'chat.completion.chunk' && c.model === 'org/sl-model' && c.id === chunks[0]!.id))).toEqual([]);
    expect(streamedText(chunks)).toBe(ANSWER);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish.map((c) => c.choices[0].finish_reason)).toEqual(['stop']);
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toMatchObject({ estimated: true });
    expect(usage.usage.completion_tokens).toBeGreaterThan(0);

    const sent = await lastGenerate('s1');
    expect(sent.path).toBe('/v2/models/ensemble/generate_stream');
    expect(sent.body.stream).toBe(true);
  });

  it('a stream without include_usage has no usage chunk', async () => {
    const r = await fakeRouter(tritonBackend());
    const events = await sseData(await r.chat({ messages: conversation, stream: true }));
    expect(events.at(-1)).toBe('[DONE]');
    expect(jsonEvents(events).filter((c) => c.usage)).toEqual([]);
  });

  it('an error event after the 200 ends the stream with an OpenAI error event and no [DONE]', async () => {
    const r = await fakeRouter(tritonBackend());
    const events = await sseData(await r.chat({ messages: [{ role: 'user', content: 'go [error-after]' }], stream: true }));
    expect(events).not.toContain('[DONE]');
    const chunks = jsonEvents(events);
    expect(streamedText(chunks)).toBe(ANSWER_TOKENS.slice(0, 2).join(''));
    const last = chunks.at(-1)!;
    expect(last.error).toMatchObject({ type: 'upstream_error', code: 'upstream_stream_error' });
    expect(last.error.message).toContain('out of memory');
    expect(chunks.filter((c) => c.error)).toHaveLength(1);
  });

  it('an error as the first event is not committed: the request fails over (here: 502, nothing else to try)', async () => {
    const r = await fakeRouter(tritonBackend());
    const res = await r.chat({ messages: [{ role: 'user', content: 'go [error-first]' }], stream: true });
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toContain('application/json');
    const { error } = (await res.json()) as any;
    expect(error.code).toBe('upstream_error');
    expect(error.message).toContain('out of memory');
  });

  it('an error status or a 200 that is not JSON: 502 in OpenAI format', async () => {
    const r = await fakeRouter(tritonBackend());
    for (const marker of ['[error]', '[bad-json]']) {
      const res = await r.chat({ messages: [{ role: 'user', content: `go ${marker}` }] });
      expect(res.status).toBe(502);
      const { error } = (await res.json()) as any;
      expect(error).toMatchObject({ type: 'upstream_error', code: 'upstream_error' });
      expect(error.message).toContain(marker === '[error]' ? 'out of memory' : 'not Triton');
    }
  });

  it('what a text endpoint cannot do is a 400, not retried', async () => {
    const r = await fakeRouter(tritonBackend());
    const before = (await triton.calls()).length;
    const tools = [{ type: 'function', function: { name: 'f', parameters: {} } }];
    for (const extra of [{ tools }, { n: 2 }, { logprobs: true }, { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] }]) {
      const res = await r.chat({ messages: conversation, ...extra });
      expect(res.status).toBe(400);
      const { error } = (await res.json()) as any;
      expect(error.code).toBe('upstream_rejected_request');
      expect(error.message).toContain('triton');
    }
    expect((await triton.calls()).length).toBe(before);
  });

  it('a request a text endpoint cannot serve goes to a backend in the chain that can (here a vLLM one, in the next region)', async () => {
    const sim = await spawnSim({ name: 'tools-fallback', models: ['org/sl-model'], latency: FAST });
    const r = await fakeRouter(tritonBackend(), {
      extra: {
        regions: [
          { id: 'here', latitude: 0, longitude: 0 },
          { id: 'far', latitude: 50, longitude: 50 },
        ],
        backends: [
          { id: 'triton-near', region: 'here', models: ['sl'], ...tritonBackend() },
          { id: 'vllm-far', kind: 'vllm', region: 'far', url: sim.url, models: ['sl'] },
        ],
      },
    });
    const before = (await triton.calls()).length;
    const tools = [{ type: 'function', function: { name: 'f', parameters: {} } }];
    const res = await r.chat({ messages: conversation, tools });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe('vllm-far');
    expect((await triton.calls()).length).toBe(before); // not even tried
    // What it can serve still goes to the nearest backend.
    const plain = await r.chat({ messages: conversation, max_tokens: 5 });
    expect(plain.headers.get('x-router-backend')).toBe('triton-near');
  });

  it('chatml and custom templates, renamed and dropped parameters, fixed extras, a pinned version', async () => {
    const chatml = await fakeRouter(tritonBackend({ chat_template: 'chatml', parameters: { max_tokens: 'max_tokens', stop: false, temperature: 'temp' }, extra_parameters: { beam_width: 1 } }));
    expect((await chatml.chat({ messages: [...conversation, { role: 'user', content: 'c1' }], stop: 'x', temperature: 0.5 })).status).toBe(200);
    const a = await lastGenerate('c1');
    expect(a.body).toEqual({
      text_input: '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>user\nc1<|im_end|>\n<|im_start|>assistant\n',
      max_tokens: 1024,
      temp: 0.5,
      beam_width: 1,
    });

    const custom = await fakeRouter(tritonBackend({ version: '1', chat_template: { prefix: '<s>', system: 'S:{content}|', user: 'U:{content}|', assistant: 'A:{content}|', generation: 'A:' } }));
    const res = await custom.chat({ messages: [...conversation, { role: 'assistant', content: 'hi' }, { role: 'user', content: 'c2 {content}' }] });
    expect(res.status).toBe(200);
    const b = await lastGenerate('c2');
    expect(b.path).toBe('/v2/models/ensemble/versions/1/generate');
    expect(b.body.text_input).toBe('<s>S:Be brief.|U:Say hello.|A:hi|U:c2 {content}|A:');
  });

  it('legacy completions: the prompt as it is, a text_completion answer', async () => {
    const r = await fakeRouter(tritonBackend());
    const res = await r.completions({ prompt: 'Once upon a time p1', max_tokens: 2 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body).toMatchObject({ object: 'text_completion', choices: [{ index: 0, text: 'Hello,', finish_reason: 'length' }] });
    expect((await lastGenerate('p1')).body.text_input).toBe('Once upon a time p1');
  });

  it('estimated usage settles the budget, and the exact cache replays it still marked', async () => {
    resetBudgetView();
    const r = await fakeRouter(tritonBackend(), { tenant: { budget: { monthly_tokens: 1_000_000 } }, extra: { budgets: { report_interval_ms: 5 } } });
    const ask = () => r.chat({ messages: [{ role: 'user', content: 'cache me b1' }], temperature: 0 });
    const first = await ask();
    expect(first.headers.get('x-router-cache')).toBe('miss');
    const usage = ((await first.json()) as any).usage;
    for (let i = 0; i < 50 && budgetView(r.t)!.unacked.tokens > 0; i++) await new Promise((res) => setTimeout(res, 10));
    const budget = (await (await call(`/admin/tenants/${r.t}/budget`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, env: r.env })).json()) as any;
    expect(budget.used_tokens).toBe(usage.total_tokens);

    await backgroundSettled();
    const again = await ask();
    expect(again.headers.get('x-router-cache')).toBe('hit');
    expect(((await again.json()) as any).usage).toEqual(usage);
  });
});
