import { createExecutionContext, env as testEnv, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { SemanticIndex } from '../../durable-objects/semantic-index';
import worker from '../../worker/index';
import { beforeEach, describe, expect, it } from 'vitest';
import { localEmbedding } from '../../worker/cache/semantic/local-embedding';
import { LocalSemanticCopy, localSemanticCopy } from '../../worker/cache/semantic/local-copy';
import type { Env } from '../../worker/env';
import { backgroundSettled } from '../../worker/isolate/background';
import { resetIsolate } from '../../worker/isolate/registry';
import type { SemanticHotEntry } from '../../worker/protocol/semantic-index';
import pairsFixture from '../fixtures/semantic-pairs.json';
import { resetRouting } from './cache-exact-suite';
import { simulatedConfig, type Sim } from './sims';
import { chat, createKey } from './support';
import { uid } from '../support/uid';

// [cache.semantic].lookup = "local" (the default): a warm isolate answers semantic hits from its
// copy of the tenant's hottest entries, with no call to the SemanticIndex object on the request
// path; a cold copy fills in the background; TTLs, tenants and the guards hold as with the object.

const env = testEnv as unknown as Env;

/**
 * SEMANTIC_INDEX with every method call counted by name (each is a remote hop on Cloudflare). While
 * `gate.held` is set, lookup and hottest calls wait for it (an object that does not answer yet).
 */
function countingIndex(gate: { held: Promise<void> | null } = { held: null }): { ns: DurableObjectNamespace; calls: Record<string, number>; total: () => number } {
  const calls: Record<string, number> = {};
  const real = env.SEMANTIC_INDEX;
  const ns = {
    idFromName: (n: string) => real.idFromName(n),
    get: (id: DurableObjectId) => {
      const stub = real.get(id) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      return new Proxy(stub, {
        get: (target, prop) => {
          if (typeof prop !== 'string') return undefined;
          return async (...args: unknown[]) => {
            calls[prop] = (calls[prop] ?? 0) + 1;
            if (gate.held && (prop === 'lookup' || prop === 'hottest')) await gate.held;
            return target[prop]!(...args);
          };
        },
      });
    },
  };
  return { ns: ns as unknown as DurableObjectNamespace, calls, total: () => Object.values(calls).reduce((a, b) => a + b, 0) };
}

interface World {
  env: Env;
  sims: Record<string, Sim>;
  keys: Record<'a' | 'b', string>;
  tenants: Record<'a' | 'b', string>;
  counting: ReturnType<typeof countingIndex>;
}

async function world(semantic: Record<string, unknown> = {}, fast: Record<string, unknown> = {}, gate?: { held: Promise<void> | null }): Promise<World> {
  const { cfg, sims } = await simulatedConfig();
  const run = uid();
  const tenants = { a: `la-${run}`, b: `lb-${run}` };
  for (const t of Object.values(tenants)) cfg.tenants[t] = { models: ['*'] };
  // refresh_ms at its maximum: after the first (cold) refresh, no refresh is due during a test.
  cfg.cache = { ...cfg.cache, tiers: { ...cfg.cache?.tiers, fast: { semantic: true, ...fast } }, semantic: { refresh_ms: 600_000, ...semantic } };
  const counting = countingIndex(gate);
  const e = { ...env, SEMANTIC_INDEX: counting.ns, ROUTER: cfg } as unknown as Env;
  const [a, b] = await Promise.all([createKey(tenants.a, e), createKey(tenants.b, e)]);
  return { env: e, sims, keys: { a: a.key, b: b.key }, tenants, counting };
}

const ask = (content: string) => ({ model: 'small', temperature: 0, max_tokens: 16, messages: [{ role: 'user', content }] });

/** One request, answered and read; the index calls made between sending it and reading its body. */
async function send(w: World, key: string, content: string) {
  const before = { ...w.counting.calls };
  const res = await chat(key, ask(content), { env: w.env });
  const body = (await res.json()) as any;
  const during: Record<string, number> = {};
  for (const [k, n] of Object.entries(w.counting.calls)) if (n !== (before[k] ?? 0)) during[k] = n - (before[k] ?? 0);
  return { status: res.status, cache: res.headers.get('x-router-cache'), content: body.choices?.[0]?.message?.content as string, during };
}

/** Tenant a's request through worker.fetch itself: unlike support.ts's chat(), nothing waits for its waitUntil work. */
async function rawChat(w: World, content: string, ctx: ExecutionContext): Promise<Response> {
  const request = new Request('http://router.test/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${w.keys.a}`, 'content-type': 'application/json' },
    body: JSON.stringify(ask(content)),
  });
  return worker.fetch(request as Request<unknown, IncomingRequestCfProperties>, w.env, ctx);
}

/**
 * Runs `fn` in a fresh world whose index object holds every lookup and refresh until `fn` ends, with
 * an execution context nothing waits on (worker.fetch without support.ts's call(), which waits for
 * the request's waitUntil work); then releases the object and lets the background work finish.
 */
async function withObjectHeld(fn: (w: World, ctx: ExecutionContext) => Promise<void>): Promise<World> {
  const gate: { held: Promise<void> | null } = { held: null };
  let release!: () => void;
  const w = await world({}, {}, gate);
  await resetRouting(w.env);
  gate.held = new Promise<void>((r) => (release = r));
  const ctx = createExecutionContext();
  try {
    await fn(w, ctx);
  } finally {
    gate.held = null;
    release();
    await waitOnExecutionContext(ctx);
    await backgroundSettled();
  }
  return w;
}

beforeEach(async () => {
  await backgroundSettled();
});

describe('semantic cache, lookup = "local"', () => {
  it('a warm isolate answers a semantic hit with no call to the index object during the request; "remote" makes one', async () => {
    const topic = uid().replace(/\d/g, 'x');
    for (const mode of ['local', 'remote'] as const) {
      const w = await world({ lookup: mode });
      await resetRouting(w.env);
      const first = await send(w, w.keys.a, `How do I reset my password for the ${topic} portal?`);
      expect(first.cache).toBe('miss');
      await backgroundSettled(); // the store (and, in local mode, the cold copy's refresh)
      const hit = await send(w, w.keys.a, `how can i reset the password for the ${topic} portal`);
      expect(hit.cache).toBe('semantic-hit');
      expect(hit.content).toBe(first.content);
      if (mode === 'local') expect(hit.during).toEqual({});
      else expect(hit.during).toEqual({ lookup: 1 });
      await backgroundSettled();
    }
  });

  it('a local miss goes upstream at once and asks the object only in the background; it learns the match for the next request', async () => {
    const w = await world();
    await resetRouting(w.env);
    const topic = uid().replace(/\d/g, 'y');
    const first = await send(w, w.keys.a, `Where can I find the ${topic} invoices?`);
    await backgroundSettled();
    // Another isolate: the entry is in the object only.
    resetIsolate('semantic-local-copy');
    const calls = w.counting.total();
    const cold = await send(w, w.keys.a, `where do i find the ${topic} invoices`);
    expect(cold.cache).toBe('miss'); // "remote" would have hit: the price of local lookups
    expect(cold.status).toBe(200);
    await backgroundSettled();
    expect(w.counting.calls.lookup).toBeGreaterThanOrEqual(1); // the background lookup that learns the match
    expect(w.counting.total()).toBeGreaterThan(calls);
    const warm = await send(w, w.keys.a, `Where do I find the ${topic} invoices, please?`);
    expect(warm.cache).toBe('semantic-hit');
    expect([first.content, cold.content]).toContain(warm.content); // the learned entry, or the cold request's own
    expect(warm.during).toEqual({});
  });

  it('a warm copy that holds all the object holds answers a miss alone: no background lookup (the object has nothing more)', async () => {
    const w = await world();
    await resetRouting(w.env);
    const topic = uid().replace(/\d/g, 'k');
    await send(w, w.keys.a, `How do I water ${topic} orchids?`); // cold: the refresh, and the object's lookup
    await backgroundSettled();
    expect(localSemanticCopy.tenant(w.tenants.a).behind).toBe(false);
    const lookups = w.counting.calls.lookup ?? 0;
    for (const p of [`Why do ${topic} cats purr?`, `When was the ${topic} bridge built?`]) {
      expect((await send(w, w.keys.a, p)).cache).toBe('miss');
      await backgroundSettled();
    }
    expect(w.counting.calls.lookup ?? 0).toBe(lookups);
    expect((w.counting.calls.store ?? 0) + (w.counting.calls.storeMany ?? 0)).toBeGreaterThanOrEqual(3); // the answers still reach the object (batched per tenant: index-store.ts)
    // Still hits what it holds, with no call.
    const hit = await send(w, w.keys.a, `why do ${topic} cats purr`);
    expect([hit.cache, hit.during]).toEqual(['semantic-hit', {}]);
  });

  it('a copy that dropped entries for room is behind: a miss asks the object in the background and learns what it dropped', async () => {
    const w = await world({ local_bytes: 12_000 }); // two or three entries
    await resetRouting(w.env);
    const topic = uid().replace(/\d/g, 'm');
    const prompts = [`How do I prune ${topic} roses?`, `What do ${topic} owls eat?`, `Where do ${topic} eels spawn?`, `How tall do ${topic} pines grow?`, `Why are ${topic} flamingos pink?`];
    const answers: string[] = [];
    for (const p of prompts) {
      answers.push((await send(w, w.keys.a, p)).content);
      await backgroundSettled();
    }
    expect(localSemanticCopy.size(w.tenants.a)).toBeLessThan(prompts.length);
    expect(localSemanticCopy.tenant(w.tenants.a).behind).toBe(true);
    const lookups = w.counting.calls.lookup ?? 0;
    const again = await send(w, w.keys.a, `how do i prune ${topic} roses`); // the first, long dropped from the copy
    expect(again.cache).toBe('miss'); // in the background (the test above checks that a miss never waits for it)
    await backgroundSettled();
    expect(w.counting.calls.lookup).toBe(lookups + 1);
    const learned = await send(w, w.keys.a, `How do I prune ${topic} roses`);
    expect([learned.cache, learned.during]).toEqual(['semantic-hit', {}]);
    expect([answers[0], again.content]).toContain(learned.content);
  });

  it('a local miss never waits for the object: answered while the object has not answered the lookup or the refresh', async () => {
    await withObjectHeld(async (w, ctx) => {
      const topic = uid().replace(/\d/g, 'g');
      const answer = (async () => {
        const res = await rawChat(w, `How do penguins keep warm in ${topic} winters?`, ctx);
        return { status: res.status, cache: res.headers.get('x-router-cache'), body: (await res.json()) as any };
      })();
      const deadline = new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 10_000));
      const answered = await Promise.race([answer, deadline]);
      expect(answered).not.toBe('stuck');
      if (answered === 'stuck') return;
      expect([answered.status, answered.cache]).toEqual([200, 'miss']);
      expect(answered.body.choices[0].message.content).toEqual(expect.any(String));
      expect(w.counting.calls).toMatchObject({ hottest: 1, lookup: 1 }); // started, not answered yet
    });
  });

  it('one learning lookup per tenant at a time: misses while one is in flight start no other', async () => {
    const w = await withObjectHeld(async (w, ctx) => {
      const topic = uid().replace(/\d/g, 'q');
      const prompts = [`Why do ${topic} cats purr?`, `How far can ${topic} geese fly?`, `When do ${topic} bears sleep?`];
      for (const p of prompts) {
        const res = await rawChat(w, p, ctx);
        expect([res.status, res.headers.get('x-router-cache')]).toEqual([200, 'miss']);
        await res.json();
      }
      // The copy is cold (behind) for all three; the first miss's lookup is still held by the object.
      expect(localSemanticCopy.tenant(w.tenants.a).behind).toBe(true);
      expect(w.counting.calls.lookup).toBe(1);
    });
    expect(localSemanticCopy.tenant(w.tenants.a).learning).toBe(false);
  });

  it("a cold copy fills in the background from the object's hottest entries", async () => {
    const w = await world();
    await resetRouting(w.env);
    const topic = uid().replace(/\d/g, 'z');
    const prompts = [`Why is the ${topic} sky blue?`, `How do volcanoes form on ${topic} island?`, `Explain how rainbows appear over ${topic} lake.`];
    const answers: string[] = [];
    for (const p of prompts) answers.push((await send(w, w.keys.a, p)).content);
    await backgroundSettled();
    resetIsolate('semantic-local-copy'); // a fresh isolate; the objects stay warm
    expect(localSemanticCopy.size(w.tenants.a)).toBe(0);
    const unrelated = await send(w, w.keys.a, `What rhymes with ${topic} orange?`);
    expect(unrelated.cache).toBe('miss');
    await backgroundSettled();
    expect(w.counting.calls.hottest).toBeGreaterThanOrEqual(1);
    expect(localSemanticCopy.size(w.tenants.a)).toBeGreaterThanOrEqual(3); // the refresh, not the (unmatched) lookup
    const hit = await send(w, w.keys.a, `how do volcanoes form on ${topic} island`);
    expect(hit.cache).toBe('semantic-hit');
    expect(hit.content).toBe(answers[1]);
    expect(hit.during).toEqual({});
  });

  it('tenants never mix: another tenant neither hits nor receives the first tenant\'s entries', async () => {
    const w = await world();
    await resetRouting(w.env);
    const topic = uid().replace(/\d/g, 'q');
    const a = await send(w, w.keys.a, `How do I bake bread with ${topic} flour?`);
    await backgroundSettled();
    const b = await send(w, w.keys.b, `how can i bake bread with ${topic} flour`);
    expect(b.cache).toBe('miss');
    expect(b.content).not.toBe(a.content);
    await backgroundSettled(); // b's cold refresh and its background lookup ran against b's object
    expect(localSemanticCopy.size(w.tenants.a)).toBe(1);
    expect(localSemanticCopy.size(w.tenants.b)).toBe(1); // its own answer only
    const bAgain = await send(w, w.keys.b, `How can I bake bread with ${topic} flour?`);
    expect([bAgain.cache, bAgain.content]).toEqual(['semantic-hit', b.content]);
    const aAgain = await send(w, w.keys.a, `How can I bake bread with ${topic} flour?`);
    expect([aAgain.cache, aAgain.content]).toEqual(['semantic-hit', a.content]);
  });

  it('an entry past its TTL never answers, from the copy or the object', async () => {
    const w = await world({}, { ttl_seconds: 1 });
    await resetRouting(w.env);
    const topic = uid().replace(/\d/g, 'r');
    await send(w, w.keys.a, `List the moons of ${topic} planet.`);
    await backgroundSettled();
    expect((await send(w, w.keys.a, `list the moons of ${topic} planet`)).cache).toBe('semantic-hit');
    const stored = Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, stored + 1_100 - Date.now())));
    const late = await send(w, w.keys.a, `List the moons of the ${topic} planet!`);
    expect(late.cache).toBe('miss');
    await backgroundSettled();
    // The expired entry left the copy, and the object did not teach it back: only the late answer is held.
    expect(localSemanticCopy.size(w.tenants.a)).toBe(1);
  });
});

describe('LocalSemanticCopy', () => {
  const entry = (id: string, text: string, now: number, extra: Partial<SemanticHotEntry> = {}): SemanticHotEntry => ({
    id,
    scope: 's',
    vector: localEmbedding(text)!,
    text,
    depth: 1,
    answer: `answer to ${text}`,
    storedAt: now,
    expiresAt: now + 60_000,
    ...extra,
  });
  const look = (tenantId: string, text: string, now: number, extra: Partial<{ scope: string; depth: number; threshold: number }> = {}) => ({
    tenantId,
    scope: 's',
    vector: localEmbedding(text)!,
    text,
    depth: 1,
    threshold: 0.95,
    topK: 3,
    now,
    ...extra,
  });

  it('answers within the scope, depth, tenant and TTL; refuses what the guards refuse', () => {
    const copy = new LocalSemanticCopy(1 << 20);
    copy.put('t1', entry('1', 'How do I reset my password?', 1_000), 1_000);
    copy.put('t1', entry('2', 'What is 2+2?', 1_000), 1_000);
    copy.put('t1', entry('old', 'Is this expired?', 1_000, { expiresAt: 1_000 }), 1_000);
    expect(copy.size('t1')).toBe(2); // an expired entry is not kept
    expect(copy.lookup(look('t1', 'how can i reset the password', 2_000))?.entry.id).toBe('1');
    expect(copy.lookup(look('t2', 'how can i reset the password', 2_000))).toBeNull(); // another tenant
    expect(copy.lookup(look('t1', 'how can i reset the password', 2_000, { scope: 'other' }))).toBeNull();
    expect(copy.lookup(look('t1', 'how can i reset the password', 2_000, { depth: 3 }))).toBeNull();
    expect(copy.lookup(look('t1', 'What is 2+3?', 2_000, { threshold: 0.5 }))).toBeNull(); // numbers differ
    expect(copy.lookup(look('t1', 'how can i reset the password', 61_000))).toBeNull(); // expired
    expect(copy.size('t1')).toBe(0); // and dropped
  });

  it('stays within its byte bound, least recently used first; a newer copy of an id is never replaced by an older one', () => {
    // Four entries of the same size; room for three.
    const one = entry('a', 'alpha topic one', 0);
    const size = one.vector.byteLength + 2 * (one.text.length + one.answer.length + one.id.length + one.scope.length) + 200;
    const copy = new LocalSemanticCopy(size * 3 + 10);
    copy.put('t', entry('a', 'alpha topic one', 1), 1);
    copy.put('t', entry('b', 'bravo topic two', 1), 1);
    copy.put('t', entry('c', 'charl topic six', 1), 1);
    expect(copy.lookup(look('t', 'alpha topic one', 2))?.entry.id).toBe('a'); // a is now the most recently used
    copy.put('t', entry('d', 'delta topic ten', 2), 2);
    expect(copy.bytes).toBeLessThanOrEqual(copy.maxBytes);
    expect(copy.size('t')).toBe(3);
    expect(copy.lookup(look('t', 'bravo topic two', 3))).toBeNull(); // b was the least recently used
    expect(copy.lookup(look('t', 'alpha topic one', 3))?.entry.id).toBe('a');
    copy.put('t', entry('a', 'alpha topic one', 5, { answer: 'newer' }), 5);
    copy.put('t', entry('a', 'alpha topic one', 4, { answer: 'older' }), 5);
    expect(copy.lookup(look('t', 'alpha topic one', 6))?.entry.answer).toBe('newer');
  });

  it('decides every labelled pair of the fixture as the SemanticIndex object does (threshold, top_k, guards)', async () => {
    const pairs = (pairsFixture as { pairs: { a: string; b: string; a_context?: unknown; b_context?: unknown }[] }).pairs.filter((p) => !p.a_context && !p.b_context);
    const stub = env.SEMANTIC_INDEX.get(env.SEMANTIC_INDEX.idFromName(`eq-${uid()}`));
    const copy = new LocalSemanticCopy(64 << 20);
    const texts = [...new Set(pairs.map((p) => p.a))];
    for (const text of texts) {
      const vector = localEmbedding(text);
      if (!vector) continue;
      await stub.store({ id: text, scope: 's', vector, text, depth: 1, answer: text, ttlSeconds: 60, maxEntries: 20_000, now: 1_000 });
      copy.put('t', { id: text, scope: 's', vector, text, depth: 1, answer: text, storedAt: 1_000, expiresAt: 61_000 }, 1_000);
    }
    let compared = 0;
    let hits = 0;
    for (const threshold of [0.8, 0.95]) {
      for (const p of pairs) {
        const vector = localEmbedding(p.b);
        if (!vector) continue;
        const remote = await stub.lookup({ scope: 's', vector, text: p.b, depth: 1, minSimilarity: threshold, topK: 3, now: 2_000 });
        const local = copy.lookup({ tenantId: 't', scope: 's', vector, text: p.b, depth: 1, threshold, topK: 3, now: 2_000 });
        expect([p.b, local?.entry.id ?? null]).toEqual([p.b, remote.match?.id ?? null]);
        compared++;
        if (local) hits++;
      }
    }
    expect(compared).toBeGreaterThan(400);
    expect(hits).toBeGreaterThan(50);
  });
});

describe('SemanticIndex.hottest', () => {
  const stub = () => env.SEMANTIC_INDEX.get(env.SEMANTIC_INDEX.idFromName(`hot-${uid()}`));
  const entry = (id: string, text: string, now: number, ttlSeconds = 60) => ({ id, scope: 's', vector: localEmbedding(text)!, text, depth: 1, answer: `answer to ${text}`, ttlSeconds, maxEntries: 100, now });

  it('returns what was stored or used since the cursor, most recent first, unexpired, within the limit', async () => {
    const idx = stub();
    await idx.store(entry('1', 'How do I reset my password?', 1_000));
    await idx.store(entry('2', 'Where are my invoices?', 1_001));
    await idx.store(entry('3', 'Short lived entry', 1_002, 1));
    const all = await idx.hottest({ after: 0, limit: 10, maxBytes: 1 << 20, now: 1_500 });
    expect(all.entries.map((e) => e.id)).toEqual(['3', '2', '1']);
    expect(all.entries[1]).toMatchObject({ scope: 's', text: 'Where are my invoices?', depth: 1, answer: 'answer to Where are my invoices?', storedAt: 1_001, expiresAt: 61_001 });
    expect(all.entries[1]!.vector).toEqual(localEmbedding('Where are my invoices?'));
    expect((await idx.hottest({ after: all.cursor, limit: 10, maxBytes: 1 << 20, now: 1_600 })).entries).toEqual([]);
    // A use (a lookup hit here, or a hit an isolate reports) makes an entry new again.
    await idx.lookup({ scope: 's', vector: localEmbedding('how do i reset the password')!, text: 'how do i reset the password', depth: 1, minSimilarity: 0.9, topK: 3, now: 1_700 });
    const used = await idx.hottest({ after: all.cursor, limit: 10, maxBytes: 1 << 20, touched: ['2'], now: 1_800 });
    expect(used.entries.map((e) => e.id)).toEqual(['2', '1']);
    // Expired entries are never sent; the limit keeps the most recent and says how many it left.
    const later = await idx.hottest({ after: 0, limit: 1, maxBytes: 1 << 20, now: 5_000 });
    expect(later.entries.map((e) => e.id)).toEqual(['2']);
    expect(later.skipped).toBe(1);
    // The object coming back (evicted, restarted) finds its column and its sequence where they were.
    const again = await runInDurableObject(idx, (_, state) => new SemanticIndex(state, {}).hottest({ after: all.cursor, limit: 10, maxBytes: 1 << 20, now: 1_900 }));
    expect(again.cursor).toBe(used.cursor);
    expect(again.entries.map((e) => e.id)).toEqual(['2', '1']);
    // A cursor ahead of the object (it was cleared) starts over.
    await idx.clear();
    await idx.store(entry('4', 'After the clear', 6_000));
    expect((await idx.hottest({ after: used.cursor, limit: 10, maxBytes: 1 << 20, now: 6_001 })).entries.map((e) => e.id)).toEqual(['4']);
  });
});
