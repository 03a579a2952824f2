import { expect } from 'vitest';
import type { Env } from '../../worker/env';
import { FAST, spawnSim, type Sim } from './sims';
import { chat, createKey, envWith } from './support';

import { uid } from '../support/uid';

export { uid };
export { admin } from './support';

// The simulator's answer to HI with max_tokens 20 and ignore_eos: 13 prompt + 20 completion tokens.
export const HI = [{ role: 'user', content: 'Say hello.' }];
export const USED = 33;
// Its token reservation: 64 (chat base) + 8 (one message) + 10 bytes + 20 (max_tokens).
export const RESERVED = 102;

export interface LimitStack {
  t: string;
  sim: Sim;
  cfg: Record<string, any>;
  e: Env;
  key: { id: string; key: string };
  ask(extra?: Record<string, unknown>, headers?: Record<string, string>, key?: string): Promise<Response>;
  newKey(tenant?: string): Promise<{ id: string; key: string }>;
}

/**
 * A router of this test's own: a fresh tenant (and a second one, `other-<t>`), one instant
 * simulator serving model "m", and the given [limits] (store embedded unless `upstash` says
 * otherwise); `patch` edits the config further.
 */
export async function limitStack(limits: Record<string, unknown>, opts: { patch?: (cfg: Record<string, any>) => void; secrets?: Record<string, string> } = {}): Promise<LimitStack> {
  const t = `rl-${uid()}`;
  const sim = await spawnSim({ name: t, models: ['m'], latency: FAST });
  const cfg: Record<string, any> = {
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: [{ id: `b-${t}`, kind: 'vllm', region: 'here', url: sim.url, models: ['m'] }],
    tenants: { [t]: { models: ['*'] }, [`other-${t}`]: { models: ['*'] } },
    limits: { store: 'embedded', ...limits },
  };
  opts.patch?.(cfg);
  const e = { ...envWith(cfg), ...opts.secrets } as Env;
  const newKey = (tenant = t) => createKey(tenant, e);
  const key = await newKey();
  const ask = (extra: Record<string, unknown> = {}, headers: Record<string, string> = {}, k = key.key) =>
    chat(k, { model: 'm', messages: HI, max_tokens: 20, ignore_eos: true, ...extra }, { env: e, headers });
  return { t, sim, cfg, e, key, ask, newKey };
}

export const remaining = (res: Response, unit: 'requests' | 'tokens') => Number(res.headers.get(`x-ratelimit-remaining-${unit}`));

/**
 * 50 requests at once against a limit of 10 (per key, an hour): exactly 10 answered, their
 * remaining-requests exactly {9…0}, the 40 others 429 in OpenAI's format with Retry-After, and
 * the simulator saw exactly 10 requests.
 */
export async function fiftyAgainstTen(s: LimitStack): Promise<void> {
  const chats = async () => ((await s.sim.stats()).requests?.chat as number | undefined) ?? 0;
  const before = await chats();
  const all = await Promise.all(Array.from({ length: 50 }, () => s.ask()));
  const ok = all.filter((r) => r.status === 200);
  const limited = all.filter((r) => r.status === 429);
  expect(ok).toHaveLength(10);
  expect(limited).toHaveLength(40);
  expect(ok.map((r) => remaining(r, 'requests')).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  for (const r of all) {
    expect(r.headers.get('x-ratelimit-limit-requests')).toBe('10');
    expect(r.headers.get('x-ratelimit-reset-requests')).toMatch(/^(59m[0-9.]+s|1h0m0s)$/);
  }
  for (const r of limited) {
    expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(3_500);
    expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(3_600);
    const body = (await r.json()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null });
    expect(body.error.message).toMatch(new RegExp(`requests per 1h0m0s on API key ${s.key.id}: limit 10`));
  }
  await Promise.all(ok.map((r) => r.arrayBuffer()));
  expect((await chats()) - before).toBe(10);
}
