import { describe, expect, it } from 'vitest';
import { cheapestTier } from '../../worker/budget/estimate';
import { compileConfig } from '../../worker/config/compiled';
import { uid } from '../support/uid';
import { FAST, spawnSim } from './sims';
import { chat, createKey, envWith, errorOf } from './support';

describe('enforcement order and reach', () => {
  it('a feature name the tenant does not allow is refused before a rate limit counts it', async () => {
    const t = `fa-${uid()}`;
    const sim = await spawnSim({ name: t, models: ['m'], latency: FAST });
    const env = envWith({
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'm' }],
      backends: [{ id: `b-${t}`, kind: 'vllm', region: 'here', url: sim.url, models: ['m'] }],
      tenants: { [t]: { models: ['*'], features: ['search'] } },
      limits: { store: 'embedded', tenant: { requests: 1, window_s: 3_600 } },
    });
    const { key } = await createKey(t, env);
    const body = { model: 'm', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] };
    for (const feature of ['made-up', 'other']) {
      const refused = await chat(key, body, { env, headers: { 'x-router-feature': feature } });
      expect(refused.status).toBe(400);
      expect(await errorOf(refused)).toMatchObject({ code: 'unknown_feature', param: 'x-router-feature' });
    }
    // The tenant's one request an hour is still there.
    const ok = await chat(key, body, { env, headers: { 'x-router-feature': 'search' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  });

  it("a budget downgrade goes to the cheapest tier that reaches a model the tenant may use", () => {
    const result = compileConfig({
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'cheap' }, { id: 'mid' }, { id: 'big' }],
      backends: [{ id: 'b', kind: 'vllm', region: 'here', url: 'http://127.0.0.1:9', models: ['cheap', 'mid', 'big'] }],
      tiers: { fast: { models: ['cheap'] }, balanced: { models: ['mid'] }, large: { models: ['big'] } },
      prices: { cheap: { input: 0.1, output: 0.1 }, mid: { input: 1, output: 1 }, big: { input: 5, output: 5 } },
      tenants: { t: { models: ['mid', 'big'] } },
    });
    if (!result.ok) throw new Error(JSON.stringify(result));
    const { config } = result;
    expect(cheapestTier(config, 't', config.raw.tenants.t!)).toBe('balanced');
  });
});
