import { DurableObject } from 'cloudflare:workers';
import type { BatchObject, BatchPage, ClaimAnswer, LineResult, QueueStats } from '../worker/protocol/batch';
import { putFile } from '../worker/protocol/files';

// A tenant's batches and their per-line ledger: one object per tenant (BATCHES.idFromName("tenant:<id>")).
//
// Why one per tenant, not one per batch: GET /v1/batches lists a tenant's batches newest first with
// cursor pagination, which is one SQL query here (one object per batch would need a per-tenant index
// object anyway, and a second write per state change); the queue statistics (/admin/queues) are one
// query per tenant. The cost is that a tenant's lines are serialised through one object: two small
// SQLite writes per line (claim, complete), thousands a second, far above what a tenant's share of
// the GPUs answers. README "Batch and async".
//
// Exactly once per line, keyed by (batch id, custom_id): a delivery claims the line before running it
// (a line already done is acked without running again; one claimed by a delivery still alive is
// handed back for later), and the first result recorded wins: a redelivered message never makes a
// second output line, a second usage row (the line's request id is deterministic) or a second run.

type LineState = 'queued' | 'running' | 'ok' | 'failed' | 'cancelled' | 'expired';

/** Finalising that stopped half way (R2 write failed, the object was evicted) is retried this much later. */
const FINALIZE_RETRY_MS = 10_000;

interface Env {
  FILES?: R2Bucket;
}

export class BatchStore extends DurableObject {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS batches (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, tenant TEXT NOT NULL, obj TEXT NOT NULL,
      status TEXT NOT NULL, expires_at_ms INTEGER NOT NULL, finalize_after INTEGER,
      open_lines INTEGER NOT NULL DEFAULT 0)`); // lines queued or running: kept as a count so completing a line is O(1)
    this.sql.exec(`CREATE TABLE IF NOT EXISTS lines (
      batch_id TEXT NOT NULL, custom_id TEXT NOT NULL, line INTEGER NOT NULL, state TEXT NOT NULL,
      claim_until INTEGER NOT NULL DEFAULT 0, enqueued_at INTEGER NOT NULL, result TEXT,
      input_tokens INTEGER NOT NULL DEFAULT 0, cached_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (batch_id, custom_id))`);
    this.sql.exec('CREATE INDEX IF NOT EXISTS lines_state ON lines (state, enqueued_at)');
    this.sql.exec('CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)');
  }

  /** A validated batch and its lines (queued); arms the expiry alarm. */
  async create(obj: BatchObject, tenant: string, lines: Array<{ custom_id: string; line: number }>, now: number): Promise<BatchObject> {
    const expiresAtMs = obj.expires_at * 1000;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec('INSERT INTO batches (id, tenant, obj, status, expires_at_ms, open_lines) VALUES (?, ?, ?, ?, ?, ?)', obj.id, tenant, JSON.stringify(obj), obj.status, expiresAtMs, lines.length);
      for (const l of lines) this.sql.exec("INSERT INTO lines (batch_id, custom_id, line, state, enqueued_at) VALUES (?, ?, ?, 'queued', ?)", obj.id, l.custom_id, l.line, now);
    });
    await this.armAlarm(expiresAtMs);
    return this.view(obj.id)!;
  }

  get(id: string): BatchObject | null {
    return this.view(id);
  }

  /** Newest first; `after` is the id of the last batch of the previous page. */
  list(after: string | null, limit: number): BatchPage {
    const from = after === null ? null : this.sql.exec<{ seq: number }>('SELECT seq FROM batches WHERE id = ?', after).toArray()[0]?.seq;
    if (after !== null && from === undefined) return { data: [], has_more: false };
    const rows = this.sql
      .exec<{ id: string }>(`SELECT id FROM batches ${from === undefined || from === null ? '' : 'WHERE seq < ?'} ORDER BY seq DESC LIMIT ?`, ...(from === undefined || from === null ? [] : [from]), limit + 1)
      .toArray();
    return { data: rows.slice(0, limit).map((r) => this.view(r.id)!), has_more: rows.length > limit };
  }

  /** A delivery asks to run a line (see the header). */
  claim(batchId: string, customId: string, now: number, claimMs: number): ClaimAnswer {
    const batch = this.sql.exec<{ status: string }>('SELECT status FROM batches WHERE id = ?', batchId).toArray()[0];
    const line = this.sql.exec<{ state: LineState; claim_until: number }>('SELECT state, claim_until FROM lines WHERE batch_id = ? AND custom_id = ?', batchId, customId).toArray()[0];
    if (!batch || !line) return 'gone';
    if (line.state === 'ok' || line.state === 'failed') {
      this.bump('redelivered', 1); // a delivery of a line already done: acked, never run again
      return 'done';
    }
    if (line.state === 'cancelled' || line.state === 'expired' || batch.status !== 'in_progress') return 'gone';
    if (line.state === 'running' && line.claim_until > now) return 'busy';
    this.sql.exec("UPDATE lines SET state = 'running', claim_until = ? WHERE batch_id = ? AND custom_id = ?", now + claimMs, batchId, customId);
    return 'run';
  }

  /** A claimed line handed back to the queue (a retryable failure, counted as a retry): the next delivery may take it at once. */
  unclaim(batchId: string, customId: string, retry: boolean): void {
    this.sql.exec("UPDATE lines SET state = 'queued', claim_until = 0 WHERE batch_id = ? AND custom_id = ? AND state = 'running'", batchId, customId);
    if (retry) this.bump('retries', 1);
  }

  /**
   * A line's result: recorded only if the line is still open (queued or running), so the first
   * result wins. When it was the batch's last open line, the batch is finalised (files written).
   */
  async complete(batchId: string, customId: string, r: LineResult): Promise<{ recorded: boolean }> {
    const u = r.usage ?? { input_tokens: 0, cached_tokens: 0, output_tokens: 0 };
    const written = this.sql.exec(
      "UPDATE lines SET state = ?, result = ?, input_tokens = ?, cached_tokens = ?, output_tokens = ?, claim_until = 0 WHERE batch_id = ? AND custom_id = ? AND state IN ('queued', 'running')",
      r.ok ? 'ok' : 'failed', r.line, u.input_tokens, u.cached_tokens, u.output_tokens, batchId, customId,
    ).rowsWritten;
    if (written === 0) return { recorded: false };
    this.sql.exec('UPDATE batches SET open_lines = open_lines - 1 WHERE id = ?', batchId);
    if (r.dead_letter) this.bump('dead_letters', 1);
    this.bump('lines_done', 1);
    await this.maybeFinalize(batchId);
    return { recorded: true };
  }

  /** POST /v1/batches/{id}/cancel: lines not started are dropped; lines running finish; then cancelled. */
  async cancel(id: string, now: number): Promise<BatchObject | null> {
    const obj = this.read(id);
    if (!obj) return null;
    if (obj.status === 'in_progress' || obj.status === 'validating') {
      obj.status = 'cancelling';
      obj.cancelling_at = Math.floor(now / 1000);
      this.write(obj);
      // Counted with RETURNING: rowsWritten also counts the index rows an update rewrites.
      const dropped = this.sql.exec("UPDATE lines SET state = 'cancelled' WHERE batch_id = ? AND state = 'queued' RETURNING custom_id", id).toArray().length;
      this.sql.exec('UPDATE batches SET open_lines = open_lines - ? WHERE id = ?', dropped, id);
      await this.maybeFinalize(id);
    }
    return this.view(id);
  }

  /** One tenant's share of /admin/queues. */
  stats(): QueueStats {
    const open = this.sql
      .exec<{ pending: number; running: number; oldest: number | null }>(
        "SELECT count(*) AS pending, sum(CASE WHEN state = 'running' THEN 1 ELSE 0 END) AS running, min(enqueued_at) AS oldest FROM lines WHERE state IN ('queued', 'running')",
      )
      .one();
    return {
      pending: Number(open.pending),
      running: Number(open.running ?? 0),
      oldest_enqueued_at: open.oldest === null ? null : Number(open.oldest),
      retries: this.counter('retries'),
      dead_letters: this.counter('dead_letters'),
      lines_done: this.counter('lines_done'),
      redelivered: this.counter('redelivered'),
    };
  }

  /** Expiry of batches past their completion window, and finalising that stopped half way. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const due = this.sql.exec<{ id: string }>("SELECT id FROM batches WHERE status = 'in_progress' AND expires_at_ms <= ?", now).toArray();
    for (const { id } of due) {
      const obj = this.read(id)!;
      obj.status = 'expired';
      obj.expired_at = Math.floor(now / 1000);
      this.write(obj);
      // OpenAI: requests not done in the window go to the error file as batch_expired.
      const open = this.sql.exec<{ custom_id: string }>("SELECT custom_id FROM lines WHERE batch_id = ? AND state IN ('queued', 'running')", id).toArray();
      for (const l of open) {
        const line = JSON.stringify({ id: requestLineId(), custom_id: l.custom_id, response: null, error: { code: 'batch_expired', message: 'This request could not be executed before the completion window expired.' } });
        this.sql.exec("UPDATE lines SET state = 'expired', result = ? WHERE batch_id = ? AND custom_id = ?", line, id, l.custom_id);
      }
      this.sql.exec('UPDATE batches SET finalize_after = ?, open_lines = 0 WHERE id = ?', now, id);
    }
    const stuck = this.sql.exec<{ id: string }>('SELECT id FROM batches WHERE finalize_after IS NOT NULL AND finalize_after <= ?', now).toArray();
    for (const { id } of stuck) await this.finalize(id);
    const next = this.sql
      .exec<{ at: number | null }>("SELECT min(CASE WHEN finalize_after IS NOT NULL THEN finalize_after WHEN status = 'in_progress' THEN expires_at_ms END) AS at FROM batches")
      .one().at;
    if (next !== null) await this.ctx.storage.setAlarm(Math.max(next, now + 1));
  }

  // ------------------------------------------------------------------ internals

  private async maybeFinalize(id: string): Promise<void> {
    const open = this.sql.exec<{ open_lines: number }>('SELECT open_lines FROM batches WHERE id = ?', id).toArray()[0]?.open_lines;
    if (open === undefined || Number(open) > 0) return;
    const obj = this.read(id);
    if (!obj || (obj.status !== 'in_progress' && obj.status !== 'cancelling')) return;
    if (obj.status === 'in_progress') {
      obj.status = 'finalizing';
      obj.finalizing_at = Math.floor(Date.now() / 1000);
      this.write(obj);
    }
    // Marked before the R2 writes (other calls may run while they are awaited): the alarm finishes it if this one does not.
    this.sql.exec('UPDATE batches SET finalize_after = ? WHERE id = ?', Date.now() + FINALIZE_RETRY_MS, id);
    await this.armAlarm(Date.now() + FINALIZE_RETRY_MS);
    await this.finalize(id);
  }

  /** Writes the output and error files (in input order) and sets the final status. */
  private async finalize(id: string): Promise<void> {
    const obj = this.read(id);
    const row = this.sql.exec<{ tenant: string }>('SELECT tenant FROM batches WHERE id = ?', id).toArray()[0];
    if (!obj || !row) return;
    const bucket = (this.env as Env).FILES;
    if (!bucket) throw new Error('BatchStore: no FILES bucket binding');
    const lines = this.sql.exec<{ state: LineState; result: string | null }>('SELECT state, result FROM lines WHERE batch_id = ? ORDER BY line', id).toArray();
    const out = lines.filter((l) => l.state === 'ok' && l.result).map((l) => l.result!);
    const err = lines.filter((l) => (l.state === 'failed' || l.state === 'expired') && l.result).map((l) => l.result!);
    const now = Date.now();
    if (out.length > 0 && !obj.output_file_id) obj.output_file_id = (await putFile(bucket, row.tenant, { filename: `${id}_output.jsonl`, purpose: 'batch_output', body: out.join('\n') + '\n' }, now)).id;
    if (err.length > 0 && !obj.error_file_id) obj.error_file_id = (await putFile(bucket, row.tenant, { filename: `${id}_error.jsonl`, purpose: 'batch_output', body: err.join('\n') + '\n' }, now)).id;
    const fresh = this.read(id)!; // the status may have moved while the files were written
    fresh.output_file_id = obj.output_file_id;
    fresh.error_file_id = obj.error_file_id;
    const at = Math.floor(now / 1000);
    if (fresh.status === 'finalizing') {
      fresh.status = 'completed';
      fresh.completed_at = at;
    } else if (fresh.status === 'cancelling') {
      fresh.status = 'cancelled';
      fresh.cancelled_at = at;
    }
    this.write(fresh);
    this.sql.exec('UPDATE batches SET finalize_after = NULL WHERE id = ?', id);
  }

  private async armAlarm(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || at < current) await this.ctx.storage.setAlarm(at);
  }

  private read(id: string): BatchObject | null {
    const row = this.sql.exec<{ obj: string }>('SELECT obj FROM batches WHERE id = ?', id).toArray()[0];
    return row ? (JSON.parse(row.obj) as BatchObject) : null;
  }

  private write(obj: BatchObject): void {
    this.sql.exec('UPDATE batches SET obj = ?, status = ? WHERE id = ?', JSON.stringify(obj), obj.status, obj.id);
  }

  /** The stored object with its live request counts and usage. */
  private view(id: string): BatchObject | null {
    const obj = this.read(id);
    if (!obj) return null;
    const c = this.sql
      .exec<{ total: number; ok: number; failed: number; inp: number; cached: number; outp: number }>(
        "SELECT count(*) AS total, sum(CASE WHEN state = 'ok' THEN 1 ELSE 0 END) AS ok, sum(CASE WHEN state IN ('failed', 'expired') THEN 1 ELSE 0 END) AS failed, sum(input_tokens) AS inp, sum(cached_tokens) AS cached, sum(output_tokens) AS outp FROM lines WHERE batch_id = ?",
        id,
      )
      .one();
    const total = obj.status === 'failed' ? 0 : Number(c.total);
    obj.request_counts = { total, completed: Number(c.ok ?? 0), failed: Number(c.failed ?? 0) };
    const inp = Number(c.inp ?? 0);
    const outp = Number(c.outp ?? 0);
    obj.usage = { input_tokens: inp, input_tokens_details: { cached_tokens: Number(c.cached ?? 0) }, output_tokens: outp, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: inp + outp };
    return obj;
  }

  private bump(name: string, by: number): void {
    this.sql.exec('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value', name, by);
  }

  private counter(name: string): number {
    return Number(this.sql.exec<{ value: number }>('SELECT value FROM counters WHERE name = ?', name).toArray()[0]?.value ?? 0);
  }
}

function requestLineId(): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return `batch_req_${[...b].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}
