import { describe, expect, it } from 'vitest';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import { resolveRoute } from '../../worker/routing/resolve-model';
import { baseConfig } from './support';

// [routing] complexity_scorer = "learned" and complexity_margin (issue 15): `auto` through the
// learned scorer, inside the Worker runtime (the weights JSON bundled with it).
const compiled = (routing: Record<string, unknown>): CompiledConfig => {
  const cfg = baseConfig();
  const r = compileConfig({ ...cfg, routing: { ...cfg.routing, ...routing } });
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
};
const ask = (content: string) => ({ model: 'auto', messages: [{ role: 'user', content }] });
const tierOf = (cfg: CompiledConfig, content: string) => resolveRoute(cfg, 'demo', ask(content), 'chat', null).stages[0]!.tier;

describe('auto with the learned scorer', () => {
  it('small talk goes to the cheapest tier, a rigorous proof to the strongest', () => {
    const cfg = compiled({ complexity_scorer: 'learned' });
    expect(tierOf(cfg, 'hi, how are you?')).toBe('fast');
    expect(tierOf(cfg, 'Prove that every finite group of order 15 is cyclic, making every step rigorous and stating which Sylow theorems you use.')).toBe('advanced');
  });

  it('the margin from the config routes up: with the widest margin nothing goes to the cheapest tier unless it is clearly easy', () => {
    const borderline = 'Compare PostgreSQL and MongoDB for a small team.';
    const tight = tierOf(compiled({ complexity_scorer: 'learned', complexity_margin: 0 }), borderline);
    const wide = tierOf(compiled({ complexity_scorer: 'learned', complexity_margin: 0.49 }), borderline);
    const rank = (t: string | null) => ['fast', 'balanced', 'advanced'].indexOf(t ?? '');
    expect(rank(wide)).toBeGreaterThanOrEqual(rank(tight));
    expect(rank(wide)).toBeGreaterThan(0);
  });

  it('validates the settings', () => {
    const r = compileConfig({ ...baseConfig(), routing: { complexity_scorer: 'neural' } });
    expect(r.ok).toBe(false);
    const m = compileConfig({ ...baseConfig(), routing: { complexity_margin: 0.7 } });
    expect(m.ok).toBe(false);
  });

  it('the hand-tuned scorer stays the default', () => {
    const cfg = compileConfig(baseConfig());
    expect(cfg.ok && cfg.config.raw.routing.complexity_scorer).toBe('hand');
  });
});
