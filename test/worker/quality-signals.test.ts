import { createExecutionContext, env as testEnv, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import worker from '../../worker/index';
import { onFeedback, type FeedbackEvent } from '../../worker/quality/feedback';
import { ledgerName } from '../../worker/telemetry/record';
import { parseExposition, valueOf } from './metrics-support';
import { simulatedConfig, type Sim } from './sims';
import { admin, ADMIN_TOKEN, call, chat, createKey, envWith, errorOf } from './support';
import { uid } from './usage-support';

// Quality signals (README "Feedback", "Quality signals and drift"): POST /v1/feedback joined to the
// usage record in the tenant's own ledger, /admin/usage quality columns per deployment version and
// model, and the same signals in /metrics; real requests through the router to simulators.

const base = testEnv as unknown as Env;

interface Setup {
  e: Env;
  a: string;
  b: string;
  keyA: string;
  keyB: string;
  deployment: string;
  sims: Record<string, Sim>;
}

async function setup(patch: (cfg: Record<string, any>) => void = () => {}): Promise<Setup> {
  const { cfg, sims } = await simulatedConfig();
  const tag = uid();
  const a = `qa-${tag}`;
  const b = `qb-${tag}`;
  const deployment = `helper-${tag}`;
  cfg.deployments = { ...cfg.deployments, [deployment]: { serving: 'v1', versions: { v1: { model: 'llama-3.1-8b' } } } };
  cfg.tenants[a] = { models: [deployment, 'llama-3.1-8b'], features: ['search'] };
  cfg.tenants[b] = { models: ['*'] };
  cfg.usage = { ...cfg.usage, flush_interval_ms: 10 };
  cfg.metrics = { ...cfg.metrics, flush_interval_ms: 0 };
  cfg.breaker = { ...cfg.breaker, enabled: false };
  patch(cfg);
  const e = envWith(cfg);
  const [ka, kb] = await Promise.all([createKey(a, e), createKey(b, e)]);
  return { e, a, b, keyA: ka.key, keyB: kb.key, deployment, sims };
}

const feedback = (s: Setup, key: string, body: unknown, raw = false) =>
  call('/v1/feedback', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: raw ? (body as string) : JSON.stringify(body), env: s.e });

async function json<T>(res: Response, status: number): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  return JSON.parse(text) as T;
}

async function scrape(e: Env) {
  return parseExposition(await (await call('/metrics', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, env: e })).text());
}

async function usage(s: Setup, tenant: string, groupBy: string, format = 'json') {
  const from = new Date(Date.now() - 3_600_000).toISOString();
  const to = new Date(Date.now() + 60_000).toISOString();
  return admin(`/admin/usage?group_by=${groupBy}&tenant=${tenant}&from=${from}&to=${to}&format=${format}`, { env: s.e });
}

type Row = Record<string, string | number | null>;

describe('POST /v1/feedback', () => {
  it('joins feedback to the request in /admin/usage and /metrics; replaces it; another tenant gets the same 404 as an unknown id', async () => {
    const s = await setup();
    const heard: FeedbackEvent[] = [];
    const off = onFeedback((f) => void heard.push(f));
    try {
      // One request on the deployment, one on the plain model (a feature the tenant lists).
      const onDeployment = await chat(s.keyA, { model: s.deployment, messages: [{ role: 'user', content: 'hello' }] }, { env: s.e });
      expect(onDeployment.status).toBe(200);
      const idDeployment = onDeployment.headers.get('x-request-id')!;
      const plain = await chat(s.keyA, { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi there' }] }, { env: s.e, headers: { 'x-router-feature': 'search' } });
      const idPlain = plain.headers.get('x-request-id')!;
      expect(idDeployment).toMatch(/^req_/);

      const first = await json<any>(await feedback(s, s.keyA, { request_id: idDeployment, score: 1, comment: 'great answer' }), 201);
      expect(first).toMatchObject({
        object: 'feedback',
        request_id: idDeployment,
        score: 1,
        metric: null,
        comment_length: 12,
        comment_stored: false,
        replaced: false,
        request: { model: 'llama-3.1-8b', deployment: s.deployment, deployment_version: 'v1', requested_model: s.deployment, refused: false },
      });
      expect(heard).toHaveLength(1);
      expect(heard[0]).toMatchObject({ tenant: s.a, request_id: idDeployment, score: 1, metric: null, replaced: false, record: { deployment: s.deployment, deployment_version: 'v1' } });

      await json(await feedback(s, s.keyA, { request_id: idPlain, score: 0.25 }), 201);
      // A custom metric on the same request is a feedback of its own.
      await json(await feedback(s, s.keyA, { request_id: idPlain, score: 1, metric: 'resolved' }), 201);
      // Feedback again on the same request and metric replaces the first: 200.
      const again = await json<any>(await feedback(s, s.keyA, { request_id: idPlain, score: -1 }), 200);
      expect(again).toMatchObject({ replaced: true, score: -1, request: { model: 'llama-3.1-8b', deployment: null, deployment_version: null, feature: 'search' } });

      // The comment's text is not kept (the tenant did not opt in), only its length.
      const rows = await base.USAGE_LEDGER.get(base.USAGE_LEDGER.idFromName(ledgerName(s.a))).feedbackRows();
      expect(rows.find((r) => r.request_id === idDeployment)).toMatchObject({ comment: null, comment_length: 12, score: 1 });
      expect(rows).toHaveLength(3);

      // /admin/usage grouped by model and deployment version: one row each, with its feedback.
      const report = await json<{ rows: Row[] }>(await usage(s, s.a, 'model,deployment_version'), 200);
      const v1 = report.rows.find((r) => r.deployment_version === 'v1')!;
      const none = report.rows.find((r) => r.deployment_version === null)!;
      expect(v1).toMatchObject({ model: 'llama-3.1-8b', requests: 1, answered: 1, refusals: 0, refusal_rate: 0, feedback: 1, feedback_positive: 1, feedback_negative: 0, feedback_mean_score: 1, negative_feedback_rate: 0 });
      expect(none).toMatchObject({ model: 'llama-3.1-8b', requests: 1, answered: 1, feedback: 1, feedback_positive: 0, feedback_negative: 1, feedback_mean_score: -1, feedback_custom: 1 });
      expect(Number(v1.output_tokens_mean)).toBeGreaterThan(0);
      const byDeployment = await json<{ rows: Row[] }>(await usage(s, s.a, 'deployment'), 200);
      expect(byDeployment.rows.map((r) => r.deployment).sort()).toEqual([s.deployment, null].sort());
      // The CSV has the same columns, appended after the existing ones.
      const csv = (await (await usage(s, s.a, 'deployment_version', 'csv')).text()).split('\r\n');
      const header = csv[0]!.split(',');
      expect(header.slice(0, 3)).toEqual(['deployment_version', 'requests', 'prompt_tokens']);
      expect(header).toEqual(expect.arrayContaining(['refusal_rate', 'truncation_rate', 'output_tokens_p95', 'feedback_negative', 'negative_feedback_rate']));
      const v1Line = csv.find((l) => l.startsWith('v1,'))!.split(',');
      expect(v1Line[header.indexOf('feedback_positive')]).toBe('1');

      // /metrics: counted once per request and metric (the first feedback), labels from config.
      const m = await scrape(s.e);
      expect(valueOf(m, 'router_feedback_total', { tenant: s.a, deployment: s.deployment, version: 'v1', model: 'llama-3.1-8b', feature: 'none', metric: 'default', sentiment: 'positive' })).toBe(1);
      expect(valueOf(m, 'router_feedback_total', { tenant: s.a, deployment: 'none', feature: 'search', metric: 'default', sentiment: 'positive' })).toBe(1);
      expect(valueOf(m, 'router_feedback_total', { tenant: s.a, deployment: 'none', feature: 'search', metric: 'custom', sentiment: 'positive' })).toBe(1);
      expect(valueOf(m, 'router_feedback_score_total', { tenant: s.a, deployment: 'none', metric: 'default' })).toBe(0.25);
      expect(valueOf(m, 'router_answers_total', { tenant: s.a, model: 'llama-3.1-8b', deployment: s.deployment, version: 'v1' })).toBe(1);
      expect(valueOf(m, 'router_output_tokens_count', { tenant: s.a, deployment: s.deployment, version: 'v1' })).toBe(1);
      expect(valueOf(m, 'router_output_tokens_sum', { tenant: s.a, deployment: s.deployment, version: 'v1' })).toBe(v1.completion_tokens);

      // Tenant B naming A's request: the very answer of an id that never existed.
      const cross = await feedback(s, s.keyB, { request_id: idDeployment, score: 1 });
      const unknown = await feedback(s, s.keyB, { request_id: 'req_doesnotexist0000', score: 1 });
      expect(cross.status).toBe(404);
      expect(unknown.status).toBe(404);
      const [ec, eu] = [await errorOf(cross), await errorOf(unknown)];
      expect(ec.code).toBe('request_not_found');
      expect({ ...ec, message: ec.message.replace(idDeployment, 'X') }).toEqual({ ...eu, message: eu.message.replace('req_doesnotexist0000', 'X') });
      // Nothing was stored in either ledger for it.
      expect((await base.USAGE_LEDGER.get(base.USAGE_LEDGER.idFromName(ledgerName(s.b))).feedbackRows()).length).toBe(0);
    } finally {
      off();
    }
  });

  it('rejects bad bodies and scores outside 1, -1 and [0, 1] with OpenAI-style 400s; no key is a 401', async () => {
    const s = await setup();
    const res = await chat(s.keyA, { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'x' }] }, { env: s.e });
    const id = res.headers.get('x-request-id')!;
    const bad: [unknown, string | null][] = [
      [{ score: 1 }, 'request_id'],
      [{ request_id: id }, 'score'],
      [{ request_id: id, score: 2 }, 'score'],
      [{ request_id: id, score: -0.5 }, 'score'],
      [{ request_id: id, score: 1.5 }, 'score'],
      [{ request_id: id, score: '1' }, 'score'],
      [{ request_id: id, score: true }, 'score'],
      [{ request_id: id, score: 1, comment: 'x'.repeat(4_001) }, 'comment'],
      [{ request_id: id, score: 1, metric: 'has space' }, 'metric'],
      [{ request_id: id, score: 1, extra: 1 }, null],
      [{ request_id: 'a b', score: 1 }, 'request_id'],
      [{ request_id: 'x'.repeat(129), score: 1 }, 'request_id'],
      [[], null],
    ];
    for (const [body, param] of bad) {
      const r = await feedback(s, s.keyA, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      const err = await errorOf(r);
      expect(err.type).toBe('invalid_request_error');
      if (param) expect(err.param, JSON.stringify(body)).toBe(param);
    }
    const notJson = await feedback(s, s.keyA, '{"request_id":', true);
    expect(notJson.status).toBe(400);
    expect((await errorOf(notJson)).code).toBe('invalid_json');
    const anon = await call('/v1/feedback', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request_id: id, score: 1 }), env: s.e });
    expect(anon.status).toBe(401);
    // The boundary values are accepted.
    for (const score of [0, 1, -1, 0.5]) expect((await feedback(s, s.keyA, { request_id: id, score })).status).toBeLessThan(300);
  });

  it("accepts the client's own x-request-id when it names one request (409 when several); stores the comment only for a tenant that opted in", async () => {
    const s = await setup((cfg) => {
      cfg.tenants[Object.keys(cfg.tenants).find((t) => t.startsWith('qa-'))!].store_feedback_comments = true;
    });
    const mine = `client-${uid()}`;
    const res = await chat(s.keyA, { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'x' }] }, { env: s.e, headers: { 'x-request-id': mine } });
    const routerId = res.headers.get('x-router-request-id')!;
    expect(routerId).toMatch(/^req_/);
    const out = await json<any>(await feedback(s, s.keyA, { request_id: mine, score: 1, comment: 'kept' }), 201);
    expect(out).toMatchObject({ request_id: routerId, client_request_id: mine, comment_stored: true, comment_length: 4 });
    const rows = await base.USAGE_LEDGER.get(base.USAGE_LEDGER.idFromName(ledgerName(s.a))).feedbackRows();
    expect(rows.find((r) => r.request_id === routerId)?.comment).toBe('kept');
    // The router's id names the same request: a replace.
    expect((await feedback(s, s.keyA, { request_id: routerId, score: -1 })).status).toBe(200);
    // A client id used twice is ambiguous.
    await chat(s.keyA, { model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'y' }] }, { env: s.e, headers: { 'x-request-id': mine } });
    const amb = await feedback(s, s.keyA, { request_id: mine, score: 1 });
    expect(amb.status).toBe(409);
    expect((await errorOf(amb)).code).toBe('ambiguous_request_id');
  });

  it('waits for a usage record still in its batch', async () => {
    const s = await setup((cfg) => {
      cfg.usage.flush_interval_ms = 1_000; // the record lands about a second after the answer
    });
    const ctx = createExecutionContext();
    const res = await worker.fetch(
      new Request('http://router.test/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${s.keyA}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'x' }] }),
      }) as Request<unknown, IncomingRequestCfProperties>,
      s.e,
      ctx,
    );
    expect(res.status).toBe(200);
    const id = res.headers.get('x-request-id')!;
    await res.text();
    const before = await base.USAGE_LEDGER.get(base.USAGE_LEDGER.idFromName(ledgerName(s.a))).records();
    expect(before.some((r) => r.request_id === id)).toBe(false);
    const [fb] = await Promise.all([feedback(s, s.keyA, { request_id: id, score: 1 }), waitOnExecutionContext(ctx)]);
    expect((await json<any>(fb, 201)).request.model).toBe('llama-3.1-8b');
  });
});

describe('quality signals of served answers', () => {
  it('counts refusals and truncations per model and deployment version, the same in /admin/usage and /metrics', async () => {
    const s = await setup();
    // Three normal answers on the deployment, two cut by max_tokens, then refusals only.
    for (let i = 0; i < 3; i++) expect((await chat(s.keyA, { model: s.deployment, messages: [{ role: 'user', content: `q${i}` }] }, { env: s.e })).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const r = await json<any>(await chat(s.keyA, { model: s.deployment, max_tokens: 2, messages: [{ role: 'user', content: `t${i}` }] }, { env: s.e }), 200);
      expect(r.choices[0].finish_reason).toBe('length');
    }
    await Promise.all(Object.values(s.sims).map((sim) => sim.config({ refusal_rate: 1 })));
    for (let i = 0; i < 3; i++) {
      const r = await json<any>(await chat(s.keyA, { model: s.deployment, messages: [{ role: 'user', content: `r${i}` }] }, { env: s.e }), 200);
      expect(r.choices[0].message.content).toMatch(/can't help/);
    }
    const report = await json<{ rows: Row[] }>(await usage(s, s.a, 'deployment,deployment_version,model'), 200);
    expect(report.rows).toHaveLength(1);
    const row = report.rows[0]!;
    expect(row).toMatchObject({ deployment: s.deployment, deployment_version: 'v1', requests: 8, answered: 8, refusals: 3, truncations: 2, refusal_rate: 3 / 8, truncation_rate: 2 / 8, feedback: 0, negative_feedback_rate: null });
    expect(row.output_tokens_p50).not.toBeNull();
    const byFinish = await json<{ rows: Row[] }>(await usage(s, s.a, 'finish_reason'), 200);
    expect(Object.fromEntries(byFinish.rows.map((r) => [r.finish_reason, r.requests]))).toEqual({ length: 2, stop: 6 });

    const m = await scrape(s.e);
    const labels = { tenant: s.a, model: 'llama-3.1-8b', deployment: s.deployment, version: 'v1' };
    expect(valueOf(m, 'router_answers_total', labels)).toBe(8);
    expect(valueOf(m, 'router_refusals_total', labels)).toBe(3);
    expect(valueOf(m, 'router_truncations_total', labels)).toBe(2);
    expect(valueOf(m, 'router_output_tokens_count', labels)).toBe(8);
    expect(valueOf(m, 'router_output_tokens_sum', labels)).toBe(row.completion_tokens);
    // The two 2-token answers are in the first bucket (le 4).
    expect(valueOf(m, 'router_output_tokens_bucket', { ...labels, le: '4' })).toBeGreaterThanOrEqual(2);
  });
});
