import { afterEach, describe, expect, it, vi } from 'vitest';
import { CacheApiStore } from '../../worker/cache/adapters/cache-api';
import { MemoryStore } from '../../worker/cache/adapters/memory';
import { canonicalJson, hex, sha256Hex } from '../../worker/cache/canonical';
import { exactCache, exactKeyHash } from '../../worker/cache/exact';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import { backgroundSettled } from '../../worker/isolate/background';
import { resolveRoute } from '../../worker/routing/resolve-model';
import { baseConfig } from './support';

// The exact cache's key derivation and its Cache API handle, after the CPU work on them (README
// "Exact cache: CPU"): the keys must not change (entries stored before a deploy stay hits), the
// canonical text must be the one a plain recursive definition gives, and a store opens its Cache once.

/** The definition canonicalJson must agree with: sorted keys, undefined members left out, recursive. */
function reference(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${reference(o[k])}`)
    .join(',')}}`;
}

/** A small seeded PRNG (mulberry32): the same values on every run. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ['a', 'b', 'B', 'ä', 'a\u0308', '😀', '', ' ', '"q"', 'back\\slash', 'line\nbreak', '10', '9', '__proto__x', 'content', 'role'];
const STRINGS = ['', 'x', 'Grüße', '"quoted"', '\u2028', '\u0000', '😀', 'tab\t', '</script>'];
function randomValue(rnd: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const r = rnd();
  if (depth <= 0 || r < 0.4) return pick<unknown>([null, undefined, true, false, 0, -0, 1.5, -7, 1e21, 2 ** 53, pick(STRINGS), pick(STRINGS)]);
  const n = Math.floor(rnd() * 5);
  if (r < 0.7) return Array.from({ length: n }, () => randomValue(rnd, depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) o[pick(KEYS)] = randomValue(rnd, depth - 1);
  return o;
}

const compiled = (cfg: unknown): CompiledConfig => {
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
};

describe('exact cache key', () => {
  it('is unchanged by the faster canonical JSON: the same hashes as before (stored entries stay hits)', async () => {
    // Computed with the previous implementation (a work item per member); a change here loses every stored entry.
    const body = {
      model: 'small',
      messages: [
        { role: 'user', content: 'Grüße, "world" 😀\n' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
      ],
      temperature: 0,
      max_tokens: 5,
      stream: true,
      user: 'u',
      seed: null,
      stop: ['.', '\u2028'],
      top_p: 0.5,
      extra: { z: [1, 2.5, -0, 1e21, true, false, null], a: {} },
    };
    expect(await exactKeyHash('tenant-a', 'chat', 'llama-3.1-8b', body)).toBe('8f430042592ea0cae3452b8e7973e5356f12c707880efe4d55c7e114d34396e6');
    expect(await exactKeyHash('tenant-b', 'chat', 'llama-3.1-8b', body)).toBe('7ecb6da839ac8b6853fd17dbf8e12fe502aee3a5507c43587d3233c7168b2308');
    expect(await exactKeyHash('tenant-a', 'embeddings', 'bge-small-en', { model: 'e', input: ['a', 'b'], encoding_format: 'float' })).toBe(
      '3c922632c72e8d7ad08170f2c25dfd8e3b69b2896f7b33aaa71a6ad882848207',
    );
  });

  it('canonicalJson agrees with the recursive definition on 2,000 random values', () => {
    const rnd = prng(16);
    for (let i = 0; i < 2_000; i++) {
      const v = randomValue(rnd, 5);
      expect(canonicalJson(v)).toBe(reference(v));
    }
    // Key order and undefined members do not matter; anything else does.
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: undefined }] })).toBe(canonicalJson({ a: [1, { d: 2 }], b: 1 }));
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
    expect(canonicalJson({ a: null })).not.toBe(canonicalJson({}));
  });

  it('sha256Hex gives the standard digests, in lower-case hex', async () => {
    expect(await sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(await sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hex(new Uint8Array([0, 1, 15, 16, 171, 255]))).toBe('00010f10abff');
  });

  it("keeps tenants apart: one tenant's stored answer is never another's hit", async () => {
    const cfg = compiled(baseConfig());
    const store = new MemoryStore({ maxBytes: 1 << 20 });
    const body = { model: 'small', messages: [{ role: 'user', content: `isolation ${crypto.randomUUID()}` }], temperature: 0 };
    const route = resolveRoute(cfg, 'demo', body, 'chat', null);
    const ask = (tenantId: string) => exactCache({ config: cfg, env: {}, ctx: { waitUntil() {} }, tenantId, endpoint: 'chat', body, route, headers: new Headers(), store });
    const answer = { v: 1, endpoint: 'chat', model: 'm', choices: [{ index: 0, text: 'for demo only', finish_reason: 'stop' }], usage: null };
    await store.put(`exact:demo:${await exactKeyHash('demo', 'chat', 'llama-3.1-8b', body)}`, JSON.stringify(answer), 60);
    expect((await ask('demo')).status).toBe('hit');
    expect((await ask('acme')).status).toBe('miss');
    expect(await exactKeyHash('demo', 'chat', 'llama-3.1-8b', body)).not.toBe(await exactKeyHash('acme', 'chat', 'llama-3.1-8b', body));
  });
});

describe('exact cache: a streamed answer is stored after its last chunk', () => {
  it('builds and stores the answer a microtask after [DONE], not inside the relay callback', async () => {
    const cfg = compiled(baseConfig());
    const store = new MemoryStore({ maxBytes: 1 << 20 });
    const body = { model: 'small', messages: [{ role: 'user', content: `stream ${crypto.randomUUID()}` }], temperature: 0, stream: true };
    const route = resolveRoute(cfg, 'demo', body, 'chat', null);
    const seen: unknown[] = [];
    const cache = await exactCache({ config: cfg, env: {}, ctx: { waitUntil() {} }, tenantId: 'demo', endpoint: 'chat', body, route, headers: new Headers(), store, onAnswer: (a) => seen.push(a) });
    const key = `exact:demo:${await exactKeyHash('demo', 'chat', 'llama-3.1-8b', body)}`;
    expect(cache.status).toBe('miss');
    cache.settle({ response: new Response('', { status: 200 }), servedModel: 'llama-3.1-8b', degraded: false });
    cache.onStreamEvent!(JSON.stringify({ model: 'm', choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: 'stop' }] }));
    cache.onStreamEvent!('[DONE]');
    expect(store.getSync(key)).toBeNull(); // not yet: the relay's [DONE] goes out first
    expect(seen).toEqual([]);
    await backgroundSettled();
    expect(JSON.parse(store.getSync(key)!.value)).toEqual({ v: 1, endpoint: 'chat', model: 'm', choices: [{ index: 0, text: 'Hi', finish_reason: 'stop' }], usage: null });
    expect(seen).toHaveLength(1);
  });
});

describe('CacheApiStore: the Cache is opened once per store', () => {
  afterEach(() => vi.restoreAllMocks());

  it('opens its named cache on first use only, and works from later calls as from the first', async () => {
    const open = vi.spyOn(caches, 'open');
    const store = new CacheApiStore({ cacheName: `once-${crypto.randomUUID()}` });
    const key = `k-${crypto.randomUUID()}`;
    expect(await store.get(key)).toBeNull();
    await store.put(key, 'v1', 60);
    expect((await store.get(key))?.value).toBe('v1');
    await store.delete(key);
    expect(await store.get(key)).toBeNull();
    expect(open).toHaveBeenCalledTimes(1);
  });

  it('caches.default is never opened; a failed open is not kept (the next call opens again)', async () => {
    const open = vi.spyOn(caches, 'open');
    const key = `d-${crypto.randomUUID()}`;
    const byDefault = new CacheApiStore({ cacheName: 'default' });
    await byDefault.put(key, 'dv', 60);
    expect((await byDefault.get(key))?.value).toBe('dv');
    expect(open).not.toHaveBeenCalled();

    open.mockRejectedValueOnce(new Error('no cache today'));
    const store = new CacheApiStore({ cacheName: `retry-${crypto.randomUUID()}` });
    await expect(store.get(key)).rejects.toThrow('no cache today');
    await store.put(key, 'v', 60);
    expect((await store.get(key))?.value).toBe('v');
    expect(open).toHaveBeenCalledTimes(2);
  });
});
