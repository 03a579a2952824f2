import { env as testEnv, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { BackendMetrics } from '../../durable-objects/backend-metrics';
import type { ScrapeTarget } from '../../worker/protocol/backend-metrics';
import { trustedOrigins } from '../../worker/backends/replicate';
import type { Env } from '../../worker/env';
import { fakeRouter, spawnFake } from './fakes';
import { baseConfig } from './support';

// Issue 12 item 5: secrets (and prompts) go only to origins the config names.

const TOKEN = 'r8_test_token';
const hi = (tag: string) => [{ role: 'user', content: `Say hello ${tag}` }];

describe('replicate: only the configured API origin is followed and receives the token', () => {
  const backend = (url: string, extra: Record<string, unknown> = {}) => ({
    kind: 'replicate',
    url,
    auth_secret: 'REPLICATE_API_TOKEN',
    replicate: { model: 'meta/llama-fake', wait_seconds: 1, ...extra },
  });

  it('a prediction naming urls on another origin: not followed (502), cancelled on the API origin', async () => {
    const attacker = await spawnFake('replicate');
    const replicate = await spawnFake('replicate', { token: TOKEN, urls_origin: attacker.url });
    const r = await fakeRouter(backend(replicate.url), { secrets: { REPLICATE_API_TOKEN: TOKEN }, extra: { max_attempts: 1 } });
    // [slow]: Prefer: wait gives up, so the router would poll urls.get.
    const polled = await r.chat({ messages: hi('[slow] r1') });
    expect(polled.status).toBe(502);
    expect(((await polled.json()) as any).error.message).toMatch(/not an origin this backend trusts/);
    // Streamed: the router would open urls.stream.
    const streamed = await r.chat({ messages: hi('r2'), stream: true });
    expect(streamed.status).toBe(502);
    await streamed.text();
    expect(await attacker.calls()).toEqual([]);
    // The predictions it started are cancelled where the token belongs.
    const cancel = await replicate.waitFor((c) => c.method === 'POST' && /\/cancel$/.test(c.path));
    expect(cancel?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('trusts exact origins only: scheme, host and port equal, the allow-list, and Replicate\'s own stream host', () => {
    const proxy = trustedOrigins('https://api.replicate-proxy.co.uk/', { allowed_origins: [] });
    expect([...proxy]).toEqual(['https://api.replicate-proxy.co.uk']);
    for (const other of ['https://attacker.co.uk', 'https://stream.replicate-proxy.co.uk', 'http://api.replicate-proxy.co.uk', 'https://api.replicate-proxy.co.uk:8443']) {
      expect(proxy.has(new URL(other).origin), other).toBe(false);
    }
    expect(trustedOrigins('https://api.replicate.com', { allowed_origins: [] }).has('https://stream.replicate.com')).toBe(true);
    expect(trustedOrigins('https://api.replicate.com', { allowed_origins: [] }).has('https://evil.replicate.com')).toBe(false);
    expect(trustedOrigins('https://r.example.com', { allowed_origins: ['https://files.example.com'] }).has('https://files.example.com')).toBe(true);
  });
});

describe('modal: no 307/308 to another origin', () => {
  it('refuses a cross-origin redirect that would re-send the prompt (502); the other origin gets nothing', async () => {
    const other = await spawnFake('modal');
    for (const status of [307, 308]) {
      const modal = await spawnFake('modal', { redirect_origin: other.url, redirect_status: status });
      const r = await fakeRouter({ kind: 'modal', url: modal.url }, { extra: { max_attempts: 1 } });
      const res = await r.chat({ messages: hi(`secret prompt ${status} [long]`) });
      expect(res.status).toBe(502);
      expect(((await res.json()) as any).error.message).toMatch(/re-send the request body to another origin/);
    }
    expect(await other.calls()).toEqual([]);
  });
});

describe('metrics_url on another host', () => {
  const env = testEnv as unknown as Env;
  const targetsWith = (backends: Record<string, unknown>[]) => {
    const cfg = baseConfig();
    cfg.backends = backends.map((b) => ({ kind: 'vllm', region: 'us-east', models: ['llama-3.1-8b', 'llama-3.1-70b', 'llama-3.1-405b', 'bge-small-en'], auth_secret: 'TRTLLM_EU_WEST_KEY', ...b }));
    const ns = env.BACKEND_METRICS;
    return runInDurableObject(ns.get(ns.idFromName(`sec-${crypto.randomUUID()}`)), (o: BackendMetrics) => {
      (o as unknown as { env: Env }).env = { ...env, ROUTER: cfg };
      return (o as unknown as { targets(): ScrapeTarget[] }).targets();
    });
  };

  it('gets the backend secret only on the backend\'s own origin, unless metrics_auth says otherwise', async () => {
    const list = await targetsWith([
      { id: 'own', url: 'https://vllm.example.com' },
      { id: 'own-path', url: 'https://vllm.example.com', metrics_url: 'https://vllm.example.com/v2/metrics' },
      { id: 'elsewhere', url: 'https://vllm.example.com', metrics_url: 'https://metrics.other.example/metrics' },
      { id: 'other-port', url: 'https://vllm.example.com', metrics_url: 'https://vllm.example.com:9400/metrics' },
      { id: 'always', url: 'https://vllm.example.com', metrics_url: 'https://metrics.other.example/metrics', metrics_auth: 'always' },
      { id: 'never', url: 'https://vllm.example.com', metrics_auth: 'never' },
    ]);
    const secret = Object.fromEntries(list.map((t) => [t.id, t.secret ?? null]));
    expect(secret).toEqual({ own: 'test-backend-key', 'own-path': 'test-backend-key', elsewhere: null, 'other-port': null, always: 'test-backend-key', never: null });
  });
});
