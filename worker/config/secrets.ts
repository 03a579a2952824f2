import { managedKinds, type RouterConfig } from './schema';

export interface NamedSecret {
  name: string;
  /** What it is for, for config:check's reminders. */
  purpose: string;
  /**
   * Whether a local stack may fill it with a random value (`npm start`): true for secrets the
   * router only shares with things the stack starts itself (admin token, simulated backends'
   * keys, webhook signing keys); false for credentials of outside services (Upstash).
   */
  local: boolean;
}

/** Every Worker secret a config names (each once), for `npm start` and `npm run config:check`. */
export function configSecrets(c: RouterConfig): NamedSecret[] {
  const out = new Map<string, NamedSecret>();
  const add = (name: string | undefined, purpose: string, local: boolean) => {
    if (name && !out.has(name)) out.set(name, { name, purpose, local });
  };
  add('ADMIN_TOKEN', 'admin API token', true);
  // A managed provider's key is an outside credential: a local stack cannot make one up.
  for (const b of c.backends) add(b.auth_secret, `API key of backend ${b.id}${managedKinds.includes(b.kind) ? ` (${b.kind})` : ''}`, !managedKinds.includes(b.kind));
  for (const b of c.backends) {
    add(b.bedrock?.access_key_secret, `AWS access key id of backend ${b.id} (bedrock)`, false);
    add(b.bedrock?.secret_key_secret, `AWS secret access key of backend ${b.id} (bedrock)`, false);
    add(b.bedrock?.session_token_secret, `AWS session token of backend ${b.id} (bedrock)`, false);
    add(b.vertex?.credentials_secret, `Google service account JSON key of backend ${b.id} (vertex)`, false);
  }
  for (const b of c.backends) {
    add(b.modal?.key_secret, `Modal proxy auth token id (Modal-Key) of backend ${b.id}`, false);
    add(b.modal?.secret_secret, `Modal proxy auth token secret (Modal-Secret) of backend ${b.id}`, false);
  }
  add(c.budgets.alert_webhook_secret, 'HMAC key of budget alert webhooks', true);
  for (const [id, t] of Object.entries(c.tenants)) add(t.budget?.alert_webhook_secret, `HMAC key of tenant ${id}'s budget alerts`, true);
  for (const w of c.alerts.webhooks) add(w.secret, `HMAC key of the alert webhook ${w.url}`, true);
  for (const [tenant, hooks] of Object.entries(c.async.webhooks)) for (const [name, w] of Object.entries(hooks)) add(w.secret, `HMAC key of tenant ${tenant}'s async webhook ${name}`, true);
  if (c.upstash?.redis_url) add(c.upstash.redis_token_secret, 'Upstash Redis REST token', false);
  if (c.upstash?.vector_url) add(c.upstash.vector_token_secret, 'Upstash Vector REST token', false);
  return [...out.values()];
}
