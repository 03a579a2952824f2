import { DurableObject } from 'cloudflare:workers';
import type { AsyncQueueStats, ClaimJob, IdemBegin, IdemResult, JobRequest, JobStatus, JobView, NewJob } from '../worker/protocol/async-jobs';

// A tenant's async jobs and Idempotency-Key records: one object per tenant
// (ASYNC_JOBS.idFromName("tenant:<id>")), SQLite. README "Async requests" and "Idempotency".
//
// Jobs: created queued by the route (202), claimed by the async queue's consumer before it runs one
// (a job done already is never run again; one claimed by a delivery still alive is handed back), and
// completed once (the first result wins). Idempotency: the first request with a key takes a lock
// (begin → 'new'); a retry while it runs gets 'in_progress', one after it gets the stored answer, one
// with another body 'mismatch'. Rows expire (the alarm deletes them).

const SWEEP_MS = 3_600_000;

export class RequestStore extends DurableObject {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS jobs (
      id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT NOT NULL, request TEXT NOT NULL,
      created_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER, expires_at INTEGER NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0, claim_until INTEGER NOT NULL DEFAULT 0,
      result_status INTEGER, result_body TEXT)`);
    // Objects created before dead letters were recorded: add the column once (SQLite has no ADD COLUMN IF NOT EXISTS).
    const cols = this.sql.exec<{ name: string }>('PRAGMA table_info(jobs)').toArray();
    if (!cols.some((c) => c.name === 'dead_letter')) this.sql.exec('ALTER TABLE jobs ADD COLUMN dead_letter INTEGER NOT NULL DEFAULT 0');
    // Queue figures that outlive the jobs' TTL (GET /admin/queues, /metrics): retries, dead letters, jobs done.
    // Pending jobs are counted on every enqueue (the per-tenant cap) and in every queue report.
    this.sql.exec('CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)');
    this.sql.exec(`CREATE TABLE IF NOT EXISTS idem (
      key_hash TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, state TEXT NOT NULL, lock_until INTEGER NOT NULL,
      status INTEGER, headers TEXT, body TEXT, too_large INTEGER NOT NULL DEFAULT 0, expires_at INTEGER NOT NULL)`);
  }

  private async armSweep(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + SWEEP_MS);
  }

  /** Stores a queued job, unless the tenant already has `maxPending` queued or running: then `full` is that count (else null). */
  async createJob(job: NewJob, maxPending = Number.POSITIVE_INFINITY): Promise<{ full: number | null }> {
    const pending = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM jobs WHERE status IN ('queued', 'in_progress') AND expires_at > ?", job.created_at_ms).one().n;
    if (pending >= maxPending) return { full: pending };
    const request: JobRequest = { endpoint: job.endpoint, body: job.body, key: job.key, webhook: job.webhook, feature: job.feature, user: job.user };
    this.sql.exec(
      'INSERT INTO jobs (id, status, reason, request, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      job.id, 'queued', job.reason, JSON.stringify(request), job.created_at_ms, job.expires_at_ms,
    );
    await this.armSweep();
    return { full: null };
  }

  getJob(id: string, now: number): JobView | null {
    const row = this.sql.exec('SELECT * FROM jobs WHERE id = ? AND expires_at > ?', id, now).toArray()[0];
    if (!row) return null;
    const request = JSON.parse(String(row.request)) as JobRequest;
    const s = (v: unknown) => (v === null || v === undefined ? null : Math.floor(Number(v) / 1000));
    let body: unknown = null;
    if (row.result_body !== null && row.result_body !== undefined) {
      try {
        body = JSON.parse(String(row.result_body));
      } catch {
        body = String(row.result_body);
      }
    }
    return {
      id,
      object: 'async.job',
      status: row.status as JobStatus,
      endpoint: ENDPOINT_PATHS[request.endpoint],
      reason: row.reason as JobView['reason'],
      created_at: s(row.created_at)!,
      started_at: s(row.started_at),
      completed_at: s(row.completed_at),
      expires_at: s(row.expires_at)!,
      attempts: Number(row.attempts),
      webhook: request.webhook,
      response: row.result_status === null || row.result_status === undefined ? null : { status_code: Number(row.result_status), body },
    };
  }

  /** A delivery takes the job for leaseMs; 'busy' while another delivery holds it, 'done' once it has a result. */
  claimJob(id: string, now: number, leaseMs: number): ClaimJob {
    const row = this.sql.exec('SELECT status, claim_until, request, attempts, expires_at FROM jobs WHERE id = ?', id).toArray()[0];
    if (!row || Number(row.expires_at) <= now) return { state: 'gone' };
    if (row.status === 'completed' || row.status === 'failed') return { state: 'done' };
    if (row.status === 'in_progress' && Number(row.claim_until) > now) return { state: 'busy' };
    this.sql.exec(
      "UPDATE jobs SET status = 'in_progress', claim_until = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?) WHERE id = ?",
      now + leaseMs, now, id,
    );
    return { state: 'run', request: JSON.parse(String(row.request)) as JobRequest, attempts: Number(row.attempts) + 1 };
  }

  /** Back to queued (a retryable failure, the message retried later). */
  requeueJob(id: string): void {
    const r = this.sql.exec("UPDATE jobs SET status = 'queued', claim_until = 0 WHERE id = ? AND status = 'in_progress'", id);
    if (r.rowsWritten > 0) this.bump('retries');
  }

  /**
   * Records the answer; false when the job already had one (the first wins). deadLetter: a retryable
   * failure after the last retry (README "Async requests": the job's dead letter, counted for /admin/queues).
   */
  completeJob(id: string, status: 'completed' | 'failed', resultStatus: number, resultBody: string, now: number, deadLetter = false): boolean {
    const r = this.sql.exec(
      "UPDATE jobs SET status = ?, result_status = ?, result_body = ?, completed_at = ?, claim_until = 0, dead_letter = ? WHERE id = ? AND status NOT IN ('completed', 'failed')",
      status, resultStatus, resultBody, now, deadLetter ? 1 : 0, id,
    );
    if (r.rowsWritten === 0) return false;
    this.bump('jobs_done');
    if (deadLetter) this.bump('dead_letters');
    return true;
  }

  /** The async queue as this tenant's jobs see it (GET /admin/queues, /metrics, the queue_backlog alert). */
  queueStats(now: number): AsyncQueueStats {
    const open = this.sql
      .exec<{ queued: number; running: number; oldest: number | null; failed: number; dead: number }>(
        `SELECT sum(CASE WHEN status = 'queued' THEN 1 ELSE 0 END) AS queued, sum(CASE WHEN status = 'in_progress' THEN 1 ELSE 0 END) AS running,
           min(CASE WHEN status IN ('queued', 'in_progress') THEN created_at END) AS oldest,
           sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed, sum(dead_letter) AS dead
         FROM jobs WHERE expires_at > ?`,
        now,
      )
      .one();
    return {
      queued: Number(open.queued ?? 0),
      running: Number(open.running ?? 0),
      oldest_created_at: open.oldest === null ? null : Number(open.oldest),
      failed: Number(open.failed ?? 0),
      dead_letters_kept: Number(open.dead ?? 0),
      retries: this.counter('retries'),
      dead_letters: this.counter('dead_letters'),
      jobs_done: this.counter('jobs_done'),
    };
  }

  private bump(name: string): void {
    this.sql.exec('INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1', name);
  }

  private counter(name: string): number {
    const row = this.sql.exec<{ value: number }>('SELECT value FROM counters WHERE name = ?', name).toArray()[0];
    return row ? Number(row.value) : 0;
  }

  /** The first request with a key locks it for lockMs; later ones see its state. */
  idemBegin(keyHash: string, fingerprint: string, now: number, ttlMs: number, lockMs: number): IdemBegin {
    const row = this.sql.exec('SELECT * FROM idem WHERE key_hash = ? AND expires_at > ?', keyHash, now).toArray()[0];
    if (!row) {
      this.sql.exec(
        "INSERT OR REPLACE INTO idem (key_hash, fingerprint, state, lock_until, expires_at) VALUES (?, ?, 'running', ?, ?)",
        keyHash, fingerprint, now + lockMs, now + ttlMs,
      );
      void this.armSweep();
      return { state: 'new' };
    }
    if (row.fingerprint !== fingerprint) return { state: 'mismatch' };
    if (row.state === 'running') {
      // A first request whose isolate died never finishes: its lock runs out and the next retry runs it.
      if (Number(row.lock_until) <= now) {
        this.sql.exec('UPDATE idem SET lock_until = ? WHERE key_hash = ?', now + lockMs, keyHash);
        return { state: 'new' };
      }
      return { state: 'in_progress', retry_after_s: Math.max(1, Math.min(5, Math.ceil((Number(row.lock_until) - now) / 1000))) };
    }
    if (Number(row.too_large) === 1) return { state: 'unavailable' };
    return { state: 'replay', status: Number(row.status), headers: JSON.parse(String(row.headers)) as [string, string][], body: String(row.body) };
  }

  idemFinish(keyHash: string, result: IdemResult): void {
    this.sql.exec(
      "UPDATE idem SET state = 'done', status = ?, headers = ?, body = ?, too_large = ? WHERE key_hash = ? AND state = 'running'",
      result.status, JSON.stringify(result.headers), result.body ?? '', result.body === null ? 1 : 0, keyHash,
    );
  }

  /** The first request failed in a way a retry should run again (5xx, 429): the key is free. */
  idemRelease(keyHash: string): void {
    this.sql.exec("DELETE FROM idem WHERE key_hash = ? AND state = 'running'", keyHash);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    this.sql.exec('DELETE FROM jobs WHERE expires_at <= ?', now);
    this.sql.exec('DELETE FROM idem WHERE expires_at <= ?', now);
    const left = Number(this.sql.exec('SELECT (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM idem) AS n').one().n);
    if (left > 0) await this.ctx.storage.setAlarm(now + SWEEP_MS);
  }
}

const ENDPOINT_PATHS: Record<JobRequest['endpoint'], string> = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
  responses: '/v1/responses',
};
