import { describe, expect, it } from 'vitest';
import { FAST, spawnSim } from './sims';
import { call, createKey, envWith } from './support';

// Hostile and unsupported input on the routes in other formats (/v1/responses, /v1/messages):
// each gets a 4xx naming what is wrong, in that route's error shape, and never reaches a backend.

const post = (path: string, body: unknown, headers: Record<string, string>) =>
  call(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

interface OpenAIError {
  error: { message: string; type: string; param: string | null; code: string | null };
}
interface AnthropicError {
  type: string;
  error: { type: string; message: string };
  request_id: string | null;
}

describe('POST /v1/responses: what it cannot serve is a 400 in OpenAI format', () => {
  const cases: [string, unknown, Partial<OpenAIError['error']>][] = [
    ['invalid JSON', '{"model":', { code: 'invalid_json' }],
    ['no input', { model: 'small' }, { param: 'input' }],
    ['empty input', { model: 'small', input: [] }, { param: 'input' }],
    ['an unknown item', { model: 'small', input: [{ type: 'computer_call_output', call_id: 'c' }] }, { code: 'invalid_value' }],
    ['a bad tool name', { model: 'small', input: 'x', tools: [{ type: 'function', name: 'bad name!' }] }, { param: 'tools[0]' }],
    ['a hosted tool', { model: 'small', input: 'x', tools: [{ type: 'file_search', vector_store_ids: [] }] }, { param: 'tools[0].type', code: 'unsupported_parameter' }],
    ['an image by file id', { model: 'small', input: [{ role: 'user', content: [{ type: 'input_image', file_id: 'file_1' }] }] }, { param: 'input[0].content[0]', code: 'unsupported_parameter' }],
    ['a file', { model: 'small', input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file_1' }] }] }, { code: 'unsupported_parameter' }],
    ['an image from the assistant', { model: 'small', input: [{ role: 'assistant', content: [{ type: 'input_image', image_url: 'https://x/y.png' }] }] }, { param: 'input[0]' }],
    ['only instructions', { model: 'small', input: [{ role: 'developer', content: 'Be brief.' }] }, { param: 'input' }],
    ['store: true', { model: 'small', input: 'x', store: true }, { param: 'store', code: 'unsupported_parameter' }],
    ['previous_response_id', { model: 'small', input: 'x', previous_response_id: 'resp_1' }, { param: 'previous_response_id' }],
    ['an item_reference', { model: 'small', input: [{ type: 'item_reference', id: 'msg_1' }] }, { param: 'input[0]' }],
    ['background', { model: 'small', input: 'x', background: true }, { param: 'background' }],
    ['a json_schema format without a schema', { model: 'small', input: 'x', text: { format: { type: 'json_schema', name: 'a' } } }, { code: 'invalid_value' }],
    ['a non-function tool_choice', { model: 'small', input: 'x', tool_choice: { type: 'file_search' } }, { code: 'invalid_value' }],
    ['max_output_tokens 0', { model: 'small', input: 'x', max_output_tokens: 0 }, { param: 'max_output_tokens' }],
  ];

  it.each(cases)('%s', async (_, body, expected) => {
    const { key } = await createKey('demo');
    const res = await post('/v1/responses', body, { authorization: `Bearer ${key}` });
    expect(res.status).toBe(400);
    const json = (await res.json()) as OpenAIError;
    expect(json.error).toMatchObject({ type: 'invalid_request_error', ...expected });
    expect(res.headers.get('x-router-attempts')).toBe('0');
  });

  it('an unknown model is a 404', async () => {
    const { key } = await createKey('demo');
    const res = await post('/v1/responses', { model: 'nope', input: 'x' }, { authorization: `Bearer ${key}` });
    expect(res.status).toBe(404);
    expect(((await res.json()) as OpenAIError).error).toMatchObject({ code: 'model_not_found', param: 'model' });
  });
});

describe("POST /v1/messages: errors in Anthropic's shape", () => {
  const cases: [string, unknown, RegExp][] = [
    ['invalid JSON', '{"model":', /not valid JSON/],
    ['no max_tokens', { model: 'small', messages: [{ role: 'user', content: 'hi' }] }, /max_tokens/],
    ['max_tokens 0', { model: 'small', max_tokens: 0, messages: [{ role: 'user', content: 'hi' }] }, /max_tokens/],
    ['a system role in messages', { model: 'small', max_tokens: 4, messages: [{ role: 'system', content: 'hi' }] }, /messages\[0\]\.role/],
    ['a text block without text', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'text' }] }] }, /messages\[0\]\.content/],
    ['a document block', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }, /'document' are not supported/],
    ['an image from a file', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'f' } }] }] }, /messages\[0\]\.content/],
    ['a server tool', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /tools\[0\]|not supported/],
    ['an image in a tool result', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'image', source: { type: 'url', url: 'https://x/y.png' } }] }] }] }, /tool_result/],
    ['no content at all', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: [] }] }, /no content/],
    ['temperature above 1', { model: 'small', max_tokens: 4, temperature: 1.5, messages: [{ role: 'user', content: 'hi' }] }, /temperature/],
    ['a tool_choice of no known type', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }], tool_choice: { type: 'maybe' } }, /tool_choice/],
  ];

  it.each(cases)('%s: 400 invalid_request_error', async (_, body, message) => {
    const { key } = await createKey('demo');
    const res = await post('/v1/messages', body, { 'x-api-key': key, 'anthropic-version': '2023-06-01' });
    expect(res.status).toBe(400);
    const json = (await res.json()) as AnthropicError;
    expect(json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(json.error.message).toMatch(message);
    expect(json.request_id).toBe(res.headers.get('x-request-id'));
  });

  it('401 without a key or with a wrong one; x-api-key is for this route only', async () => {
    const none = await post('/v1/messages', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }, {});
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error', message: expect.stringContaining('x-api-key') } });
    const wrong = await post('/v1/messages', { model: 'small', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': 'sk-er-nope' });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as AnthropicError).error.type).toBe('authentication_error');
    const { key } = await createKey('demo');
    const chat = await post('/v1/chat/completions', { model: 'small', messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key });
    expect(chat.status).toBe(401);
    expect(((await chat.json()) as OpenAIError).error.code).toBe('missing_api_key');
  });

  it('404 for an unknown model and for another method, in the same shape', async () => {
    const { key } = await createKey('demo');
    const model = await post('/v1/messages', { model: 'nope', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key });
    expect(model.status).toBe(404);
    expect(await model.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    const get = await call('/v1/messages', { headers: { 'x-api-key': key } });
    expect(get.status).toBe(404);
    expect(await get.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
  });
});

describe('GET /v1/models/{id}', () => {
  it('a model, alias, tier or "auto" the key may use; 404 in OpenAI format otherwise', async () => {
    const { key } = await createKey('demo');
    const get = (id: string) => call(`/v1/models/${id}`, { headers: { authorization: `Bearer ${key}` } });
    for (const id of ['small', 'llama-3.1-8b', 'fast', 'auto']) {
      const res = await get(id);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id, object: 'model', owned_by: expect.any(String) });
    }
    const missing = await get('meta-llama%2FLlama-3.1-8B-Instruct'); // a served name is not a model id
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { type: 'not_found_error', code: 'model_not_found', param: 'model' } });
  });
});

/** A router of the test's own: one simulator serving model "m", one tenant with `tenant` settings. */
async function ownRouter(tenant: Record<string, unknown>) {
  const t = `fmt-${crypto.randomUUID().slice(0, 8)}`;
  const sim = await spawnSim({ name: t, models: ['m'], latency: FAST });
  const e = envWith({
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: [{ id: `b-${t}`, kind: 'vllm', region: 'here', url: sim.url, models: ['m'] }],
    tenants: { [t]: { models: ['*'], ...tenant } },
  });
  return { t, e };
}

describe('a 429 carries all six x-ratelimit-* headers', () => {
  it('a budget refusal with no rate limit configured: both units unlimited, reset 0s; on /v1/messages in Anthropic shape', async () => {
    const { t, e } = await ownRouter({ budget: { monthly_tokens: 10 } }); // less than any request's worst case: refused at once
    const { key } = await createKey(t, e);
    const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 };
    const chat = await call('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), env: e });
    expect(chat.status).toBe(429);
    expect(((await chat.json()) as OpenAIError).error.code).toBe('insufficient_quota');
    const all = (res: Response) => Object.fromEntries([...res.headers].filter(([k]) => k.startsWith('x-ratelimit-')));
    const unlimited = String(Number.MAX_SAFE_INTEGER);
    expect(all(chat)).toEqual({
      'x-ratelimit-limit-requests': unlimited,
      'x-ratelimit-remaining-requests': unlimited,
      'x-ratelimit-reset-requests': '0s',
      'x-ratelimit-limit-tokens': unlimited,
      'x-ratelimit-remaining-tokens': unlimited,
      'x-ratelimit-reset-tokens': '0s',
    });
    const messages = await call('/v1/messages', { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(body), env: e });
    expect(messages.status).toBe(429);
    expect(await messages.json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
    expect(Object.keys(all(messages))).toHaveLength(6);
  });

  it('a requests refusal reports the tokens limit too, though it was not evaluated', async () => {
    const { t, e } = await ownRouter({ limits: { key: { requests: 1, tokens: 5000, window_s: 600 } } });
    const { key } = await createKey(t, e);
    const ask = () => call('/v1/responses', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', input: 'hi', max_output_tokens: 10 }), env: e });
    expect((await ask()).status).toBe(200); // takes the one request
    const refused = await ask();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-ratelimit-limit-requests')).toBe('1');
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(refused.headers.get('x-ratelimit-limit-tokens')).toBe('5000');
    expect(Number(refused.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThanOrEqual(5000);
    expect(refused.headers.get('x-ratelimit-reset-tokens')).toMatch(/^\d/);
  });
});
