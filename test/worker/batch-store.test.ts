import { env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { detectQueueBacklog } from '../../worker/alerts/detectors';
import { runbookForAlert } from '../../worker/alerts/runbooks';
import type { Env } from '../../worker/env';
import type { BatchObject } from '../../worker/protocol/batch';
import { fileKey } from '../../worker/protocol/files';
import { uid } from '../support/uid';
import { batchHeadroom } from '../../worker/batch/schedule';
import { compileConfig } from '../../worker/config/compiled';
import { isolateState } from '../../worker/routing/isolate-state';
import { baseConfig } from './support';

// BatchStore (durable-objects/batch-store.ts) on its own: the per-line ledger's exactly-once
// answers, cancel, expiry after the completion window (its alarm), listing, and the queue figures.
// The whole path with the openai SDK is test/node/batch-e2e.test.ts.

const e = env as unknown as Env;
const store = (tenant: string) => e.BATCHES!.get(e.BATCHES!.idFromName(`tenant:${tenant}`));

function batchObj(id: string, expiresAt: number): BatchObject {
  const at = Math.floor(Date.now() / 1000);
  return {
    id, object: 'batch', endpoint: '/v1/chat/completions', model: 'llama-3.1-8b', errors: null, input_file_id: 'file-000000000000000000000000',
    completion_window: '24h', status: 'in_progress', output_file_id: null, error_file_id: null, created_at: at, in_progress_at: at, expires_at: expiresAt,
    finalizing_at: null, completed_at: null, failed_at: null, expired_at: null, cancelling_at: null, cancelled_at: null,
    request_counts: { total: 0, completed: 0, failed: 0 },
    usage: { input_tokens: 0, input_tokens_details: { cached_tokens: 0 }, output_tokens: 0, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 0 },
    metadata: null,
  };
}
const batchId = () => `batch_${uid().replace(/[^0-9a-f]/g, '').padEnd(24, '0').slice(0, 24)}`;
const okLine = (custom_id: string) => JSON.stringify({ id: 'batch_req_x', custom_id, response: { status_code: 200, request_id: 'r', body: {} }, error: null });
const usage = { input_tokens: 10, cached_tokens: 0, output_tokens: 5 };

async function fileLines(tenant: string, id: string | null): Promise<Array<{ custom_id: string; error: { code: string } | null }>> {
  if (id === null) return [];
  const o = await e.FILES!.get(fileKey(tenant, id));
  return (await o!.text()).trim().split('\n').map((l) => JSON.parse(l));
}

describe('BatchStore: the per-line ledger', () => {
  it('claims once, records the first result only, and acks redeliveries without running them', async () => {
    const tenant = `t-${uid()}`;
    const s = store(tenant);
    const id = batchId();
    const now = Date.now();
    await s.create(batchObj(id, Math.floor(now / 1000) + 3600), tenant, [{ custom_id: 'a', line: 1 }, { custom_id: 'b', line: 2 }], now);
    expect(await s.claim(id, 'a', now, 60_000)).toBe('run');
    expect(await s.claim(id, 'a', now, 60_000)).toBe('busy'); // a second delivery while the first holds it
    expect(await s.claim(id, 'a', now + 61_000, 60_000)).toBe('run'); // the holder died: its claim lapsed
    expect(await s.complete(id, 'a', { ok: true, line: okLine('a'), usage })).toEqual({ recorded: true });
    expect(await s.complete(id, 'a', { ok: true, line: okLine('a'), usage })).toEqual({ recorded: false });
    expect(await s.claim(id, 'a', now, 60_000)).toBe('done');
    expect(await s.claim(id, 'nope', now, 60_000)).toBe('gone');
    // A retryable failure hands the line back: the next delivery may take it at once.
    expect(await s.claim(id, 'b', now, 60_000)).toBe('run');
    await s.unclaim(id, 'b', true);
    expect(await s.claim(id, 'b', now, 60_000)).toBe('run');
    const stats = await s.stats();
    expect(stats).toMatchObject({ pending: 1, running: 1, retries: 1, redelivered: 1, lines_done: 1 });
    await s.complete(id, 'b', { ok: false, line: JSON.stringify({ id: 'x', custom_id: 'b', response: { status_code: 503, request_id: 'r', body: {} }, error: null }), usage: null, dead_letter: true });
    const done = (await s.get(id))!;
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    expect(done.usage.total_tokens).toBe(15);
    expect((await fileLines(tenant, done.output_file_id)).map((l) => l.custom_id)).toEqual(['a']);
    expect((await fileLines(tenant, done.error_file_id)).map((l) => l.custom_id)).toEqual(['b']);
    expect((await s.stats()).dead_letters).toBe(1);
  });

  it('expires a batch past its completion window: open lines go to the error file as batch_expired', async () => {
    const tenant = `t-${uid()}`;
    const s = store(tenant);
    const id = batchId();
    const now = Date.now();
    await s.create(batchObj(id, Math.floor(now / 1000) + 3600), tenant, [{ custom_id: 'x', line: 1 }, { custom_id: 'y', line: 2 }, { custom_id: 'z', line: 3 }], now);
    expect(await s.claim(id, 'x', now, 60_000)).toBe('run');
    await s.complete(id, 'x', { ok: true, line: okLine('x'), usage });
    expect(await s.claim(id, 'y', now, 60_000)).toBe('run'); // running when the window ends
    // The window ends: its alarm (armed for expires_at by create) runs now.
    await runInDurableObject(s, (_o, state: DurableObjectState) => void state.storage.sql.exec('UPDATE batches SET expires_at_ms = 0 WHERE id = ?', id));
    expect(await runDurableObjectAlarm(s)).toBe(true);
    const b = (await s.get(id))!;
    expect(b.status).toBe('expired');
    expect(b.expired_at).toBeGreaterThan(0);
    expect(b.request_counts).toEqual({ total: 3, completed: 1, failed: 2 });
    expect((await fileLines(tenant, b.output_file_id)).map((l) => l.custom_id)).toEqual(['x']);
    const errs = await fileLines(tenant, b.error_file_id);
    expect(errs.map((l) => [l.custom_id, l.error?.code])).toEqual([
      ['y', 'batch_expired'],
      ['z', 'batch_expired'],
    ]);
    expect(await s.claim(id, 'y', Date.now(), 60_000)).toBe('gone'); // a late delivery does nothing
  });

  it('cancel: queued lines dropped at once, a running line finishes, then cancelled', async () => {
    const tenant = `t-${uid()}`;
    const s = store(tenant);
    const id = batchId();
    const now = Date.now();
    await s.create(batchObj(id, Math.floor(now / 1000) + 3600), tenant, [{ custom_id: 'r', line: 1 }, { custom_id: 'q', line: 2 }], now);
    expect(await s.claim(id, 'r', now, 60_000)).toBe('run');
    const c = (await s.cancel(id, Date.now()))!;
    expect(c.status).toBe('cancelling');
    expect(await s.claim(id, 'q', now, 60_000)).toBe('gone');
    await s.complete(id, 'r', { ok: true, line: okLine('r'), usage });
    const b = (await s.get(id))!;
    expect(b.status).toBe('cancelled');
    expect(b.request_counts.completed).toBe(1);
    expect((await fileLines(tenant, b.output_file_id)).map((l) => l.custom_id)).toEqual(['r']);
    expect((await s.stats()).pending).toBe(0);
  });

  it('lists newest first with a cursor', async () => {
    const tenant = `t-${uid()}`;
    const s = store(tenant);
    const ids = [batchId(), batchId(), batchId()];
    for (const id of ids) await s.create(batchObj(id, Math.floor(Date.now() / 1000) + 3600), tenant, [], Date.now());
    const p1 = await s.list(null, 2);
    expect(p1.data.map((b) => b.id)).toEqual([ids[2], ids[1]]);
    expect(p1.has_more).toBe(true);
    const p2 = await s.list(ids[1]!, 2);
    expect(p2.data.map((b) => b.id)).toEqual([ids[0]]);
    expect(p2.has_more).toBe(false);
    expect((await s.list('batch_unknown', 2)).data).toEqual([]);
  });
});

describe('queue_backlog alert', () => {
  it('fires only when the oldest line is older than the limit, and links its runbook', () => {
    expect(detectQueueBacklog({ queue: 'q', depth: 0, oldest_age_seconds: null }, 60)).toEqual([]);
    expect(detectQueueBacklog({ queue: 'q', depth: 5, oldest_age_seconds: 60 }, 60)).toEqual([]);
    const [a] = detectQueueBacklog({ queue: 'q', depth: 5, oldest_age_seconds: 61 }, 60);
    expect(a).toMatchObject({ id: 'queue_backlog:q', severity: 'warning', details: { depth: 5, oldest_age_seconds: 61 } });
    expect(runbookForAlert(a!.id)).toBe('queue-backlog');
  });
});

describe('batch headroom (worker/batch/schedule.ts): interactive first', () => {
  it("a backend's slots for batch lines are max_backend_share of its max_concurrency less what is in flight there", () => {
    const cfg = baseConfig();
    const id = `headroom-${uid()}`;
    cfg.backends = [...cfg.backends, { id, kind: 'vllm', region: 'us-east', url: 'http://127.0.0.1:9', models: ['llama-3.1-405b'], max_concurrency: 10 }];
    cfg.backends = cfg.backends.filter((b: { id: string; models: string[] }) => b.id === id || !b.models.includes('llama-3.1-405b'));
    cfg.batch = { max_backend_share: 0.8 };
    const compiled = compileConfig(cfg);
    if (!compiled.ok) throw new Error(compiled.errors.join('; '));
    const config = compiled.config;
    expect(batchHeadroom(config, 'llama-3.1-405b')).toEqual({ slots: 8, warm: 1, cold: 0 });
    const held = Array.from({ length: 6 }, () => isolateState.begin(id)); // interactive (or batch) requests in flight there
    expect(batchHeadroom(config, 'llama-3.1-405b').slots).toBe(2);
    held.push(isolateState.begin(id), isolateState.begin(id), isolateState.begin(id));
    expect(batchHeadroom(config, 'llama-3.1-405b').slots).toBe(0);
    for (const release of held) release();
    expect(batchHeadroom(config, 'llama-3.1-405b').slots).toBe(8);
  });
});
