// Shared by the budget tests: a tenant of the test's own with a budget, its simulator, and the admin API.

import { env as testEnv } from 'cloudflare:test';
import type { Env } from '../../worker/env';
import { FAST, spawnSim } from './sims';
import { uid } from '../support/uid';
import { admin, chat, createKey, envWith } from './support';

export { admin, uid };

export const env = testEnv as unknown as Env;
export const ns = env.QUOTAS;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The simulator's answer to HI with max_tokens 20 and ignore_eos: 13 prompt + 20 completion tokens.
export const HI = [{ role: 'user', content: 'Say hello.' }];
export const U = 33;
// Its worst case as the router reserves it: 64 (chat base) + 8 (one message) + 10 bytes + 20.
export const W = 102;

/** A budget of this test's own: a fresh tenant, one simulator serving a cheap and a dear model. */
export async function budgetStack(opts: { budget?: Record<string, unknown> | null; budgets?: Record<string, unknown>; tenant?: Record<string, unknown>; degraded?: boolean; sim?: Record<string, unknown> } = {}) {
  const t = `bud-${uid()}`;
  const sim = await spawnSim({ name: t, models: ['m', 'm-big'], latency: FAST, ...opts.sim });
  const table = opts.budget === null ? {} : { budget: opts.budget ?? { monthly_tokens: 1_000_000 } };
  const cfg: Record<string, any> = {
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }, { id: 'm-big' }],
    backends: [{ id: `b-${t}`, kind: 'vllm', region: 'here', url: sim.url, models: ['m', 'm-big'] }],
    tiers: { fast: { models: ['m'] }, premium: { models: ['m-big'], min_complexity: 0.5, fallback_tier: 'fast' } },
    tenants: { [t]: { models: ['*'], ...table, ...opts.tenant }, [`free-${t}`]: { models: ['*'] } },
    // USD per million tokens: an HI on m costs 13 × 0.1 + 20 × 0.2 = 5.3 µ$ (5300 nano-dollars).
    prices: { m: { input: 0.1, output: 0.2 }, 'm-big': { input: 1, output: 2 } },
    budgets: { report_interval_ms: 5, ...opts.budgets },
    ...(opts.degraded ? { degraded_answer: 'busy' } : {}),
  };
  const e = envWith(cfg);
  const key = (await createKey(t, e)).key;
  const ask = (extra: Record<string, unknown> = {}, headers: Record<string, string> = {}, on: Env = e) =>
    chat(key, { model: 'm', messages: HI, max_tokens: 20, ignore_eos: true, ...extra }, { env: on, headers });
  const budget = async (query = '', on: Env = e, tenant = t) => (await admin(`/admin/tenants/${tenant}/budget${query}`, { env: on })).json() as Promise<Record<string, any>>;
  return { t, sim, cfg, e, key, ask, budget };
}


/** A QUOTAS namespace that records every call to the real objects. */
export function recording(base: Env) {
  const calls: { method: string; arg: any }[] = [];
  const quotas = {
    idFromName: (n: string) => ns.idFromName(n),
    get: (id: DurableObjectId) => {
      const real = ns.get(id) as unknown as Record<string, (a: unknown) => Promise<unknown>>;
      return new Proxy(
        {},
        {
          get: (_, method: string) => async (arg: unknown) => {
            calls.push({ method, arg: structuredClone(arg) });
            return real[method]!(arg);
          },
        },
      );
    },
  };
  return { env: { ...base, QUOTAS: quotas } as unknown as Env, calls };
}
