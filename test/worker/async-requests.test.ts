import { env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import { verifyWebhook } from '../../worker/protocol/rules/signed-webhook';
import { spawnWebhook } from '../support/webhook';
import { budgetStack, HI, U } from './budget-support';
import { asyncEnv, deliver, getJob, post } from './async-support';
import { admin, createKey, envWith, errorOf } from './support';
import { ledgerRecords } from './usage-support';

// Prefer: respond-async (README "Async requests"): 202 + Location, the job run by the async queue's
// consumer through the one pipeline, GET /v1/async/{id} per tenant, the signed webhook, and the
// queue on overload. Real RequestStore and usage ledger objects; the simulator over loopback.

const CHAT = '/v1/chat/completions';
const ask = { model: 'm', messages: HI, max_tokens: 20, ignore_eos: true };

describe('Prefer: respond-async', () => {
  it('answers 202 with the job and Location, runs it from the queue, and GET returns the sync answer', async () => {
    const s = await budgetStack();
    const { env: e, sent } = asyncEnv(s.e);
    const res = await post(CHAT, s.key, ask, e, { prefer: 'respond-async' });
    expect(res.status).toBe(202);
    const job = (await res.json()) as any;
    expect(job).toMatchObject({ object: 'async.job', status: 'queued', endpoint: CHAT, reason: 'requested', response: null });
    expect(job.id).toMatch(/^async_[0-9a-f]{32}$/);
    expect(res.headers.get('location')).toBe(`/v1/async/${job.id}`);
    expect(sent).toEqual([{ tenant: s.t, id: job.id }]);
    expect((await ledgerRecords(s.t)).length).toBe(0); // nothing ran yet

    const queued = (await (await getJob(job.id, s.key, e)).json()) as any;
    expect(queued.status).toBe('queued');
    const result = await deliver(e, sent);
    expect(result.explicitAcks.length).toBe(1);

    const done = (await (await getJob(job.id, s.key, e)).json()) as any;
    expect(done).toMatchObject({ id: job.id, status: 'completed', attempts: 1, response: { status_code: 200 } });
    const sync = (await (await s.ask()).json()) as any;
    // The same shape as the sync answer (only ids and timestamps differ).
    expect(Object.keys(done.response.body).sort()).toEqual(Object.keys(sync).sort());
    expect(done.response.body).toMatchObject({ object: 'chat.completion', model: sync.model, usage: sync.usage });
    expect(done.response.body.choices[0].message.role).toBe('assistant');
    // The job went through the pipeline: a usage record naming the job, and the budget debited.
    const records = await ledgerRecords(s.t);
    // The job's request id is its own (per attempt); its ledger row names the job in batch_id (/admin/usage?group_by=batch_id).
    const mine = records.filter((r) => r.request_id === `req_${job.id.slice(6)}_1`);
    expect(mine.length).toBe(1);
    expect(mine[0]).toMatchObject({ status: 200, prompt_tokens: 13, completion_tokens: 20 });
    expect((await s.budget()).used_tokens).toBe(2 * U);

    // A second delivery of the same message (the queue redelivers): the job is not run again.
    sent.push({ tenant: s.t, id: job.id });
    await deliver(e, sent, 2);
    expect((await ledgerRecords(s.t)).filter((r) => r.request_id.startsWith(`req_${job.id.slice(6)}_`)).length).toBe(1);
    const byJob = (await (await admin(`/admin/usage?group_by=batch_id&tenant=${s.t}`, { env: e })).json()) as any;
    expect(byJob.rows.find((r: any) => r.batch_id === job.id)).toMatchObject({ requests: 1 });
  });

  it('a tenant may have at most max_pending_per_tenant jobs queued or running: past it 429, and room again once one is done', async () => {
    const s = await budgetStack();
    const cfg = { ...((s.e as unknown as { ROUTER: Record<string, unknown> }).ROUTER), async: { max_pending_per_tenant: 2 } };
    const { env: e, sent } = asyncEnv(envWith(cfg));
    expect((await post(CHAT, s.key, ask, e, { prefer: 'respond-async' })).status).toBe(202);
    expect((await post(CHAT, s.key, ask, e, { prefer: 'respond-async' })).status).toBe(202);
    const full = await post(CHAT, s.key, ask, e, { prefer: 'respond-async' });
    expect(full.status).toBe(429);
    expect(full.headers.get('retry-after')).toBe('5');
    expect((await errorOf(full)).code).toBe('async_queue_full');
    expect(sent.length).toBe(2); // the refused one was never queued
    // Another tenant is not held back by this one's backlog.
    const other = (await createKey(`free-${s.t}`, e)).key;
    expect((await post(CHAT, other, ask, e, { prefer: 'respond-async' })).status).toBe(202);
    await deliver(e, sent);
    expect((await post(CHAT, s.key, ask, e, { prefer: 'respond-async' })).status).toBe(202);
  });

  it("another tenant's job id is the same 404 as an unknown one", async () => {
    const s = await budgetStack();
    const { env: e } = asyncEnv(s.e);
    const job = (await (await post(CHAT, s.key, ask, e, { prefer: 'respond-async' })).json()) as any;
    const other = (await createKey(`free-${s.t}`, e)).key;
    const theirs = await getJob(job.id, other, e);
    const unknown = await getJob(`async_${'0'.repeat(32)}`, other, e);
    expect(theirs.status).toBe(404);
    expect(unknown.status).toBe(404);
    const [a, b] = [await errorOf(theirs), await errorOf(unknown)];
    expect(a.code).toBe('async_job_not_found');
    expect(a.code).toBe(b.code);
    expect((await getJob('not-an-id', s.key, e)).status).toBe(404);
    expect((await getJob(job.id, s.key, e)).status).toBe(200);
  });

  it('validates before 202: a bad body is the sync 400, a stream is refused, an unknown webhook is refused; nothing queued', async () => {
    const s = await budgetStack();
    const { env: e, sent } = asyncEnv(s.e);
    const bad = await post(CHAT, s.key, { model: 'm', messages: 'nope' }, e, { prefer: 'respond-async' });
    expect(bad.status).toBe(400);
    const stream = await post(CHAT, s.key, { ...ask, stream: true }, e, { prefer: 'respond-async' });
    expect(stream.status).toBe(400);
    expect((await errorOf(stream)).code).toBe('async_stream_unsupported');
    const hook = await post(CHAT, s.key, ask, e, { prefer: 'respond-async, webhook=nope' });
    expect(hook.status).toBe(400);
    expect((await errorOf(hook)).code).toBe('unknown_webhook');
    for (const name of ['__proto__', 'constructor', 'toString']) {
      expect((await post(CHAT, s.key, ask, e, { prefer: `respond-async, webhook=${name}` })).status, name).toBe(400);
    }
    expect(sent).toEqual([]);
  });

  it('signs the completion webhook to the target configured for the tenant, verified by a loopback receiver', async () => {
    const s = await budgetStack();
    const receiver = await spawnWebhook();
    // BUDGET_ALERT_KEY is a secret the test worker has (vitest.config.ts): the target names it, never holds it.
    const e0 = envWith({ ...s.cfg, async: { webhooks: { [s.t]: { done: { url: receiver.url, secret: 'BUDGET_ALERT_KEY' } } } } });
    const { env: e, sent } = asyncEnv(e0);
    const job = (await (await post(CHAT, s.key, ask, e, { prefer: 'respond-async; webhook="done"' })).json()) as any;
    expect(job.webhook).toBe('done');
    await deliver(e, sent);
    const calls = await receiver.calls();
    expect(calls.length).toBe(1);
    const c = calls[0]!;
    expect(c.headers['x-router-event']).toBe('async.job.completed');
    expect(c.headers['x-router-delivery']).toBe(job.id);
    expect(await verifyWebhook('test-budget-alert-key', { signature: c.headers['x-router-signature'], timestamp: c.headers['x-router-timestamp'] }, c.body)).toBe(true);
    expect(await verifyWebhook('another-key', { signature: c.headers['x-router-signature'], timestamp: c.headers['x-router-timestamp'] }, c.body)).toBe(false);
    const body = JSON.parse(c.body);
    expect(body).toMatchObject({ id: job.id, status: 'completed', response: { status_code: 200 } });
    expect(body.response.body.object).toBe('chat.completion');
  });

  it('respond-async-on-overload: served now when it can be; queued (202) when every backend refuses, then completed', async () => {
    const s = await budgetStack();
    const e0 = envWith({ ...s.cfg, breaker: { enabled: false }, max_attempts: 2, async: { retry_base_seconds: 1 } });
    const { env: e, sent } = asyncEnv(e0);
    const now = await post(CHAT, s.key, ask, e, { prefer: 'respond-async-on-overload' });
    expect(now.status).toBe(200);
    expect(sent).toEqual([]);

    await s.sim.faults({ error_rate: 1, status: 503 });
    const plain = await post(CHAT, s.key, ask, e);
    expect(plain.status).toBe(502); // what a request that does not allow queueing gets
    expect((await errorOf(plain)).code).toBe('upstream_error');
    const res = await post(CHAT, s.key, ask, e, { prefer: 'respond-async-on-overload' });
    expect(res.status).toBe(202);
    const job = (await res.json()) as any;
    expect(job).toMatchObject({ status: 'queued', reason: 'overload' });

    // Still overloaded when the queue delivers it: handed back with backoff, not failed.
    const first = await deliver(e, [...sent]);
    expect(first.retryMessages.length).toBe(1);
    expect(((await (await getJob(job.id, s.key, e)).json()) as any).status).toBe('queued');
    await s.sim.faults({});
    await deliver(e, sent, 2);
    const done = (await (await getJob(job.id, s.key, e)).json()) as any;
    expect(done).toMatchObject({ status: 'completed', attempts: 2, response: { status_code: 200 } });
  });

  it('/v1/responses: the job answers in the Responses format, as the sync call does', async () => {
    const s = await budgetStack();
    const { env: e, sent } = asyncEnv(s.e);
    const req = { model: 'm', input: 'Say hello.', max_output_tokens: 20 };
    const res = await post('/v1/responses', s.key, req, e, { prefer: 'respond-async' });
    expect(res.status).toBe(202);
    const job = (await res.json()) as any;
    expect(job.endpoint).toBe('/v1/responses');
    expect((await post('/v1/responses', s.key, { ...req, stream: true }, e, { prefer: 'respond-async' })).status).toBe(400);
    await deliver(e, sent);
    const done = (await (await getJob(job.id, s.key, e)).json()) as any;
    const sync = (await (await post('/v1/responses', s.key, req, e)).json()) as any;
    expect(done).toMatchObject({ status: 'completed', response: { status_code: 200 } });
    expect(done.response.body.object).toBe('response');
    expect(Object.keys(done.response.body).sort()).toEqual(Object.keys(sync).sort());
  });

  it('answers are bounded ([async].max_result_bytes: the job fails with result_too_large) and jobs expire ([async].ttl_seconds)', async () => {
    const s = await budgetStack();
    const { env: e, sent } = asyncEnv(envWith({ ...s.cfg, async: { max_result_bytes: 1024 } }));
    const big = (await (await post(CHAT, s.key, { ...ask, max_tokens: 400 }, e, { prefer: 'respond-async' })).json()) as any;
    const small = (await (await post(CHAT, s.key, { ...ask, max_tokens: 2 }, e, { prefer: 'respond-async' })).json()) as any;
    await deliver(e, sent);
    const failed = (await (await getJob(big.id, s.key, e)).json()) as any;
    expect(failed).toMatchObject({ status: 'failed', response: { status_code: 500, body: { error: { code: 'result_too_large' } } } });
    expect(((await (await getJob(small.id, s.key, e)).json()) as any).status).toBe('completed');
    // Past its TTL a job is gone (GET → 404) and the sweep deletes it.
    const ns = (env as unknown as Env).ASYNC_JOBS!;
    const stub = ns.get(ns.idFromName(`tenant:${s.t}`));
    await runInDurableObject(stub, async (_obj, state) => {
      state.storage.sql.exec('UPDATE jobs SET expires_at = ? WHERE id = ?', Date.now() - 1, small.id);
    });
    expect((await getJob(small.id, s.key, e)).status).toBe(404);
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await runInDurableObject(stub, async (_obj, state) => {
      expect(state.storage.sql.exec('SELECT id FROM jobs').toArray().map((r) => r.id)).toEqual([big.id]);
    });
  });
});
