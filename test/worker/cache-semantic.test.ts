import { env as testEnv, runInDurableObject } from 'cloudflare:test';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import { semanticCache } from '../../worker/cache/semantic/semantic';
import { DurableObjectSemanticIndex, STORE_BATCH_MAX, type SemanticIndexStore, type SemanticQuery } from '../../worker/cache/semantic/index-store';
import type { SemanticIndex } from '../../worker/env';
import { localEmbedding } from '../../worker/cache/semantic/local-embedding';
import { upstashHealth } from '../../worker/cache/upstash-health';
import type { Env } from '../../worker/env';
import { resolveRoute } from '../../worker/routing/resolve-model';
import { chatCount, resetRouting, stored } from './cache-exact-suite';
import { sse } from '../support/sse';
import { simulatedConfig, type Sim } from './sims';
import { baseConfig, call, chat, createKey } from './support';
import { ownVectorIndex, type OwnVectorIndex } from './upstash-vector-support';
import { uid } from '../support/uid';

// The semantic cache through the whole Worker, with real Durable Objects and simulators: the
// embedded path (SemanticIndex DO, local lexical embedding) and the Upstash Vector path (the real
// @upstash/vector client against the contract stand-in).

interface World {
  env: Env;
  sims: Record<string, Sim>;
  keys: Record<'a' | 'b', string>;
  tenants: Record<'a' | 'b', string>;
}


async function world(patch: (cfg: Record<string, any>) => void = () => {}, extraEnv: Record<string, unknown> = {}): Promise<World> {
  const { cfg, sims } = await simulatedConfig();
  const run = uid();
  const tenants = { a: `sa-${run}`, b: `sb-${run}` };
  for (const t of Object.values(tenants)) cfg.tenants[t] = { models: ['*'] };
  cfg.cache = { ...cfg.cache, tiers: { ...cfg.cache?.tiers, fast: { semantic: true }, balanced: { semantic: false } } };
  patch(cfg);
  const env = { ...(testEnv as unknown as Env), ...extraEnv, ROUTER: cfg } as Env;
  const [a, b] = await Promise.all([createKey(tenants.a, env), createKey(tenants.b, env)]);
  return { env, sims, keys: { a: a.key, b: b.key }, tenants };
}

const ask = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'small', temperature: 0, max_tokens: 16, messages: [{ role: 'user', content }], ...extra });
const contentOf = async (res: Response) => ((await res.json()) as any).choices[0].message.content as string;
const indexSize = (env: Env, tenant: string) => env.SEMANTIC_INDEX.get(env.SEMANTIC_INDEX.idFromName(tenant)).size();

describe('semantic cache, embedded (Durable Object index, local embedding)', () => {
  let w: World;
  let us8b: Sim;
  beforeAll(async () => {
    w = await world();
    us8b = w.sims['vllm-us-east-8b']!;
  });
  beforeEach(() => resetRouting(w.env));

  it('a paraphrase of an earlier deterministic request is a semantic hit with its content; it never goes upstream', async () => {
    const topic = uid().replace(/\d/g, 'x');
    const first = await chat(w.keys.a, ask(`How do I reset my password for the ${topic} portal?`), { env: w.env });
    expect(first.headers.get('x-router-cache')).toBe('miss');
    const content = await contentOf(first);
    await stored();
    expect(await indexSize(w.env, w.tenants.a)).toBeGreaterThan(0);

    const before = await chatCount(us8b);
    const hit = await chat(w.keys.a, ask(`how can i reset the password for the ${topic} portal`), { env: w.env });
    expect(hit.status).toBe(200);
    expect(hit.headers.get('x-router-cache')).toBe('semantic-hit');
    expect(Number(hit.headers.get('age'))).toBeGreaterThanOrEqual(0);
    expect(Number(hit.headers.get('x-router-similarity'))).toBeGreaterThanOrEqual(0.95);
    expect(hit.headers.get('x-router-model')).toBe('llama-3.1-8b');
    expect(hit.headers.get('x-router-tier')).toBe('fast');
    expect(hit.headers.get('x-router-attempts')).toBe('0');
    expect(hit.headers.get('x-router-backend')).toBe('none');
    expect(await contentOf(hit)).toBe(content);

    const streamed = await chat(w.keys.a, ask(`How can I reset my password for the ${topic} portal, please?`, { stream: true }), { env: w.env });
    expect(streamed.headers.get('x-router-cache')).toBe('semantic-hit');
    const { events, done } = await sse(streamed);
    expect(done).toBe(true);
    expect(events.map((e) => e.choices[0]?.delta?.content ?? '').join('')).toBe(content);
    expect(await chatCount(us8b)).toBe(before);
  });

  it('"what is 2+2" never answers "what is 2+3"', async () => {
    const tag = uid().replace(/\d/g, 'q');
    const before = await chatCount(us8b);
    const four = await chat(w.keys.a, ask(`what is 2+2 (${tag})`), { env: w.env });
    await four.text();
    await stored();
    const five = await chat(w.keys.a, ask(`what is 2+3 (${tag})`), { env: w.env });
    expect(five.headers.get('x-router-cache')).toBe('miss');
    await five.text();
    expect(await chatCount(us8b)).toBe(before + 2);
  });

  it('never across tenants, system prompts, conversation depths or parameters', async () => {
    const topic = uid().replace(/\d/g, 'z');
    const q = `Explain how photosynthesis works in ${topic} plants.`;
    const p = `Can you explain how photosynthesis works in ${topic} plants?`;
    await (await chat(w.keys.a, ask(q), { env: w.env })).text();
    const sys = (content: string) => ({ role: 'system', content });
    await (await chat(w.keys.a, { ...ask(q), messages: [sys('Be brief.'), { role: 'user', content: q }] }, { env: w.env })).text();
    await stored();
    const status = async (key: string, body: Record<string, unknown>) => {
      const res = await chat(key, body, { env: w.env });
      await res.text();
      return res.headers.get('x-router-cache');
    };
    expect(await status(w.keys.a, ask(p))).toBe('semantic-hit'); // the control
    expect(await status(w.keys.b, ask(p))).toBe('miss'); // another tenant
    expect(await status(w.keys.a, { ...ask(p), messages: [sys('Be brief.'), { role: 'user', content: p }] })).toBe('semantic-hit');
    expect(await status(w.keys.a, { ...ask(p), messages: [sys('Answer in French.'), { role: 'user', content: p }] })).toBe('miss'); // another system prompt
    const deeper = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: p }];
    expect(await status(w.keys.a, { ...ask(p), messages: deeper })).toBe('miss'); // another depth
    expect(await status(w.keys.a, ask(p, { max_tokens: 17 }))).toBe('miss'); // other parameters
    expect(await status(w.keys.a, ask(p, { model: 'llama-3.1-8b' }))).toBe('semantic-hit'); // the resolved model counts, not its name
  });

  it('a tier without `semantic` neither looks up nor stores; bypass and no-store skip it too', async () => {
    const topic = uid().replace(/\d/g, 'k');
    const tenant = w.tenants.b;
    const sizeBefore = await indexSize(w.env, tenant);
    const big = (content: string) => ask(content, { model: 'large' }); // the balanced tier
    await (await chat(w.keys.b, big(`How do I bake bread with ${topic} flour?`), { env: w.env })).text();
    await stored();
    const res = await chat(w.keys.b, big(`how can i bake bread with ${topic} flour`), { env: w.env });
    expect(res.headers.get('x-router-cache')).toBe('miss');
    await res.text();
    await (await chat(w.keys.b, ask(`Why is the ${topic} sky blue?`), { env: w.env, headers: { 'x-router-cache': 'bypass' } })).text();
    await (await chat(w.keys.b, ask(`Why is the ${topic} sea blue?`), { env: w.env, headers: { 'cache-control': 'no-store' } })).text();
    await (await chat(w.keys.b, ask(`Why is the ${topic} lake blue?`, { temperature: 0.7 }), { env: w.env })).text();
    await stored();
    expect(await indexSize(w.env, tenant)).toBe(sizeBefore);
  });

  it('Cache-Control: no-cache skips the lookup but stores the fresh answer', async () => {
    const topic = uid().replace(/\d/g, 'v');
    await (await chat(w.keys.a, ask(`List the planets of the ${topic} system.`), { env: w.env })).text();
    await stored();
    const size = await indexSize(w.env, w.tenants.a);
    const before = await chatCount(us8b);
    const refreshed = await chat(w.keys.a, ask(`list the planets of the ${topic} system`), { env: w.env, headers: { 'cache-control': 'no-cache' } });
    expect(refreshed.headers.get('x-router-cache')).toBe('miss'); // a semantic hit without no-cache
    await refreshed.text();
    await stored();
    expect(await chatCount(us8b)).toBe(before + 1);
    expect(await indexSize(w.env, w.tenants.a)).toBe(size + 1);
  });

  it('completions are cached semantically too; embeddings never are', async () => {
    const post = (path: string, body: unknown) =>
      call(path, { method: 'POST', headers: { authorization: `Bearer ${w.keys.a}`, 'content-type': 'application/json' }, body: JSON.stringify(body), env: w.env });
    const topic = uid().replace(/\d/g, 'w');
    const first = await post('/v1/completions', { model: 'small', prompt: `Once upon a time in the ${topic} kingdom`, max_tokens: 8, temperature: 0 });
    const text = ((await first.json()) as any).choices[0].text;
    await stored();
    const hit = await post('/v1/completions', { model: 'small', prompt: `once upon a time, in the ${topic} kingdom`, max_tokens: 8, temperature: 0 });
    expect(hit.headers.get('x-router-cache')).toBe('semantic-hit');
    expect(((await hit.json()) as any).choices[0].text).toBe(text);
    const emb = await post('/v1/embeddings', { model: 'bge-small-en', input: `hello ${topic}` });
    expect(emb.headers.get('x-router-cache')).toBe('miss');
  });
});

describe('SemanticIndex Durable Object', () => {
  const stub = () => (testEnv as unknown as Env).SEMANTIC_INDEX.get((testEnv as unknown as Env).SEMANTIC_INDEX.idFromName(`do-${uid()}`));
  const entry = (id: string, text: string, now: number, extra: Partial<{ ttlSeconds: number; maxEntries: number; scope: string; depth: number }> = {}) => ({
    id,
    scope: 's',
    vector: localEmbedding(text)!,
    text,
    depth: 1,
    answer: `answer to ${text}`,
    ttlSeconds: 60,
    maxEntries: 100,
    now,
    ...extra,
  });
  const look = (text: string, now: number, extra: Partial<{ scope: string; depth: number; minSimilarity: number }> = {}) => ({
    scope: 's',
    vector: localEmbedding(text)!,
    text,
    depth: 1,
    minSimilarity: 0.95,
    topK: 3,
    now,
    ...extra,
  });

  it('answers the nearest accepted entry of the scope, within its TTL; refuses what the guards refuse', async () => {
    const idx = stub();
    await idx.store(entry('1', 'How do I reset my password?', 1_000));
    await idx.store(entry('2', 'What is 2+2?', 1_000));
    expect((await idx.lookup(look('how can i reset the password', 2_000))).match).toMatchObject({ id: '1', answer: 'answer to How do I reset my password?', storedAt: 1_000 });
    expect((await idx.lookup(look('how can i reset the password', 2_000, { scope: 'other' }))).match).toBeNull();
    expect((await idx.lookup(look('how can i reset the password', 2_000, { depth: 3 }))).match).toBeNull();
    expect((await idx.lookup(look('how can i reset the password', 61_000))).match).toBeNull(); // expired
    const refused = await idx.lookup(look('What is 2+3?', 2_000, { minSimilarity: 0.5 }));
    expect(refused).toMatchObject({ match: null, above: 1, refused: ['numbers'] });
  });

  it('keeps its in-memory copy of a scope in step with what it stores and replaces', async () => {
    const idx = stub();
    await idx.store(entry('1', 'How do I reset my password?', 1_000));
    expect((await idx.lookup(look('how can i reset my password', 1_500))).match?.id).toBe('1'); // the scope is now in memory
    await idx.store(entry('2', 'Where can I find my invoices?', 2_000));
    expect((await idx.lookup(look('where do i find my invoice', 2_500))).match?.id).toBe('2');
    await idx.store({ ...entry('1', 'Why is the sky blue?', 3_000) }); // the same id, another prompt
    expect((await idx.lookup(look('how can i reset my password', 3_500))).match).toBeNull();
    expect((await idx.lookup(look('why is the sky blue', 3_500))).match).toMatchObject({ id: '1', storedAt: 3_000 });
    expect(await idx.size()).toBe(2);
  });

  it('stays bounded: expired entries go on store, then the least recently used above max_entries', async () => {
    const idx = stub();
    for (let i = 0; i < 5; i++) await idx.store(entry(`e${i}`, `topic number ${'abcde'[i]} alpha`, 1_000 + i, { ttlSeconds: 10 }));
    expect(await idx.size()).toBe(5);
    expect((await idx.lookup(look('topic number a alpha', 2_000))).match?.id).toBe('e0'); // e0 is now the most recently used
    expect(await idx.store(entry('f', 'fresh entry', 3_000, { maxEntries: 3, ttlSeconds: 10 }))).toEqual({ evicted: 3 });
    expect(await idx.size()).toBe(3);
    expect((await idx.lookup(look('topic number a alpha', 3_500))).match?.id).toBe('e0');
    expect((await idx.lookup(look('topic number b alpha', 3_500))).match).toBeNull();
    expect(await idx.store(entry('g', 'later entry', 20_000, { maxEntries: 3 }))).toEqual({ evicted: 3 }); // the rest expired
    expect(await idx.size()).toBe(1);
  });

  it('above max_entries evicts a fiftieth of it at once, least recently used first, never holding more than max_entries', async () => {
    const idx = stub();
    const text = (i: number) => `subject ${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))} item`;
    for (let i = 0; i < 100; i++) expect(await idx.store(entry(`e${i}`, text(i), 1_000 + i))).toEqual({ evicted: 0 });
    expect((await idx.lookup(look(text(0), 2_000))).match?.id).toBe('e0'); // e0 and e2 are now the most recently used
    expect((await idx.lookup(look(text(2), 2_001))).match?.id).toBe('e2');
    expect(await idx.store(entry('e0', text(0), 2_002))).toEqual({ evicted: 0 }); // a repeat replaces, adds nothing
    expect(await idx.size()).toBe(100);
    // The 101st: down to 98 (100 − 100/50): the three least recently used (e1, e3, e4) go.
    expect(await idx.store(entry('n0', 'fresh one', 3_000))).toEqual({ evicted: 3 });
    expect(await idx.size()).toBe(98);
    for (const [i, held] of [[0, true], [1, false], [2, true], [3, false], [4, false], [5, true]] as const) {
      expect((await idx.lookup(look(text(i), 3_500))).match?.id ?? null).toBe(held ? `e${i}` : null);
    }
    expect(await idx.store(entry('n1', 'fresh two', 4_000))).toEqual({ evicted: 0 });
    expect(await idx.store(entry('n2', 'fresh three', 4_001))).toEqual({ evicted: 0 });
    expect(await idx.store(entry('n3', 'fresh four', 4_002))).toEqual({ evicted: 3 });
    const rows = await runInDurableObject(idx, (_: unknown, state: DurableObjectState) => state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM entries').one().n);
    expect(rows).toBe(98);
    expect(await idx.size()).toBe(98);
  });
});

describe('embedded index: stores batched per tenant', () => {
  const env = () => testEnv as unknown as Env;
  /** The real namespace, counting the calls the index makes to each tenant's object. */
  function counting() {
    const ns = env().SEMANTIC_INDEX;
    const calls = { store: 0, batches: [] as number[] };
    const wrapped = {
      idFromName: (name: string) => ns.idFromName(name),
      get: (id: DurableObjectId) => {
        const s = ns.get(id);
        return {
          store: (e: Parameters<typeof s.store>[0]) => (calls.store++, s.store(e)),
          storeMany: (es: Parameters<typeof s.storeMany>[0]) => (calls.batches.push(es.length), s.storeMany(es)),
        };
      },
    } as unknown as DurableObjectNamespace<SemanticIndex>;
    return { ns: wrapped, calls };
  }
  const input = (tenantId: string, i: number, background?: (p: Promise<unknown>) => void) => ({
    tenantId,
    scope: 's',
    id: `id-${i}`,
    text: `question number ${i} about topic ${i * 7}`,
    depth: 1,
    answer: `answer ${i}`,
    ttlSeconds: 60,
    vector: async () => localEmbedding(`question number ${i} about topic ${i * 7}`),
    now: Date.now(),
    ...(background ? { background } : {}),
  });

  it("several requests' stores reach the object in one call, none lost; past STORE_BATCH_MAX in more; without a waitUntil, one call each", async () => {
    const { ns, calls } = counting();
    const index = new DurableObjectSemanticIndex(ns, 'emb', 1_000);
    const work: Promise<unknown>[] = [];
    const tenant = `batch-${uid()}`;
    // Ten requests store, each handing its own waitUntil.
    await Promise.all(Array.from({ length: 10 }, (_, i) => index.store(input(tenant, i, (p) => work.push(p)))));
    expect(calls.batches).toEqual([]); // nothing sent yet: the batch waits for more
    await Promise.all(work);
    expect(calls).toEqual({ store: 0, batches: [10] });
    expect(await indexSize(env(), tenant)).toBe(10);

    // More than STORE_BATCH_MAX waiting: a full batch leaves at once, the rest after the wait.
    work.length = 0;
    await Promise.all(Array.from({ length: STORE_BATCH_MAX + 6 }, (_, i) => index.store(input(tenant, 100 + i, (p) => work.push(p)))));
    while (work.length) await Promise.all(work.splice(0));
    expect(calls.batches).toEqual([10, STORE_BATCH_MAX, 6]);
    expect(await indexSize(env(), tenant)).toBe(10 + STORE_BATCH_MAX + 6);

    // Tenants never share a batch.
    const other = `batch-${uid()}`;
    work.length = 0;
    await Promise.all([index.store(input(tenant, 500, (p) => work.push(p))), index.store(input(other, 501, (p) => work.push(p)))]);
    while (work.length) await Promise.all(work.splice(0));
    expect(calls.batches.slice(3)).toEqual([1, 1]);
    expect(await indexSize(env(), other)).toBe(1);

    await index.store(input(tenant, 600));
    expect(calls.store).toBe(1);
  });
});

describe('semanticCache(): what a hit reports', () => {
  const compiled = (cfg: unknown): CompiledConfig => {
    const r = compileConfig(cfg);
    if (!r.ok) throw new Error(r.errors.join('\n'));
    return r.config;
  };

  it('a hit costs nothing and records its savings like the exact cache, source "semantic"', async () => {
    const cfg = compiled({ ...baseConfig(), cache: { tiers: { fast: { semantic: true, semantic_threshold: 0.9 } } } });
    const body = { model: 'small', temperature: 0, messages: [{ role: 'user', content: 'How do I boil an egg?' }] };
    const seen: SemanticQuery[] = [];
    const answer = { v: 1, endpoint: 'chat', model: 'm', choices: [{ index: 0, text: 'Ten minutes.', finish_reason: 'stop' }], usage: { prompt_tokens: 1_000_000, completion_tokens: 1_000_000, total_tokens: 2_000_000 } };
    const index: SemanticIndexStore = {
      name: 'fake',
      lookup: async (q) => {
        seen.push(q);
        return { similarity: 0.971, text: 'How should I boil an egg?', answer: JSON.stringify(answer), storedAt: 10_000 };
      },
      store: async () => {},
    };
    const r = await semanticCache({ config: cfg, env: {}, ctx: { waitUntil() {} }, tenantId: 'demo', endpoint: 'chat', body, route: resolveRoute(cfg, 'demo', body, 'chat', null), headers: new Headers(), index, now: () => 25_500 });
    expect(seen[0]).toMatchObject({ tenantId: 'demo', text: 'How do I boil an egg?', depth: 1, threshold: 0.9, topK: 3, now: 25_500 });
    expect(r.hit!.savings).toEqual({ billable: false, source: 'semantic', model: 'llama-3.1-8b', saved_usage: answer.usage, saved_cost_usd: 0.05 + 0.08 });
    const h = r.hit!.response.headers;
    expect([h.get('x-router-cache'), h.get('age'), h.get('x-router-similarity'), h.get('x-router-tier'), h.get('x-router-attempts')]).toEqual(['semantic-hit', '15', '0.971', 'fast', '0']);
  });

  it('validates [cache.semantic] and the tier keys', () => {
    const errors = (patch: Record<string, unknown>) => {
      const r = compileConfig({ ...baseConfig(), ...patch });
      return r.ok ? [] : r.errors;
    };
    expect(errors({ cache: { tiers: { fast: { semantic: true, semantic_threshold: 0.9 } }, semantic: { embedding_model: 'bge-small-en' } } })).toEqual([]);
    expect(errors({ cache: { tiers: { fast: { semantic_threshold: 0.4 } } } }).join()).toMatch(/semantic_threshold/);
    expect(errors({ cache: { semantic: { embedding_model: 'nope' } } }).join()).toMatch(/embedding_model.*unknown model/);
    expect(errors({ cache: { semantic: { embedding_model: 'small' } } }).join()).toMatch(/not an embedding model/);
    expect(errors({ cache: { semantic: { index: 'upstash' } } }).join()).toMatch(/vector_url/);
    expect(errors({ upstash: { vector_url: 'https://v.upstash.io', vector_token_secret: 'lower' } }).join()).toMatch(/UPPER_SNAKE/);
    expect(compiled({ ...baseConfig(), cache: {} }).raw.cache.semantic).toMatchObject({ index: 'auto', max_entries_per_tenant: 5_000, top_k: 3 });
    expect(compiled({ ...baseConfig(), cache: { tiers: { fast: {} } } }).raw.cache.tiers.fast).toEqual({ semantic: false, semantic_threshold: 0.95 });
  });
});

describe('semantic cache with an embedding model (the simulator embeds with meaning)', () => {
  let w: World;
  beforeAll(async () => {
    w = await world((cfg) => {
      cfg.cache.semantic = { embedding_model: 'bge-small-en' };
    });
  });

  it('a paraphrase with other words hits through the embedding backend; a different question does not', async () => {
    const us8b = w.sims['vllm-us-east-8b']!;
    // The scope (system prompt) keeps this test's prompts apart from the others' in the tenant's index.
    const scoped = (content: string, topic: string) => ({ ...ask(content), messages: [{ role: 'system', content: `scope ${topic}` }, { role: 'user', content }] });
    const topic = uid();
    await (await chat(w.keys.a, scoped('How do I grow tomatoes at home?', topic), { env: w.env })).text();
    await stored();
    const embeddingsBefore = (await us8b.stats()).requests.embeddings as number;
    const paraphrase = await chat(w.keys.a, scoped('How can I grow my own tomatoes?', topic), { env: w.env });
    expect(paraphrase.headers.get('x-router-cache')).toBe('semantic-hit');
    const similarity = Number(paraphrase.headers.get('x-router-similarity'));
    expect(similarity).toBeGreaterThanOrEqual(0.95); // the tier's default threshold
    expect(similarity).toBeLessThan(1); // other words: not the same vector
    const other = await chat(w.keys.a, scoped('What is the capital of France?', topic), { env: w.env });
    expect(other.headers.get('x-router-cache')).toBe('miss');
    await other.text();
    expect((await us8b.stats()).requests.embeddings).toBeGreaterThan(embeddingsBefore); // the vectors came from the backend
  });

  it('an embedding backend that fails is a miss, never an error', async () => {
    const us8b = w.sims['vllm-us-east-8b']!;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    await us8b.faults({ error_rate: 1 });
    try {
      const embeddingsBefore = (await us8b.stats()).requests.embeddings as number;
      const res = await chat(w.keys.a, ask(`Why is the sky blue? ${uid()}`), { env: w.env });
      expect(res.status).toBe(200); // answered by another region's 8B; the embedding had only this backend
      expect(res.headers.get('x-router-cache')).toBe('miss');
      expect((await us8b.stats()).requests.embeddings).toBeGreaterThan(embeddingsBefore);
    } finally {
      await us8b.faults({});
      warn.mockRestore();
    }
  });
});

describe('semantic cache on Upstash Vector (the real client against the REST contract stand-in)', () => {
  let w: World;
  let vector: OwnVectorIndex;
  beforeAll(async () => {
    vector = await ownVectorIndex();
    w = await world(
      (cfg) => {
        // retry_after_ms 0: every request tries Upstash again, so the outage test sees each step.
        cfg.upstash = { vector_url: vector.url, vector_token_secret: 'UPSTASH_VECTOR_TEST_TOKEN', key_prefix: `t${uid()}:`, retry_after_ms: 0, timeout_ms: 2_000 };
      },
      { UPSTASH_VECTOR_TEST_TOKEN: vector.token },
    );
  });
  beforeEach(async () => {
    await vector.start();
    await resetRouting(w.env);
  });

  it('stores and answers through Upstash (upsert-data, query-data in the tenant namespace), not the Durable Object', async () => {
    const topic = uid().replace(/\d/g, 'u');
    const first = await chat(w.keys.a, ask(`How do I make a ${topic} sourdough starter?`), { env: w.env });
    const content = await contentOf(first);
    await stored();
    const hit = await chat(w.keys.a, ask(`how do i make a ${topic} sourdough starter`), { env: w.env });
    expect(hit.headers.get('x-router-cache')).toBe('semantic-hit');
    expect(await contentOf(hit)).toBe(content);
    const other = await chat(w.keys.b, ask(`how do i make a ${topic} sourdough starter`), { env: w.env });
    expect(other.headers.get('x-router-cache')).toBe('miss');
    await other.text();
    const near = await chat(w.keys.a, ask(`How do I make 2 ${topic} sourdough starters?`), { env: w.env });
    expect(near.headers.get('x-router-cache')).toBe('miss'); // the guards run on Upstash's answers too
    await near.text();
    const { stats } = await vector.state();
    expect(stats.byCommand['upsert-data']).toBeGreaterThanOrEqual(1);
    expect(stats.byCommand['query-data']).toBeGreaterThanOrEqual(3);
    expect(stats.unauthorized).toBe(0);
    expect(await indexSize(w.env, w.tenants.a)).toBe(0);
  });

  it('Upstash Vector down: requests still succeed on the embedded index, counted and logged; Upstash serves again once back', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const topic = uid().replace(/\d/g, 'd');
    await vector.stop();
    const during = await chat(w.keys.a, ask(`What are the ${topic} opening hours?`), { env: w.env });
    expect(during.status).toBe(200);
    expect(during.headers.get('x-router-cache')).toBe('miss');
    const content = await contentOf(during);
    await stored();
    expect(await indexSize(w.env, w.tenants.a)).toBe(1); // the write went to the Durable Object
    const hit = await chat(w.keys.a, ask(`what are the ${topic} opening hours??`), { env: w.env });
    expect(hit.headers.get('x-router-cache')).toBe('semantic-hit'); // answered by the embedded index
    expect(await contentOf(hit)).toBe(content);
    expect(upstashHealth.fallbackCount('semantic-cache')).toBeGreaterThanOrEqual(2);
    expect(upstashHealth.snapshot()).toContainEqual(expect.objectContaining({ component: 'semantic-cache', errors: expect.toSatisfy((n: number) => n > 0) }));
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('upstash unavailable'));

    await vector.start();
    const back = await chat(w.keys.a, ask(`what are the ${topic} opening hours?!`), { env: w.env });
    expect(back.headers.get('x-router-cache')).toBe('miss'); // Upstash never saw the entry written during the outage
    await back.text();
    warn.mockRestore();
  });
});
