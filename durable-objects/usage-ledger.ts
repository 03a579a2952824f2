import { DurableObject } from 'cloudflare:workers';
import type { UsageRecord } from '../worker/protocol/usage-record';
import { GROUP_COLUMNS, type LedgerQuery, type LedgerGroup } from '../worker/protocol/ledger';

// The embedded usage ledger: one object per tenant (`USAGE_LEDGER.idFromName("tenant:<id>")`),
// one SQLite row per request, keyed by request_id so a batch written twice (a retry after a
// write that failed half way, or whose answer was lost) lands once: INSERT OR IGNORE.
//
// Why one per tenant (not per tenant and day): a report then asks one object per tenant whatever
// its range, and one object takes thousands of batched inserts a second, far above what one
// tenant's edge isolates send (they batch). Rows older than retention_days go on a daily alarm.
//
// Reports group in SQL and return each group's raw cost, latency and TTFT values too, so the Worker can
// merge groups from several tenants and still compute exact percentiles (no sketch: the values
// of the range are read once per report; fine at ledger scale, Analytics Engine is the scale path).

const DAY_MS = 86_400_000;
const COLUMNS = [
  'request_id', 'ts', 'tenant', 'key_id', 'user', 'feature', 'endpoint', 'requested_model', 'model', 'backend', 'region', 'tier',
  'prompt_tokens', 'cached_tokens', 'completion_tokens', 'tokens_estimated', 'cost_usd', 'saved_usd', 'latency_ms', 'ttft_ms',
  'tokens_per_s', 'status', 'outcome', 'cache', 'attempts', 'path', 'error_code', 'client_request_id',
] as const;

export class UsageLedger extends DurableObject {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS usage (
      request_id TEXT PRIMARY KEY, ts INTEGER NOT NULL, tenant TEXT NOT NULL, key_id TEXT, user TEXT, feature TEXT,
      endpoint TEXT NOT NULL, requested_model TEXT NOT NULL, model TEXT, backend TEXT, region TEXT, tier TEXT,
      prompt_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
      tokens_estimated INTEGER NOT NULL, cost_usd REAL NOT NULL, saved_usd REAL NOT NULL, latency_ms REAL NOT NULL,
      ttft_ms REAL, tokens_per_s REAL, status INTEGER NOT NULL, outcome TEXT NOT NULL, cache TEXT NOT NULL,
      attempts INTEGER NOT NULL, path TEXT NOT NULL, error_code TEXT)`);
    this.sql.exec('CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts)');
    // Added after the first release: ledgers created before it get the column (NULL in old rows).
    if (!this.sql.exec('PRAGMA table_info(usage)').toArray().some((c) => c.name === 'client_request_id')) this.sql.exec('ALTER TABLE usage ADD COLUMN client_request_id TEXT');
    // Batch lines (README "Batch and async"): the batch they belong to; NULL for interactive requests.
    if (!this.sql.exec('PRAGMA table_info(usage)').toArray().some((c) => c.name === 'batch_id')) this.sql.exec('ALTER TABLE usage ADD COLUMN batch_id TEXT');
  }

  /** Inserts the records not already present; returns how many were new. Arms the retention alarm. */
  async append(records: UsageRecord[], retentionDays: number): Promise<{ inserted: number }> {
    const insert = `INSERT OR IGNORE INTO usage (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`;
    let inserted = 0;
    for (const r of records) {
      const fresh = this.sql.exec(insert, ...rowOf(r)).rowsWritten > 0;
      if (fresh && r.batch_id) this.sql.exec('UPDATE usage SET batch_id = ? WHERE request_id = ?', r.batch_id, r.request_id);
      inserted += fresh ? 1 : 0;
    }
    await this.ctx.storage.put('retention_days', retentionDays);
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + DAY_MS);
    return { inserted };
  }

  /** Groups (and time buckets) over [from, to), with their sums and raw values for percentiles. */
  report(q: LedgerQuery): LedgerGroup[] {
    const keys = q.groupBy.filter((c) => (GROUP_COLUMNS as readonly string[]).includes(c));
    const bucket = q.bucketMs ? `(ts / ${Math.trunc(q.bucketMs)}) * ${Math.trunc(q.bucketMs)}` : 'NULL';
    const groupCols = [...keys.map((k) => `"${k}"`), ...(q.bucketMs ? ['bucket'] : [])];
    const rows = this.sql.exec(
      `SELECT ${keys.map((k) => `"${k}" AS "${k}"`).join(', ')}${keys.length ? ',' : ''} ${bucket} AS bucket,
        count(*) AS requests, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
        sum(cost_usd) AS cost_usd, sum(saved_usd) AS saved_usd,
        sum(CASE WHEN status >= 400 OR outcome = 'stream_error' THEN 1 ELSE 0 END) AS errors,
        sum(CASE WHEN cache IN ('hit', 'semantic-hit') THEN 1 ELSE 0 END) AS cache_hits,
        json_group_array(cost_usd) AS costs, json_group_array(latency_ms) AS latencies, json_group_array(ttft_ms) AS ttfts
       FROM usage WHERE ts >= ? AND ts < ?${groupCols.length ? ` GROUP BY ${groupCols.join(', ')}` : ''}`,
      q.from,
      q.to,
    ).toArray();
    return rows
      .filter((r) => Number(r.requests) > 0)
      .map((r) => ({
        keys: Object.fromEntries(keys.map((k) => [k, r[k] === null ? null : String(r[k])])),
        bucket: r.bucket === null ? null : Number(r.bucket),
        requests: Number(r.requests),
        prompt_tokens: Number(r.prompt_tokens),
        completion_tokens: Number(r.completion_tokens),
        cost_usd: Number(r.cost_usd),
        saved_usd: Number(r.saved_usd),
        errors: Number(r.errors),
        cache_hits: Number(r.cache_hits),
        costs: JSON.parse(String(r.costs)) as number[],
        latencies: JSON.parse(String(r.latencies)) as number[],
        ttfts: (JSON.parse(String(r.ttfts)) as (number | null)[]).filter((v): v is number => v !== null),
      }));
  }

  /** Every stored record (tests, and an operator's export of one tenant). */
  records(limit = 10_000): UsageRecord[] {
    return this.sql.exec(`SELECT * FROM usage ORDER BY ts, request_id LIMIT ?`, limit).toArray().map(recordOf);
  }

  override async alarm(): Promise<void> {
    const days = ((await this.ctx.storage.get<number>('retention_days')) ?? 90) as number;
    this.sql.exec('DELETE FROM usage WHERE ts < ?', Date.now() - days * DAY_MS);
    await this.ctx.storage.setAlarm(Date.now() + DAY_MS);
  }
}

function rowOf(r: UsageRecord): SqlStorageValue[] {
  return [
    r.request_id, r.ts, r.tenant, r.key_id, r.user, r.feature, r.endpoint, r.requested_model, r.model, r.backend, r.region, r.tier,
    r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.tokens_estimated ? 1 : 0, r.cost_usd, r.saved_usd, r.latency_ms, r.ttft_ms,
    r.tokens_per_s, r.status, r.outcome, r.cache, r.attempts, JSON.stringify(r.path), r.error_code, r.client_request_id ?? null,
  ];
}

function recordOf(row: Record<string, SqlStorageValue>): UsageRecord {
  const s = (k: string) => (row[k] === null ? null : String(row[k]));
  const n = (k: string) => (row[k] === null ? null : Number(row[k]));
  return {
    v: 1,
    request_id: String(row.request_id),
    ts: Number(row.ts),
    tenant: String(row.tenant),
    key_id: s('key_id'),
    user: s('user'),
    feature: s('feature'),
    endpoint: String(row.endpoint) as UsageRecord['endpoint'],
    requested_model: String(row.requested_model),
    model: s('model'),
    backend: s('backend'),
    region: s('region'),
    tier: s('tier'),
    prompt_tokens: Number(row.prompt_tokens),
    cached_tokens: Number(row.cached_tokens),
    completion_tokens: Number(row.completion_tokens),
    tokens_estimated: row.tokens_estimated === 1,
    cost_usd: Number(row.cost_usd),
    saved_usd: Number(row.saved_usd),
    latency_ms: Number(row.latency_ms),
    ttft_ms: n('ttft_ms'),
    tokens_per_s: n('tokens_per_s'),
    status: Number(row.status),
    outcome: String(row.outcome) as UsageRecord['outcome'],
    cache: String(row.cache) as UsageRecord['cache'],
    attempts: Number(row.attempts),
    path: JSON.parse(String(row.path)) as string[],
    error_code: s('error_code'),
    client_request_id: s('client_request_id'),
  };
}
