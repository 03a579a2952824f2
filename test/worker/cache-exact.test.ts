import { beforeAll, describe, expect, it } from 'vitest';
import { CacheApiStore } from '../../worker/cache/adapters/cache-api';
import { answerFromJson, StreamAssembler } from '../../worker/cache/answer';
import { canonicalJson } from '../../worker/cache/canonical';
import { exactCache, exactKeyHash } from '../../worker/cache/exact';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import { resolveRoute } from '../../worker/routing/resolve-model';
import { cacheWorld, exactCacheSuite, stored, type CacheWorld } from './cache-exact-suite';
import { baseConfig, chat } from './support';

// The exact cache on the embedded store (the Workers Cache API): nothing configured.
let w: CacheWorld;
beforeAll(async () => {
  w = await cacheWorld((cfg) => {
    cfg.cache = { tiers: { balanced: { ttl_seconds: 600 } } };
  });
});

exactCacheSuite('Cache API', () => w);

const compiled = (cfg: unknown): CompiledConfig => {
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
};

describe('exact cache: keys, TTLs and what a hit reports', () => {
  it('age: the seconds since the answer was stored', async () => {
    const body = { model: 'small', messages: [{ role: 'user', content: `Planted ${crypto.randomUUID()}` }], temperature: 0 };
    const hash = await exactKeyHash(w.tenants.a, 'chat', 'llama-3.1-8b', body);
    const answer = { v: 1, endpoint: 'chat', model: 'meta-llama/Llama-3.1-8B-Instruct', choices: [{ index: 0, text: 'Planted answer.', finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 } };
    await new CacheApiStore({ now: () => Date.now() - 42_000 }).put(`exact:${w.tenants.a}:${hash}`, JSON.stringify(answer), 3600);
    const res = await chat(w.keys.a, body, { env: w.env });
    expect(res.headers.get('x-router-cache')).toBe('hit');
    expect(Number(res.headers.get('age'))).toBeGreaterThanOrEqual(42);
    expect(Number(res.headers.get('age'))).toBeLessThan(50);
    expect(((await res.json()) as any).choices[0].message.content).toBe('Planted answer.');
  });

  it('the key ignores stream, stream_options, user, metadata, key order and nulls; anything else counts', async () => {
    const base = { model: 'small', messages: [{ role: 'user', content: 'x' }], temperature: 0, max_tokens: 5 };
    const h = (b: Record<string, unknown>, tenant = 't', model = 'llama-3.1-8b') => exactKeyHash(tenant, 'chat', model, b);
    const k = await h(base);
    expect(await h({ max_tokens: 5, temperature: 0, messages: [{ content: 'x', role: 'user' }], model: 'small', stream: true, stream_options: { include_usage: true }, user: 'u', metadata: { a: 'b' }, seed: null })).toBe(k);
    expect(await h({ ...base, model: 'llama-3.1-8b' })).toBe(k); // the resolved model counts, not the name used
    for (const other of [{ max_tokens: 6 }, { seed: 1 }, { n: 2 }, { stop: ['.'] }, { top_p: 0.5 }, { top_k: 3 }, { tools: [{ type: 'function', function: { name: 'f' } }] }, { tool_choice: 'none' }, { response_format: { type: 'json_object' } }]) {
      expect(await h({ ...base, ...other })).not.toBe(k);
    }
    expect(await h(base, 'another-tenant')).not.toBe(k);
    expect(await h(base, 't', 'llama-3.1-70b')).not.toBe(k);
    expect(await exactKeyHash('t', 'completions', 'llama-3.1-8b', base)).not.toBe(k);
    expect(canonicalJson({ b: [2, { d: 1, c: undefined, a: null }], a: 'x' })).toBe('{"a":"x","b":[2,{"a":null,"d":1}]}');
  });

  it("TTL per tier: [cache.tiers.<tier>].ttl_seconds, else [cache].ttl_seconds (24 h)", async () => {
    const read = async (model: string) => {
      const body = { model, messages: [{ role: 'user', content: `ttl ${crypto.randomUUID()}` }], temperature: 0, max_tokens: 4 };
      await chat(w.keys.a, body, { env: w.env });
      await stored();
      const modelId = model === 'large' ? 'llama-3.1-70b' : 'llama-3.1-8b';
      const url = `https://cache.edge-router.internal/${encodeURIComponent(`exact:${w.tenants.a}:${await exactKeyHash(w.tenants.a, 'chat', modelId, body)}`)}`;
      return (await (await caches.open('edge-router')).match(url))?.headers.get('cache-control');
    };
    expect(await read('large')).toBe('public, max-age=600');
    expect(await read('small')).toBe('public, max-age=86400');
  });

  it('a hit is not billable and says what it saved (priced from [prices])', async () => {
    const cfg = compiled(baseConfig());
    const body = { model: 'small', messages: [{ role: 'user', content: `savings ${crypto.randomUUID()}` }], temperature: 0 };
    const route = resolveRoute(cfg, 'demo', body, 'chat', null);
    const store = new CacheApiStore({ cacheName: 'savings' });
    const ctx = { waitUntil: () => {} };
    const input = { config: cfg, env: {}, ctx, tenantId: 'demo', endpoint: 'chat' as const, body, route, headers: new Headers(), store };
    const answer = { v: 1, endpoint: 'chat', model: 'm', choices: [{ index: 0, text: 'a', finish_reason: 'stop' }], usage: { prompt_tokens: 1_000_000, completion_tokens: 1_000_000, total_tokens: 2_000_000, cached_tokens: 500_000 } };
    await store.put(`exact:demo:${await exactKeyHash('demo', 'chat', 'llama-3.1-8b', body)}`, JSON.stringify(answer), 60);
    const hit = (await exactCache(input)).hit!;
    expect(hit.savings).toMatchObject({ billable: false, source: 'exact', model: 'llama-3.1-8b', saved_usage: answer.usage });
    expect(hit.savings.saved_cost_usd).toBeCloseTo(0.5 * 0.05 + 0.5 * 0.025 + 0.08, 12); // 0.5M input + 0.5M cached input + 1M output
  });

  it("stores only a 200 from the key's own model (not a fallback model's answer); onAnswer sees what is stored", async () => {
    const cfg = compiled(baseConfig());
    const store = new CacheApiStore({ cacheName: `settle-${crypto.randomUUID()}` });
    const seen: unknown[] = [];
    const miss = async (content: string) => {
      const body = { model: 'advanced', messages: [{ role: 'user', content }], temperature: 0 };
      const route = resolveRoute(cfg, 'demo', body, 'chat', null);
      const cache = await exactCache({ config: cfg, env: {}, ctx: { waitUntil() {} }, tenantId: 'demo', endpoint: 'chat', body, route, headers: new Headers(), store, onAnswer: (a) => seen.push(a) });
      expect(cache.status).toBe('miss');
      return { cache, key: `exact:demo:${await exactKeyHash('demo', 'chat', route.stages[0]!.targets[0]!.model.id, body)}` };
    };
    const answer = () => new Response(JSON.stringify({ model: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }), { status: 200 });

    const fromFallback = await miss('one');
    fromFallback.cache.settle({ response: answer(), servedModel: 'llama-3.1-70b', degraded: false }); // advanced's first model is the 405b
    const failed = await miss('two');
    failed.cache.settle({ response: new Response('{}', { status: 502 }), servedModel: 'llama-3.1-405b', degraded: false });
    const ok = await miss('three');
    ok.cache.settle({ response: answer(), servedModel: 'llama-3.1-405b', degraded: false });
    await stored();
    expect(await store.get(fromFallback.key)).toBeNull();
    expect(await store.get(failed.key)).toBeNull();
    expect(await store.get(ok.key)).not.toBeNull();
    expect(seen).toEqual([{ v: 1, endpoint: 'chat', model: 'x', choices: [{ index: 0, text: 'hi', finish_reason: 'stop' }], usage: null }]);
  });

  it('[cache].enabled = false: every answer says bypass', async () => {
    const cfg = compiled({ ...baseConfig(), cache: { enabled: false } });
    const body = { model: 'small', messages: [{ role: 'user', content: 'x' }], temperature: 0 };
    const r = await exactCache({ config: cfg, env: {}, ctx: { waitUntil() {} }, tenantId: 'demo', endpoint: 'chat', body, route: resolveRoute(cfg, 'demo', body, 'chat', null), headers: new Headers() });
    expect(r.status).toBe('bypass');
  });

  it('validates [cache] and [upstash]', () => {
    const errors = (patch: Record<string, unknown>) => {
      const r = compileConfig({ ...baseConfig(), ...patch });
      return r.ok ? [] : r.errors;
    };
    expect(errors({ cache: { ttl_seconds: 604_800, tiers: { fast: { ttl_seconds: 60 } } } })).toEqual([]);
    expect(errors({ cache: { ttl_seconds: 604_801 } }).join()).toMatch(/cache\.ttl_seconds.*7 days/);
    expect(errors({ cache: { tiers: { nope: { ttl_seconds: 60 } } } }).join()).toMatch(/cache\.tiers\.nope.*unknown tier/);
    expect(errors({ cache: { store: 'upstash' } }).join()).toMatch(/redis_url/);
    expect(errors({ upstash: { redis_url: 'https://x.upstash.io', redis_token_secret: 'lower' } }).join()).toMatch(/UPPER_SNAKE/);
    expect(errors({ upstash: { redis_url: 'https://x.upstash.io' }, cache: { store: 'upstash' } })).toEqual([]);
    const defaults = compiled(baseConfig()).raw;
    expect(defaults.cache).toMatchObject({ enabled: true, store: 'auto', ttl_seconds: 86_400, embeddings: true });
    expect(defaults.tenants.demo!.cache_nondeterministic).toBe(false);
  });
});

describe('the stored form', () => {
  it('assembles tool calls and several choices from stream deltas, and refuses what it cannot hold', () => {
    const a = new StreamAssembler('chat');
    const ev = (o: unknown) => a.onEvent(JSON.stringify(o));
    ev({ model: 'm', choices: [{ index: 1, delta: { role: 'assistant', content: '' } }] });
    ev({ model: 'm', choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"ci' } }] } }] });
    ev({ model: 'm', choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] } }] });
    ev({ model: 'm', choices: [{ index: 1, delta: { content: 'Hello' } }] });
    ev({ model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }, { index: 1, delta: {}, finish_reason: 'stop' }] });
    expect(a.result()).toBeNull(); // no [DONE] yet
    ev({ model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
    a.onEvent('[DONE]');
    expect(a.result()).toEqual({
      v: 1,
      endpoint: 'chat',
      model: 'm',
      choices: [
        { index: 0, text: null, finish_reason: 'tool_calls', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { index: 1, text: 'Hello', finish_reason: 'stop' },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });

    const unfinished = new StreamAssembler('completions');
    unfinished.onEvent(JSON.stringify({ model: 'm', choices: [{ index: 0, text: 'x', finish_reason: null }] }));
    unfinished.onEvent('[DONE]');
    expect(unfinished.result()).toBeNull();
    const errored = new StreamAssembler('chat');
    errored.onEvent(JSON.stringify({ model: 'm', choices: [{ index: 0, delta: { content: 'x' }, finish_reason: 'stop' }] }));
    errored.onEvent(JSON.stringify({ error: { message: 'boom' } }));
    errored.onEvent('[DONE]');
    expect(errored.result()).toBeNull();

    const json = (choice: Record<string, unknown>) => JSON.stringify({ model: 'm', choices: [{ index: 0, finish_reason: 'stop', ...choice }] });
    expect(answerFromJson('chat', json({ message: { role: 'assistant', content: 'ok' } }))).not.toBeNull();
    expect(answerFromJson('chat', json({ message: { role: 'assistant', content: 'ok' }, logprobs: { content: [] } }))).toBeNull();
    expect(answerFromJson('chat', json({ message: { role: 'assistant', content: null, refusal: 'no' } }))).toBeNull();
    expect(answerFromJson('chat', json({ message: { role: 'assistant', content: 'ok' }, finish_reason: null }))).toBeNull();
    expect(answerFromJson('chat', '{not json')).toBeNull();
  });
});
