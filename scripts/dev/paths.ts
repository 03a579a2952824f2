import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root, whatever the cwd of the caller (vitest, npm scripts, benches). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Local state: DO storage, secrets, endpoints, bundles, bench results (git-ignored). */
export const DEV_DIR = resolve(ROOT, '.dev');
export const WRANGLER_TOML = resolve(ROOT, 'wrangler.toml');
