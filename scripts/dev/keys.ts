/** Tenant API keys, made through the router's own admin API (the scripts never touch the DO). */

export interface CreatedKey {
  id: string;
  key: string;
  tenant: string;
  name: string;
  key_prefix: string;
  created_at: string;
  revoked_at: string | null;
}

export async function createKey(routerUrl: string, adminToken: string, tenant: string, name: string): Promise<CreatedKey> {
  const res = await fetch(new URL('/admin/keys', routerUrl), {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant, name }),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /admin/keys for tenant ${tenant}: HTTP ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as CreatedKey;
}

/** A key is still good when it can list models (revoked or unknown keys get 401). */
export async function keyWorks(routerUrl: string, apiKey: string): Promise<boolean> {
  const res = await fetch(new URL('/v1/models', routerUrl), { headers: { authorization: `Bearer ${apiKey}` } });
  await res.body?.cancel();
  return res.status === 200;
}

/** One key per tenant: a remembered one if it still authenticates, else a new one. */
export async function ensureTenantKeys(
  routerUrl: string,
  adminToken: string,
  tenants: readonly string[],
  remembered: Readonly<Record<string, string | undefined>> = {},
): Promise<Record<string, string>> {
  const keys: Record<string, string> = {};
  for (const tenant of tenants) {
    const old = remembered[tenant];
    keys[tenant] = old && (await keyWorks(routerUrl, old)) ? old : (await createKey(routerUrl, adminToken, tenant, `${tenant}-dev`)).key;
  }
  return keys;
}
