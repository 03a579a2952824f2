import { env as testEnv, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { UsageLedger } from '../../durable-objects/usage-ledger';
import type { Env } from '../../worker/env';
import type { FeedbackWrite } from '../../worker/protocol/ledger';
import { record } from './metrics-support';
import { uid } from './usage-support';

// The ledger's side of quality signals: a ledger created before the quality columns gains them,
// and a feedback lookup waits for a record still in a batch (woken by the append that lands it).

const env = testEnv as unknown as Env;
const ledger = (name: string) => env.USAGE_LEDGER.get(env.USAGE_LEDGER.idFromName(name));
const write = (request_id: string, over: Partial<FeedbackWrite> = {}): FeedbackWrite => ({
  request_id, score: 1, metric: null, comment: null, comment_length: null, key_id: 'k', ts: Date.now(), wait_ms: 0, ...over,
});

describe('usage ledger: quality columns and feedback', () => {
  it('a ledger of the first release (no quality columns, no feedback table) gains them and keeps its rows', async () => {
    const stub = ledger(`old-${uid()}`);
    await runInDurableObject(stub, (_o: UsageLedger, state) => {
      const sql = state.storage.sql;
      sql.exec('DROP TABLE IF EXISTS usage');
      sql.exec('DROP TABLE IF EXISTS feedback');
      sql.exec(`CREATE TABLE usage (
        request_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, tenant TEXT NOT NULL, key_id TEXT, user TEXT, feature TEXT,
        endpoint TEXT NOT NULL, requested_model TEXT NOT NULL, model TEXT, backend TEXT, region TEXT, tier TEXT,
        prompt_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
        tokens_estimated INTEGER NOT NULL, cost_usd REAL NOT NULL, saved_usd REAL NOT NULL, latency_ms REAL NOT NULL,
        ttft_ms REAL, tokens_per_s REAL, status INTEGER NOT NULL, outcome TEXT NOT NULL, cache TEXT NOT NULL,
        attempts INTEGER NOT NULL, path TEXT NOT NULL, error_code TEXT)`);
      sql.exec(`INSERT INTO usage VALUES ('old-1', ${Date.now()}, 't', 'k', NULL, NULL, 'chat', 'm', 'm', 'b', 'r', 'fast', 1, 0, 2, 0, 0, 0, 10, NULL, NULL, 200, 'ok', 'miss', 1, '["b"]', NULL)`);
      // The constructor of a new build, on that storage.
      const upgraded = new UsageLedger(state, env);
      const cols = sql.exec('PRAGMA table_info(usage)').toArray().map((c) => String(c.name));
      expect(cols).toEqual(expect.arrayContaining(['client_request_id', 'deployment', 'deployment_version', 'finish_reason', 'refused']));
      expect(upgraded.records()).toEqual([expect.objectContaining({ request_id: 'old-1', deployment: null, refused: null, client_request_id: null })]);
    });
    // The upgraded ledger takes new records and feedback.
    await stub.append([record({ request_id: 'new-1', tenant: 't', deployment: 'd', deployment_version: 'v1', finish_reason: 'length', refused: false })], 90);
    expect(await stub.feedback(write('new-1'))).toMatchObject({ status: 'created', record: { deployment: 'd', finish_reason: 'length', refused: false } });
    const [g] = await stub.report({ from: 0, to: Date.now() + 1_000, groupBy: [], bucketMs: null });
    expect(g).toMatchObject({ requests: 2, answered: 1, truncations: 1, refusals: 0, feedback: 1, feedback_positive: 1 });
  });

  it('a lookup waits for its record: the append that lands it answers the feedback; an id never written answers not_found after wait_ms', async () => {
    const stub = ledger(`wait-${uid()}`);
    const pending = stub.feedback(write('late-1', { wait_ms: 8_000, score: -1 }));
    await new Promise((r) => setTimeout(r, 100));
    await stub.append([record({ request_id: 'other' })], 90); // another record wakes it; it waits on
    await stub.append([record({ request_id: 'late-1', refused: true })], 90);
    expect(await pending).toMatchObject({ status: 'created', feedback: { score: -1 }, record: { request_id: 'late-1', refused: true } });
    expect(await stub.feedback(write('never', { wait_ms: 200 }))).toEqual({ status: 'not_found' });
  });
});
