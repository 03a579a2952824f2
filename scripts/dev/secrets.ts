import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RouterConfigInput } from '../../worker/config/schema';

export const randomSecret = (prefix = '') => prefix + randomBytes(24).toString('base64url');

/** The Worker secrets a config needs: ADMIN_TOKEN and each backend's auth_secret. */
export function secretNames(router: RouterConfigInput): string[] {
  return ['ADMIN_TOKEN', ...new Set(router.backends.flatMap((b) => (b.auth_secret ? [b.auth_secret] : [])))];
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
