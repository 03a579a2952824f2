import { readFileSync } from 'node:fs';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { createParser } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClientsStack, TOOL_MODEL, type ClientsStack } from '../setup/clients-stack';

// The router's answers against OpenAI's published OpenAPI document (the component schemas in
// test/fixtures/openai-openapi/components.json, vendored from openai/openai-openapi): chat
// completions and their chunks, completions, embeddings, models, errors, the Responses API and
// its stream events; answers from a vLLM-like backend (the simulator, the tool stand-in: both
// send the nulls vLLM sends) and answers the router writes itself (cache hits, the degraded answer).

const doc = JSON.parse(readFileSync(new URL('../fixtures/openai-openapi/components.json', import.meta.url), 'utf8')) as { components: unknown };
/**
 * The document is OpenAPI 3.1 (JSON Schema 2020-12) but keeps some of 3.0's `nullable: true`
 * (beside a `$ref`, or a `type` with an `enum`), which JSON Schema does not know: each becomes
 * `anyOf: [schema, null]`, its meaning in OpenAPI.
 */
function nullableToAnyOf(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(nullableToAnyOf);
  if (typeof node !== 'object' || node === null) return node;
  const { nullable, ...rest } = node as Record<string, unknown>;
  const out = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, nullableToAnyOf(v)]));
  return nullable === true ? { anyOf: [out, { type: 'null' }] } : out;
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
(addFormats as unknown as (a: Ajv2020) => void)(ajv);
ajv.addFormat('unixtime', true);
ajv.addSchema({ $id: 'openai', components: nullableToAnyOf(doc.components) });
const validators = new Map<string, ValidateFunction>();
function validator(name: string): ValidateFunction {
  let v = validators.get(name);
  if (!v) validators.set(name, (v = ajv.compile({ $ref: `openai#/components/schemas/${name}` })));
  return v;
}

/** Passes when `value` conforms to the named component schema; the message lists ajv's errors. */
function expectConforms(name: string, value: unknown): void {
  const v = validator(name);
  const ok = v(value);
  expect(ok, `${name}: ${JSON.stringify(v.errors?.slice(0, 5))}\n${JSON.stringify(value).slice(0, 600)}`).toBe(true);
}

let env: ClientsStack;
let url: string;
let key: string;
beforeAll(async () => {
  env = await startClientsStack();
  url = env.stack.routerUrl;
  key = env.stack.keys.demo;
});
afterAll(() => env?.close());

const post = (path: string, body: unknown, apiKey = key) =>
  fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** The JSON data of each SSE event (`[DONE]` left out), with its event name. */
async function sse(res: Response): Promise<{ event: string | undefined; data: Record<string, unknown> }[]> {
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const out: { event: string | undefined; data: Record<string, unknown> }[] = [];
  const parser = createParser({ onEvent: (e) => void (e.data !== '[DONE]' && out.push({ event: e.event, data: JSON.parse(e.data) as Record<string, unknown> })) });
  parser.feed(await res.text());
  return out;
}

const messages = [{ role: 'user', content: 'Write a haiku about schemas.' }];
const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];

describe("the router's answers conform to OpenAI's OpenAPI document", () => {
  it('chat completions: text (vLLM sim) and tool calls (stand-in); both without the nulls vLLM sends', async () => {
    for (const body of [{ model: 'small', messages, max_tokens: 10 }, { model: TOOL_MODEL, messages, tools }]) {
      const res = await post('/v1/chat/completions', body);
      expect(res.status).toBe(200);
      const json = (await res.json()) as { system_fingerprint?: unknown; choices: { message: Record<string, unknown> }[] };
      expectConforms('CreateChatCompletionResponse', json);
      expect('system_fingerprint' in json).toBe(false);
      expect(json.choices[0]!.message).not.toHaveProperty('annotations');
      expect(json.choices[0]!.message).not.toHaveProperty('function_call');
    }
  });

  it('chat completion chunks, the usage chunk included', async () => {
    for (const body of [{ model: 'small', messages, max_tokens: 10 }, { model: TOOL_MODEL, messages, tools }]) {
      const events = await sse(await post('/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } }));
      expect(events.length).toBeGreaterThan(2);
      for (const e of events) expectConforms('CreateChatCompletionStreamResponse', e.data);
      expect(events.at(-1)!.data.usage).toBeTruthy();
    }
  });

  it('completions, streamed and not (vLLM writes "usage": null in every chunk)', async () => {
    const res = await post('/v1/completions', { model: 'small', prompt: 'The capital of France is', max_tokens: 6 });
    expectConforms('CreateCompletionResponse', await res.json());
    const events = await sse(await post('/v1/completions', { model: 'small', prompt: 'The capital of France is', max_tokens: 6, stream: true }));
    expect(events.length).toBeGreaterThan(1);
    // The document gives streamed completions the non-streamed schema, whose finish_reason is a
    // string; OpenAI's own streams (like vLLM's) send null until the last chunk of a choice.
    for (const e of events) {
      const choices = (e.data.choices as Record<string, unknown>[]).map((c) => ({ ...c, finish_reason: c.finish_reason ?? 'stop' }));
      expectConforms('CreateCompletionResponse', { ...e.data, choices });
    }
  });

  it('embeddings, the model list and one model', async () => {
    expectConforms('CreateEmbeddingResponse', await (await post('/v1/embeddings', { model: 'bge-small-en', input: ['a', 'b'] })).json());
    const auth = { headers: { authorization: `Bearer ${key}` } };
    expectConforms('ListModelsResponse', await (await fetch(`${url}/v1/models`, auth)).json());
    expectConforms('Model', await (await fetch(`${url}/v1/models/small`, auth)).json());
  });

  it('errors: 400, 401, 404 (route, model), 429', async () => {
    const answers = [
      await post('/v1/chat/completions', { model: 'small', messages, temperature: 9 }),
      await post('/v1/chat/completions', { model: 'small', messages }, 'sk-wrong'),
      await post('/v1/nothing-here', {}),
      await fetch(`${url}/v1/models/nope`, { headers: { authorization: `Bearer ${key}` } }),
      await post('/v1/responses', { model: 'small', input: 'x', store: true }),
    ];
    const limited = (await env.stack.createKey('acme', 'schema')).key;
    for (let i = 0; i < 3; i++) answers.push(await post('/v1/chat/completions', { model: 'small', messages, max_tokens: 2 }, limited));
    expect(answers.map((r) => r.status)).toEqual([400, 401, 404, 404, 400, 200, 200, 429]);
    for (const r of answers.filter((a) => a.status >= 400)) expectConforms('ErrorResponse', await r.json());
  });

  it('responses: text, function calls, incomplete', async () => {
    const bodies = [
      { model: TOOL_MODEL, input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }], instructions: 'Be brief.', text: { format: { type: 'text' } }, user: 'u1' },
      { model: 'small', input: 'Write about schemas.', max_output_tokens: 2 },
      { model: TOOL_MODEL, input: 'Weather?', tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }], metadata: { a: 'b' } },
    ];
    const statuses: string[] = [];
    for (const body of bodies) {
      const json = (await (await post('/v1/responses', body)).json()) as { status: string };
      expectConforms('Response', json);
      statuses.push(json.status);
    }
    expect(statuses).toEqual(['completed', 'incomplete', 'completed']);
  });

  it('responses stream events, each against the schema of its type', async () => {
    const schemaOf: Record<string, string> = {
      'response.created': 'ResponseCreatedEvent',
      'response.in_progress': 'ResponseInProgressEvent',
      'response.output_item.added': 'ResponseOutputItemAddedEvent',
      'response.output_item.done': 'ResponseOutputItemDoneEvent',
      'response.content_part.added': 'ResponseContentPartAddedEvent',
      'response.content_part.done': 'ResponseContentPartDoneEvent',
      'response.output_text.delta': 'ResponseTextDeltaEvent',
      'response.output_text.done': 'ResponseTextDoneEvent',
      'response.function_call_arguments.delta': 'ResponseFunctionCallArgumentsDeltaEvent',
      'response.function_call_arguments.done': 'ResponseFunctionCallArgumentsDoneEvent',
      'response.completed': 'ResponseCompletedEvent',
      'response.incomplete': 'ResponseIncompleteEvent',
    };
    const seen = new Set<string>();
    for (const body of [
      { model: 'small', input: 'Write about schemas.', max_output_tokens: 8 },
      { model: TOOL_MODEL, input: 'Weather?', tools: [{ type: 'function', name: 'get_weather', parameters: null, strict: null }] },
    ]) {
      for (const e of await sse(await post('/v1/responses', { ...body, stream: true }))) {
        const type = e.data.type as string;
        expect(e.event).toBe(type);
        expect(schemaOf[type], `unexpected event ${type}`).toBeDefined();
        expectConforms(schemaOf[type]!, e.data);
        seen.add(type);
      }
    }
    for (const t of ['response.created', 'response.output_text.delta', 'response.function_call_arguments.done', 'response.output_item.done']) expect(seen.has(t)).toBe(true);
    expect(seen.has('response.completed') || seen.has('response.incomplete')).toBe(true);
  });

  it('answers the router writes itself: a cache hit and the degraded answer, with message.refusal null', async () => {
    // A cacheable request (the "fast" tier has the exact cache in the dev config), asked twice.
    const body = { model: 'fast', messages: [{ role: 'user', content: 'Cache me, schema.' }], max_tokens: 8, temperature: 0 };
    await (await post('/v1/chat/completions', body)).json();
    let hit: Response | undefined;
    for (let i = 0; i < 50 && hit?.headers.get('x-router-cache') !== 'hit'; i++) {
      hit = await post('/v1/chat/completions', body);
      if (hit.headers.get('x-router-cache') !== 'hit') await hit.arrayBuffer();
    }
    expect(hit!.headers.get('x-router-cache')).toBe('hit');
    const cached = (await hit!.json()) as { choices: { message: Record<string, unknown> }[] };
    expectConforms('CreateChatCompletionResponse', cached);
    expect(cached.choices[0]!.message.refusal).toBeNull();
    for (const e of await sse(await post('/v1/chat/completions', { ...body, stream: true }))) expectConforms('CreateChatCompletionStreamResponse', e.data);

    // The 405b model has one backend: failing, every request ends on the degraded answer.
    const sim = env.stack.backends['vllm-us-east-405b']!;
    await fetch(`${sim}/sim/faults`, { method: 'POST', body: JSON.stringify({ error_rate: 1, status: 503 }) });
    try {
      const res = await post('/v1/chat/completions', { model: 'xl', messages, max_tokens: 8 });
      expect(res.headers.get('x-router-degraded')).toBe('true');
      const degraded = (await res.json()) as { choices: { message: Record<string, unknown> }[] };
      expectConforms('CreateChatCompletionResponse', degraded);
      expect(degraded.choices[0]!.message.refusal).toBeNull();
      const chunks = await sse(await post('/v1/chat/completions', { model: 'xl', messages, max_tokens: 8, stream: true, stream_options: { include_usage: true } }));
      for (const e of chunks) expectConforms('CreateChatCompletionStreamResponse', e.data);
      const r = (await (await post('/v1/responses', { model: 'xl', input: 'x' })).json()) as { output_text?: string };
      expectConforms('Response', r);
    } finally {
      await fetch(`${sim}/sim/faults`, { method: 'POST', body: '{}' });
    }
  });
});
