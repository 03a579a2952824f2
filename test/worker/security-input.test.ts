import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../worker/cache/canonical';
import { MAX_JSON_DEPTH } from '../../worker/http/json-depth';
import { call, chat, createKey, envWith, errorOf } from './support';
import { simulatedConfig, type Sim } from './sims';

// Issue 12 items 6 and 7: deep JSON and unbounded embeddings token arrays.

let key: string;
let cfg: Record<string, any>;
let sims: Record<string, Sim>;
beforeAll(async () => {
  ({ cfg, sims } = await simulatedConfig());
  delete cfg.degraded_answer;
  cfg.models.find((m: any) => m.id === 'bge-small-en').max_model_len = 512;
  key = (await createKey('demo', envWith(cfg))).key;
});

/** `{"a":{"a":...1...}}` nested `depth` objects deep, built as text (no recursion here either). */
const deepText = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const hi = [{ role: 'user', content: 'Say hello.' }];

function post(path: string, text: string) {
  return call(path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: text, env: envWith(cfg) });
}

describe('deep JSON', () => {
  it('refuses 3,000 levels in a free-form field with 400 on chat and embeddings, not a 500', async () => {
    const chatBody = `{"model":"small","messages":${JSON.stringify(hi)},"temperature":0,"x_extra":${deepText(3000)}}`;
    const res = await post('/v1/chat/completions', chatBody);
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ type: 'invalid_request_error', code: 'json_too_deep' });
    const emb = await post('/v1/embeddings', `{"model":"bge-small-en","input":"hi","x_extra":${deepText(3000)}}`);
    expect(emb.status).toBe(400);
    expect((await errorOf(emb)).code).toBe('json_too_deep');
    // Deep tool parameters, the other way in.
    const tools = `{"model":"small","messages":${JSON.stringify(hi)},"tools":[{"type":"function","function":{"name":"f","parameters":${deepText(3000)}}}]}`;
    const t = await post('/v1/chat/completions', tools);
    expect(t.status).toBe(400);
    expect((await errorOf(t)).code).toBe('json_too_deep');
  });

  it('serves a body nested right up to the limit (the cache key is computed for it)', async () => {
    // body (1) > x_extra objects: MAX_JSON_DEPTH - 1 more levels is exactly the limit.
    const body = `{"model":"small","messages":${JSON.stringify(hi)},"max_tokens":4,"temperature":0,"x_extra":${deepText(MAX_JSON_DEPTH - 1)}}`;
    const res = await post('/v1/chat/completions', body);
    expect(res.status).toBe(200);
    const over = await post('/v1/chat/completions', body.replace('"x_extra":', '"x_extra":[').replace(/}$/, ']}'));
    expect(over.status).toBe(400);
  });

  it('brackets inside strings do not count', async () => {
    const res = await chat(key, { model: 'small', messages: [{ role: 'user', content: '[{'.repeat(5000) + '\\"' }], max_tokens: 4 }, { env: envWith(cfg) });
    expect(res.status).toBe(200);
  });

  it('canonicalJson is iterative: 100,000 levels do not overflow the stack, and the text is unchanged', () => {
    let v: unknown = 1;
    for (let i = 0; i < 100_000; i++) v = i % 2 ? { a: v } : [v];
    expect(canonicalJson(v)).toHaveLength(50_000 * '[]'.length + 50_000 * '{"a":}'.length + 1);
    expect(canonicalJson({ b: [1, undefined, { d: null, c: 'x' }], a: undefined, e: { z: 1, y: [] } })).toBe('{"b":[1,null,{"c":"x","d":null}],"e":{"y":[],"z":1}}');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson('s')).toBe('"s"');
  });
});

describe('embeddings token-array input', () => {
  const embed = (input: unknown) => call('/v1/embeddings', {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bge-small-en', input }),
    env: envWith(cfg),
  });

  it('refuses more than 2,048 inputs, over 300,000 tokens in all, and an input over the model context, before any backend call', async () => {
    const sim = sims['vllm-us-east-8b']!;
    const before = (await sim.stats()).requests.embeddings ?? 0;
    const many = await embed(Array.from({ length: 100_000 }, () => [1]));
    expect(many.status).toBe(400);
    expect(await errorOf(many)).toMatchObject({ type: 'invalid_request_error', param: 'input' });
    expect((await embed(Array.from({ length: 2049 }, () => [1]))).status).toBe(400);
    const total = await embed(Array.from({ length: 601 }, () => Array.from({ length: 500 }, () => 1)));
    expect(total.status).toBe(400);
    expect((await errorOf(total)).message).toMatch(/300000/);
    const long = await embed([[1, 2], Array.from({ length: 513 }, () => 1)]);
    expect(long.status).toBe(400);
    expect(await errorOf(long)).toMatchObject({ code: 'context_length_exceeded', param: 'input' });
    expect((await embed(Array.from({ length: 300_001 }, () => 1))).status).toBe(400);
    expect((await sim.stats()).requests.embeddings ?? 0).toBe(before);
    // Within every bound: served.
    const ok = await embed(Array.from({ length: 2048 }, () => [1, 2]));
    expect(ok.status).toBe(200);
  });
});
