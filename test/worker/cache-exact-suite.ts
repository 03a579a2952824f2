import { env as testEnv } from 'cloudflare:test';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { backgroundSettled } from '../../worker/isolate/background';
import { upstashHealth } from '../../worker/cache/upstash-health';
import type { Env } from '../../worker/env';
import { resetIsolate } from '../../worker/isolate/registry';
import { simulatedConfig, type Sim } from './sims';
import { call, chat, createKey } from './support';
import { uid } from '../support/uid';
import { sse } from '../support/sse';

/**
 * The exact cache's behaviour through the whole Worker, registered once per store: the test
 * files call it with the embedded store (Cache API) and with Upstash (bridge → redis-server).
 */
export interface CacheWorld {
  env: Env;
  sims: Record<string, Sim>;
  /** Two tenants of this run, and one whose policy caches non-deterministic requests. */
  keys: { a: string; a2: string; b: string; loose: string };
  tenants: { a: string; b: string; loose: string };
}


/** A config with fresh simulators and three tenants of this run's own (entries never meet another file's). */
export async function cacheWorld(patch: (cfg: Record<string, any>) => void = () => {}, extraEnv: Record<string, unknown> = {}): Promise<CacheWorld> {
  const { cfg, sims } = await simulatedConfig();
  const run = uid();
  const tenants = { a: `ca-${run}`, b: `cb-${run}`, loose: `cl-${run}` };
  cfg.tenants[tenants.a] = { models: ['*'] };
  cfg.tenants[tenants.b] = { models: ['*'] };
  cfg.tenants[tenants.loose] = { models: ['*'], cache_nondeterministic: true };
  // The exact cache alone: the semantic cache (on for `fast` in wrangler.toml) would answer some of
  // the misses these tests expect (test/worker/cache-semantic.test.ts covers it). A patch may turn it on.
  for (const tier of Object.values((cfg.cache?.tiers ?? {}) as Record<string, { semantic?: boolean }>)) tier.semantic = false;
  patch(cfg);
  const env = { ...(testEnv as unknown as Env), ...extraEnv, ROUTER: cfg } as Env;
  const [a, a2, b, loose] = await Promise.all([createKey(tenants.a, env), createKey(tenants.a, env), createKey(tenants.b, env), createKey(tenants.loose, env)]);
  return { env, sims, keys: { a: a.key, a2: a2.key, b: b.key, loose: loose.key }, tenants };
}

export async function resetRouting(env: Env) {
  resetIsolate();
  upstashHealth.reset();
  const ns = env.BREAKERS;
  const ids = ((env.ROUTER as any).backends as { id: string }[]).map((b) => b.id);
  await Promise.all(ids.map((id) => ns.get(ns.idFromName(id)).reset()));
}

export const chatCount = async (sim: Sim) => (await sim.stats()).requests.chat as number;


/** Per choice index: the streamed content joined, and its finish reason. */
export function joined(events: any[]): { text: string; finish: string | null }[] {
  const out: { text: string; finish: string | null }[] = [];
  for (const e of events) {
    for (const c of e.choices ?? []) {
      const o = (out[c.index] ??= { text: '', finish: null });
      o.text += c.delta?.content ?? c.text ?? '';
      if (c.finish_reason) o.finish = c.finish_reason;
    }
  }
  return out;
}

/** A miss's answer is stored in the background: wait for it before the next request. */
export async function stored() {
  await backgroundSettled();
}

export function exactCacheSuite(label: string, world: () => CacheWorld) {
  describe(`exact response cache (${label})`, () => {
    let w: CacheWorld;
    let us8b: Sim;
    const msgs = (topic: string) => [{ role: 'user', content: `Tell me about ${topic} ${uid()}.` }];

    beforeAll(() => {
      w = world();
      us8b = w.sims['vllm-us-east-8b']!;
    });
    beforeEach(async () => {
      await resetRouting(w.env);
      await Promise.all(Object.values(w.sims).map((s) => s.faults({})));
    });

    it('the same deterministic request twice: the second is a hit with identical content and an age, and never goes upstream', async () => {
      const req = { model: 'small', messages: msgs('lighthouses'), temperature: 0, max_tokens: 24 };
      const first = await chat(w.keys.a, req, { env: w.env });
      expect(first.status).toBe(200);
      expect(first.headers.get('x-router-cache')).toBe('miss');
      expect(first.headers.get('age')).toBeNull();
      const firstBody = (await first.json()) as any;
      await stored();

      const before = await chatCount(us8b);
      const second = await chat(w.keys.a2, req, { env: w.env }); // another key of the same tenant
      expect(second.status).toBe(200);
      expect(second.headers.get('x-router-cache')).toBe('hit');
      expect(Number(second.headers.get('age'))).toBeGreaterThanOrEqual(0);
      expect(second.headers.get('x-router-model')).toBe('llama-3.1-8b');
      expect(second.headers.get('x-router-tier')).toBe('fast');
      expect(second.headers.get('x-router-backend')).toBe('none');
      expect(second.headers.get('x-router-attempts')).toBe('0');
      const secondBody = (await second.json()) as any;
      expect(secondBody.object).toBe('chat.completion');
      expect(secondBody.model).toBe(firstBody.model);
      expect(secondBody.choices.map((c: any) => [c.message.content, c.finish_reason])).toEqual(firstBody.choices.map((c: any) => [c.message.content, c.finish_reason]));
      expect(secondBody.usage).toEqual({ prompt_tokens: firstBody.usage.prompt_tokens, completion_tokens: firstBody.usage.completion_tokens, total_tokens: firstBody.usage.total_tokens });
      expect(await chatCount(us8b)).toBe(before);

      const other = await chat(w.keys.b, req, { env: w.env }); // another tenant: never shares
      expect(other.headers.get('x-router-cache')).toBe('miss');
      expect(await chatCount(us8b)).toBe(before + 1);
    });

    it('a streamed request is answered from a non-streamed answer, as OpenAI chunks (usage if asked)', async () => {
      const req = { model: 'small', messages: msgs('tides'), temperature: 0, max_tokens: 20, n: 2 };
      const plain = (await (await chat(w.keys.a, req, { env: w.env })).json()) as any;
      await stored();
      const before = await chatCount(us8b);

      const res = await chat(w.keys.a, { ...req, stream: true, stream_options: { include_usage: true } }, { env: w.env });
      expect(res.headers.get('x-router-cache')).toBe('hit');
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const { events, done } = await sse(res);
      expect(done).toBe(true);
      expect(events.filter((e) => !(e.object === 'chat.completion.chunk' && e.model === plain.model))).toEqual([]);
      expect(joined(events)).toEqual(plain.choices.map((c: any) => ({ text: c.message.content, finish: c.finish_reason })));
      expect(events.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: plain.usage.completion_tokens } });

      const noUsage = await sse(await chat(w.keys.a, { ...req, stream: true }, { env: w.env }));
      expect(noUsage.events.filter((e) => e.usage)).toEqual([]);
      expect(await chatCount(us8b)).toBe(before);
    });

    it('a non-streamed request is answered from a streamed answer (assembled as it passed)', async () => {
      const req = { model: 'small', messages: msgs('glaciers'), temperature: 0, max_tokens: 16 };
      const streamed = await chat(w.keys.a, { ...req, stream: true }, { env: w.env });
      expect(streamed.headers.get('x-router-cache')).toBe('miss');
      const { events } = await sse(streamed);
      await stored();
      const before = await chatCount(us8b);

      const res = await chat(w.keys.a, req, { env: w.env });
      expect(res.headers.get('x-router-cache')).toBe('hit');
      const body = (await res.json()) as any;
      expect(body.choices.map((c: any) => ({ text: c.message.content, finish: c.finish_reason }))).toEqual(joined(events));
      expect(body.usage.completion_tokens).toBeGreaterThan(0); // the usage the router read from the stream
      expect(await chatCount(us8b)).toBe(before);
    });

    it('completions and embeddings are cached too (embeddings are deterministic)', async () => {
      const post = (path: string, body: unknown, key = w.keys.a) =>
        call(path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), env: w.env });
      const comp = { model: 'small', prompt: `Once upon a time ${uid()}`, max_tokens: 8, temperature: 0 };
      const c1 = await post('/v1/completions', comp);
      const t1 = ((await c1.json()) as any).choices[0].text;
      await stored();
      const c2 = await post('/v1/completions', { ...comp, stream: true });
      expect(c2.headers.get('x-router-cache')).toBe('hit');
      expect(joined((await sse(c2)).events)[0]!.text).toBe(t1);

      const emb = { model: 'bge-small-en', input: [`alpha ${uid()}`, 'beta'] };
      const e1 = await post('/v1/embeddings', emb);
      expect(e1.headers.get('x-router-cache')).toBe('miss');
      const v1 = (await e1.json()) as any;
      await stored();
      const before = (await us8b.stats()).requests.embeddings;
      const e2 = await post('/v1/embeddings', emb);
      expect(e2.headers.get('x-router-cache')).toBe('hit');
      expect(await e2.json()).toEqual(v1);
      const e3 = await post('/v1/embeddings', { ...emb, encoding_format: 'base64' }); // another request, another entry
      expect(e3.headers.get('x-router-cache')).toBe('miss');
      expect((await us8b.stats()).requests.embeddings).toBe(before + 1);
    });

    it('bypass: x-router-cache: bypass and Cache-Control: no-store neither read nor write; no-cache refreshes', async () => {
      const req = { model: 'small', messages: msgs('volcanoes'), temperature: 0, max_tokens: 8 };
      await chat(w.keys.a, req, { env: w.env });
      await stored();
      const before = await chatCount(us8b);
      for (const headers of [{ 'x-router-cache': 'bypass' }, { 'cache-control': 'no-store' }, { 'Cache-Control': 'max-age=0, No-Store' }] as Record<string, string>[]) {
        const res = await chat(w.keys.a, req, { env: w.env, headers });
        expect(res.status).toBe(200);
        expect(res.headers.get('x-router-cache')).toBe('bypass');
      }
      expect(await chatCount(us8b)).toBe(before + 3);

      const fresh = { ...req, messages: msgs('deserts') };
      await chat(w.keys.a, fresh, { env: w.env, headers: { 'x-router-cache': 'bypass' } });
      await stored();
      expect((await chat(w.keys.a, fresh, { env: w.env, headers: { 'cache-control': 'no-cache' } })).headers.get('x-router-cache')).toBe('miss'); // not stored by the bypass; no-cache skips the read…
      await stored();
      expect((await chat(w.keys.a, fresh, { env: w.env })).headers.get('x-router-cache')).toBe('hit'); // …and stores
    });

    it('temperature 0.7 is not cached, unless the tenant policy caches non-deterministic requests', async () => {
      const req = { model: 'small', messages: msgs('comets'), temperature: 0.7, max_tokens: 8 };
      const before = await chatCount(us8b);
      expect((await chat(w.keys.a, req, { env: w.env })).headers.get('x-router-cache')).toBe('bypass');
      await stored();
      expect((await chat(w.keys.a, req, { env: w.env })).headers.get('x-router-cache')).toBe('bypass');
      expect((await chat(w.keys.a, { ...req, temperature: undefined }, { env: w.env })).headers.get('x-router-cache')).toBe('bypass'); // default temperature is 1
      expect(await chatCount(us8b)).toBe(before + 3);

      expect((await chat(w.keys.loose, req, { env: w.env })).headers.get('x-router-cache')).toBe('miss');
      await stored();
      expect((await chat(w.keys.loose, req, { env: w.env })).headers.get('x-router-cache')).toBe('hit');
      expect((await chat(w.keys.loose, { ...req, temperature: 0.2 }, { env: w.env })).headers.get('x-router-cache')).toBe('miss'); // temperature is in the key
      expect((await chat(w.keys.a, { ...req, logprobs: true, temperature: 0 }, { env: w.env })).headers.get('x-router-cache')).toBe('bypass'); // logprobs are not kept
    });

    it('a failed or degraded answer is not cached; nor is a stream cut mid-way', async () => {
      const req = { model: 'small', messages: msgs('earthquakes'), temperature: 0, max_tokens: 8 };
      const all8b = ['vllm-us-east-8b', 'vllm-eu-west-8b', 'vllm-ap-southeast-8b'].map((id) => w.sims[id]!);
      await Promise.all(all8b.map((s) => s.faults({ error_rate: 1 })));
      const degraded = await chat(w.keys.a, req, { env: w.env });
      expect(degraded.status).toBe(200);
      expect(degraded.headers.get('x-router-degraded')).toBe('true');
      expect(degraded.headers.get('x-router-cache')).toBe('miss');
      await stored();
      await Promise.all(all8b.map((s) => s.faults({})));
      await resetRouting(w.env);
      const after = await chat(w.keys.a, req, { env: w.env });
      expect(after.headers.get('x-router-cache')).toBe('miss');
      expect(after.headers.get('x-router-degraded')).toBeNull();
      await stored();
      expect((await chat(w.keys.a, req, { env: w.env })).headers.get('x-router-cache')).toBe('hit'); // the real answer was

      const cut = { model: 'small', messages: msgs('avalanches'), temperature: 0, max_tokens: 40, stream: true };
      await us8b.faults({ drop_after_tokens: 3 });
      const broken = await sse(await chat(w.keys.a, cut, { env: w.env }));
      expect(broken.events.at(-1)).toMatchObject({ error: { code: 'upstream_stream_error' } });
      await stored();
      await us8b.faults({});
      expect((await chat(w.keys.a, cut, { env: w.env })).headers.get('x-router-cache')).toBe('miss');
    });

    it('auto: the tier decision is part of the key, and a hit says which tier and model', async () => {
      const req = { model: 'auto', messages: msgs('haiku about rain'), temperature: 0, max_tokens: 8 };
      const first = await chat(w.keys.a, req, { env: w.env });
      expect(first.headers.get('x-router-cache')).toBe('miss');
      await stored();
      const hit = await chat(w.keys.a, req, { env: w.env });
      expect(hit.headers.get('x-router-cache')).toBe('hit');
      expect(hit.headers.get('x-router-tier')).toBe(first.headers.get('x-router-tier'));
      expect(hit.headers.get('x-router-model')).toBe(first.headers.get('x-router-model'));
      expect(hit.headers.get('x-router-complexity')).toBe(first.headers.get('x-router-complexity'));
      // The same messages under an explicit model of another tier: another entry.
      expect((await chat(w.keys.a, { ...req, model: 'xl' }, { env: w.env })).headers.get('x-router-cache')).toBe('miss');
    });
  });
}
