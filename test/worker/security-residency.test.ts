import { beforeAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../worker/config/compiled';
import { semanticResidency, semanticResidencyWarnings } from '../../worker/cache/semantic/residency';
import { stored } from './cache-exact-suite';
import { FAST, simulatedConfig, spawnSim, type Sim } from './sims';
import { baseConfig, chat, createKey, envWith } from './support';

// Issue 12 item 4: the semantic cache sends a tenant's prompt text only where its allowed_regions permit.

const uid = () => crypto.randomUUID().slice(0, 8);
const ask = (content: string) => ({ model: 'small', temperature: 0, max_tokens: 8, messages: [{ role: 'user', content }] });
const embeddingsOf = async (sim: Sim) => ((await sim.stats()).requests.embeddings as number | undefined) ?? 0;

function compiled(cfg: unknown) {
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config;
}

describe('semantic cache and residency, through the Worker', () => {
  let cfg: Record<string, any>;
  let sims: Record<string, Sim>;
  let euKey: string;
  let freeKey: string;
  beforeAll(async () => {
    ({ cfg, sims } = await simulatedConfig());
    cfg.cache = { ...cfg.cache, tiers: { ...cfg.cache?.tiers, fast: { semantic: true } }, semantic: { embedding_model: 'bge-small-en' } };
    cfg.tenants.eu = { models: ['*'], allowed_regions: ['eu-west'] };
    cfg.tenants.free = { models: ['*'] };
    euKey = (await createKey('eu', envWith(cfg))).key;
    freeKey = (await createKey('free', envWith(cfg))).key;
  });

  it('never sends an EU-only tenant\'s prompt to the embedding backend in us-east: its semantic cache is skipped', async () => {
    const us = sims['vllm-us-east-8b']!;
    const before = await embeddingsOf(us);
    const e = envWith(cfg);
    const topic = uid();
    const first = await chat(euKey, ask(`What is the capital of France? ${topic}`), { env: e });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-router-region')).toBe('eu-west');
    await first.text();
    await stored();
    const again = await chat(euKey, ask(`What  is the capital of France?\n${topic}`), { env: e });
    expect(again.headers.get('x-router-cache')).toBe('miss');
    await again.text();
    await stored();
    expect(await embeddingsOf(us)).toBe(before);
    // A tenant without a residency rule still embeds there (the cache is on for it).
    await (await chat(freeKey, ask(`Why is the sky blue? ${topic}`), { env: e })).text();
    expect(await embeddingsOf(us)).toBeGreaterThan(before);
  });

  it('uses an embedding backend in an allowed region when there is one', async () => {
    const euEmb = await spawnSim({ name: 'eu-emb', models: [], embedding_models: ['BAAI/bge-small-en-v1.5'], latency: FAST });
    const c = structuredClone(cfg);
    c.backends.push({ id: 'vllm-eu-west-emb', kind: 'vllm', region: 'eu-west', url: euEmb.url, models: ['bge-small-en'] });
    const e = envWith(c);
    const us = sims['vllm-us-east-8b']!;
    const before = await embeddingsOf(us);
    const topic = uid();
    await (await chat(euKey, ask(`What is the capital of Spain? ${topic}`), { env: e })).text();
    await stored();
    const again = await chat(euKey, ask(`What  is the capital of Spain?\n${topic}`), { env: e });
    expect(again.headers.get('x-router-cache')).toBe('semantic-hit');
    expect(await embeddingsOf(euEmb)).toBeGreaterThan(0);
    expect(await embeddingsOf(us)).toBe(before);
  });
});

describe('semanticResidency', () => {
  it('keeps Upstash Vector to tenants whose allowed regions include upstash.vector_region; config:check says what is skipped', () => {
    const cfg = baseConfig();
    cfg.cache = { tiers: { fast: { semantic: true } }, semantic: { embedding_model: 'bge-small-en' } };
    cfg.upstash = { vector_url: 'https://v.upstash.io', vector_region: 'us-east' };
    cfg.tenants.eu = { allowed_regions: ['eu-west'] };
    cfg.tenants.us = { allowed_regions: ['us-east'] };
    const c = compiled(cfg);
    expect(semanticResidency(c, 'eu')).toMatchObject({ upstashVector: false, embeddingBackends: [], skip: expect.stringMatching(/only in us-east/) });
    expect(semanticResidency(c, 'us')).toMatchObject({ upstashVector: true, skip: null });
    expect(semanticResidency(c, 'us').embeddingBackends!.map((b) => b.id)).toEqual(['vllm-us-east-8b']);
    expect(semanticResidency(c, 'demo')).toMatchObject({ upstashVector: true, skip: null });
    expect(semanticResidencyWarnings(c)).toEqual([expect.stringMatching(/^router\.tenants\.eu: the semantic cache is skipped for this tenant/)]);

    // The local embedding makes no call: the cache stays on, off Upstash Vector without a vector_region.
    delete cfg.cache.semantic;
    delete cfg.upstash.vector_region;
    const local = compiled(cfg);
    expect(semanticResidency(local, 'eu')).toMatchObject({ embeddingBackends: null, upstashVector: false, skip: null });
    expect(semanticResidencyWarnings(local)).toContainEqual(expect.stringMatching(/tenants\.eu: Upstash Vector is not in its allowed regions/));
    cfg.upstash.vector_region = 'mars';
    expect(compileConfig(cfg).ok).toBe(false);
  });
});
