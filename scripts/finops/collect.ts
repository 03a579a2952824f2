/**
 * What the FinOps report is built from, and nothing else: the router's admin API (`/admin/usage`,
 * `/admin/backends`), its `/metrics` (per-backend and cache counters) and the config (TOML, checked
 * with the Worker's schema). Each answer is validated loosely with zod: fields the report uses.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { z } from 'zod';
import { compileConfig } from '../../worker/config/compiled';
import type { RouterConfig } from '../../worker/config/schema';

export class FinopsError extends Error {
  override name = 'FinopsError';
}

const num = z.number().nullable().optional().transform((v) => v ?? null);
export const usageRowSchema = z.looseObject({
  bucket: z.string().nullable().optional(),
  requests: z.number(),
  prompt_tokens: z.number(),
  completion_tokens: z.number(),
  cost_usd: z.number(),
  saved_usd: z.number(),
  errors: z.number(),
  cache_hits: z.number().default(0),
  latency_ms_p95: num,
  ttft_ms_p95: num,
});
export type UsageRow = z.infer<typeof usageRowSchema> & Record<string, unknown>;
const usageSchema = z.object({ from: z.string(), to: z.string(), rows: z.array(usageRowSchema) });

const backendSchema = z.looseObject({ id: z.string(), kind: z.string(), region: z.string(), state: z.string(), state_since: z.string().nullable(), replicas: z.number().nullable() });
export type BackendNow = z.infer<typeof backendSchema>;

export interface Period {
  /** "YYYY-MM". */
  month: string;
  from: number;
  /** min(now, the month's end). */
  to: number;
  monthEnd: number;
}

export function periodOf(month: string | undefined, now = Date.now()): Period {
  const m = month ?? new Date(now).toISOString().slice(0, 7);
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(m);
  if (!match) throw new FinopsError(`--month must be YYYY-MM, got "${m}"`);
  const from = Date.UTC(Number(match[1]), Number(match[2]) - 1, 1);
  const monthEnd = Date.UTC(Number(match[1]), Number(match[2]), 1);
  if (from > now) throw new FinopsError(`--month ${m} has not started`);
  return { month: m, from, to: Math.min(now, monthEnd), monthEnd };
}

export function loadRouterConfig(path: string, env?: string): RouterConfig {
  let doc: Record<string, any>;
  try {
    doc = parse(readFileSync(path, 'utf8')) as Record<string, any>;
  } catch (e) {
    throw new FinopsError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const scope = env === undefined ? doc : doc.env?.[env];
  if (!scope) throw new FinopsError(`${path}: no [env.${env}]`);
  const result = compileConfig(scope.vars?.ROUTER);
  if (!result.ok) throw new FinopsError(`invalid router config in ${path}:\n  ${result.errors.join('\n  ')}`);
  return result.config.raw;
}

export interface Collected {
  period: Period;
  config: RouterConfig;
  total: UsageRow | undefined;
  daily: UsageRow[];
  hourly: UsageRow[];
  byTenant: UsageRow[];
  byBackend: UsageRow[];
  byBackendHourly: UsageRow[];
  byTierModel: UsageRow[];
  backends: BackendNow[];
  /** Parsed `/metrics` samples: name → [labels, value][]. */
  metrics: Map<string, Array<[Record<string, string>, number]>>;
}

export async function collect(o: { router: string; adminToken: string; config: RouterConfig; period: Period; fetch?: typeof fetch }): Promise<Collected> {
  const f = o.fetch ?? fetch;
  const base = o.router.replace(/\/$/, '');
  const get = async (path: string): Promise<Response> => {
    let res: Response;
    try {
      res = await f(`${base}${path}`, { headers: { authorization: `Bearer ${o.adminToken}` }, signal: AbortSignal.timeout(30_000) });
    } catch (e) {
      throw new FinopsError(`GET ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!res.ok) throw new FinopsError(`GET ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    return res;
  };
  const range = `from=${new Date(o.period.from).toISOString()}&to=${new Date(o.period.to).toISOString()}`;
  const usage = async (q: string) => {
    const parsed = usageSchema.safeParse(await (await get(`/admin/usage?${q}&${range}`)).json());
    if (!parsed.success) throw new FinopsError(`/admin/usage?${q}: unexpected answer (${parsed.error.issues[0]?.message})`);
    return parsed.data.rows as UsageRow[];
  };
  const [total, daily, hourly, byTenant, byBackend, byBackendHourly, byTierModel, backendsBody, metricsText] = await Promise.all([
    usage('group_by=').then((r) => r[0]),
    usage('group_by=&granularity=day'),
    usage('group_by=&granularity=hour'),
    usage('group_by=tenant'),
    usage('group_by=backend'),
    usage('group_by=backend&granularity=hour'),
    usage('group_by=tier,model'),
    get('/admin/backends').then((r) => r.json()),
    get('/metrics').then((r) => r.text()),
  ]);
  const backends = z.object({ data: z.array(backendSchema) }).safeParse(backendsBody);
  if (!backends.success) throw new FinopsError('/admin/backends: unexpected answer');
  return { period: o.period, config: o.config, total, daily, hourly, byTenant, byBackend, byBackendHourly, byTierModel, backends: backends.data.data, metrics: parsePrometheus(metricsText) };
}

/** Prometheus text format: `name{a="b",…} value` lines (comments skipped). */
export function parsePrometheus(text: string): Map<string, Array<[Record<string, string>, number]>> {
  const out = new Map<string, Array<[Record<string, string>, number]>>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), [labels, value]]);
  }
  return out;
}
