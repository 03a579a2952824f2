import { DurableObject } from 'cloudflare:workers';
import { base64url, hex, sha256Hex } from '../worker/protocol/rules/hash';
import type { KeyLimits } from '../worker/config/limits';
import type { KeyRecord, CreatedKey } from '../worker/protocol/keys';

type Row = Record<string, SqlStorageValue> & KeyRecord & { hash: string };

/**
 * The API-key registry: the one consistent home of keys, a single named instance ("global").
 * Edge isolates cache lookups for up to 30 s (worker/auth/key-cache.ts), so the hot path
 * reaches this object only when an isolate meets a key it has not seen recently.
 */
export class KeyRegistry extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS api_keys (
      id TEXT PRIMARY KEY,
      hash TEXT NOT NULL UNIQUE,
      tenant TEXT NOT NULL,
      name TEXT NOT NULL,
      key_prefix TEXT NOT NULL,
      created_at TEXT NOT NULL,
      revoked_at TEXT
    )`);
    // Per-key rate-limit overrides, apart from the key rows so listings stay as they were.
    this.sql.exec('CREATE TABLE IF NOT EXISTS key_limits (id TEXT PRIMARY KEY, limits TEXT NOT NULL)');
  }

  /** Creates a key for a tenant; the plain key is returned this once and never stored. */
  async create(tenant: string, name: string): Promise<CreatedKey> {
    const key = `sk-er-${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
    const record: KeyRecord = {
      id: `key_${hex(crypto.getRandomValues(new Uint8Array(8)))}`,
      tenant,
      name,
      key_prefix: key.slice(0, 10),
      created_at: new Date().toISOString(),
      revoked_at: null,
    };
    this.sql.exec(
      'INSERT INTO api_keys (id, hash, tenant, name, key_prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      record.id,
      await sha256Hex(key),
      tenant,
      name,
      record.key_prefix,
      record.created_at,
    );
    return { ...record, key };
  }

  /** The active key with this SHA-256 hex, or null. */
  lookup(hash: string): (KeyRecord & { hash: string }) | null {
    const rows = this.sql.exec<Row>('SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL', hash).toArray();
    const row = rows[0];
    if (!row) return null;
    return { ...row, limits: this.overrideOf(row.id) };
  }

  /** A key's tenant and rate-limit override (null: none); null when there is no such key. */
  getLimits(id: string): { tenant: string; limits: KeyLimits | null } | null {
    const key = this.sql.exec<{ tenant: string }>('SELECT tenant FROM api_keys WHERE id = ?', id).toArray()[0];
    return key ? { tenant: key.tenant, limits: this.overrideOf(id) } : null;
  }

  /** Sets (an object) or removes (null) a key's rate-limit override; null when there is no such key. */
  setLimits(id: string, limits: KeyLimits | null): { tenant: string; limits: KeyLimits | null } | null {
    if (!this.getLimits(id)) return null;
    if (limits) this.sql.exec('INSERT INTO key_limits (id, limits) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET limits = excluded.limits', id, JSON.stringify(limits));
    else this.sql.exec('DELETE FROM key_limits WHERE id = ?', id);
    return this.getLimits(id);
  }

  private overrideOf(id: string): KeyLimits | null {
    const row = this.sql.exec<{ limits: string }>('SELECT limits FROM key_limits WHERE id = ?', id).toArray()[0];
    return row ? (JSON.parse(row.limits) as KeyLimits) : null;
  }

  list(tenant?: string): KeyRecord[] {
    const cursor = tenant
      ? this.sql.exec<Row>('SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_at, id', tenant)
      : this.sql.exec<Row>('SELECT * FROM api_keys ORDER BY created_at, id');
    return cursor.toArray().map(({ hash: _hash, ...record }) => record);
  }

  /** Revokes a key; returns the record, or null when there is no such key. Idempotent. */
  revoke(id: string): KeyRecord | null {
    const now = new Date().toISOString();
    this.sql.exec('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', now, id);
    const row = this.sql.exec<Row>('SELECT * FROM api_keys WHERE id = ?', id).toArray()[0];
    if (!row) return null;
    const { hash: _hash, ...record } = row;
    return record;
  }
}
