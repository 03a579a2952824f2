import { beforeAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../worker/config/compiled';
import { resolveRoute, tenantRouteWarnings } from '../../worker/routing/resolve-model';
import { baseConfig, chat, createKey, envWith, errorOf } from './support';
import { simulatedConfig } from './sims';

// Issue 12 item 1: a tenant's `models` bounds every route (tiers, auto, splits, fallback tiers, downgrades).

const HARD = [
  {
    role: 'user',
    content:
      'Prove rigorously that every finite integral domain is a field, then derive the consequences for Z/nZ. ' +
      'Step by step: 1) state the lemma, 2) prove injectivity of multiplication, 3) analyse the trade-offs of a constructive proof versus one by contradiction.',
  },
];

function compiled(cfg: unknown) {
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config;
}
const modelsOf = (route: ReturnType<typeof resolveRoute>) => route.stages.flatMap((s) => s.targets.map((t) => t.model.id));

let key: string;
beforeAll(async () => {
  const cfg = baseConfig();
  cfg.tenants.only8b = { models: ['llama-3.1-8b'] };
  key = (await createKey('only8b', envWith(cfg))).key;
});

describe('a tenant limited to one model', () => {
  it('gets 403 for tiers that reach only other models, and auto stays on the allowed model however hard the prompt', async () => {
    const { cfg } = await simulatedConfig();
    delete cfg.degraded_answer;
    cfg.tenants.only8b = { models: ['llama-3.1-8b'] }; // tiers left at their default ("*")
    const e = envWith(cfg);
    for (const tier of ['balanced', 'advanced', 'large']) {
      const res = await chat(key, { model: tier, messages: HARD, max_tokens: 4 }, { env: e });
      expect(res.status, tier).toBe(403);
      expect((await errorOf(res)).code).toBe('model_not_allowed');
    }
    const auto = await chat(key, { model: 'auto', messages: HARD, max_tokens: 4 }, { env: e });
    expect(auto.status).toBe(200);
    expect(auto.headers.get('x-router-model')).toBe('llama-3.1-8b');
    expect(auto.headers.get('x-router-tier')).toBe('fast');
    const fast = await chat(key, { model: 'fast', messages: HARD, max_tokens: 4 }, { env: e });
    expect(fast.status).toBe(200);
    expect(fast.headers.get('x-router-model')).toBe('llama-3.1-8b');
  });

  it('lists only the tiers it can reach in /v1/models', async () => {
    const { cfg } = await simulatedConfig();
    cfg.tenants.only8b = { models: ['llama-3.1-8b'] };
    const { call } = await import('./support');
    const res = await call('/v1/models', { headers: { authorization: `Bearer ${key}` }, env: envWith(cfg) });
    const ids = ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id);
    expect(ids).toContain('fast');
    expect(ids).toContain('auto');
    expect(ids).not.toContain('balanced');
    expect(ids).not.toContain('advanced');
  });
});

describe('resolveRoute never names a model the tenant may not use', () => {
  it('drops the fallback tier, split targets and tier members outside the allow-list', () => {
    const cfg = baseConfig();
    cfg.tiers.fast.models = ['assistant']; // a split in a tier: 8b (80) or 70b (20)
    cfg.tenants.t = { models: ['llama-3.1-8b'] };
    const c = compiled(cfg);
    // Every user would otherwise land on 70b 20% of the time through the split, and fast falls back to balanced (70b).
    for (let i = 0; i < 50; i++) {
      const route = resolveRoute(c, 't', { model: 'fast', messages: [{ role: 'user', content: 'hi' }] }, 'chat', `user-${i}`);
      expect(modelsOf(route)).toEqual(['llama-3.1-8b']);
      expect(route.stages.map((s) => s.tier)).toEqual(['fast']);
    }
  });

  it('skips a tier whose models are all disallowed but keeps its allowed fallback; 403 when nothing is left', () => {
    const cfg = baseConfig();
    cfg.tenants.t = { models: ['llama-3.1-70b'] };
    const c = compiled(cfg);
    // fast (8b) falls back to balanced (70b): the chain starts at balanced.
    const route = resolveRoute(c, 't', { model: 'fast', messages: [{ role: 'user', content: 'hi' }] }, 'chat', null);
    expect(route.stages.map((s) => s.tier)).toEqual(['balanced']);
    expect(modelsOf(route)).toEqual(['llama-3.1-70b']);
    // advanced = [405b, 70b]: only 70b is left.
    expect(modelsOf(resolveRoute(c, 't', { model: 'advanced', messages: [{ role: 'user', content: 'hi' }] }, 'chat', null))).toEqual(['llama-3.1-70b', 'llama-3.1-70b']);
    cfg.tenants.t = { models: ['bge-small-en'] };
    expect(() => resolveRoute(compiled(cfg), 't', { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }, 'chat', null)).toThrow(/none of the models/);
  });

  it('a budget downgrade (resolved like a tier name) cannot reach a disallowed model', () => {
    const cfg = baseConfig();
    cfg.tenants.t = { models: ['llama-3.1-405b'] };
    const c = compiled(cfg);
    // The soft limit's "downgrade" re-resolves with the cheapest tier's name (inference.ts): fast = 8b, fallback balanced = 70b.
    expect(() => resolveRoute(c, 't', { model: 'fast', messages: [{ role: 'user', content: 'hi' }] }, 'chat', null)).toThrow(/none of the models/);
  });

  it('config:check warns about tiers that reach no allowed model', () => {
    const cfg = baseConfig();
    cfg.tenants.t = { models: ['llama-3.1-8b'] };
    cfg.tenants.e = { models: ['bge-small-en'] };
    const warnings = tenantRouteWarnings(compiled(cfg));
    expect(warnings).toContainEqual(expect.stringMatching(/tenants\.t: tiers balanced, advanced reach no model/));
    expect(warnings).toContainEqual(expect.stringMatching(/tenants\.e: none of its tiers \(fast, balanced, advanced\) reaches a model/));
    expect(warnings.filter((w) => w.includes('tenants.demo'))).toEqual([]);
  });
});
