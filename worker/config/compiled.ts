import { routerConfigSchema, type BackendConfig, type ModelConfig, type Region, type RouterConfig } from './schema';
import { formatIssues } from './format-issues';

/** The validated config plus the lookups the hot path needs, built once per config object. */
export interface CompiledConfig {
  readonly raw: RouterConfig;
  readonly regions: ReadonlyMap<string, Region>;
  readonly backends: ReadonlyMap<string, BackendConfig>;
  /** Model id or alias → model. */
  readonly modelsByName: ReadonlyMap<string, ModelConfig>;
  /** Model id → backends that serve it, in config order. */
  readonly backendsByModel: ReadonlyMap<string, readonly BackendConfig[]>;
  /** Model id → the first tier listing it (for x-router-tier on explicit models). */
  readonly tierOfModel: ReadonlyMap<string, string>;
}

export type ConfigResult = { ok: true; config: CompiledConfig } | { ok: false; errors: string[] };

export function compileConfig(input: unknown): ConfigResult {
  let value = input;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return { ok: false, errors: ['router: ROUTER is a string that is not valid JSON'] };
    }
  }
  if (value === undefined || value === null) return { ok: false, errors: ['router: the ROUTER variable is missing ([vars.ROUTER] in wrangler.toml)'] };
  const parsed = routerConfigSchema.safeParse(value);
  if (!parsed.success) return { ok: false, errors: formatIssues(parsed.error.issues) };
  const raw = parsed.data;

  const modelsByName = new Map<string, ModelConfig>();
  for (const m of raw.models) for (const name of [m.id, ...m.aliases]) modelsByName.set(name, m);
  const backendsByModel = new Map<string, BackendConfig[]>();
  for (const b of raw.backends) {
    for (const m of b.models) {
      let list = backendsByModel.get(m);
      if (!list) backendsByModel.set(m, (list = []));
      list.push(b);
    }
  }
  const tierOfModel = new Map<string, string>();
  for (const [tier, t] of Object.entries(raw.tiers)) for (const m of t.models) if (!tierOfModel.has(m)) tierOfModel.set(m, tier);

  return {
    ok: true,
    config: {
      raw,
      regions: new Map(raw.regions.map((r) => [r.id, r])),
      backends: new Map(raw.backends.map((b) => [b.id, b])),
      modelsByName,
      backendsByModel,
      tierOfModel,
    },
  };
}

// Bindings are the same object for the life of an isolate, so the parse runs once;
// a test that passes its own env gets its own entry.
const cache = new WeakMap<object, ConfigResult>();
let lastString: { text: string; result: ConfigResult } | undefined;

export function loadConfig(routerVar: unknown): ConfigResult {
  if (typeof routerVar === 'object' && routerVar !== null) {
    let result = cache.get(routerVar);
    if (!result) cache.set(routerVar, (result = compileConfig(routerVar)));
    return result;
  }
  if (typeof routerVar === 'string') {
    if (lastString?.text !== routerVar) lastString = { text: routerVar, result: compileConfig(routerVar) };
    return lastString.result;
  }
  return compileConfig(routerVar);
}
