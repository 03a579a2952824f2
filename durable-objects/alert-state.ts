import { DurableObject } from 'cloudflare:workers';
import type { Alert, AlertStatus, Delivery, EvaluateRequest, EvaluateReply, ActiveAlert } from '../worker/protocol/alerts';

// The alerts in force and the messages still owed to webhooks; one instance, "global".
//
// Each scheduled run hands over the conditions its detectors found. A new one fires (one
// message per webhook), one still present stays quiet (dedupe), one missing for
// resolve_after_runs runs in a row resolves (one message per webhook). Messages wait in an
// outbox until the caller acknowledges them: a run that is handed a message holds it for
// lease_ms (so an overlapping run does not send it too), and a failed send comes round again on
// a later run with the same delivery id, until max_attempts.

interface ActiveRow extends Record<string, SqlStorageValue> {
  id: string;
  alert: string;
  started_at: number;
  last_seen: number;
  clear_runs: number;
}

interface OutboxRow extends Record<string, SqlStorageValue> {
  delivery_id: string;
  target: string;
  status: string;
  alert: string;
  started_at: number;
  resolved_at: number | null;
  attempts: number;
}

export class AlertState extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
    this.sql.exec(`CREATE TABLE IF NOT EXISTS active (
      id TEXT PRIMARY KEY, alert TEXT NOT NULL, started_at INTEGER NOT NULL, last_seen INTEGER NOT NULL, clear_runs INTEGER NOT NULL
    )`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
      delivery_id TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, alert TEXT NOT NULL,
      started_at INTEGER NOT NULL, resolved_at INTEGER, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
      seq INTEGER NOT NULL, PRIMARY KEY (delivery_id, target)
    )`);
  }

  /** Applies one run's findings; answers the transitions and the messages to send now. */
  evaluate(req: EvaluateRequest): EvaluateReply {
    const now = req.now;
    const lastRun = this.sql.exec<{ v: number }>("SELECT v FROM meta WHERE k = 'last_run'").toArray()[0]?.v ?? Number.NEGATIVE_INFINITY;
    // A repeated run (same scheduled time, e.g. a retried cron) must not count as another clear run.
    const fresh = now > lastRun;
    if (fresh) this.sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('last_run', ?)", now);
    const targets = [...new Set(req.targets)];
    const fired: string[] = [];
    const resolved: string[] = [];
    const seen = new Set<string>();

    for (const alert of req.alerts) {
      if (seen.has(alert.id)) continue;
      seen.add(alert.id);
      const row = this.sql.exec<ActiveRow>('SELECT * FROM active WHERE id = ?', alert.id).toArray()[0];
      if (row) {
        // Still firing: keep the latest numbers, send nothing.
        this.sql.exec('UPDATE active SET alert = ?, last_seen = ?, clear_runs = 0 WHERE id = ?', JSON.stringify(alert), now, alert.id);
        continue;
      }
      this.sql.exec('INSERT INTO active (id, alert, started_at, last_seen, clear_runs) VALUES (?, ?, ?, ?, 0)', alert.id, JSON.stringify(alert), now, now);
      this.enqueue(targets, 'firing', alert, now, null, now);
      fired.push(alert.id);
    }

    for (const row of this.sql.exec<ActiveRow>('SELECT * FROM active').toArray()) {
      if (seen.has(row.id)) continue;
      const clear = row.clear_runs + (fresh ? 1 : 0);
      if (clear < req.resolve_after_runs) {
        this.sql.exec('UPDATE active SET clear_runs = ? WHERE id = ?', clear, row.id);
        continue;
      }
      this.sql.exec('DELETE FROM active WHERE id = ?', row.id);
      this.enqueue(targets, 'resolved', JSON.parse(row.alert) as Alert, row.started_at, now, now);
      resolved.push(row.id);
    }

    return { fired, resolved, deliveries: this.due(targets, now, req.max_attempts, req.lease_ms) };
  }

  /** Forgets messages that were delivered. */
  ack(delivered: { delivery_id: string; target: string }[]): void {
    for (const d of delivered) this.sql.exec('DELETE FROM outbox WHERE delivery_id = ? AND target = ?', d.delivery_id, d.target);
  }

  /** The alerts in force, oldest first. */
  active(): ActiveAlert[] {
    return this.sql
      .exec<ActiveRow>('SELECT * FROM active ORDER BY started_at, id')
      .toArray()
      .map((r) => ({ alert: JSON.parse(r.alert) as Alert, started_at: r.started_at, last_seen: r.last_seen, clear_runs: r.clear_runs }));
  }

  /** Messages not yet acknowledged (tests and debugging). */
  pending(): number {
    return this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM outbox').one().n;
  }

  private enqueue(targets: string[], status: AlertStatus, alert: Alert, startedAt: number, resolvedAt: number | null, now: number): void {
    const id = `alrt_${crypto.randomUUID().replaceAll('-', '')}`;
    const seq = this.nextSeq();
    for (const target of targets) {
      this.sql.exec(
        'INSERT INTO outbox (delivery_id, target, status, alert, started_at, resolved_at, attempts, next_at, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)',
        id,
        target,
        status,
        JSON.stringify(alert),
        startedAt,
        resolvedAt,
        now,
        now,
        seq,
      );
    }
  }

  private nextSeq(): number {
    const seq = (this.sql.exec<{ v: number }>("SELECT v FROM meta WHERE k = 'seq'").toArray()[0]?.v ?? 0) + 1;
    this.sql.exec("INSERT OR REPLACE INTO meta (k, v) VALUES ('seq', ?)", seq);
    return seq;
  }

  /** Due messages, leased to this run; drops those for webhooks no longer configured and those out of attempts. */
  private due(targets: string[], now: number, maxAttempts: number, leaseMs: number): Delivery[] {
    const known = new Set(targets);
    const out: Delivery[] = [];
    for (const row of this.sql.exec<OutboxRow>('SELECT * FROM outbox WHERE next_at <= ? ORDER BY seq, target', now).toArray()) {
      if (!known.has(row.target) || row.attempts >= maxAttempts) {
        if (known.has(row.target)) console.error(JSON.stringify({ msg: 'alert message dropped', delivery_id: row.delivery_id, target: row.target, attempts: row.attempts }));
        this.sql.exec('DELETE FROM outbox WHERE delivery_id = ? AND target = ?', row.delivery_id, row.target);
        continue;
      }
      this.sql.exec('UPDATE outbox SET attempts = attempts + 1, next_at = ? WHERE delivery_id = ? AND target = ?', now + leaseMs, row.delivery_id, row.target);
      out.push({
        delivery_id: row.delivery_id,
        target: row.target,
        status: row.status as AlertStatus,
        alert: JSON.parse(row.alert) as Alert,
        started_at: row.started_at,
        resolved_at: row.resolved_at,
        attempt: row.attempts + 1,
      });
    }
    return out;
  }
}
