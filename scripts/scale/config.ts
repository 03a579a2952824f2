/**
 * The backends and their [scaling] tables, read from wrangler.toml with the Worker's own schema
 * (compileConfig), so a policy the scripts accept is one the router accepts too. `env` picks
 * [env.<name>].vars.ROUTER instead of the top-level [vars.ROUTER] (vars are not inherited).
 */
import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { compileConfig } from '../../worker/config/compiled';
import type { BackendConfig } from '../../worker/config/schema';
import { validTimeZone } from './schedule';

export type ScaleBackend = Pick<BackendConfig, 'id' | 'kind' | 'region' | 'cold_start_ms' | 'scaling'> & { url?: string; gpus?: number };

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);

export function loadScaleConfig(path: string, env?: string): ScaleBackend[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return scaleConfigFromToml(text, path, env);
}

export function scaleConfigFromToml(text: string, where: string, env?: string): ScaleBackend[] {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    const msg = e instanceof TomlError ? `line ${e.line}, column ${e.column}: ${e.message.split('\n')[0]}` : String(e);
    throw new ConfigError(`${where}: TOML parse error: ${msg}`);
  }
  let scope: Table = doc;
  if (env !== undefined) {
    const envs = isTable(doc.env) ? doc.env : {};
    const chosen = envs[env];
    if (!isTable(chosen)) throw new ConfigError(`${where}: no [env.${env}] (environments: ${Object.keys(envs).join(', ') || 'none'})`);
    scope = chosen;
  }
  const router = isTable(scope.vars) ? scope.vars.ROUTER : undefined;
  const label = env === undefined ? `${where} [vars.ROUTER]` : `${where} [env.${env}.vars.ROUTER]`;
  const result = compileConfig(router);
  if (!result.ok) throw new ConfigError(`invalid router config (${label}):\n  ${result.errors.join('\n  ')}`);

  // The schema accepts any time_zone string; an unknown one would only fail at evaluation time.
  const problems: string[] = [];
  result.config.raw.backends.forEach((b, i) =>
    b.scaling?.keep_warm.forEach((w, j) => {
      if (!validTimeZone(w.time_zone)) problems.push(`router.backends[${i}].scaling.keep_warm[${j}].time_zone: unknown time zone "${w.time_zone}"`);
    }),
  );
  if (problems.length) throw new ConfigError(`invalid router config (${label}):\n  ${problems.join('\n  ')}`);

  return result.config.raw.backends.map(({ id, kind, region, url, gpus, cold_start_ms, scaling }) => ({ id, kind, region, url, gpus, cold_start_ms, scaling }));
}
