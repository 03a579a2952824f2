/**
 * `npm run config:check [-- path/to/wrangler.toml]`: validates [vars.ROUTER] at the top level
 * and in every [env.*]. Exit 1 on any error; warnings and reminders never fail the check.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { checkWranglerToml } from './config/check';

const path = resolve(process.argv[2] ?? 'wrangler.toml');
let text: string;
try {
  text = readFileSync(path, 'utf8');
} catch (e) {
  console.error(`✗ cannot read ${path}: ${(e as Error).message}`);
  process.exit(1);
}

const result = checkWranglerToml(text);
if (!result.ok) {
  console.error(`✗ ${path}: ${result.parseError}`);
  process.exit(1);
}

let failed = false;
for (const r of result.envs) {
  if (r.errors.length === 0) console.log(`✓ ${r.env}: ${r.summary}`);
  for (const e of r.errors) console.error(`✗ ${r.env}: ${e}`);
  for (const w of r.warnings) console.warn(`⚠ ${r.env}: ${w}`);
  if (r.reminders.length) console.log(`  ${r.env}: secrets to set before deploying:\n${r.reminders.map((c) => `    ${c}`).join('\n')}`);
  failed ||= r.errors.length > 0;
}
process.exit(failed ? 1 : 0);
