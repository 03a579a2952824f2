import { describe, expect, it } from 'vitest';
import { baseConfig, call, chat, createKey, envWith, errorOf } from './support';

describe('errors in OpenAI format', () => {
  it('401 without a key, and with a wrong one', async () => {
    const none = await call('/v1/models');
    expect(none.status).toBe(401);
    expect(await errorOf(none)).toMatchObject({ type: 'authentication_error', code: 'missing_api_key', param: null });
    const wrong = await call('/v1/models', { headers: { authorization: 'Bearer sk-er-nope' } });
    expect(wrong.status).toBe(401);
    expect((await errorOf(wrong)).code).toBe('invalid_api_key');
    expect(wrong.headers.get('x-request-id')).toMatch(/^req_[0-9a-f]{32}$/);
    // Decided before routing: the router headers still come, saying so.
    expect(wrong.headers.get('x-router-backend')).toBe('none');
    expect(wrong.headers.get('x-router-attempts')).toBe('0');
  });

  it('400 for invalid JSON and for a schema error naming the field', async () => {
    const { key } = await createKey('demo');
    const bad = await call('/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: '{"model": "small", "messages": [',
    });
    expect(bad.status).toBe(400);
    expect((await errorOf(bad)).code).toBe('invalid_json');

    const role = await chat(key, { model: 'small', messages: [{ role: 'wizard', content: 'hi' }] });
    expect(role.status).toBe(400);
    expect((await errorOf(role)).param).toBe('messages[0].role');

    const temp = await chat(key, { model: 'small', messages: [{ role: 'user', content: 'hi' }], temperature: 7 });
    expect(await errorOf(temp)).toMatchObject({ param: 'temperature', type: 'invalid_request_error' });

    const tool = await chat(key, { model: 'small', messages: [{ role: 'tool', content: 'x' }] });
    expect((await errorOf(tool)).param).toBe('messages[0].tool_call_id');

    const empty = await chat(key, { model: 'small', messages: [] });
    expect((await errorOf(empty)).param).toBe('messages');
  });

  it('404 for an unknown model and an unknown route; 403 for a model the tenant may not use', async () => {
    const { key } = await createKey('demo');
    const unknown = await chat(key, { model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({ code: 'model_not_found', param: 'model' });

    const route = await call('/v1/nope', { headers: { authorization: `Bearer ${key}` } });
    expect(route.status).toBe(404);
    expect((await errorOf(route)).code).toBe('unknown_route');

    const cfg = baseConfig();
    cfg.tenants.demo = { models: ['small'], tiers: [] };
    const e = envWith(cfg);
    const denied = await chat(key, { model: 'llama-3.1-70b', messages: [{ role: 'user', content: 'hi' }] }, { env: e });
    expect(denied.status).toBe(403);
    expect((await errorOf(denied)).code).toBe('model_not_allowed');
    const tier = await chat(key, { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }, { env: e });
    expect(tier.status).toBe(403);
  });

  it('400 when an embedding model is asked for a chat completion', async () => {
    const { key } = await createKey('demo');
    const res = await chat(key, { model: 'bge-small-en', messages: [{ role: 'user', content: 'hi' }] });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe('model_not_supported');
  });

  it('413 over the body limit, by content-length and by streamed size', async () => {
    const { key } = await createKey('demo');
    const cfg = baseConfig();
    cfg.max_body_bytes = 1000;
    const e = envWith(cfg);
    const big = JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'x'.repeat(2000) }] });
    const res = await chat(key, JSON.parse(big), { env: e });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe('request_too_large');

    const streamed = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    const res2 = await call('/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: streamed,
      env: e,
      // @ts-expect-error duplex is required for a streamed body
      duplex: 'half',
    });
    expect(res2.status).toBe(413);
  });

  it('an invalid config answers 503 with the problem on every route', async () => {
    const cfg = baseConfig();
    cfg.backends[2].url = 'not a url';
    const e = envWith(cfg);
    for (const path of ['/healthz', '/v1/models', '/admin/keys']) {
      const res = await call(path, { env: e });
      expect(res.status).toBe(503);
      const err = await errorOf(res);
      expect(err.code).toBe('invalid_config');
      expect(err.message).toContain('router.backends[2].url');
    }
  });

  it('keeps a sane client request id and replaces an unsafe one', async () => {
    const ok = await call('/healthz', { headers: { 'x-request-id': 'trace-123_abc' } });
    expect(ok.headers.get('x-request-id')).toBe('trace-123_abc');
    const bad = await call('/healthz', { headers: { 'x-request-id': 'a b<script>' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^req_/);
  });
});
