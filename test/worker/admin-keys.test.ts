import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { authenticateKey, KEY_TTL_MS, registry } from '../../worker/auth/key-cache';
import { sha256Hex } from '../../worker/protocol/rules/hash';
import type { Env } from '../../worker/env';
import { admin, call, createKey, errorOf } from './support';


describe('/admin/keys', () => {
  it('needs the admin token', async () => {
    expect((await call('/admin/keys')).status).toBe(401);
    const wrong = await call('/admin/keys', { headers: { authorization: 'Bearer not-the-token' } });
    expect(wrong.status).toBe(401);
    expect((await errorOf(wrong)).code).toBe('invalid_admin_token');
  });

  it('creates a key shown once, stores only its hash, lists without secrets', async () => {
    const res = await admin('/admin/keys', { method: 'POST', body: JSON.stringify({ tenant: 'acme', name: 'ci' }) });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; key: string; tenant: string; name: string };
    expect(created).toMatchObject({ tenant: 'acme', name: 'ci' });
    expect(created.key).toMatch(/^sk-er-[A-Za-z0-9_-]{43}$/);

    const list = (await (await admin('/admin/keys?tenant=acme')).json()) as { data: Record<string, unknown>[] };
    const listed = list.data.find((k) => k.id === created.id)!;
    expect(listed).toBeDefined();
    expect(JSON.stringify(list)).not.toContain(created.key);
    expect(listed).not.toHaveProperty('hash');

    // The registry holds the SHA-256, never the key.
    const stored = await registry(env as unknown as Env).lookup(await sha256Hex(created.key));
    expect(stored?.id).toBe(created.id);

    const models = await call('/v1/models', { headers: { authorization: `Bearer ${created.key}` } });
    expect(models.status).toBe(200);
  });

  it('rejects bad input with 400 naming the field, and unknown tenants', async () => {
    const missing = await admin('/admin/keys', { method: 'POST', body: JSON.stringify({ tenant: 'acme' }) });
    expect(missing.status).toBe(400);
    expect((await errorOf(missing)).param).toBe('name');
    const unknown = await admin('/admin/keys', { method: 'POST', body: JSON.stringify({ tenant: 'nobody', name: 'x' }) });
    expect(unknown.status).toBe(400);
    expect((await errorOf(unknown)).code).toBe('unknown_tenant');
  });

  it('revokes: at once in this isolate, within the cache TTL everywhere else', async () => {
    const a = await createKey('demo');
    expect((await call('/v1/models', { headers: { authorization: `Bearer ${a.key}` } })).status).toBe(200);
    const del = await admin(`/admin/keys/${a.id}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(((await del.json()) as { revoked_at: string | null }).revoked_at).not.toBeNull();
    expect((await call('/v1/models', { headers: { authorization: `Bearer ${a.key}` } })).status).toBe(401);
    expect((await admin(`/admin/keys/key_doesnotexist`, { method: 'DELETE' })).status).toBe(404);

    // Another isolate: revoked straight in the registry, so only the TTL can make this isolate notice.
    const b = await createKey('demo');
    const e = env as unknown as Env;
    const now = Date.now();
    expect(await authenticateKey(e, b.key, now)).not.toBeNull();
    await registry(e).revoke(b.id);
    expect(await authenticateKey(e, b.key, now + 1_000)).not.toBeNull(); // still cached
    expect(await authenticateKey(e, b.key, now + KEY_TTL_MS + 1)).toBeNull();
  });
});
