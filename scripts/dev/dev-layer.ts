/**
 * The dev-only config layer (scripts/dev/dev-layer.toml) `npm start` puts over wrangler.toml's
 * top-level [vars.ROUTER]: `[[backends]]` entries are appended, `[patch."<backend id>"]` tables
 * are merged key by key into existing backends. The result is checked with the Worker's schema.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'smol-toml';
import { z } from 'zod';
import type { RouterConfigInput } from '../../worker/config/schema';
import { ROOT } from './paths';
import { validRouter } from './wrangler-config';

export const DEV_LAYER = join(ROOT, 'scripts/dev/dev-layer.toml');

const layerSchema = z.strictObject({
  backends: z.array(z.record(z.string(), z.unknown())).default([]),
  patch: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
});

export function applyDevLayer(router: RouterConfigInput, file = DEV_LAYER): RouterConfigInput {
  const parsed = layerSchema.safeParse(parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const layer = parsed.data;
  const ids = new Set(router.backends.map((b) => b.id));
  for (const id of Object.keys(layer.patch)) if (!ids.has(id)) throw new Error(`${file}: [patch."${id}"]: no backend "${id}" in wrangler.toml`);
  const out: RouterConfigInput = {
    ...router,
    backends: [
      ...router.backends.map((b) => (layer.patch[b.id] ? { ...b, ...layer.patch[b.id] } : b)),
      ...(layer.backends as unknown as RouterConfigInput['backends']),
    ],
  };
  return validRouter(out, `wrangler.toml + ${file}`);
}

/**
 * The effective router config as a wrangler-style TOML ([vars.ROUTER]), for the tools that read a
 * config file (`npm run scale -- … --config .dev/wrangler.toml`, `npm run finops`).
 */
export function writeEffectiveConfig(file: string, router: RouterConfigInput): void {
  const header = '# Written by `npm start`: wrangler.toml\'s [vars.ROUTER] with scripts/dev/dev-layer.toml over it and\n# the local URLs. Read by `npm run scale` and `npm run finops` against the local stack; do not edit.\n';
  writeFileSync(file, header + stringify({ vars: { ROUTER: router } }) + '\n');
}
