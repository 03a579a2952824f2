import { env as testEnv } from 'cloudflare:test';
import { resetIsolate } from '../../worker/isolate/registry';
import type { Env } from '../../worker/env';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { retryAfterMs } from '../../worker/routing/execute';
import { isolateState } from '../../worker/routing/isolate-state';
import { backendLoad, refreshLoad } from '../../worker/routing/load-snapshot';
import { compileConfig } from '../../worker/config/compiled';

function loadConfigOf(cfg: unknown) {
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config;
}
import { baseConfig, chat, createKey, envWith, errorOf } from './support';
import { FAST, simulatedConfig, spawnSim, type Sim } from './sims';
import { until } from '../support/until';

const PARIS = '48.86,2.35,FR';
const SINGAPORE = '1.29,103.85,SG';
const hi = [{ role: 'user', content: 'Say hello.' }];
let key: string;

beforeAll(async () => {
  const { cfg } = await simulatedConfig();
  key = (await createKey('demo', envWith(cfg))).key;
});
beforeEach(async () => {
  resetIsolate();
  // Breakers outlive a test (Durable Object storage is shared by the tests of a file): start closed.
  const ns = (testEnv as unknown as Env).BREAKERS;
  await Promise.all([...baseConfig().backends.map((b: { id: string }) => b.id), 'r0', 'r1', 'r2', 'r3'].map((id: string) => ns.get(ns.idFromName(id)).reset()));
});

/** A one-region config with `n` replicas of one model, each its own simulator. */
async function replicaConfig(n: number, latency: Record<string, number> = FAST) {
  const sims: Sim[] = await Promise.all(Array.from({ length: n }, (_, i) => spawnSim({ name: `r${i}`, models: ['m'], latency })));
  const cfg = {
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: sims.map((s, i) => ({ id: `r${i}`, kind: 'vllm', region: 'here', url: s.url, models: ['m'] })),
    tiers: { fast: { models: ['m'] } },
    tenants: { demo: { models: ['*'] } },
  };
  return { cfg, sims };
}

describe('complexity', () => {
  it('auto sends an easy prompt to the cheap tier and a hard one to the strong tier, saying why', async () => {
    const { cfg } = await simulatedConfig();
    const e = envWith(cfg);
    const easy = await chat(key, { model: 'auto', messages: [{ role: 'user', content: 'hi there!' }], max_tokens: 4 }, { env: e });
    expect(easy.headers.get('x-router-tier')).toBe('fast');
    expect(easy.headers.get('x-router-backend')).toBe('vllm-us-east-8b');
    const easyScore = Number(easy.headers.get('x-router-complexity'));
    expect(easyScore).toBeLessThan(0.25);

    const proof = [
      {
        role: 'user',
        content:
          'Prove rigorously that every finite integral domain is a field, then derive the consequences for Z/nZ. ' +
          'Step by step: 1) state the lemma, 2) prove injectivity of multiplication, 3) analyse the trade-offs of a constructive proof versus one by contradiction.',
      },
    ];
    const hard = await chat(key, { model: 'auto', messages: proof, max_tokens: 2000 }, { env: e });
    expect(hard.status).toBe(200);
    expect(hard.headers.get('x-router-tier')).toBe('advanced');
    expect(hard.headers.get('x-router-backend')).toBe('vllm-us-east-405b');
    expect(Number(hard.headers.get('x-router-complexity'))).toBeGreaterThan(easyScore);
    expect(hard.headers.get('x-router-complexity')).toMatch(/^\d\.\d\d$/);
  });

  it('keeps auto within the tiers a tenant may use', async () => {
    const { cfg } = await simulatedConfig();
    cfg.tenants.demo.tiers = ['balanced'];
    const res = await chat(key, { model: 'auto', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }, { env: envWith(cfg) });
    expect(res.headers.get('x-router-tier')).toBe('balanced');
  });
});

describe('region and residency', () => {
  it('keeps a tenant inside its allowed regions, fallbacks included, and says 503 when none can serve', async () => {
    const { cfg, sims } = await simulatedConfig();
    delete cfg.degraded_answer;
    cfg.tenants.demo.allowed_regions = ['eu-west'];
    const e = envWith(cfg);
    // A client in Singapore still lands in the EU.
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: e, headers: { 'x-router-debug-geo': SINGAPORE } });
    expect(res.headers.get('x-router-region')).toBe('eu-west');
    // The EU backend failing must not push the request out of the EU.
    await sims['vllm-eu-west-8b']!.faults({ error_rate: 1 });
    const failed = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: e });
    expect(failed.status).toBe(502);
    expect(failed.headers.get('x-router-fallback') ?? '').not.toMatch(/us-east|ap-southeast/);
    for (const id of ['vllm-us-east-8b', 'vllm-ap-southeast-8b']) expect((await sims[id]!.stats()).requests.chat ?? 0).toBe(0);
    // The 405B model is served in us-east only.
    const none = await chat(key, { model: 'xl', messages: hi, max_tokens: 4 }, { env: e });
    expect(none.status).toBe(503);
    expect((await errorOf(none)).code).toBe('no_region_available');
  });

  it('follows a region failover list before distance', async () => {
    const { cfg, sims } = await simulatedConfig();
    cfg.regions.find((r: any) => r.id === 'us-east').failover = ['ap-southeast'];
    await sims['vllm-us-east-8b']!.faults({ error_rate: 1 });
    const res = await chat(key, { model: 'small', messages: hi, max_tokens: 4 }, { env: envWith(cfg) });
    expect(res.headers.get('x-router-backend')).toBe('vllm-ap-southeast-8b');
    expect(res.headers.get('x-router-fallback')).toBe('vllm-us-east-8b>vllm-ap-southeast-8b');
  });
});

describe('fallback chain', () => {
  it('walks other regions, then the fallback tier, then the degraded answer', async () => {
    const { cfg, sims } = await simulatedConfig();
    for (const id of ['vllm-us-east-8b', 'vllm-eu-west-8b', 'vllm-ap-southeast-8b']) await sims[id]!.faults({ error_rate: 1 });
    cfg.max_attempts = 5;
    const tier = await chat(key, { model: 'fast', messages: hi, max_tokens: 4 }, { env: envWith(cfg) });
    expect(tier.status).toBe(200);
    expect(tier.headers.get('x-router-tier')).toBe('balanced');
    expect(tier.headers.get('x-router-fallback')).toBe('vllm-us-east-8b>vllm-eu-west-8b>vllm-ap-southeast-8b>vllm-us-east-70b');

    for (const id of Object.keys(sims)) await sims[id]!.faults({ error_rate: 1 });
    const degraded = await chat(key, { model: 'fast', messages: hi, max_tokens: 4 }, { env: envWith(cfg) });
    expect(degraded.status).toBe(200);
    expect(degraded.headers.get('x-router-degraded')).toBe('true');
    expect(degraded.headers.get('x-router-fallback')).toMatch(/>degraded$/);
    const body = (await degraded.json()) as any;
    expect(body.choices[0].message.content).toBe(cfg.degraded_answer);

    const stream = await chat(key, { model: 'fast', messages: hi, stream: true }, { env: envWith(cfg) });
    const text = await stream.text();
    expect(text).toContain(JSON.stringify(cfg.degraded_answer).slice(1, -1));
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
  });

  it('retries the same backend, after a backoff, when it is the only one', async () => {
    const { cfg, sims } = await replicaConfig(1);
    Object.assign(cfg, { max_attempts: 3 });
    // Every other request fails: the first attempt fails with 429, the retry succeeds.
    await sims[0]!.faults({ error_rate: 0.5, status: 429 });
    await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: envWith(cfg) }); // request 1: passes
    const res = await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: envWith(cfg) });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-attempts')).toBe('2');
    expect(res.headers.get('x-router-fallback')).toBe('r0>r0');
  });

  it('reads Retry-After in seconds and as a date', () => {
    expect(retryAfterMs('2')).toBe(2_000);
    expect(retryAfterMs(new Date(Date.UTC(2030, 0, 1, 0, 0, 5)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(5_000);
    expect(retryAfterMs('soon')).toBeNull();
    expect(retryAfterMs(null)).toBeNull();
  });

  it('starts no retry past the deadline set by x-router-timeout-ms', async () => {
    const { cfg, sims } = await replicaConfig(1);
    delete (cfg as any).degraded_answer;
    Object.assign(cfg, { max_attempts: 10, routing: { retry_base_ms: 20, retry_max_ms: 20 }, breaker: { enabled: false } });
    // Each failing attempt takes at least 300 ms: at most four can start inside a 1 s deadline (a
    // busy machine only makes them fewer), far from the 10 allowed. Counted, not timed.
    await sims[0]!.faults({ error_rate: 1, status: 503, latency_ms: 300 });
    const chats = async () => ((await sims[0]!.stats()).requests?.chat as number | undefined) ?? 0;
    const res = await chat(key, { model: 'm', messages: hi }, { env: envWith(cfg), headers: { 'x-router-timeout-ms': '1000' } });
    expect([502, 504]).toContain(res.status); // 504 when the deadline cut the last attempt short
    const attempts = Number(res.headers.get('x-router-attempts'));
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(attempts).toBeLessThanOrEqual(4);
    expect(await chats()).toBeLessThanOrEqual(4);

    const bad = await chat(key, { model: 'm', messages: hi }, { env: envWith(cfg), headers: { 'x-router-timeout-ms': 'soon' } });
    expect(bad.status).toBe(400);
  });
});

describe('choosing a replica', () => {
  const system = { role: 'system', content: 'You are a meticulous assistant for ACME support. '.repeat(60) };
  const convo = (n: number) => [system, { role: 'user', content: `Question number ${n}: where is my parcel?` }];

  it('sends requests that share a prefix to the same replica', async () => {
    const { cfg } = await replicaConfig(4);
    const e = envWith(cfg);
    const backends = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const res = await chat(key, { model: 'm', messages: convo(i), max_tokens: 2 }, { env: e });
      backends.add(res.headers.get('x-router-backend')!);
      expect(res.headers.get('x-router-affinity')).toBe('hit');
    }
    expect(backends.size).toBe(1);

    // Different prefixes spread over the replicas.
    const spread = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const res = await chat(key, { model: 'm', messages: [{ role: 'system', content: `Persona ${i} `.repeat(80) }, ...hi], max_tokens: 2 }, { env: e });
      spread.add(res.headers.get('x-router-backend')!);
    }
    expect(spread.size).toBeGreaterThan(1);
  });

  it('round-robin, when configured, ignores the prefix', async () => {
    const { cfg } = await replicaConfig(3);
    Object.assign(cfg, { routing: { policy: 'round-robin' } });
    const seen = [];
    for (let i = 0; i < 3; i++) seen.push((await chat(key, { model: 'm', messages: convo(1), max_tokens: 2 }, { env: envWith(cfg) })).headers.get('x-router-backend'));
    expect(new Set(seen).size).toBe(3);
  });

  it('affinity yields to load when the preferred replica is far busier', async () => {
    const { cfg } = await replicaConfig(3);
    Object.assign(cfg, { routing: { affinity_load_slack: 2 } });
    const e = envWith(cfg);
    const first = await chat(key, { model: 'm', messages: convo(0), max_tokens: 2 }, { env: e });
    const preferred = first.headers.get('x-router-backend')!;
    // This edge has 3 requests in flight on the preferred replica, none elsewhere: past the slack.
    const release = [0, 1, 2].map(() => isolateState.begin(preferred));
    const res = await chat(key, { model: 'm', messages: convo(1), max_tokens: 2 }, { env: e });
    expect(res.headers.get('x-router-affinity')).toBe('yielded');
    expect(res.headers.get('x-router-backend')).not.toBe(preferred);
    // Back within the slack, affinity holds again.
    release.forEach((r) => r());
    const back = await chat(key, { model: 'm', messages: convo(2), max_tokens: 2 }, { env: e });
    expect(back.headers.get('x-router-backend')).toBe(preferred);
  });
});

describe('scraped backend load', () => {
  it('steers away from a replica its own /metrics shows busy, without waiting on the scrape', async () => {
    const { cfg, sims } = await replicaConfig(2);
    Object.assign(cfg, { routing: { policy: 'least-loaded' } });
    const e = envWith(cfg);
    // r0 holds ten hanging requests (vLLM counts them running); this edge knows nothing of them.
    await sims[0]!.faults({ hang: true });
    const held = new AbortController();
    for (let i = 0; i < 10; i++) {
      fetch(`${sims[0]!.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: hi }), signal: held.signal }).catch(() => {});
    }
    await until('r0 holding ten', () => sims[0]!.metric('vllm:num_requests_running'), (n) => n === 10);
    await sims[0]!.faults({});

    const before = await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: e });
    expect(before.headers.get('x-router-backend')).toBe('r0'); // no snapshot yet: config order

    // The scraper (the router's "global" object) is pointed at this test's simulators.
    const metrics = e.BACKEND_METRICS.get(e.BACKEND_METRICS.idFromName('global'));
    await metrics.configure({ backends: cfg.backends.map((b) => ({ id: b.id, url: b.url, kind: 'vllm' as const })) });
    resetIsolate('load-snapshot');
    const waits: Promise<unknown>[] = [];
    refreshLoad(e, { waitUntil: (p) => waits.push(p) }, loadConfigOf(cfg));
    await Promise.all(waits);
    expect(backendLoad('r0')?.running).toBe(10);

    const after = await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: e });
    expect(after.headers.get('x-router-backend')).toBe('r1');
    held.abort();
    await metrics.configure(null);
    resetIsolate('load-snapshot');
  });
});

describe('weighted splits', () => {
  it('splits by weight and sticks to a user', async () => {
    const { cfg } = await simulatedConfig();
    const e = envWith(cfg);
    const byUser = new Map<string, string>();
    let large = 0;
    for (let i = 0; i < 60; i++) {
      const res = await chat(key, { model: 'assistant', messages: hi, max_tokens: 2, user: `user-${i}` }, { env: e });
      expect(res.status).toBe(200);
      const model = res.headers.get('x-router-model')!;
      byUser.set(`user-${i}`, model);
      if (model === 'llama-3.1-70b') large++;
      expect(res.headers.get('x-router-split')).toBe(`assistant=${model}`);
    }
    // 20% weight: between 4 and 24 of 60 (very loose; the hash is fixed, so this never flakes).
    expect(large).toBeGreaterThan(3);
    expect(large).toBeLessThan(25);
    for (let i = 0; i < 10; i++) {
      const res = await chat(key, { model: 'assistant', messages: hi, max_tokens: 2 }, { env: e, headers: { 'x-router-user': `user-${i}` } });
      expect(res.headers.get('x-router-model')).toBe(byUser.get(`user-${i}`));
    }
  });
});
