import { beforeAll, describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import { ANSWER, spawnFake, type FakeServer } from './fakes';
import { FAST, spawnSim } from './sims';
import { ADMIN_TOKEN, call, createKey, envWith } from './support';
import { ledgerRecords, uid } from './usage-support';

// "Self-hosted first, managed fallback": a tier of the team's own vLLM falls back to a tier
// served by a managed provider. And provider rate limits as signals: a 429 moves traffic to the
// next backend without counting against the provider's breaker, and a nearly spent budget moves
// traffic before the provider refuses.

const PRICES = { llama: { input: 0.2, output: 0.2 }, claude: { input: 3, output: 15 }, gpt: { input: 0.15, output: 0.6 } };
let anthropic: FakeServer;
beforeAll(async () => {
  anthropic = await spawnFake('anthropic', { api_key: 'sk-ant-fb' });
});

async function router(backends: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  const t = `fb-${uid()}`;
  const cfg = {
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [
      { id: 'llama', served_name: 'org/sl-model' },
      { id: 'claude', served_name: 'claude-x' },
      { id: 'gpt', served_name: 'gpt-4o-mini' },
    ].filter((m) => backends.some((b) => (b.models as string[]).includes(m.id))),
    backends: backends.map((b) => ({ region: 'here', ...b })),
    tenants: { [t]: {} },
    prices: Object.fromEntries(Object.entries(PRICES).filter(([m]) => backends.some((b) => (b.models as string[]).includes(m)))),
    ...extra,
  };
  const env = { ...envWith(cfg), ANTHROPIC_API_KEY: 'sk-ant-fb', OPENAI_API_KEY: 'sk-oa-fb' } as Env;
  const key = (await createKey(t, env)).key;
  const chat = (body: Record<string, unknown>) =>
    call('/v1/chat/completions', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), env });
  const breaker = async (id: string) => (await call(`/admin/breakers/${id}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, env })).json() as Promise<Record<string, any>>;
  return { t, env, chat, breaker };
}

describe('self-hosted first, managed fallback', () => {
  it('the self-hosted tier fails; the managed tier answers, priced at its own prices and marked with its backend', async () => {
    const vllm = `vllm-${uid()}`;
    const claude = `anthropic-${uid()}`;
    const sim = await spawnSim({ name: vllm, models: ['org/sl-model'], latency: FAST });
    await sim.faults({ error_rate: 1, status: 503 }); // the team's own vLLM is down
    const r = await router(
      [
        { id: vllm, kind: 'vllm', url: sim.url, models: ['llama'] },
        { id: claude, kind: 'anthropic', url: anthropic.url, auth_secret: 'ANTHROPIC_API_KEY', models: ['claude'] },
      ],
      { tiers: { main: { models: ['llama'], fallback_tier: 'managed' }, managed: { models: ['claude'] } } },
    );
    const res = await r.chat({ model: 'main', messages: [{ role: 'user', content: 'Hello from the fallback test' }], max_tokens: 50 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe(claude);
    expect(res.headers.get('x-router-model')).toBe('claude');
    expect(res.headers.get('x-router-fallback')).toBe(`${vllm}>${claude}`); // tried once (the tier's only replica), then the fallback tier
    const body = (await res.json()) as Record<string, any>;
    expect(body.choices[0].message.content).toBe(ANSWER);

    const record = (await ledgerRecords(r.t)).at(-1)!;
    expect(record).toMatchObject({ backend: claude, model: 'claude', tier: 'managed', path: [vllm, claude], prompt_tokens: body.usage.prompt_tokens, completion_tokens: body.usage.completion_tokens });
    const expected = (body.usage.prompt_tokens * PRICES.claude.input + body.usage.completion_tokens * PRICES.claude.output) / 1e6;
    expect(record.cost_usd).toBeCloseTo(expected, 12);
    expect(record.cost_usd).not.toBeCloseTo((body.usage.prompt_tokens * PRICES.llama.input + body.usage.completion_tokens * PRICES.llama.output) / 1e6, 12);
  });
});

describe('managed backends in splits', () => {
  it('a weighted split sends its share to the managed model, named in x-router-split and the usage record', async () => {
    const sim = await spawnSim({ name: `vllm-split-${uid()}`, models: ['org/sl-model'], latency: FAST });
    const claude = `anthropic-${uid()}`;
    const r = await router(
      [
        { id: `vllm-${uid()}`, kind: 'vllm', url: sim.url, models: ['llama'] },
        { id: claude, kind: 'anthropic', url: anthropic.url, auth_secret: 'ANTHROPIC_API_KEY', models: ['claude'] },
      ],
      { splits: { assistant: { targets: [{ model: 'llama', weight: 0 }, { model: 'claude', weight: 1, backends: [claude] }] } } },
    );
    const res = await r.chat({ model: 'assistant', messages: [{ role: 'user', content: 'split me' }], max_tokens: 20 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-split')).toBe('assistant=claude');
    expect(res.headers.get('x-router-backend')).toBe(claude);
    expect((await ledgerRecords(r.t)).at(-1)).toMatchObject({ backend: claude, model: 'claude', requested_model: 'assistant' });
  });
});

describe('provider rate limits are signals, not failures', () => {
  it('a 429 moves this request and the next ones to the next backend; the throttled backend\'s breaker stays closed', async () => {
    const claude = `anthropic-${uid()}`;
    const spent = await spawnFake('anthropic', { api_key: 'sk-ant-fb', remaining_requests: 0 }); // every call: 429 rate_limit_error, retry-after 30
    const openai = await spawnFake('openai', { api_key: 'sk-oa-fb' });
    const gpt = `openai-${uid()}`;
    const r = await router(
      [
        // One counted failure would open this breaker: the 429 must not count.
        { id: claude, kind: 'anthropic', url: spent.url, auth_secret: 'ANTHROPIC_API_KEY', models: ['claude'], breaker: { consecutive_failures: 1, min_requests: 1, failure_threshold: 0.01, report_max_batch: 1 } },
        { id: gpt, kind: 'openai', url: openai.url, auth_secret: 'OPENAI_API_KEY', models: ['gpt'] },
      ],
      { tiers: { managed: { models: ['claude'], fallback_tier: 'overflow' }, overflow: { models: ['gpt'] } } },
    );
    const marker = `q-${uid()}`;
    const first = await r.chat({ model: 'managed', messages: [{ role: 'user', content: `${marker} first` }] });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-router-fallback')).toBe(`${claude}>${gpt}`);
    expect(((await first.json()) as any).choices[0].message.content).toBe(ANSWER);
    const claudeCalls = async () => (await spent.calls()).filter((c) => c.body.includes(marker)).length;
    expect(await claudeCalls()).toBe(1);

    // Throttled until its reset (retry-after: 30 s): the planner skips it, no call reaches it.
    const second = await r.chat({ model: 'managed', messages: [{ role: 'user', content: `${marker} again` }] });
    expect(second.status).toBe(200);
    expect(second.headers.get('x-router-backend')).toBe(gpt);
    expect(second.headers.get('x-router-fallback')).toBeNull();
    expect(await claudeCalls()).toBe(1);

    const details = await r.breaker(claude);
    expect(details).toMatchObject({ state: 'closed', consecutive_failures: 0 });
  });

  it('a nearly spent budget (x-ratelimit-remaining-requests) moves traffic to the next replica before the provider refuses', async () => {
    const low = await spawnFake('openai', { api_key: 'sk-oa-fb', limit_requests: 100, remaining_requests: 4, reset_requests: '5m0s' });
    const roomy = await spawnFake('openai', { api_key: 'sk-oa-fb' });
    const a = `openai-low-${uid()}`;
    const b = `openai-roomy-${uid()}`;
    const r = await router(
      [
        { id: a, kind: 'openai', url: low.url, auth_secret: 'OPENAI_API_KEY', models: ['gpt'] },
        { id: b, kind: 'openai', url: roomy.url, auth_secret: 'OPENAI_API_KEY', models: ['gpt'] },
      ],
      { routing: { policy: 'round-robin' } },
    );
    // Until this isolate has heard from `a`, both replicas take turns; `a`'s answer says 3 of 100 are left (≤ 5 %).
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) seen.push((await r.chat({ model: 'gpt', messages: [{ role: 'user', content: `warm ${i}` }] })).headers.get('x-router-backend')!);
    expect(seen).toContain(a);
    const before = (await low.calls()).length;
    for (let i = 0; i < 4; i++) {
      const res = await r.chat({ model: 'gpt', messages: [{ role: 'user', content: `after ${i}` }] });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-router-backend')).toBe(b);
    }
    expect((await low.calls()).length).toBe(before);
  });
});
