import OpenAI, { RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';

// Rate limits as a user meets them: the whole stack (simulators, the Worker in workerd with its
// RateLimiter Durable Objects), called with the official `openai` client.

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    port: 0,
    ephemeralBackends: true,
    persist: false,
    simProfile: 'instant',
    configPatch: (r) => ({ ...r, limits: { key: { requests: 2, tokens: 100_000, window_s: 3_600 } } }),
  });
});
afterAll(() => stack?.close());

const messages = [{ role: 'user' as const, content: 'Say hi.' }];

describe('the openai client against a rate-limited key', () => {
  it('sees the x-ratelimit-* headers, then a RateLimitError (429, rate_limit_exceeded) it can retry after', async () => {
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: stack.keys.demo, maxRetries: 0 });
    const { response } = await client.chat.completions.create({ model: 'small', messages, max_tokens: 8 }).withResponse();
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('1');
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('100000');
    expect(response.headers.get('x-ratelimit-reset-requests')).toMatch(/^(59m[0-9.]+s|1h0m0s)$/);
    await client.chat.completions.create({ model: 'small', messages, max_tokens: 8, stream: true }).then(async (s) => {
      for await (const _ of s);
    });
    const err = await client.chat.completions.create({ model: 'small', messages, max_tokens: 8 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    const e = err as RateLimitError;
    expect(e.status).toBe(429);
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.type).toBe('rate_limit_error');
    expect(Number(e.headers?.get('retry-after'))).toBeGreaterThan(3_500);
    // The other tenant's key has its own allowance.
    const other = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: stack.keys.acme, maxRetries: 0 });
    expect((await other.chat.completions.create({ model: 'small', messages, max_tokens: 8 })).choices[0]!.message.content).toBeTruthy();
  });
});
