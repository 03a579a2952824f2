import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';

// The whole stack as a user runs it: simulators in their own process, the Worker in workerd
// through Miniflare, called with the official `openai` client, unchanged.

let stack: Stack;
let client: OpenAI;

beforeAll(async () => {
  stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant' });
  client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: stack.keys.demo, maxRetries: 0 });
});
afterAll(() => stack?.close());

const messages = [{ role: 'user' as const, content: 'Write a haiku about routers.' }];

describe('the openai client against the router', () => {
  it('non-streamed chat completion, with the routing headers', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'small', messages, max_tokens: 12, seed: 7 }).withResponse();
    expect(data.choices[0]!.message.content).toBeTruthy();
    expect(data.usage!.completion_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-router-backend')).toBe('vllm-us-east-8b');
    expect(response.headers.get('x-router-region')).toBe('us-east');
    expect(response.headers.get('x-request-id')).toBeTruthy();
    // Deterministic for a prompt and seed, as the backend is.
    const again = await client.chat.completions.create({ model: 'small', messages, max_tokens: 12, seed: 7 });
    expect(again.choices[0]!.message.content).toBe(data.choices[0]!.message.content);
  });

  it('streamed chat completion: the same text as the non-streamed one, usage only when asked', async () => {
    const whole = await client.chat.completions.create({ model: 'small', messages, max_tokens: 12, seed: 3 });
    const stream = await client.chat.completions.create({ model: 'small', messages, max_tokens: 12, seed: 3, stream: true });
    let text = '';
    let usageChunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usageChunks++;
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(usageChunks).toBe(0);

    const withUsage = await client.chat.completions.create({
      model: 'small',
      messages,
      max_tokens: 12,
      seed: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of withUsage) if (chunk.usage) usage = chunk.usage;
    expect(usage?.completion_tokens).toBe(whole.usage!.completion_tokens);
  });

  it('a deployment name, streamed and not, with its version in a header and its feedback taken', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'support-bot', messages, user: 'e2e-user' }).withResponse();
    expect(data.choices[0]!.message.content).toBeTruthy();
    expect(response.headers.get('x-router-deployment-version')).toBe('v1');
    expect(response.headers.get('x-router-model')).toBe('llama-3.1-8b');
    const stream = await client.chat.completions.create({ model: 'support-bot', messages, user: 'e2e-user', stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    // Feedback on it with the same key, through the SDK's generic post.
    const fb = await client.post<{ object: string; request: { deployment: string; deployment_version: string } }>('/feedback', { body: { request_id: response.headers.get('x-request-id'), score: 1 } });
    expect(fb).toMatchObject({ object: 'feedback', request: { deployment: 'support-bot', deployment_version: 'v1' } });
  });

  it('completions, embeddings and the model list', async () => {
    const comp = await client.completions.create({ model: 'large', prompt: 'The capital of France is', max_tokens: 5 });
    expect(comp.choices[0]!.text.length).toBeGreaterThan(0);
    const emb = await client.embeddings.create({ model: 'bge-small-en', input: 'hello' });
    expect(emb.data[0]!.embedding.length).toBeGreaterThan(8);
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    expect(models).toEqual(expect.arrayContaining(['small', 'large', 'auto', 'fast']));
  });

  it('errors arrive as the SDK expects them', async () => {
    const bad = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: 'sk-er-wrong', maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: 'small', messages })).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    const e = await client.chat.completions.create({ model: 'nope', messages }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(APIError);
    expect(e).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });
    const temp = await client.chat.completions.create({ model: 'small', messages, temperature: 9 }).catch((err: unknown) => err);
    expect(temp).toMatchObject({ status: 400, param: 'temperature' });
  });

  it('a backend going down mid-run moves traffic to the next region', async () => {
    const sim = stack.backends['vllm-us-east-8b']!;
    await fetch(`${sim}/sim/faults`, { method: 'POST', body: JSON.stringify({ error_rate: 1, status: 503 }) });
    try {
      const { response } = await client.chat.completions.create({ model: 'small', messages, max_tokens: 4 }).withResponse();
      expect(response.headers.get('x-router-backend')).not.toBe('vllm-us-east-8b');
      expect(Number(response.headers.get('x-router-attempts'))).toBeGreaterThan(1);
    } finally {
      await fetch(`${sim}/sim/faults`, { method: 'POST', body: '{}' });
    }
  });
});
