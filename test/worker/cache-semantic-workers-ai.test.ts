import { describe, expect, it } from 'vitest';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import { embedderFor, WorkersAiEmbedder } from '../../worker/cache/semantic/embedder';
import type { SemanticIndexStore, SemanticQuery } from '../../worker/cache/semantic/index-store';
import { semanticResidency } from '../../worker/cache/semantic/residency';
import { semanticCache } from '../../worker/cache/semantic/semantic';
import { resolveRoute } from '../../worker/routing/resolve-model';
import { baseConfig } from './support';

// [cache.semantic.workers_ai] (issue 15): the Workers AI binding as the semantic cache's embedder.
// The real binding needs Cloudflare's network; here a stand-in with the binding's contract
// (`run(model, { text })` → `{ shape, data }`) shows what the router asks and what it does with
// the answer. Only this wiring is tested on this machine, not the model's quality.

const compiled = (cfg: unknown): CompiledConfig => {
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
};
const errors = (patch: Record<string, unknown>) => {
  const r = compileConfig({ ...baseConfig(), ...patch });
  return r.ok ? [] : r.errors;
};

function fakeAi(answer: (text: string[]) => unknown) {
  const calls: { model: string; text: string[] }[] = [];
  return {
    calls,
    run: async (model: string, input: { text: string[] }) => {
      calls.push({ model, text: input.text });
      return answer(input.text);
    },
  };
}

describe('semantic cache: Workers AI embeddings', () => {
  it('validates [cache.semantic.workers_ai]', () => {
    expect(errors({ cache: { semantic: { workers_ai: {} } } })).toEqual([]);
    expect(errors({ cache: { semantic: { workers_ai: { binding: 'MY_AI', model: '@cf/baai/bge-base-en-v1.5' } } } })).toEqual([]);
    expect(errors({ cache: { semantic: { workers_ai: { model: 'bge-small' } } } }).join()).toMatch(/Workers AI model name/);
    expect(errors({ cache: { semantic: { workers_ai: { binding: 'no spaces' } } } }).join()).toMatch(/binding/);
    expect(errors({ cache: { semantic: { workers_ai: {}, embedding_model: 'bge-small-en' } } }).join()).toMatch(/either workers_ai or embedding_model/);
  });

  it('embeds through the named binding with the configured model, normalized', async () => {
    const cfg = compiled({ ...baseConfig(), cache: { semantic: { workers_ai: { binding: 'MY_AI' } } } });
    const ai = fakeAi((text) => ({ shape: [text.length, 3], data: text.map(() => [3, 0, 4]) }));
    const e = embedderFor(cfg, { MY_AI: ai });
    expect(e).toBeInstanceOf(WorkersAiEmbedder);
    expect(e.id).toBe('workers-ai:@cf/baai/bge-small-en-v1.5'); // part of the index scope
    expect(Array.from((await e.embed('How do I boil an egg?'))!)).toEqual([Math.fround(0.6), 0, Math.fround(0.8)]);
    expect(ai.calls).toEqual([{ model: '@cf/baai/bge-small-en-v1.5', text: ['How do I boil an egg?'] }]);
  });

  it('a missing binding, a malformed answer, a thrown error or no answer in time is a miss (null), never a throw', async () => {
    const cfg = compiled({ ...baseConfig(), cache: { semantic: { workers_ai: {}, embedding_timeout_ms: 10 } } });
    expect(await embedderFor(cfg, {}).embed('x')).toBeNull();
    expect(await embedderFor(cfg, { AI: 'not a binding' }).embed('x')).toBeNull();
    for (const bad of [{}, { data: [] }, { data: [['a', 'b']] }, { data: [[0, 0]] }, { data: [[1, Number.NaN]] }, null]) {
      expect(await embedderFor(cfg, { AI: fakeAi(() => bad) }).embed('x')).toBeNull();
    }
    expect(await embedderFor(cfg, { AI: fakeAi(() => { throw new Error('3040: capacity'); }) }).embed('x')).toBeNull();
    expect(await embedderFor(cfg, { AI: { run: () => new Promise(() => {}) } }).embed('x')).toBeNull();
  });

  it('a tenant with allowed_regions never has its prompts sent to Workers AI: its semantic cache is skipped', () => {
    const base = baseConfig() as { tenants: Record<string, Record<string, unknown>>; regions: { id: string }[] };
    const region = base.regions[0]!.id;
    const cfg = compiled({ ...base, tenants: { ...base.tenants, demo: { ...base.tenants.demo, allowed_regions: [region] } }, cache: { semantic: { workers_ai: {} } } });
    expect(semanticResidency(cfg, 'demo').skip).toMatch(/Workers AI/);
    const open = compiled({ ...base, cache: { semantic: { workers_ai: {} } } });
    expect(semanticResidency(open, 'demo').skip).toBeNull();
  });

  it('the semantic cache looks up with the binding\'s vector', async () => {
    const cfg = compiled({ ...baseConfig(), cache: { tiers: { fast: { semantic: true, semantic_threshold: 0.9 } }, semantic: { workers_ai: {} } } });
    const ai = fakeAi(() => ({ shape: [1, 2], data: [[0, 2]] }));
    const seen: SemanticQuery[] = [];
    const index: SemanticIndexStore = {
      name: 'fake',
      lookup: async (q) => {
        seen.push(q);
        return null;
      },
      store: async () => {},
    };
    const body = { model: 'small', temperature: 0, messages: [{ role: 'user', content: 'How do I boil an egg?' }] };
    const r = await semanticCache({ config: cfg, env: { AI: ai }, ctx: { waitUntil() {} }, tenantId: 'demo', endpoint: 'chat', body, route: resolveRoute(cfg, 'demo', body, 'chat', null), headers: new Headers(), index, now: () => 1_000 });
    expect(r.hit).toBeFalsy();
    expect(seen).toHaveLength(1);
    expect(Array.from((await seen[0]!.vector())!)).toEqual([0, 1]);
    expect(ai.calls.map((c) => c.text)).toEqual([['How do I boil an egg?']]);
  });
});
