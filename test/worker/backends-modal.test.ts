import { describe, expect, it } from 'vitest';
import { ANSWER, ANSWER_TOKENS, fakeRouter, jsonEvents, spawnFake, streamedText } from './fakes';
import { sseData } from '../support/sse';

// vLLM on a Modal web endpoint behind the router, end to end, against the stand-in of
// scripts/dev/standins/modal.ts (proxy auth, 303 to the result URL of a long call).

const KEY = 'wk-test-id';
const SECRET = 'ws-test-secret';
const secrets = { MODAL_PROXY_KEY: KEY, MODAL_PROXY_SECRET: SECRET };
const proxied = (url: string, extra: Record<string, unknown> = {}) => ({
  kind: 'modal',
  url,
  modal: { key_secret: 'MODAL_PROXY_KEY', secret_secret: 'MODAL_PROXY_SECRET', ...extra },
});
const hi = (tag: string) => [{ role: 'user', content: `Say hello ${tag}` }];

describe('modal backend', () => {
  it('sends Modal-Key and Modal-Secret (and a bearer key beside them); answers as vLLM does', async () => {
    const modal = await spawnFake('modal', { key: KEY, secret: SECRET, bearer: 'vllm-key' });
    const r = await fakeRouter({ ...proxied(modal.url), auth_secret: 'VLLM_KEY' }, { secrets: { ...secrets, VLLM_KEY: 'vllm-key' } });
    const res = await r.chat({ messages: hi('m1'), max_tokens: 4 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.choices[0]).toMatchObject({ message: { content: ANSWER_TOKENS.slice(0, 4).join('') }, finish_reason: 'length' });
    expect(body.usage.estimated).toBeUndefined();
    const [c] = await modal.calls();
    expect(c!.headers).toMatchObject({ 'modal-key': KEY, 'modal-secret': SECRET, authorization: 'Bearer vllm-key' });
    expect(JSON.parse(c!.body)).toMatchObject({ model: 'org/sl-model', max_tokens: 4 });
  });

  it('without the proxy credentials Modal says 401: the attempt fails over (here: 502)', async () => {
    const modal = await spawnFake('modal', { key: KEY, secret: SECRET });
    const r = await fakeRouter(proxied(modal.url), { secrets: {} });
    const res = await r.chat({ messages: hi('m2') });
    expect(res.status).toBe(502);
    expect(((await res.json()) as any).error.message).toContain('missing credentials for proxy authorization');
  });

  it('streams through unchanged, usage chunk included when asked', async () => {
    const modal = await spawnFake('modal', { key: KEY, secret: SECRET });
    const r = await fakeRouter(proxied(modal.url), { secrets });
    const res = await r.chat({ messages: hi('m3'), stream: true, stream_options: { include_usage: true } });
    const events = await sseData(res);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = jsonEvents(events);
    expect(streamedText(chunks)).toBe(ANSWER);
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: ANSWER_TOKENS.length });
  });

  it('a long call: follows Modal\'s 303s to the result URL with GET, credentials kept on the same origin', async () => {
    const modal = await spawnFake('modal', { key: KEY, secret: SECRET, redirects: 3 });
    const r = await fakeRouter(proxied(modal.url), { secrets });
    const res = await r.chat({ messages: hi('m4 [long]') });
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).choices[0].message.content).toBe(ANSWER);
    const calls = await modal.calls();
    expect(calls.map((c) => c.method)).toEqual(['POST', 'GET', 'GET', 'GET']);
    for (const get of calls.slice(1)) {
      expect(get.path).toMatch(/^\/v1\/chat\/completions\?__modal_function_call_id=fc-\d+$/);
      expect(get.headers).toMatchObject({ 'modal-key': KEY, 'modal-secret': SECRET });
      expect(get.headers['content-type']).toBeUndefined();
      expect(get.body).toBe('');
    }
  });

  it('a redirect to another origin gets no credentials', async () => {
    const other = await spawnFake('modal');
    const modal = await spawnFake('modal', { key: KEY, secret: SECRET, redirect_origin: other.url });
    const r = await fakeRouter({ ...proxied(modal.url), auth_secret: 'VLLM_KEY' }, { secrets: { ...secrets, VLLM_KEY: 'vllm-key' } });
    expect((await r.chat({ messages: hi('m5 [long]') })).status).toBe(200);
    const [get] = await other.calls();
    expect(get!.method).toBe('GET');
    expect(get!.headers['modal-key']).toBeUndefined();
    expect(get!.headers['modal-secret']).toBeUndefined();
    expect(get!.headers.authorization).toBeUndefined();
  });

  it('more redirects than max_redirects: the attempt fails (502, saying why)', async () => {
    const modal = await spawnFake('modal', { key: KEY, secret: SECRET, redirects: 5 });
    const r = await fakeRouter(proxied(modal.url, { max_redirects: 2 }), { secrets, extra: { max_attempts: 1 } });
    const res = await r.chat({ messages: hi('m6 [long]') });
    expect(res.status).toBe(502);
    expect(((await res.json()) as any).error.message).toContain('still running after 2 redirects');
    expect((await modal.calls()).map((c) => c.method)).toEqual(['POST', 'GET', 'GET']);
  });

  it('an answer without usage gets an estimate, marked; one that is not JSON is a 502', async () => {
    const modal = await spawnFake('modal', { key: KEY, secret: SECRET });
    const r = await fakeRouter(proxied(modal.url), { secrets });
    const res = await r.chat({ messages: hi('m7 [no-usage]') });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-usage')).toBe('estimated');
    expect(((await res.json()) as any).usage).toMatchObject({ estimated: true });

    const bad = await r.chat({ messages: hi('m8 [bad-json]') });
    expect(bad.status).toBe(502);
    expect(((await bad.json()) as any).error).toMatchObject({ type: 'upstream_error', code: 'upstream_error' });
  });
});
