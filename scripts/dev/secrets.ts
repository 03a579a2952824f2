import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { routerConfigSchema, type RouterConfigInput } from '../../worker/config/schema';
import { configSecrets } from '../../worker/config/secrets';

export const randomSecret = (prefix = '') => prefix + randomBytes(24).toString('base64url');

/**
 * The Worker secrets a local stack fills with random values: ADMIN_TOKEN, each backend's
 * auth_secret, webhook signing keys (worker/config/secrets.ts). Credentials of outside services
 * (Upstash) are not invented: they come from the caller. An invalid config gets the minimum;
 * the router reports its errors.
 */
export function secretNames(router: RouterConfigInput): string[] {
  const parsed = routerConfigSchema.safeParse(router);
  if (!parsed.success) return ['ADMIN_TOKEN', ...new Set(router.backends.flatMap((b) => (b.auth_secret ? [b.auth_secret] : [])))];
  return configSecrets(parsed.data).flatMap((s) => (s.local ? [s.name] : []));
}

/** Random values for `names`, kept in `file` (mode 0600) so they survive restarts; new names get new values. */
export function loadOrCreateSecrets(file: string | undefined, names: readonly string[]): Record<string, string> {
  let stored: Record<string, string> = {};
  if (file && existsSync(file)) stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  let changed = false;
  for (const name of names) {
    if (typeof stored[name] !== 'string' || !stored[name]) {
      stored[name] = randomSecret(name === 'ADMIN_TOKEN' ? 'adm_' : 'sk_');
      changed = true;
    }
  }
  if (file && changed) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(stored, null, 2) + '\n', { mode: 0o600 });
  }
  return stored;
}
