import { DurableObject } from 'cloudflare:workers';
import type { UsageRecord } from '../worker/protocol/usage-record';
import { GROUP_COLUMNS, type FeedbackResult, type FeedbackWrite, type LedgerQuery, type LedgerGroup, type StoredFeedback } from '../worker/protocol/ledger';

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
  'deployment', 'deployment_version', 'finish_reason', 'refused', 'batch_id',
] as const;

/** Columns added after the first release, with their SQL types: older ledgers get them (NULL in old rows). */
const ADDED_COLUMNS: readonly [string, string][] = [
  ['client_request_id', 'TEXT'],
  ['deployment', 'TEXT'],
  ['deployment_version', 'TEXT'],
  ['finish_reason', 'TEXT'],
  ['refused', 'INTEGER'],
  // Batch lines (README "Batch and async"): the batch they belong to; NULL for interactive requests.
  ['batch_id', 'TEXT'],
];

/** A feedback lookup that waits for its record never waits longer than this, whatever it asks. */
const MAX_FEEDBACK_WAIT_MS = 10_000;
/** Lookups waiting at once; past this (a client flooding unknown ids) a lookup answers at once. */
const MAX_FEEDBACK_WAITERS = 256;

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
    // Added after the first release: ledgers created before them get the columns (NULL in old rows).
    const have = new Set(this.sql.exec('PRAGMA table_info(usage)').toArray().map((c) => String(c.name)));
    for (const [name, type] of ADDED_COLUMNS) if (!have.has(name)) this.sql.exec(`ALTER TABLE usage ADD COLUMN ${name} ${type}`);
    this.sql.exec('CREATE INDEX IF NOT EXISTS usage_client_request_id ON usage (client_request_id)');
    // Feedback (POST /v1/feedback): one row per request and metric ('' = the default score); the
    // comment's text only when the tenant opted in, its length always.
    this.sql.exec(`CREATE TABLE IF NOT EXISTS feedback (
      request_id TEXT NOT NULL, metric TEXT NOT NULL, ts INTEGER NOT NULL, score REAL NOT NULL, key_id TEXT,
      comment_length INTEGER, comment TEXT, PRIMARY KEY (request_id, metric))`);
    this.sql.exec('CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts)');
  }

  /** Feedback lookups waiting for their record to land (woken by every append). */
  private readonly waiters = new Set<() => void>();

  /** Inserts the records not already present; returns how many were new. Arms the retention alarm. */
  async append(records: UsageRecord[], retentionDays: number): Promise<{ inserted: number }> {
    const insert = `INSERT OR IGNORE INTO usage (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`;
    let inserted = 0;
    for (const r of records) inserted += this.sql.exec(insert, ...rowOf(r)).rowsWritten > 0 ? 1 : 0;
    for (const wake of [...this.waiters]) wake();
    // Storage writes only when something changed: every batch used to rewrite the same value.
    if (this.retentionWritten !== retentionDays) {
      await this.ctx.storage.put('retention_days', retentionDays);
      this.retentionWritten = retentionDays;
    }
    if (!this.alarmArmed) {
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + DAY_MS);
      this.alarmArmed = true; // alarm() re-arms itself
    }
    return { inserted };
  }

  /** What this instance last wrote as retention_days, and whether it has seen the alarm armed. */
  private retentionWritten: number | null = null;
  private alarmArmed = false;

  /** Groups (and time buckets) over [from, to), with their sums and raw values for percentiles. */
  report(q: LedgerQuery): LedgerGroup[] {
    const keys = q.groupBy.filter((c) => (GROUP_COLUMNS as readonly string[]).includes(c));
    const bucket = q.bucketMs ? `(u.ts / ${Math.trunc(q.bucketMs)}) * ${Math.trunc(q.bucketMs)}` : 'NULL';
    const groupCols = [...keys.map((k) => `u."${k}"`), ...(q.bucketMs ? ['bucket'] : [])];
    // Feedback joins on the request: the default score (metric '') at most once per request, so sums stay per request.
    const rows = this.sql.exec(
      `SELECT ${keys.map((k) => `u."${k}" AS "${k}"`).join(', ')}${keys.length ? ',' : ''} ${bucket} AS bucket,
        count(*) AS requests, sum(u.prompt_tokens) AS prompt_tokens, sum(u.completion_tokens) AS completion_tokens,
        sum(u.cost_usd) AS cost_usd, sum(u.saved_usd) AS saved_usd,
        sum(CASE WHEN u.status >= 400 OR u.outcome = 'stream_error' THEN 1 ELSE 0 END) AS errors,
        sum(CASE WHEN u.cache IN ('hit', 'semantic-hit') THEN 1 ELSE 0 END) AS cache_hits,
        json_group_array(u.cost_usd) AS costs, json_group_array(u.latency_ms) AS latencies, json_group_array(u.ttft_ms) AS ttfts,
        sum(CASE WHEN u.refused IS NOT NULL THEN 1 ELSE 0 END) AS answered,
        sum(CASE WHEN u.refused = 1 THEN 1 ELSE 0 END) AS refusals,
        sum(CASE WHEN u.refused IS NOT NULL AND u.finish_reason = 'length' THEN 1 ELSE 0 END) AS truncations,
        json_group_array(CASE WHEN u.refused IS NOT NULL THEN u.completion_tokens END) AS output_tokens,
        count(f.score) AS feedback,
        sum(CASE WHEN f.score > 0 THEN 1 ELSE 0 END) AS feedback_positive,
        sum(CASE WHEN f.score < 0 THEN 1 ELSE 0 END) AS feedback_negative,
        coalesce(sum(f.score), 0) AS feedback_score_sum,
        sum((SELECT count(*) FROM feedback c WHERE c.request_id = u.request_id AND c.metric <> '')) AS feedback_custom
       FROM usage u LEFT JOIN feedback f ON f.request_id = u.request_id AND f.metric = ''
       WHERE u.ts >= ? AND u.ts < ?${groupCols.length ? ` GROUP BY ${groupCols.join(', ')}` : ''}`,
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
        answered: Number(r.answered),
        refusals: Number(r.refusals),
        truncations: Number(r.truncations),
        output_tokens: (JSON.parse(String(r.output_tokens)) as (number | null)[]).filter((v): v is number => v !== null),
        feedback: Number(r.feedback),
        feedback_positive: Number(r.feedback_positive),
        feedback_negative: Number(r.feedback_negative),
        feedback_score_sum: Number(r.feedback_score_sum),
        feedback_custom: Number(r.feedback_custom),
      }));
  }

  /**
   * Stores feedback on one of this tenant's requests (POST /v1/feedback), replacing earlier
   * feedback on the same request and metric. The request is the router's id, or the client's own
   * x-request-id when exactly one record has it. A record not written yet (isolates batch them) is
   * waited for, up to wait_ms: every append wakes the lookup. Answers the stored feedback and the record.
   */
  async feedback(f: FeedbackWrite): Promise<FeedbackResult> {
    const deadline = Date.now() + Math.min(Math.max(0, f.wait_ms), MAX_FEEDBACK_WAIT_MS);
    let found = this.lookup(f.request_id);
    while (found.status === 'not_found' && Date.now() < deadline && this.waiters.size < MAX_FEEDBACK_WAITERS) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(0, deadline - Date.now()));
        this.waiters.add(wake);
      });
      found = this.lookup(f.request_id);
    }
    if (found.status !== 'found') return found;
    const record = found.record;
    const metric = f.metric ?? '';
    const replaced = this.sql.exec('SELECT 1 FROM feedback WHERE request_id = ? AND metric = ?', record.request_id, metric).toArray().length > 0;
    this.sql.exec(
      `INSERT INTO feedback (request_id, metric, ts, score, key_id, comment_length, comment) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (request_id, metric) DO UPDATE SET ts = excluded.ts, score = excluded.score, key_id = excluded.key_id,
         comment_length = excluded.comment_length, comment = excluded.comment`,
      record.request_id, metric, f.ts, f.score, f.key_id, f.comment_length, f.comment,
    );
    const feedback: StoredFeedback = { request_id: record.request_id, ts: f.ts, score: f.score, metric: f.metric, comment_length: f.comment_length, comment: f.comment };
    return { status: replaced ? 'replaced' : 'created', feedback, record };
  }

  /** Every stored feedback row (tests, and an operator's export of one tenant). */
  feedbackRows(limit = 10_000): (StoredFeedback & { key_id: string | null })[] {
    return this.sql
      .exec('SELECT * FROM feedback ORDER BY ts, request_id, metric LIMIT ?', limit)
      .toArray()
      .map((r) => ({
        request_id: String(r.request_id),
        ts: Number(r.ts),
        score: Number(r.score),
        metric: r.metric === '' ? null : String(r.metric),
        comment_length: r.comment_length === null ? null : Number(r.comment_length),
        comment: r.comment === null ? null : String(r.comment),
        key_id: r.key_id === null ? null : String(r.key_id),
      }));
  }

  private lookup(id: string): { status: 'found'; record: UsageRecord } | { status: 'not_found' } | { status: 'ambiguous'; matches: number } {
    const own = this.sql.exec('SELECT * FROM usage WHERE request_id = ?', id).toArray()[0];
    if (own) return { status: 'found', record: recordOf(own) };
    const theirs = this.sql.exec('SELECT * FROM usage WHERE client_request_id = ? LIMIT 2', id).toArray();
    if (theirs.length === 1) return { status: 'found', record: recordOf(theirs[0]!) };
    if (theirs.length > 1) return { status: 'ambiguous', matches: this.sql.exec<{ n: number }>('SELECT count(*) AS n FROM usage WHERE client_request_id = ?', id).one().n };
    return { status: 'not_found' };
  }

  /** Every stored record (tests, and an operator's export of one tenant). */
  records(limit = 10_000): UsageRecord[] {
    return this.sql.exec(`SELECT * FROM usage ORDER BY ts, request_id LIMIT ?`, limit).toArray().map(recordOf);
  }

  override async alarm(): Promise<void> {
    const days = ((await this.ctx.storage.get<number>('retention_days')) ?? 90) as number;
    this.sql.exec('DELETE FROM usage WHERE ts < ?', Date.now() - days * DAY_MS);
    this.sql.exec('DELETE FROM feedback WHERE ts < ?', Date.now() - days * DAY_MS);
    await this.ctx.storage.setAlarm(Date.now() + DAY_MS);
  }
}

function rowOf(r: UsageRecord): SqlStorageValue[] {
  return [
    r.request_id, r.ts, r.tenant, r.key_id, r.user, r.feature, r.endpoint, r.requested_model, r.model, r.backend, r.region, r.tier,
    r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.tokens_estimated ? 1 : 0, r.cost_usd, r.saved_usd, r.latency_ms, r.ttft_ms,
    r.tokens_per_s, r.status, r.outcome, r.cache, r.attempts, JSON.stringify(r.path), r.error_code, r.client_request_id ?? null,
    // finish_reason is the backend's word: bounded, so a hostile backend cannot bloat the rows.
    r.deployment ?? null, r.deployment_version ?? null, r.finish_reason?.slice(0, 64) ?? null, r.refused === undefined || r.refused === null ? null : r.refused ? 1 : 0,
    r.batch_id ?? null,
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
    deployment: s('deployment'),
    deployment_version: s('deployment_version'),
    batch_id: s('batch_id'),
    finish_reason: s('finish_reason'),
    refused: row.refused === null || row.refused === undefined ? null : Number(row.refused) === 1,
  };
}
