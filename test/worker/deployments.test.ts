import { beforeEach, describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import { resetIsolate } from '../../worker/isolate/registry';
import type { DeploymentView, RolloutView } from '../../worker/protocol/deployments';
import { verifyWebhook } from '../../worker/protocol/rules/signed-webhook';
import type { UsageRecord } from '../../worker/protocol/usage-record';
import { spawnWebhook } from '../support/webhook';
import { onUsageRecord } from '../../worker/telemetry/record';
import { simulatedConfig, type Sim } from './sims';
import { admin, ADMIN_TOKEN, chat, createKey, envWith, errorOf } from './support';

// Deployments (README "Rollouts and quality"): a client-facing name resolved to versions, with
// run-time versions, gates, canary / blue-green / A/B rollouts and automatic rollback, against
// real Durable Objects and simulated backends.

const SECRET_NAME = 'BUDGET_ALERT_KEY'; // a secret the test Worker (and so the object) has: vitest.config.mts
const SECRET = 'test-budget-alert-key';
let seq = 0;

interface Setup {
  e: Env;
  key: string;
  name: string;
  sims: Record<string, Sim>;
}

/** A fresh deployment name per test (the objects keep their state for the whole file). */
async function setup(patch: (d: Record<string, any>, cfg: Record<string, any>) => void = () => {}, hookUrl?: string): Promise<Setup> {
  const { cfg, sims } = await simulatedConfig();
  const name = `bot-${++seq}-${Date.now().toString(36)}`;
  const d: Record<string, any> = {
    serving: 'v1',
    versions: {
      v1: { model: 'llama-3.1-8b', prompt: { version: '1.0.0', system: 'You are a support bot.', max_tokens: 3 } },
      v2: { model: 'llama-3.1-70b' },
    },
    rollout: { steps: [50, 100], dwell_seconds: 0, min_requests: 15, min_samples: 10, evaluate_interval_ms: 200, refresh_ms: 100, report_interval_ms: 0 },
  };
  patch(d, cfg);
  cfg.deployments = { [name]: d };
  cfg.tenants.bots = { models: [name] }; // the deployment name only: its versions' models need no entry
  if (hookUrl) cfg.alerts = { webhooks: [{ url: hookUrl, secret: SECRET_NAME }] };
  cfg.usage = { ...cfg.usage, flush_interval_ms: 10 };
  cfg.breaker = { ...cfg.breaker, enabled: false }; // breakers are per backend id, shared by every test of the file
  const e = envWith(cfg);
  return { e, key: (await createKey('bots', e)).key, name, sims };
}

const ask = (s: Setup, user: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  chat(s.key, { model: s.name, user, messages: [{ role: 'user', content: `hello from ${user}` }], ...extra }, { env: s.e, headers });

async function json<T>(res: Response, status = 200): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

const describeOf = async (s: Setup) => json<DeploymentView>(await admin(`/admin/deployments/${s.name}`, { env: s.e }));
const start = (s: Setup, body: Record<string, unknown>) => admin(`/admin/deployments/${s.name}/rollouts`, { method: 'POST', body: JSON.stringify(body), env: s.e });
const gate = (s: Setup, version: string, passed = true) =>
  admin(`/admin/deployments/${s.name}/gates`, { method: 'POST', body: JSON.stringify({ version, passed, summary: { cases: 100, mean_similarity: passed ? 0.97 : 0.5 } }), env: s.e });
const act = (s: Setup, id: string, action: string, body: Record<string, unknown> = {}) =>
  admin(`/admin/deployments/${s.name}/rollouts/${id}/${action}`, { method: 'POST', body: JSON.stringify(body), env: s.e });
const rollout = async (s: Setup, id: string) => json<RolloutView>(await admin(`/admin/deployments/${s.name}/rollouts/${id}`, { env: s.e }));

/** Every usage record this isolate emitted. */
const records: UsageRecord[] = [];
onUsageRecord((r) => void records.push(r));
const ledger = async () => records;

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v).slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The model a user's request ran on (config id), from the served name the simulator answered with. */
async function servedModel(s: Setup, user: string): Promise<string> {
  return modelId((await json<{ model: string }>(await ask(s, user))).model);
}
const modelId = (served: string) => (/70B/.test(served) ? 'llama-3.1-70b' : /405B/.test(served) ? 'llama-3.1-405b' : /8B/.test(served) ? 'llama-3.1-8b' : served);

beforeEach(() => resetIsolate());

describe('deployments', () => {
  it('a deployment name runs its serving version, with the prompt template, and records the version', async () => {
    const s = await setup();
    const res = await ask(s, 'alice');
    const body = await json<{ model: string; choices: { finish_reason: string }[]; usage: { completion_tokens: number; prompt_tokens: number } }>(res);
    expect(modelId(body.model)).toBe('llama-3.1-8b');
    // The template's max_tokens (3) caps the answer (the simulator's natural answers are 16+ tokens).
    expect(body.choices[0]!.finish_reason).toBe('length');
    expect(body.usage.completion_tokens).toBe(3);
    // Its system message went first: the same prompt straight to the model costs fewer prompt tokens.
    const plain = await json<{ usage: { prompt_tokens: number } }>(await chat((await createKey('demo', s.e)).key, { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hello from alice' }] }, { env: s.e }));
    expect(body.usage.prompt_tokens).toBeGreaterThan(plain.usage.prompt_tokens);
    // A client's own smaller max_tokens stays; a larger one is capped.
    expect((await json<{ usage: { completion_tokens: number } }>(await ask(s, 'alice', { max_tokens: 2 }))).usage.completion_tokens).toBe(2);
    expect((await json<{ usage: { completion_tokens: number } }>(await ask(s, 'alice', { max_tokens: 50 }))).usage.completion_tokens).toBe(3);

    const records = await until('three records', ledger, (r) => r.filter((x) => x.requested_model === s.name).length === 3);
    for (const r of records.filter((x) => x.requested_model === s.name)) {
      expect(r, JSON.stringify(r)).toMatchObject({ deployment: s.name, deployment_version: 'v1', model: 'llama-3.1-8b', finish_reason: 'length', refused: false });
    }
  });

  it('the tenant needs the deployment name; a tenant allowed only the model cannot use the deployment', async () => {
    const s = await setup((_d, cfg) => {
      cfg.tenants.modelonly = { models: ['llama-3.1-8b'] };
    });
    // bots may not call the model directly, only through the deployment.
    const direct = await chat(s.key, { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }] }, { env: s.e });
    expect(direct.status).toBe(403);
    const other = await createKey('modelonly', s.e);
    const res = await chat(other.key, { model: s.name, messages: [{ role: 'user', content: 'hi' }] }, { env: s.e });
    expect(res.status).toBe(403);
    expect((await errorOf(res)).code).toBe('model_not_allowed');
    // GET /v1/models lists it for the tenant that may use it.
    const models = await json<{ data: { id: string; owned_by: string }[] }>(await (await import('./support')).call('/v1/models', { headers: { authorization: `Bearer ${s.key}` }, env: s.e }));
    expect(models.data).toContainEqual({ id: s.name, object: 'model', created: expect.any(Number), owned_by: 'edge-router:deployment' });
  });

  it('admin API: versions at run time, gates before rollouts (force needs a reason), history with who and why', async () => {
    const s = await setup();
    const add = (body: Record<string, unknown>) => admin(`/admin/deployments/${s.name}/versions`, { method: 'POST', body: JSON.stringify(body), env: s.e, headers: { 'x-router-actor': 'ops@example.com' } });
    expect((await errorOf(await add({ name: 'v3', model: 'no-such-model' }))).code).toBe('model_not_found');
    expect((await add({ name: 'v3', model: 'llama-3.1-405b', prompt: { version: '2.0.0', system: 'Be brief.' }, reason: 'bigger model' })).status).toBe(201);
    expect((await add({ name: 'v3', model: 'llama-3.1-8b' })).status).toBe(409);
    expect((await add({ name: 'v4', model: 'llama-3.1-8b', bogus: 1 })).status).toBe(400);

    let res = await start(s, { version: 'v3' });
    expect(res.status).toBe(409);
    expect((await errorOf(res)).code).toBe('gate_required');
    expect((await errorOf(await start(s, { version: 'v3', force: true }))).code).toBe('reason_required');
    expect((await gate(s, 'v3', false)).status).toBe(201);
    expect((await errorOf(await start(s, { version: 'v3' }))).code).toBe('gate_required'); // a failing gate is no gate
    expect((await gate(s, 'v3')).status).toBe(201);
    res = await start(s, { version: 'v3', steps: [10, 100] });
    const ro = await json<RolloutView>(res, 201);
    expect(ro).toMatchObject({ mode: 'canary', stable: 'v1', candidate: 'v3', state: 'running', share: 10, steps: [10, 100], forced: false });
    expect((await errorOf(await start(s, { version: 'v2', force: true, reason: 'x' }))).code).toBe('rollout_in_progress');
    expect((await act(s, ro.id, 'rollback', { reason: 'changed my mind' })).status).toBe(200);

    const d = await describeOf(s);
    expect(d.serving).toBe('v1');
    expect(d.versions.map((v) => [v.name, v.source])).toEqual([['v1', 'config'], ['v2', 'config'], ['v3', 'runtime']]);
    expect(d.versions.find((v) => v.name === 'v3')!.gate).toMatchObject({ passed: true, summary: { cases: 100 } });
    expect(d.history.map((h) => h.action).reverse()).toEqual(['version_added', 'gate_failed', 'gate_passed', 'rollout_started', 'rolled_back']);
    expect(d.history.at(-1)).toMatchObject({ actor: 'ops@example.com', version: 'v3', reason: 'bigger model' });
    expect(d.history[0], JSON.stringify(d.history[0])).toMatchObject({ actor: 'admin', reason: 'changed my mind' });
    expect((await admin(`/admin/deployments/nope`, { env: s.e })).status).toBe(404);
    expect((await admin(`/admin/deployments/${s.name}`, { env: s.e, headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  });

  it('a canary is sticky per user, and a rollback sends everyone back to stable', async () => {
    const s = await setup();
    await gate(s, 'v2');
    const ro = await json<RolloutView>(await start(s, { version: 'v2', steps: [50, 100], min_requests: 1_000_000 }), 201);
    const users = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const first = new Map<string, string>();
    for (const u of users) first.set(u, await servedModel(s, u));
    const onCandidate = [...first.values()].filter((m) => m === 'llama-3.1-70b').length;
    expect(onCandidate).toBeGreaterThan(8); // about half of 40
    expect(onCandidate).toBeLessThan(32);
    for (const u of users.slice(0, 10)) expect(await servedModel(s, u)).toBe(first.get(u)); // sticky

    await json<RolloutView>(await act(s, ro.id, 'rollback'));
    await new Promise((r) => setTimeout(r, 150)); // past refresh_ms: the next request re-reads the split in the background
    await servedModel(s, 'user-0');
    for (const u of users) expect(await servedModel(s, u)).toBe('llama-3.1-8b');
  });

  it('blue-green switches every request at once and rolls back in one call', async () => {
    const s = await setup();
    await gate(s, 'v2');
    const ro = await json<RolloutView>(await start(s, { version: 'v2', mode: 'blue-green', reason: 'new model' }), 201);
    expect(ro).toMatchObject({ state: 'promoted', share: 100 });
    resetIsolate('deployment-view'); // a fresh isolate reads the new split first
    expect(await servedModel(s, 'bob')).toBe('llama-3.1-70b');
    expect((await describeOf(s)).previous).toBe('v1');
    await json<RolloutView>(await act(s, ro.id, 'rollback'));
    resetIsolate('deployment-view');
    expect(await servedModel(s, 'bob')).toBe('llama-3.1-8b');
    expect((await describeOf(s)).serving).toBe('v1');
  });

  it('the version pin is for the admin token only', async () => {
    const s = await setup();
    let res = await ask(s, 'carol', {}, { 'x-router-deployment-version': 'v2' });
    expect(res.status).toBe(403);
    res = await ask(s, 'carol', {}, { 'x-router-deployment-version': 'v2', 'x-router-admin-token': 'nope' });
    expect(res.status).toBe(403);
    res = await ask(s, 'carol', {}, { 'x-router-deployment-version': 'v2', 'x-router-admin-token': ADMIN_TOKEN });
    expect(modelId((await json<{ model: string }>(res)).model)).toBe('llama-3.1-70b');
    res = await ask(s, 'carol', {}, { 'x-router-deployment-version': 'v9', 'x-router-admin-token': ADMIN_TOKEN });
    expect(res.status).toBe(404);
  });

  it('a bad canary at 5% is rolled back on its own, with the numbers, and a signed alert goes out', async () => {
    const hook = await spawnWebhook({ fail_first: 1 }); // the first delivery fails: retried with the same id
    const s = await setup(() => {}, hook.url);
    // Every backend of the candidate's model fails.
    await Promise.all(Object.entries(s.sims).filter(([id]) => id.includes('70b')).map(([, sim]) => sim.faults({ error_rate: 1 })));
    await gate(s, 'v2');
    // The default first step: 5% of users.
    const ro = await json<RolloutView>(await start(s, { version: 'v2', steps: [5, 25, 50, 100] }), 201);
    let i = 0;
    const done = await until(
      'the automatic rollback',
      async () => {
        await Promise.all(Array.from({ length: 20 }, () => ask(s, `u-${i++}`)));
        return rollout(s, ro.id);
      },
      (v) => v.state !== 'running',
      30_000,
    );
    expect(done.state).toBe('rolled_back');
    expect(done.reason).toMatch(/automatic rollback: .*error.rate/i);
    expect(done.comparison?.verdict).toBe('rollback');
    expect(done.share).toBe(0);
    expect(done.steps[done.step]).toBe(5); // caught in its first step
    expect(done.arms.candidate.error_rate).toBe(1);
    expect(done.arms.stable.error_rate).toBe(0);
    const calls = await until('the alert, retried', () => hook.calls(), (c) => c.length > 1);
    expect(calls.map((c) => [c.status, c.headers['x-router-attempt']])).toEqual([[500, '1'], [200, '2']]);
    expect(calls[1]!.headers['x-router-delivery']).toBe(calls[0]!.headers['x-router-delivery']);
    const alert = JSON.parse(calls[1]!.body) as { type: string; deployment: string; rollout: string; reasons: string[] };
    expect(alert).toMatchObject({ type: 'rollout.rolled_back', deployment: s.name, rollout: ro.id });
    expect(alert.reasons[0]).toMatch(/error rate/);
    expect(await verifyWebhook(SECRET, { signature: calls[1]!.headers['x-router-signature'], timestamp: calls[1]!.headers['x-router-timestamp'] }, calls[1]!.body)).toBe(true);
    // Everyone is back on stable.
    await new Promise((r) => setTimeout(r, 150));
    await servedModel(s, 'u-0');
    for (let k = 0; k < 10; k++) expect(await servedModel(s, `u-${k}`)).toBe('llama-3.1-8b');
  }, 60_000);

  it('a canary whose answers turn into refusals is rolled back on its refusal rate', async () => {
    const s = await setup((d) => {
      d.versions.v1.prompt.max_tokens = 64; // whole answers: a refusal is read from the first sentences
    });
    await Promise.all(Object.entries(s.sims).filter(([id]) => id.includes('70b')).map(([, sim]) => sim.config({ refusal_rate: 0.5 })));
    await gate(s, 'v2');
    const ro = await json<RolloutView>(await start(s, { version: 'v2', steps: [50, 100], min_requests: 1_000_000 }), 201);
    let i = 0;
    const done = await until(
      'the automatic rollback',
      async () => {
        for (let k = 0; k < 5; k++) await ask(s, `r-${i++}`);
        return rollout(s, ro.id);
      },
      (v) => v.state !== 'running',
      30_000,
    );
    expect(done.state).toBe('rolled_back');
    expect(done.reason).toMatch(/refusal rate/i);
    expect(done.arms.candidate.refusal_rate).toBeGreaterThan(0.3);
    expect(done.arms.stable.refusal_rate).toBe(0);
    expect(done.arms.candidate.error_rate).toBe(0);
    // The usage records carry the verdict too (never the text).
    expect(records.filter((r) => r.deployment === s.name && r.refused === true).every((r) => r.deployment_version === 'v2')).toBe(true);
    expect(records.some((r) => r.deployment === s.name && r.refused === true)).toBe(true);
  }, 60_000);

  it('an A/B test on feedback finds a real difference, with a CI and a p-value, and names no winner without one', async () => {
    const run = async (good: { v1: number; v2: number }) => {
      const s = await setup((d) => {
        d.ab = { alpha: 0.05, test: 'sequential', share: 50 };
      });
      await gate(s, 'v2');
      const ro = await json<RolloutView>(await start(s, { version: 'v2', mode: 'ab' }), 201);
      expect(ro).toMatchObject({ mode: 'ab', share: 50, state: 'running' });
      const counts = { v1: 0, v2: 0 };
      for (let batch = 0; batch < 16; batch++) {
        await Promise.all(
          Array.from({ length: 10 }, async (_, k) => {
            const res = await ask(s, `ab-${batch}-${k}`);
            await res.text();
            const version = res.headers.get('x-router-deployment-version') as 'v1' | 'v2';
            // Deterministic "users": in every ten answers of a version, good[version] are liked.
            const n = counts[version]++;
            const score = n % 10 < good[version] ? 1 : -1;
            const fb = await (await import('./support')).call('/v1/feedback', {
              method: 'POST',
              headers: { authorization: `Bearer ${s.key}`, 'content-type': 'application/json' },
              body: JSON.stringify({ request_id: res.headers.get('x-request-id'), score }),
              env: s.e,
            });
            expect(fb.status, await fb.clone().text()).toBe(201);
          }),
        );
      }
      return { view: await until('feedback counted', () => rollout(s, ro.id), (v) => (v.ab?.stable.n ?? 0) + (v.ab?.candidate.n ?? 0) === 160), counts };
    };

    const real = await run({ v1: 3, v2: 9 });
    expect(real.counts.v1 + real.counts.v2).toBe(160);
    const ab = real.view.ab!;
    expect(ab).toMatchObject({ metric: 'positive_feedback', test: 'sequential', significant: true, winner: 'candidate' });
    expect(ab.p_value!).toBeLessThan(0.05);
    expect(ab.diff!).toBeGreaterThan(0.4);
    expect(ab.ci![0]).toBeGreaterThan(0);
    expect(real.view.state).toBe('running'); // an A/B test reports; the operator promotes

    const none = await run({ v1: 5, v2: 5 });
    expect(none.view.ab).toMatchObject({ significant: false, winner: null });
    expect(none.view.ab!.ci![0]).toBeLessThan(0);
    expect(none.view.ab!.ci![1]).toBeGreaterThan(0);
  }, 90_000);

  it('a good canary walks its steps and is promoted', async () => {
    const s = await setup((d) => {
      d.rollout.steps = [20, 50, 100];
    });
    await gate(s, 'v2');
    const ro = await json<RolloutView>(await start(s, { version: 'v2' }), 201);
    let i = 0;
    const done = await until(
      'the promotion',
      async () => {
        for (let k = 0; k < 10; k++) await ask(s, `g-${i++}`);
        return rollout(s, ro.id);
      },
      (v) => v.state !== 'running',
      60_000,
    );
    expect(done.state, JSON.stringify(done.reason)).toBe('promoted');
    const d = await describeOf(s);
    expect(d.serving).toBe('v2');
    expect(d.history.map((h) => h.action)).toEqual(expect.arrayContaining(['rollout_advanced', 'promoted']));
    expect(d.history.find((h) => h.action === 'rollout_advanced')!.detail).toMatchObject({ from: 20, to: 50 });
  }, 60_000);
});
