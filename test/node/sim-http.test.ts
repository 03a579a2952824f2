/**
 * The sim's HTTP surface as a router sees it: vLLM's wire format for chat, completions,
 * embeddings, models, errors, auth; plus the official `openai` client against it.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimServer, startSimServer, ZERO_LATENCY } from '../../regional/sim/server';
import { metricValue, parseSse } from '../../regional/sim/testkit';

const CHAT = 'meta-llama/Llama-3.1-8B-Instruct';
const EMB = 'BAAI/bge-small-en-v1.5';
let sim: SimServer;
let authed: SimServer;

beforeAll(async () => {
  sim = await startSimServer({ models: [CHAT, 'second-model'], embedding_models: [EMB], latency: ZERO_LATENCY });
  authed = await startSimServer({ models: [CHAT], api_key: 'sekret', latency: ZERO_LATENCY });
});
afterAll(async () => {
  await sim?.close();
  await authed?.close();
});

function post(path: string, body: unknown, headers: Record<string, string> = {}, base = sim.url): Promise<Response> {
  return fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const hi = [{ role: 'user', content: 'hi' }];

describe('chat completions (non-streaming)', () => {
  it('answers with vLLM’s full field set', async () => {
    const res = await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 5, top_k: 3, repetition_penalty: 1.1 });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const j = (await res.json()) as any;
    expect(Object.keys(j)).toEqual([
      'id',
      'object',
      'created',
      'model',
      'choices',
      'service_tier',
      'system_fingerprint',
      'usage',
      'prompt_logprobs',
      'kv_transfer_params',
    ]);
    expect(j.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(j.object).toBe('chat.completion');
    expect(j.model).toBe(CHAT);
    expect(Math.abs(j.created - Date.now() / 1000)).toBeLessThan(5);
    expect(j.choices).toHaveLength(1);
    expect(j.choices[0]).toEqual({
      index: 0,
      message: {
        role: 'assistant',
        content: expect.any(String),
        refusal: null,
        annotations: null,
        audio: null,
        function_call: null,
        tool_calls: [],
        reasoning_content: null,
      },
      logprobs: null,
      finish_reason: 'length',
      stop_reason: null,
    });
    expect(j.usage).toEqual({
      prompt_tokens: expect.any(Number),
      total_tokens: j.usage.prompt_tokens + 5,
      completion_tokens: 5,
      prompt_tokens_details: { cached_tokens: 0 },
    });
  });

  it('is deterministic: same prompt+seed → same text; another seed → different text', async () => {
    const ask = async (seed: number) =>
      ((await (await post('/v1/chat/completions', { model: CHAT, messages: hi, seed, max_tokens: 30 })).json()) as any).choices[0]
        .message.content as string;
    const a = await ask(1);
    expect(await ask(1)).toBe(a);
    expect(await ask(2)).not.toBe(a);
  });

  it('finishes naturally with "stop" when max_tokens is absent, and honours n and stop', async () => {
    const j = (await (await post('/v1/chat/completions', { model: CHAT, messages: hi, n: 3 })).json()) as any;
    expect(j.choices.map((c: any) => c.index)).toEqual([0, 1, 2]);
    for (const c of j.choices) expect(c.finish_reason).toBe('stop');
    expect(new Set(j.choices.map((c: any) => c.message.content)).size).toBe(3);
    const words = (j.choices[0].message.content as string).split(' ');
    const stopWord = ` ${words[2]}`;
    const s = (await (await post('/v1/chat/completions', { model: CHAT, messages: hi, stop: stopWord })).json()) as any;
    expect(s.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: stopWord });
    expect(s.choices[0].message.content).toBe(words.slice(0, 2).join(' '));
  });

  it('counts prompt tokens through a chat template; content parts and tools add tokens', async () => {
    const usage = async (body: any) => ((await (await post('/v1/chat/completions', { model: CHAT, max_tokens: 1, ...body })).json()) as any).usage;
    const plain = await usage({ messages: hi });
    const parts = await usage({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] });
    expect(parts.prompt_tokens).toBe(plain.prompt_tokens);
    const img = await usage({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: 'http://x/y.png' } }] }],
    });
    expect(img.prompt_tokens).toBe(plain.prompt_tokens + 64);
    const tools = await usage({ messages: hi, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }] });
    expect(tools.prompt_tokens).toBeGreaterThan(plain.prompt_tokens + 5);
  });

  it('uses the default model when `model` is absent and echoes x-request-id', async () => {
    const res = await post('/v1/chat/completions', { messages: hi, max_tokens: 1 }, { 'x-request-id': 'abc-123' });
    const j = (await res.json()) as any;
    expect(j.model).toBe(CHAT);
    expect(j.id).toBe('chatcmpl-abc-123');
  });
});

describe('chat completions (streaming)', () => {
  it('streams role chunk, one chunk per token, finish_reason on the last, then [DONE]', async () => {
    const res = await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 4, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const text = await res.text();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const events = parseSse(text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks).toHaveLength(5);
    const id = chunks[0].id;
    for (const c of chunks) {
      expect(c.id).toBe(id);
      expect(c.object).toBe('chat.completion.chunk');
      expect(c.model).toBe(CHAT);
      expect(c).not.toHaveProperty('usage');
    }
    expect(Object.keys(chunks[0])).toEqual(['id', 'object', 'created', 'model', 'choices']);
    expect(chunks[0].choices).toEqual([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
    expect(chunks[1].choices).toEqual([{ index: 0, delta: { content: expect.any(String) }, logprobs: null, finish_reason: null }]);
    expect(chunks[4].choices).toEqual([
      { index: 0, delta: { content: expect.any(String) }, logprobs: null, finish_reason: 'length', stop_reason: null },
    ]);
    // The streamed text equals the non-streamed answer for the same request.
    const streamed = chunks.map((c) => c.choices[0].delta.content).join('');
    const full = (await (await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 4 })).json()) as any;
    expect(streamed).toBe(full.choices[0].message.content);
  });

  it('sends a usage chunk with choices [] only when include_usage is set', async () => {
    const events = parseSse(
      await (
        await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 3, stream: true, stream_options: { include_usage: true } })
      ).text(),
    );
    expect(events.at(-1)).toBe('[DONE]');
    const usage = JSON.parse(events.at(-2)!);
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual({
      prompt_tokens: expect.any(Number),
      total_tokens: usage.usage.prompt_tokens + 3,
      completion_tokens: 3,
      prompt_tokens_details: { cached_tokens: expect.any(Number) },
    });
    const others = events.slice(0, -2).map((e) => JSON.parse(e));
    for (const c of others) expect(c).not.toHaveProperty('usage');

    const off = parseSse(
      await (
        await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 3, stream: true, stream_options: { include_usage: false } })
      ).text(),
    );
    expect(off.slice(0, -1).filter((e) => JSON.parse(e).choices.length !== 1)).toEqual([]);
  });

  it('puts running usage on every chunk with continuous_usage_stats', async () => {
    const events = parseSse(
      await (
        await post('/v1/chat/completions', {
          model: CHAT,
          messages: hi,
          max_tokens: 3,
          stream: true,
          stream_options: { include_usage: true, continuous_usage_stats: true },
        })
      ).text(),
    );
    const chunks = events.slice(0, -2).map((e) => JSON.parse(e));
    expect(chunks.map((c) => c.usage.completion_tokens)).toEqual([0, 1, 2, 3]);
    expect(chunks[1].usage).toEqual({ prompt_tokens: chunks[0].usage.prompt_tokens, total_tokens: chunks[0].usage.prompt_tokens + 1, completion_tokens: 1 });
  });

  it('interleaves choices when n > 1', async () => {
    const events = parseSse(await (await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 2, n: 2, stream: true })).text());
    const idx = events.slice(0, -1).map((e) => JSON.parse(e).choices[0].index);
    expect(idx).toEqual([0, 1, 0, 1, 0, 1]);
  });
});

describe('completions', () => {
  it('answers text_completion, streaming and not, with every prompt form', async () => {
    const j = (await (await post('/v1/completions', { model: CHAT, prompt: ['Once upon', 'a time'], max_tokens: 3 })).json()) as any;
    expect(j.id).toMatch(/^cmpl-/);
    expect(j.object).toBe('text_completion');
    expect(j.choices).toHaveLength(2);
    expect(j.choices[1]).toEqual({
      index: 1,
      text: expect.any(String),
      logprobs: null,
      finish_reason: 'length',
      stop_reason: null,
      prompt_logprobs: null,
    });
    expect(j.usage.completion_tokens).toBe(6);
    const ids = (await (await post('/v1/completions', { model: CHAT, prompt: [1, 2, 3, 4], max_tokens: 1 })).json()) as any;
    expect(ids.usage.prompt_tokens).toBe(4);

    const events = parseSse(await (await post('/v1/completions', { model: CHAT, prompt: 'Once upon', max_tokens: 2, stream: true })).text());
    expect(events).toHaveLength(3);
    const c0 = JSON.parse(events[0]!);
    expect(c0).toEqual({
      id: expect.stringMatching(/^cmpl-/),
      object: 'text_completion',
      created: expect.any(Number),
      model: CHAT,
      choices: [{ index: 0, text: expect.any(String), logprobs: null, finish_reason: null, stop_reason: null }],
      usage: null,
    });
    expect(JSON.parse(events[1]!).choices[0].finish_reason).toBe('length');
  });
});

describe('embeddings', () => {
  it('returns deterministic unit vectors, float or base64', async () => {
    const res = await post('/v1/embeddings', { model: EMB, input: ['hello world', 'hello world', 'other'] });
    expect(res.status).toBe(200);
    const j = (await res.json()) as any;
    expect(j).toMatchObject({ object: 'list', model: EMB, usage: { prompt_tokens: expect.any(Number), completion_tokens: 0 } });
    expect(j.id).toMatch(/^embd-/);
    expect(j.data.map((d: any) => [d.index, d.object])).toEqual([
      [0, 'embedding'],
      [1, 'embedding'],
      [2, 'embedding'],
    ]);
    const [a, b, c] = j.data.map((d: any) => d.embedding as number[]);
    expect(a).toHaveLength(384);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(Math.hypot(...a)).toBeCloseTo(1, 5);
    const b64 = (await (await post('/v1/embeddings', { model: EMB, input: 'hello world', encoding_format: 'base64' })).json()) as any;
    const buf = Buffer.from(b64.data[0].embedding, 'base64');
    const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    expect(Array.from(f)).toEqual(a);
  });

  it('carries meaning: a paraphrase with other words is closer than a different question', async () => {
    const inputs = ['How can I extend the battery life of my laptop?', 'How do I make my laptop battery last longer?', 'What is the capital of France?'];
    const j = (await (await post('/v1/embeddings', { model: EMB, input: inputs })).json()) as any;
    const [a, b, c] = j.data.map((d: any) => d.embedding as number[]);
    const dot = (x: number[], y: number[]) => x.reduce((s, v, i) => s + v * y[i]!, 0);
    expect(dot(a, b)).toBeGreaterThan(0.8);
    expect(dot(a, c)).toBeLessThan(0.6);
    expect(dot(a, b)).toBeGreaterThan(dot(a, c) + 0.3);
  });

  it('refuses the wrong kind of model and over-long inputs like vLLM', async () => {
    const chat = await post('/v1/embeddings', { model: CHAT, input: 'x' });
    expect(chat.status).toBe(400);
    expect(((await chat.json()) as any).error.message).toBe('The model does not support Embeddings API');
    const emb = await post('/v1/chat/completions', { model: EMB, messages: hi });
    expect(emb.status).toBe(400);
    const long = await post('/v1/embeddings', { model: EMB, input: 'word '.repeat(600) });
    expect(long.status).toBe(400);
    expect(((await long.json()) as any).error.message).toMatch(/maximum context length is 512 tokens/);
  });
});

describe('models, health, errors, auth', () => {
  it('lists served models like vLLM', async () => {
    const j = (await (await fetch(`${sim.url}/v1/models`)).json()) as any;
    expect(j.object).toBe('list');
    expect(j.data.map((m: any) => m.id)).toEqual([CHAT, 'second-model', EMB]);
    expect(j.data[0]).toMatchObject({ object: 'model', owned_by: 'vllm', root: CHAT, parent: null, max_model_len: 8192 });
    expect(j.data[0].permission[0]).toMatchObject({ object: 'model_permission', allow_sampling: true, organization: '*' });
  });

  it('GET /health is 200 with an empty body', async () => {
    const res = await fetch(`${sim.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });

  it('unknown model → 404 NotFoundError in vLLM’s ErrorResponse shape', async () => {
    const res = await post('/v1/chat/completions', { model: 'nope', messages: hi });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: 'The model `nope` does not exist.', type: 'NotFoundError', param: 'model', code: 404 },
    });
  });

  it('invalid JSON and invalid parameters → 400 BadRequestError', async () => {
    const bad = await post('/v1/chat/completions', '{"model": ');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error).toMatchObject({ type: 'BadRequestError', code: 400 });
    const zero = await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 0 });
    expect(zero.status).toBe(400);
    expect(((await zero.json()) as any).error.message).toBe('max_tokens must be at least 1, got 0.');
    const n0 = await post('/v1/chat/completions', { model: CHAT, messages: hi, n: 0 });
    expect(n0.status).toBe(400);
    const so = await post('/v1/chat/completions', { model: CHAT, messages: hi, stream_options: { include_usage: true } });
    expect(so.status).toBe(400);
    expect(((await so.json()) as any).error.message).toBe('Stream options can only be defined when `stream=True`.');
    const noMsgs = await post('/v1/chat/completions', { model: CHAT });
    expect(noMsgs.status).toBe(400);
  });

  it('context too long → 400 with vLLM’s message, and nothing is scheduled', async () => {
    const before = sim.state.stats.completed;
    const res = await post('/v1/chat/completions', { model: CHAT, messages: [{ role: 'user', content: 'word '.repeat(8000) }], max_tokens: 500 });
    expect(res.status).toBe(400);
    const msg = ((await res.json()) as any).error.message as string;
    expect(msg).toMatch(/^This model's maximum context length is 8192 tokens\. However, you requested (\d+) tokens \((\d+) in the messages, 500 in the completion\)\. Please reduce the length of the messages or completion\.$/);
    const noMax = await post('/v1/chat/completions', { model: CHAT, messages: [{ role: 'user', content: 'word '.repeat(9000) }] });
    expect(noMax.status).toBe(400);
    expect(((await noMax.json()) as any).error.message).toMatch(/tokens in the messages, Please reduce the length of the messages\.$/);
    expect(sim.state.stats.completed).toBe(before);
  });

  it('unknown paths and methods answer like FastAPI', async () => {
    expect((await fetch(`${sim.url}/v1/nothing`)).status).toBe(404);
    const r = await fetch(`${sim.url}/v1/chat/completions`);
    expect(r.status).toBe(405);
    expect(await r.json()).toEqual({ detail: 'Method Not Allowed' });
  });

  it('--api-key guards /v1/* with 401 {"error":"Unauthorized"}; /health and /metrics stay open', async () => {
    const no = await post('/v1/chat/completions', { model: CHAT, messages: hi }, {}, authed.url);
    expect(no.status).toBe(401);
    expect(await no.json()).toEqual({ error: 'Unauthorized' });
    const wrong = await fetch(`${authed.url}/v1/models`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const ok = await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 1 }, { authorization: 'Bearer sekret' }, authed.url);
    expect(ok.status).toBe(200);
    expect((await fetch(`${authed.url}/health`)).status).toBe(200);
    expect((await fetch(`${authed.url}/metrics`)).status).toBe(200);
  });
});

describe('metrics', () => {
  it('exposes vLLM’s names with HELP/TYPE, and counters move', async () => {
    const scrape = async () => (await fetch(`${sim.url}/metrics`)).text();
    const before = await scrape();
    expect((await fetch(`${sim.url}/metrics`)).headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const [name, type] of [
      ['vllm:num_requests_running', 'gauge'],
      ['vllm:num_requests_waiting', 'gauge'],
      ['vllm:kv_cache_usage_perc', 'gauge'],
      ['vllm:prefix_cache_queries_total', 'counter'],
      ['vllm:prefix_cache_hits_total', 'counter'],
      ['vllm:prompt_tokens_total', 'counter'],
      ['vllm:generation_tokens_total', 'counter'],
      ['vllm:request_success_total', 'counter'],
      ['vllm:time_to_first_token_seconds', 'histogram'],
      ['vllm:e2e_request_latency_seconds', 'histogram'],
    ] as const) {
      expect(before).toContain(`# HELP ${name} `);
      expect(before).toContain(`# TYPE ${name} ${type}\n`);
    }
    const labels = { model_name: CHAT };
    const v = (t: string, n: string, l: Record<string, string> = labels) => metricValue(t, n, l);
    await post('/v1/chat/completions', { model: CHAT, messages: hi, max_tokens: 7 });
    const after = await scrape();
    expect(v(after, 'vllm:generation_tokens_total') - v(before, 'vllm:generation_tokens_total')).toBe(7);
    expect(v(after, 'vllm:prompt_tokens_total')).toBeGreaterThan(v(before, 'vllm:prompt_tokens_total'));
    expect(v(after, 'vllm:prefix_cache_queries_total')).toBeGreaterThan(v(before, 'vllm:prefix_cache_queries_total'));
    const lenOk = { ...labels, finished_reason: 'length' };
    expect(v(after, 'vllm:request_success_total', lenOk) - v(before, 'vllm:request_success_total', lenOk)).toBe(1);
    const count = v(after, 'vllm:e2e_request_latency_seconds_count');
    expect(count - v(before, 'vllm:e2e_request_latency_seconds_count')).toBe(1);
    expect(v(after, 'vllm:e2e_request_latency_seconds_bucket', { ...labels, le: '+Inf' })).toBe(count);
    expect(v(after, 'vllm:time_to_first_token_seconds_bucket', { ...labels, le: '0.001' })).toBeLessThanOrEqual(
      v(after, 'vllm:time_to_first_token_seconds_bucket', { ...labels, le: '0.005' }),
    );
    expect(v(after, 'vllm:num_requests_running')).toBe(0);
  });
});

describe('official openai client', () => {
  it('works non-streaming, streaming (with usage) and for embeddings; maps errors', async () => {
    const client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const c = await client.chat.completions.create({ model: CHAT, messages: [{ role: 'user', content: 'hello' }], max_tokens: 6, seed: 3 });
    expect(c.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(c.usage!.completion_tokens).toBe(6);

    const stream = await client.chat.completions.create({
      model: CHAT,
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 6,
      seed: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: any;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(c.choices[0]!.message.content);
    expect(finish).toBe('length');
    expect(usage.completion_tokens).toBe(6);

    const comp = await client.completions.create({ model: CHAT, prompt: 'Say', max_tokens: 2 });
    expect(comp.choices[0]!.text.length).toBeGreaterThan(0);

    const emb = await client.embeddings.create({ model: EMB, input: 'hello' });
    expect(emb.data[0]!.embedding).toHaveLength(384);

    await expect(client.chat.completions.create({ model: 'missing', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 404,
    });
    const denied = new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await expect(denied.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const allowed = new OpenAI({ baseURL: `${authed.url}/v1`, apiKey: 'sekret', maxRetries: 0 });
    expect((await allowed.models.list()).data.map((m) => m.id)).toEqual([CHAT]);
  });
});
