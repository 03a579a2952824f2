import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../worker/config/compiled';
import { asyncBacklogAlerts } from '../../worker/async/queue-report';
import { budgetStack, HI } from './budget-support';
import { asyncEnv, deliver, getJob, post } from './async-support';
import { parseExposition, valueOf } from './metrics-support';
import { ADMIN_TOKEN, admin, call, envWith } from './support';

// The async queue for operators (README "Async requests"): GET /admin/queues lists it after the batch
// queue (depth, running, oldest age, retries, dead letters), /metrics has router_async_queue_*, and
// the queue_backlog alert fires on a job older than [async].alert_oldest_age_seconds. Real
// RequestStore objects, the simulator over loopback, the consumer run on what the route sent.

const CHAT = '/v1/chat/completions';
const ask = { model: 'm', messages: HI, max_tokens: 20, ignore_eos: true };

async function asyncQueue(e: ReturnType<typeof asyncEnv>['env']) {
  const res = await admin('/admin/queues', { env: e });
  expect(res.status).toBe(200);
  const list = (await res.json()) as { data: any[] };
  expect(list.data.map((q) => q.queue)).toEqual(['edge-router-batch', 'edge-router-async']);
  return list.data[1];
}

describe('the async queue in /admin/queues, /metrics and the queue_backlog alert', () => {
  it('shows queued jobs and their age, retries, and a dead letter once the last retry fails', async () => {
    const s = await budgetStack();
    const cfg = { ...s.cfg, breaker: { enabled: false }, max_attempts: 1, async: { max_retries: 1, retry_base_seconds: 1, alert_oldest_age_seconds: 60 } };
    const { env: e, sent } = asyncEnv(envWith(cfg));
    const empty = await asyncQueue(e);
    expect(empty).toMatchObject({ object: 'queue', depth: 0, running: 0, oldest_age_seconds: null, retries: 0, dead_letters: 0, jobs_done: 0 });

    const jobs = [];
    for (let i = 0; i < 2; i++) jobs.push(((await (await post(CHAT, s.key, ask, e, { prefer: 'respond-async' })).json()) as any).id);
    const queued = await asyncQueue(e);
    expect(queued).toMatchObject({ depth: 2, queued: 2, running: 0, retries: 0, dead_letters: 0 });
    expect(queued.oldest_age_seconds).toBeGreaterThanOrEqual(0);
    expect(queued.by_tenant[s.t]).toMatchObject({ queued: 2 });
    expect(queued.by_tenant[`free-${s.t}`]).toMatchObject({ queued: 0, oldest_created_at: null });

    // The alert: nothing at the job's age now; fired when the oldest job is older than the limit.
    const compiled = loadConfig(cfg);
    if (!compiled.ok) throw new Error(compiled.errors.join('; '));
    expect(await asyncBacklogAlerts(e, compiled.config, Date.now())).toEqual([]);
    const later = await asyncBacklogAlerts(e, compiled.config, Date.now() + 120_000);
    expect(later).toEqual([expect.objectContaining({ id: 'queue_backlog:edge-router-async', details: expect.objectContaining({ depth: 2, limit_seconds: 60 }) })]);
    expect(later[0]!.summary).toMatch(/^Queue edge-router-async: oldest job waiting 1\d\d s \(limit 60 s\), 2 jobs pending$/);

    // Every backend fails: the first delivery hands both back (retries 2), the second is the last
    // (max_retries 1): both fail with the backend's error and are dead letters.
    await s.sim.faults({ error_rate: 1, status: 503 });
    const first = await deliver(e, sent);
    expect(first.retryMessages.length).toBe(2);
    expect(await asyncQueue(e)).toMatchObject({ depth: 2, queued: 2, retries: 2, dead_letters: 0 });
    for (const id of jobs) sent.push({ tenant: s.t, id });
    const last = await deliver(e, sent, 2);
    expect(last.explicitAcks.length).toBe(2);
    for (const id of jobs) {
      const job = (await (await getJob(id, s.key, e)).json()) as any;
      expect(job).toMatchObject({ status: 'failed', attempts: 2, response: { status_code: 502, body: { error: { code: 'upstream_error' } } } });
    }
    const dead = await asyncQueue(e);
    expect(dead).toMatchObject({ depth: 0, running: 0, oldest_age_seconds: null, retries: 2, dead_letters: 2, failed: 2, dead_letters_kept: 2, jobs_done: 2 });
    expect(await asyncBacklogAlerts(e, compiled.config, Date.now() + 120_000)).toEqual([]);

    // A job that completes is done, not a dead letter.
    await s.sim.faults({});
    await post(CHAT, s.key, ask, e, { prefer: 'respond-async' });
    await deliver(e, sent);
    const after = await asyncQueue(e);
    expect(after).toMatchObject({ depth: 0, dead_letters: 2, failed: 2, jobs_done: 3 });

    // /metrics: the same figures under router_async_queue_*.
    const m = parseExposition(await (await call('/metrics', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, env: e })).text());
    const q = { queue: 'edge-router-async' };
    expect(valueOf(m, 'router_async_queue_depth', q)).toBe(0);
    expect(valueOf(m, 'router_async_queue_retries_total', q)).toBe(2);
    expect(valueOf(m, 'router_async_queue_dead_letters_total', q)).toBe(2);
    expect(valueOf(m, 'router_async_jobs_total', q)).toBe(after.jobs_done);
    expect(valueOf(m, 'router_async_queue_oldest_age_seconds', q)).toBe(0);
  });
});
