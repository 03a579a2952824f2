import { beforeAll, describe, expect, it } from 'vitest';
import { call } from './support';
import { ANSWER, fakeRouter, spawnFake, type FakeServer } from './fakes';

// The official `openai` client reads what the translating adapters write (the router called in
// process through the client's `fetch` option): JSON answers, streamed chunks, the usage chunk
// with its non-standard "estimated" flag, and a mid-stream error.

// The client's type declarations pull Node's types into the workerd program (through undici-types),
// where they change setTimeout's type for all: so it is loaded untyped, with the little used here.
interface Chunk {
  choices: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  usage?: { completion_tokens: number; total_tokens: number } | null;
}
interface Client {
  chat: { completions: { create(body: Record<string, unknown>): Promise<any> } };
}
type OpenAICtor = (new (options: Record<string, unknown>) => Client) & { APIError: new (...a: never[]) => Error };
let OpenAI: OpenAICtor;

let triton: FakeServer;
let replicate: FakeServer;
let modal: FakeServer;
beforeAll(async () => {
  const specifier = 'openai';
  OpenAI = ((await import(/* @vite-ignore */ specifier)) as { default: OpenAICtor }).default;
  [triton, replicate, modal] = await Promise.all([spawnFake('triton'), spawnFake('replicate'), spawnFake('modal')]);
});

async function clientFor(backend: () => Record<string, unknown>) {
  const r = await fakeRouter(backend(), { secrets: { REPLICATE_API_TOKEN: 't' } });
  return new OpenAI({
    apiKey: r.key,
    baseURL: 'http://router.test/v1',
    maxRetries: 0,
    fetch: ((url: string | URL | Request, init?: RequestInit) => {
      const u = new URL(url instanceof Request ? url.url : String(url));
      return call(u.pathname + u.search, { ...init, env: r.env });
    }) as typeof fetch,
  });
}

const kinds: [string, () => Record<string, unknown>][] = [
  ['triton', () => ({ kind: 'triton', url: triton.url, triton: { model: 'ensemble' } })],
  ['replicate', () => ({ kind: 'replicate', url: replicate.url, auth_secret: 'REPLICATE_API_TOKEN', replicate: { model: 'meta/llama-fake' } })],
  ['modal', () => ({ kind: 'modal', url: modal.url })],
];

describe.each(kinds)('the openai client against a %s backend', (kind, backend) => {
  it('non-streamed and streamed chat completions', async () => {
    const client = await clientFor(backend);
    const messages = [{ role: 'user' as const, content: 'Say hello.' }];
    const whole = await client.chat.completions.create({ model: 'sl', messages });
    expect(whole.choices[0]!.message.content).toBe(ANSWER);
    expect(whole.usage!.total_tokens).toBeGreaterThan(0);
    if (kind === 'triton') expect((whole.usage as unknown as { estimated?: boolean }).estimated).toBe(true);

    const stream = await client.chat.completions.create({ model: 'sl', messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: Chunk['usage'];
    let finish: string | null = null;
    for await (const chunk of stream as AsyncIterable<Chunk>) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(ANSWER);
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });
});

describe('the openai client and a failing stream', () => {
  it('an error after the 200 surfaces as an APIError from the iterator', async () => {
    const client = await clientFor(kinds[0]![1]);
    const stream = await client.chat.completions.create({ model: 'sl', messages: [{ role: 'user', content: 'x [error-after]' }], stream: true });
    let text = '';
    const err = await (async () => {
      for await (const chunk of stream as AsyncIterable<Chunk>) text += chunk.choices[0]?.delta?.content ?? '';
    })().catch((e: unknown) => e);
    expect(text).toBe('Hello,');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String((err as Error).message)).toContain('out of memory');
  });
});
