/** `.dev/endpoints.json`: how to reach the running local stack (read by tools, reused for keys). */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Endpoints {
  router: string;
  admin_token: string;
  tenants: Record<string, { api_key: string }>;
  backends: Record<string, string>;
  /** The config file the stack runs (wrangler.toml + the dev layer), for `npm run scale` / `npm run finops`. */
  config?: string;
}

export function readEndpoints(file: string): Partial<Endpoints> {
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<Endpoints>;
  } catch {
    return {}; // a broken file only costs new keys
  }
}

export function rememberedKeys(file: string): Record<string, string | undefined> {
  const tenants = readEndpoints(file).tenants ?? {};
  return Object.fromEntries(Object.entries(tenants).map(([t, v]) => [t, v?.api_key]));
}

export function writeEndpoints(file: string, e: Endpoints): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(e, null, 2) + '\n', { mode: 0o600 });
}

/**
 * The config `npm start` runs (wrangler.toml + scripts/dev/dev-layer.toml, written to
 * .dev/wrangler.toml) when `router` is that stack's URL, else undefined.
 */
export function localStackConfig(router: string | undefined, endpointsFile: string): string | undefined {
  if (!router) return undefined;
  const e = readEndpoints(endpointsFile);
  if (!e.config || !e.router || !existsSync(e.config)) return undefined;
  const origin = (u: string) => {
    try {
      return new URL(u).origin;
    } catch {
      return u;
    }
  };
  return origin(e.router) === origin(router) ? e.config : undefined;
}
