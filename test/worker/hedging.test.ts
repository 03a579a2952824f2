import { beforeAll, describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import { backgroundSettled } from '../../worker/isolate/background';
import { isolateState } from '../../worker/routing/isolate-state';
import { uid } from '../support/uid';
import { FAST, spawnSim } from './sims';
import { chat, createKey, envWith } from './support';
import { ledgerRecords } from './usage-support';

// Hedging (README "Hedging"): an attempt with no first token after its hedge delay starts the next
// candidate beside it; the first to answer wins, the other is cancelled and counts nothing.

describe('hedging', () => {
  const t = `hg-${uid()}`;
  let env: Env;
  let key: string;
  const ask = async (body: Record<string, unknown>, id: string) => {
    const res = await chat(key, { messages: [{ role: 'user', content: `Say hi (${id}).` }], max_tokens: 8, ignore_eos: true, ...body }, { env, headers: { 'x-request-id': id } });
    return { res, text: await res.text() };
  };

  beforeAll(async () => {
    const slow = await spawnSim({ name: `${t}-slow`, models: ['m-slow'], latency: { ...FAST, base_ttft_ms: 4_000 } });
    const fast = await spawnSim({ name: `${t}-fast`, models: ['m-fast'], latency: FAST });
    env = envWith({
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'm-slow' }, { id: 'm-fast' }],
      backends: [
        { id: `slow-${t}`, kind: 'vllm', region: 'here', url: slow.url, models: ['m-slow'] },
        { id: `fast-${t}`, kind: 'vllm', region: 'here', url: fast.url, models: ['m-fast'] },
      ],
      tiers: { primary: { models: ['m-slow'], fallback_tier: 'backup' }, backup: { models: ['m-fast'] }, quick: { models: ['m-fast'], fallback_tier: 'primary' } },
      tenants: { [t]: { models: ['*'] } },
      prices: { 'm-slow': { input: 1, output: 1 }, 'm-fast': { input: 2, output: 2 } },
      usage: { flush_interval_ms: 0 },
      timeouts: { ttft_ms: 10_000, total_ms: 20_000 },
      routing: { hedging: { enabled: true, min_ms: 100, max_ms: 300 } },
    });
    key = (await createKey(t, env)).key;
  });

  it('a slow first backend is hedged: the second answers, non-streamed and streamed, the first is cancelled and counts nothing', async () => {
    const plain = await ask({ model: 'primary' }, 'plain');
    expect(plain.res.status).toBe(200);
    expect(plain.res.headers.get('x-router-backend')).toBe(`fast-${t}`);
    expect(plain.res.headers.get('x-router-attempts')).toBe('2');
    expect(plain.res.headers.get('x-router-fallback')).toBe(`slow-${t}>fast-${t}`);
    expect((JSON.parse(plain.text) as { choices: { message: { content: string } }[] }).choices[0]!.message.content.length).toBeGreaterThan(0);

    const streamed = await ask({ model: 'primary', stream: true }, 'streamed');
    expect(streamed.res.status).toBe(200);
    expect(streamed.res.headers.get('x-router-backend')).toBe(`fast-${t}`);
    expect(streamed.text.trimEnd().endsWith('data: [DONE]')).toBe(true);

    await backgroundSettled();
    const records = await ledgerRecords(t);
    for (const id of ['plain', 'streamed']) {
      const r = records.filter((x) => x.client_request_id === id);
      expect(r, id).toHaveLength(1);
      // Billed once, at the winner's prices; the slow attempt generated nothing and is not billed.
      expect(r[0]).toMatchObject({ backend: `fast-${t}`, model: 'm-fast', completion_tokens: 8, outcome: 'ok', path: [`slow-${t}`, `fast-${t}`] });
      // Answered well before the slow backend's 4 s first token (a correctness bound, not a speed claim).
      expect(r[0]!.latency_ms).toBeLessThan(3_000);
    }
    // The cancelled attempts hold no slot and count as no failure of the slow backend.
    expect({ slow: isolateState.inFlight(`slow-${t}`), fast: isolateState.inFlight(`fast-${t}`) }).toEqual({ slow: 0, fast: 0 });
    expect(isolateState.usable(`slow-${t}`)).toBe(true);
  });

  it('a first backend that answers within its hedge delay is not hedged', async () => {
    const { res } = await ask({ model: 'quick' }, 'quick');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe(`fast-${t}`);
    expect(res.headers.get('x-router-attempts')).toBe('1');
    expect(res.headers.get('x-router-fallback')).toBeNull();
  });
});
