/**
 * Checks every [vars.ROUTER] in a wrangler.toml: the top level (the local stack) and each
 * [env.*] (deployments). Errors come from the Worker's own compileConfig, so this check and
 * the Worker can never disagree; warnings are deploy-time hygiene the schema cannot know.
 */
import { parse, TomlError } from 'smol-toml';
import { compileConfig } from '../../worker/config/compiled';
import { configSecrets } from '../../worker/config/secrets';
import { tenantRouteWarnings } from '../../worker/routing/resolve-model';
import { semanticResidencyWarnings } from '../../worker/cache/semantic/residency';
import { isPrivateHost } from './private-hosts';

export const TOP_LEVEL = 'top-level';

export interface EnvReport {
  env: string;
  /** `5 regions, 6 backends, ...` when the config compiles. */
  summary?: string;
  errors: string[];
  warnings: string[];
  /** Commands the operator still has to run (secrets). */
  reminders: string[];
}

export type CheckResult = { ok: true; envs: EnvReport[] } | { ok: false; parseError: string; envs: [] };

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);

export function checkWranglerToml(text: string): CheckResult {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    const msg = e instanceof TomlError ? `line ${e.line}, column ${e.column}: ${e.message.split('\n')[0]}` : String(e);
    return { ok: false, parseError: `TOML parse error: ${msg}`, envs: [] };
  }
  const envs: EnvReport[] = [checkEnv(TOP_LEVEL, doc, doc)];
  const named = isTable(doc.env) ? doc.env : {};
  for (const [name, env] of Object.entries(named)) envs.push(checkEnv(name, isTable(env) ? env : {}, doc));
  return { ok: true, envs };
}

function checkEnv(name: string, table: Table, top: Table): EnvReport {
  const report: EnvReport = { env: name, errors: [], warnings: [], reminders: [] };
  const deployed = name !== TOP_LEVEL;
  // [vars] is not inherited by environments in wrangler: each env needs its own ROUTER.
  const router = isTable(table.vars) ? table.vars.ROUTER : undefined;
  const result = compileConfig(router);
  if (result.ok) {
    const c = result.config.raw;
    report.summary = [
      plural(c.regions.length, 'region'),
      plural(c.backends.length, 'backend'),
      plural(c.models.length, 'model'),
      plural(Object.keys(c.tiers).length, 'tier'),
      plural(Object.keys(c.tenants).length, 'tenant'),
    ].join(', ');
    report.warnings.push(...tenantRouteWarnings(result.config), ...semanticResidencyWarnings(result.config));
  } else {
    report.errors.push(...result.errors);
  }
  if (deployed) {
    const named = result.ok ? configSecrets(result.config.raw) : [{ name: 'ADMIN_TOKEN', purpose: 'admin API token' }];
    for (const s of named) report.reminders.push(`npx wrangler secret put ${s.name} --env ${name}   # ${s.purpose}`);
    report.warnings.push(...missingDurableObjects(table, top));
    if (isTable(router)) deployWarnings(router, report);
  }
  return report;
}

/** Loopback/private URLs and dev switches make no sense on Cloudflare's edge. */
function deployWarnings(router: Table, report: EnvReport): void {
  if (router.debug_geo_header === true) {
    report.warnings.push('router.debug_geo_header = true: any client can pick its region with x-router-debug-geo');
  }
  const backends = Array.isArray(router.backends) ? router.backends : [];
  backends.forEach((b: unknown, i) => {
    if (!isTable(b)) return;
    if (typeof b.url === 'string') {
      const url = URL.canParse(b.url) ? new URL(b.url) : undefined;
      if (url && isPrivateHost(url.hostname)) {
        report.warnings.push(`router.backends[${i}].url: ${url.hostname} is a loopback/private address, unreachable from Cloudflare`);
      } else if (url?.protocol === 'http:') {
        report.warnings.push(`router.backends[${i}].url: plain http; prompts and backend keys would cross the internet unencrypted`);
      }
    }
  });
}

/** durable_objects is not inherited either; without KEY_REGISTRY the Worker cannot authenticate. */
function missingDurableObjects(env: Table, top: Table): string[] {
  const names = (t: Table): string[] => {
    const dos = isTable(t.durable_objects) && Array.isArray(t.durable_objects.bindings) ? t.durable_objects.bindings : [];
    return dos.flatMap((b: unknown) => (isTable(b) && typeof b.name === 'string' ? [b.name] : []));
  };
  const have = new Set(names(env));
  return names(top)
    .filter((n) => !have.has(n))
    .map((n) => `durable_objects: no "${n}" binding (durable_objects is not inherited from the top level)`);
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
