import Anthropic from '@anthropic-ai/sdk';
import { createOpenAI } from '@ai-sdk/openai';
import { tool as aiTool, generateText, stepCountIs, streamText } from 'ai';
import { ChatOpenAI } from '@langchain/openai';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startClientsStack, TOOL_MODEL, type ClientsStack } from '../setup/clients-stack';
import { STANDIN_TEXT } from '../setup/openai-tools-standin';

// The official clients, unchanged, against the whole stack (simulators + the Worker in workerd):
// openai (chat, tools, embeddings, Responses API, models), @ai-sdk/openai (its default provider
// speaks the Responses API), @langchain/openai (with and without useResponsesApi) and
// @anthropic-ai/sdk against /v1/messages. Tool calls come from a stand-in that calls tools.

let env: ClientsStack;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  env = await startClientsStack();
  openai = new OpenAI({ baseURL: `${env.stack.routerUrl}/v1`, apiKey: env.stack.keys.demo, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: env.stack.routerUrl, apiKey: env.stack.keys.demo, maxRetries: 0 });
});
afterAll(() => env?.close());

const weatherParams = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const lastBody = () => env.standIn.bodies[env.standIn.bodies.length - 1]!;

describe('openai', () => {
  it('chat, streamed chat and embeddings', async () => {
    const chat = await openai.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 8 });
    expect(chat.choices[0]!.message.content).toBeTruthy();
    const stream = await openai.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage!.completion_tokens).toBeGreaterThan(0);
    const emb = await openai.embeddings.create({ model: 'bge-small-en', input: ['a', 'b'] });
    expect(emb.data).toHaveLength(2);
  });

  it('chat with tools: a call, then its result answered (streamed calls assemble too)', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', parameters: weatherParams } }];
    const first = await openai.chat.completions.create({ model: TOOL_MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools });
    const call = first.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' });
    const second = await openai.chat.completions.create({
      model: TOOL_MODEL,
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: 'sunny' },
      ],
    });
    expect(second.choices[0]!.message.content).toBe('The tool answered: sunny');

    const stream = openai.chat.completions.stream({ model: TOOL_MODEL, messages: [{ role: 'user', content: 'Weather?' }], tools });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]!.message.tool_calls![0]).toMatchObject({ function: { name: 'get_weather', arguments: '{"city":"Paris"}' } });
  });

  it('responses.create: string and message input, instructions, usage; max_output_tokens makes it incomplete', async () => {
    const r = await openai.responses.create({ model: 'small', input: 'Write a haiku about routers.', instructions: 'Be brief.', max_output_tokens: 16 });
    expect(r.object).toBe('response');
    expect(r.output_text.length).toBeGreaterThan(0);
    expect(r.usage!.input_tokens).toBeGreaterThan(0);
    expect(r.usage!.output_tokens).toBeGreaterThan(0);
    expect(r.instructions).toBe('Be brief.');

    const m = await openai.responses.create({
      model: 'small',
      input: [
        { role: 'developer', content: 'Answer in English.' },
        { role: 'user', content: [{ type: 'input_text', text: 'Hello?' }] },
        { role: 'assistant', content: [{ type: 'output_text', text: 'Hi.' }] } as unknown as OpenAI.Responses.ResponseInputItem,
        { role: 'user', content: 'And now?' },
      ],
      max_output_tokens: 3,
    });
    expect(m.status).toBe('incomplete');
    expect(m.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(m.usage!.output_tokens).toBeLessThanOrEqual(3);
  });

  it('responses.create with function tools: the call, then the call output answered', async () => {
    const tools: OpenAI.Responses.FunctionTool[] = [{ type: 'function', name: 'get_weather', parameters: weatherParams, strict: true }];
    const first = await openai.responses.create({ model: TOOL_MODEL, input: 'Weather in Paris?', tools });
    const call = first.output.find((o) => o.type === 'function_call')!;
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Paris"}', status: 'completed' });
    expect(lastBody().tools).toEqual([{ type: 'function', function: { name: 'get_weather', parameters: weatherParams, strict: true } }]);
    const second = await openai.responses.create({
      model: TOOL_MODEL,
      tools,
      input: [{ role: 'user', content: 'Weather in Paris?' }, call, { type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
    });
    expect(second.output_text).toBe('The tool answered: sunny');
  });

  it('responses.create with text.format json_schema: the schema reaches the backend as response_format', async () => {
    const schema = { type: 'object', properties: { capital: { type: 'string' } }, required: ['capital'], additionalProperties: false };
    const r = await openai.responses.create({
      model: TOOL_MODEL,
      instructions: 'Be brief.',
      input: [
        { role: 'developer', content: 'JSON only.' },
        { role: 'user', content: 'Capital of France?' },
      ],
      text: { format: { type: 'json_schema', name: 'answer', schema, strict: true } },
    });
    expect(JSON.parse(r.output_text)).toEqual({ capital: 'Paris' });
    expect(lastBody().response_format).toEqual({ type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } });
    // instructions and the developer message before the first turn: one system message, as chat templates want.
    expect(lastBody().messages).toEqual([
      { role: 'system', content: 'Be brief.\n\nJSON only.' },
      { role: 'user', content: 'Capital of France?' },
    ]);
  });

  it('responses stream: typed events in order, text deltas adding up to the completed response', async () => {
    const stream = await openai.responses.create({ model: 'small', input: 'Tell me about routers.', max_output_tokens: 12, stream: true });
    const types: string[] = [];
    let deltas = '';
    let completed: OpenAI.Responses.Response | undefined;
    const seqs: number[] = [];
    for await (const e of stream) {
      types.push(e.type);
      seqs.push(e.sequence_number);
      if (e.type === 'response.output_text.delta') deltas += e.delta;
      if (e.type === 'response.completed' || e.type === 'response.incomplete') completed = e.response;
    }
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.slice(-4)).toEqual(['response.output_text.done', 'response.content_part.done', 'response.output_item.done', completed!.status === 'completed' ? 'response.completed' : 'response.incomplete']);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    expect(deltas.length).toBeGreaterThan(0);
    expect(completed!.output_text ?? (completed!.output[0] as OpenAI.Responses.ResponseOutputMessage).content.map((c) => (c.type === 'output_text' ? c.text : '')).join('')).toBe(deltas);
    expect(completed!.usage!.output_tokens).toBeGreaterThan(0);

    const tools: OpenAI.Responses.FunctionTool[] = [{ type: 'function', name: 'get_weather', parameters: weatherParams, strict: false }];
    const s2 = openai.responses.stream({ model: TOOL_MODEL, input: 'Weather?', tools });
    const argDeltas: string[] = [];
    s2.on('response.function_call_arguments.delta', (e) => argDeltas.push(e.delta));
    const final = await s2.finalResponse();
    expect(argDeltas.join('')).toBe('{"city":"Paris"}');
    expect(final.output.find((o) => o.type === 'function_call')).toMatchObject({ name: 'get_weather', arguments: '{"city":"Paris"}' });
  });

  it('responses stream cut by the backend mid-answer: the text so far, then an error event (the SDK throws it), then response.failed', async () => {
    const stream = await openai.responses.create({ model: TOOL_MODEL, input: 'Say it [cut]', stream: true });
    let deltas = '';
    const e = await (async () => {
      for await (const ev of stream) if (ev.type === 'response.output_text.delta') deltas += ev.delta;
    })().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(APIError);
    expect((e as APIError).message).toContain('mid-stream');
    expect(deltas).toBe('Hello from ');
    // On the wire: `error`, then `response.failed` with the response as it stood.
    const raw = await fetch(`${env.stack.routerUrl}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${env.stack.keys.demo}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: TOOL_MODEL, input: 'Say it [cut]', stream: true }),
    });
    const events = (await raw.text()).split('\n').filter((l) => l.startsWith('event: ')).map((l) => l.slice(7));
    expect(events.slice(-2)).toEqual(['error', 'response.failed']);
  });

  it('a client leaving a translated stream hangs up on the backend (Responses and Anthropic)', async () => {
    for (const [path, body] of [
      ['/v1/responses', { model: TOOL_MODEL, input: 'Go [slow]', stream: true }],
      ['/v1/messages', { model: TOOL_MODEL, max_tokens: 500, messages: [{ role: 'user', content: 'Go [slow]' }], stream: true }],
    ] as const) {
      const before = env.standIn.hungUp.length;
      const controller = new AbortController();
      const res = await fetch(`${env.stack.routerUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${env.stack.keys.demo}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      let seen = '';
      while (!seen.includes('w2 ')) seen += new TextDecoder().decode((await reader.read()).value);
      controller.abort();
      await reader.cancel().catch(() => {});
      for (let i = 0; i < 200 && env.standIn.hungUp.length === before; i++) await new Promise((r) => setTimeout(r, 25));
      expect(env.standIn.hungUp.length, path).toBe(before + 1);
    }
  });

  it('responses: what needs stored state is a clear 400', async () => {
    await expect(openai.responses.create({ model: 'small', input: 'x', store: true })).rejects.toMatchObject({ status: 400, param: 'store', code: 'unsupported_parameter' });
    await expect(openai.responses.create({ model: 'small', input: 'x', previous_response_id: 'resp_1' })).rejects.toMatchObject({ status: 400, param: 'previous_response_id' });
    await expect(openai.responses.create({ model: 'small', input: [{ type: 'item_reference', id: 'msg_1' }] })).rejects.toMatchObject({ status: 400, code: 'unsupported_parameter' });
    await expect(openai.responses.create({ model: 'small', input: 'x', tools: [{ type: 'web_search' }] })).rejects.toMatchObject({ status: 400, param: 'tools[0].type' });
  });

  it('models.retrieve: the models the key may use; 404 for the others', async () => {
    const m = await openai.models.retrieve('small');
    expect(m).toMatchObject({ id: 'small', object: 'model' });
    expect((await openai.models.retrieve(TOOL_MODEL)).id).toBe(TOOL_MODEL);
    await expect(openai.models.retrieve('no-such-model')).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    const acme = new OpenAI({ baseURL: `${env.stack.routerUrl}/v1`, apiKey: (await env.stack.createKey('acme', 'models')).key, maxRetries: 0 });
    expect((await acme.models.retrieve('llama-3.1-8b')).id).toBe('llama-3.1-8b');
    const e = await acme.models.retrieve(TOOL_MODEL).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(APIError);
    expect(e).toMatchObject({ status: 404, code: 'model_not_found' });
  });

  it('a 429 carries all six x-ratelimit-* headers', async () => {
    const key = (await env.stack.createKey('acme', 'limited')).key;
    const acme = new OpenAI({ baseURL: `${env.stack.routerUrl}/v1`, apiKey: key, maxRetries: 0 });
    const body = { model: 'small', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 2 };
    await acme.chat.completions.create(body);
    await acme.chat.completions.create(body);
    const e = (await acme.chat.completions.create(body).catch((err: unknown) => err)) as APIError;
    expect(e.status).toBe(429);
    expect(e.headers!.get('x-ratelimit-limit-requests')).toBe('2');
    expect(e.headers!.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(e.headers!.get('x-ratelimit-reset-requests')).toMatch(/^\d/);
    expect(e.headers!.get('x-ratelimit-limit-tokens')).toBe(String(Number.MAX_SAFE_INTEGER)); // no tokens limit: nothing of it is spent
    expect(e.headers!.get('x-ratelimit-remaining-tokens')).toBe(String(Number.MAX_SAFE_INTEGER));
    expect(e.headers!.get('x-ratelimit-reset-tokens')).toBe('0s');

    // The same limit on /v1/messages: Anthropic's error shape, the same headers.
    const limited = new Anthropic({ baseURL: env.stack.routerUrl, apiKey: key, maxRetries: 0 });
    const ae = (await limited.messages.create({ model: 'small', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }).catch((err: unknown) => err)) as InstanceType<typeof Anthropic.APIError>;
    expect(ae).toBeInstanceOf(Anthropic.RateLimitError);
    expect(ae.error).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
    expect(ae.headers?.get('x-ratelimit-limit-requests')).toBe('2');
  });
});

describe('@ai-sdk/openai', () => {
  const provider = () => createOpenAI({ baseURL: `${env.stack.routerUrl}/v1`, apiKey: env.stack.keys.demo });

  it('the default provider (Responses API): generateText and streamText', async () => {
    const openaiAi = provider();
    const r = await generateText({ model: openaiAi('small'), prompt: 'Write about routers.', maxOutputTokens: 12, maxRetries: 0 });
    expect(r.text.length).toBeGreaterThan(0);
    expect(r.usage.outputTokens).toBeGreaterThan(0);
    expect(r.response.id).toMatch(/^resp_/);
    const s = streamText({ model: openaiAi('small'), prompt: 'Write about routers.', maxOutputTokens: 12, maxRetries: 0 });
    let text = '';
    for await (const t of s.textStream) text += t;
    expect(text.length).toBeGreaterThan(0);
    expect((await s.usage).outputTokens).toBeGreaterThan(0);
  });

  it('the default provider with a tool loop: the call, its result sent back, the answer', async () => {
    let called: unknown;
    const r = await generateText({
      model: provider()(TOOL_MODEL),
      prompt: 'Weather in Paris?',
      tools: { get_weather: aiTool({ inputSchema: z.object({ city: z.string() }), execute: async (input) => ((called = input), 'sunny') }) },
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    expect(called).toEqual({ city: 'Paris' });
    expect(r.steps).toHaveLength(2);
    expect(r.text).toBe('The tool answered: sunny');
  });

  it('.chat(): chat completions', async () => {
    const r = await generateText({ model: provider().chat('small'), prompt: 'Write about routers.', maxOutputTokens: 8, maxRetries: 0 });
    expect(r.text.length).toBeGreaterThan(0);
  });
});

describe('@langchain/openai', () => {
  const model = (extra: Record<string, unknown> = {}) =>
    new ChatOpenAI({ model: 'small', apiKey: env.stack.keys.demo, configuration: { baseURL: `${env.stack.routerUrl}/v1` }, maxTokens: 12, maxRetries: 0, ...extra });

  it('chat completions', async () => {
    const r = await model().invoke('Write about routers.');
    expect(String(r.content).length).toBeGreaterThan(0);
    expect(r.usage_metadata!.output_tokens).toBeGreaterThan(0);
  });

  it('useResponsesApi: invoke, stream and tools', async () => {
    const r = await model({ useResponsesApi: true }).invoke('Write about routers.');
    expect(r.text.length).toBeGreaterThan(0);
    expect(r.usage_metadata!.output_tokens).toBeGreaterThan(0);
    let streamed = '';
    for await (const chunk of await model({ useResponsesApi: true }).stream('Write about routers.')) streamed += chunk.text;
    expect(streamed.length).toBeGreaterThan(0);
    const withTools = model({ useResponsesApi: true, model: TOOL_MODEL }).bindTools([{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: weatherParams } }]);
    const t = await withTools.invoke('Weather in Paris?');
    expect(t.tool_calls?.[0]).toMatchObject({ name: 'get_weather', args: { city: 'Paris' } });
  });
});

describe('@anthropic-ai/sdk against /v1/messages', () => {
  it('messages.create: text, usage, stop_reason; system prompt and Bearer auth too', async () => {
    const m = await anthropic.messages.create({ model: 'small', max_tokens: 16, system: 'Be brief.', messages: [{ role: 'user', content: 'Write about routers.' }] });
    expect(m.type).toBe('message');
    expect(m.content[0]).toMatchObject({ type: 'text' });
    expect((m.content[0] as Anthropic.TextBlock).text.length).toBeGreaterThan(0);
    expect(m.usage.input_tokens).toBeGreaterThan(0);
    expect(m.usage.output_tokens).toBeGreaterThan(0);
    expect(['end_turn', 'max_tokens']).toContain(m.stop_reason);
    const short = await anthropic.messages.create({ model: 'small', max_tokens: 2, messages: [{ role: 'user', content: 'Write a long story.' }] });
    expect(short.stop_reason).toBe('max_tokens');
    const bearer = new Anthropic({ baseURL: env.stack.routerUrl, authToken: env.stack.keys.demo, apiKey: null, maxRetries: 0 });
    expect((await bearer.messages.create({ model: 'small', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] })).type).toBe('message');
  });

  it('messages.stream: text events add up to the final message, with usage', async () => {
    const stream = anthropic.messages.stream({ model: 'small', max_tokens: 16, messages: [{ role: 'user', content: 'Write about routers.' }] });
    let text = '';
    const types: string[] = [];
    stream.on('text', (t) => (text += t));
    stream.on('streamEvent', (e) => types.push(e.type));
    const final = await stream.finalMessage();
    expect(text.length).toBeGreaterThan(0);
    expect((final.content[0] as Anthropic.TextBlock).text).toBe(text);
    expect(final.usage.output_tokens).toBeGreaterThan(0);
    expect(final.usage.input_tokens).toBeGreaterThan(0); // known at the end: message_delta carries it
    expect(types[0]).toBe('message_start');
    expect(types.slice(-3)).toEqual(['content_block_stop', 'message_delta', 'message_stop']);
  });

  it('tools: tool_use, then tool_result answered; streamed input_json_delta assembles', async () => {
    const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather', input_schema: weatherParams as Anthropic.Tool.InputSchema }];
    const first = await anthropic.messages.create({ model: TOOL_MODEL, max_tokens: 64, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    expect(first.stop_reason).toBe('tool_use');
    const use = first.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
    expect(use).toMatchObject({ name: 'get_weather', input: { city: 'Paris' } });
    const second = await anthropic.messages.create({
      model: TOOL_MODEL,
      max_tokens: 64,
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
      ],
    });
    expect(second.content[0]).toMatchObject({ type: 'text', text: 'The tool answered: sunny' });
    expect(lastBody().messages).toEqual([
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: use.id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: use.id, content: 'sunny' },
    ]);

    const streamed = await anthropic.messages.stream({ model: TOOL_MODEL, max_tokens: 64, tools, tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'Weather?' }] }).finalMessage();
    expect(streamed.stop_reason).toBe('tool_use');
    expect(streamed.content.find((b) => b.type === 'tool_use')).toMatchObject({ name: 'get_weather', input: { city: 'Paris' } });
  });

  it('a stream cut by the backend mid-answer ends with an error event the SDK throws', async () => {
    const stream = anthropic.messages.stream({ model: TOOL_MODEL, max_tokens: 32, messages: [{ role: 'user', content: 'Say it [cut]' }] });
    let text = '';
    stream.on('text', (t) => (text += t));
    const e = await stream.finalMessage().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(Anthropic.APIError);
    expect((e as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'api_error' } });
    expect(text).toBe('Hello from ');
  });

  it("errors in Anthropic's shape: bad key, missing max_tokens, unknown model", async () => {
    const bad = new Anthropic({ baseURL: env.stack.routerUrl, apiKey: 'sk-er-wrong', maxRetries: 0 });
    const e1 = await bad.messages.create({ model: 'small', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((e1 as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    const e2 = await anthropic.messages.create({ model: 'small', messages: [{ role: 'user', content: 'hi' }] } as unknown as Anthropic.MessageCreateParamsNonStreaming).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(Anthropic.BadRequestError);
    expect((e2 as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } });
    const e3 = await anthropic.messages.create({ model: 'nope', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(e3).toBeInstanceOf(Anthropic.NotFoundError);
    expect((e3 as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });

  it('the chat body the backend gets: text blocks, stop sequences; output_config.format as response_format', async () => {
    const m = await anthropic.messages.create({ model: TOOL_MODEL, max_tokens: 32, stop_sequences: ['END'], messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }] });
    expect((m.content[0] as Anthropic.TextBlock).text).toBe(STANDIN_TEXT);
    expect(lastBody()).toMatchObject({ max_tokens: 32, stop: ['END'], messages: [{ role: 'user', content: 'Hi' }] });
    const schema = { type: 'object', properties: { capital: { type: 'string' } }, required: ['capital'] };
    const j = await anthropic.messages.create({ model: TOOL_MODEL, max_tokens: 32, output_config: { format: { type: 'json_schema', schema } }, messages: [{ role: 'user', content: 'Capital of France?' }] });
    expect(JSON.parse((j.content[0] as Anthropic.TextBlock).text)).toEqual({ capital: 'Paris' });
    expect(lastBody().response_format).toEqual({ type: 'json_schema', json_schema: { name: 'output', schema } });
  });

  it('the same path as chat: cache hits, and usage records (endpoint "chat") per feature', async () => {
    const feature = `e2e-${Math.random().toString(36).slice(2, 8)}`;
    const client = new Anthropic({ baseURL: env.stack.routerUrl, apiKey: env.stack.keys.demo, maxRetries: 0, defaultHeaders: { 'x-router-feature': feature } });
    // temperature 0: the exact cache keeps deterministic requests only (no longer in this SDK's types; the API accepts it).
    const body = { model: 'fast', max_tokens: 8, temperature: 0, messages: [{ role: 'user' as const, content: 'Cache me, Anthropic.' }] } as Anthropic.MessageCreateParamsNonStreaming;
    const first = await client.messages.create(body).withResponse();
    expect(first.response.headers.get('x-router-cache')).toBe('miss');
    expect(first.response.headers.get('x-router-backend')).toBeTruthy();
    let cache: string | null = null;
    for (let i = 0; i < 50 && cache !== 'hit'; i++) cache = (await client.messages.create(body).withResponse()).response.headers.get('x-router-cache');
    expect(cache).toBe('hit'); // stored in the background after the first answer
    const responses = new OpenAI({ baseURL: `${env.stack.routerUrl}/v1`, apiKey: env.stack.keys.demo, maxRetries: 0, defaultHeaders: { 'x-router-feature': feature } });
    await responses.responses.create({ model: 'small', input: 'Count me.', max_output_tokens: 4 });

    const usageUrl = `${env.stack.routerUrl}/admin/usage?tenant=demo&group_by=feature,endpoint`;
    let row: { feature: string; endpoint: string; requests: number; prompt_tokens: number; cache_hits: number } | undefined;
    for (let i = 0; i < 100; i++) {
      const report = (await (await fetch(usageUrl, { headers: { authorization: `Bearer ${env.stack.adminToken}` } })).json()) as { rows: NonNullable<typeof row>[] };
      row = report.rows.find((r) => r.feature === feature);
      if (row && row.requests >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(row).toMatchObject({ endpoint: 'chat' });
    expect(row!.requests).toBeGreaterThanOrEqual(3);
    expect(row!.cache_hits).toBeGreaterThanOrEqual(1);
    expect(row!.prompt_tokens).toBeGreaterThan(0);
  });
});
