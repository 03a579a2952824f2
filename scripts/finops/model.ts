/**
 * The FinOps report's figures, computed from what collect.ts gathered. Pure: no I/O. Every figure
 * carries its source (the API call or config key it comes from, and how it was derived), so a
 * reader can check it; where the sources cannot say something, the report says so instead.
 */
import type { RouterConfig } from '../../worker/config/schema';
import type { BackendNow, Collected, UsageRow } from './collect';

export type Unit = 'usd' | 'count' | 'ms' | 'ratio' | 'hours' | 'qps' | 'text';
export interface Figure {
  label: string;
  value: number | string | null;
  unit: Unit;
  source: string;
  /** A target it is compared with (SLO, budget), same unit. */
  target?: number | null;
  /** true: meets the target. */
  ok?: boolean | null;
}

export interface ComponentRow {
  component: string;
  kind: string;
  region: string;
  configuration: string;
  state_now: string;
  requests: number;
  warm_hours: number | null;
  gpu_cost_usd: number | null;
  token_cost_usd: number;
  projected_month_usd: number | null;
  source: string;
}

export interface Opportunity {
  title: string;
  saving_usd_per_month: number | null;
  detail: string;
  source: string;
}

export interface Report {
  month: string;
  from: string;
  to: string;
  elapsedHours: number;
  monthHours: number;
  requirements: Figure[];
  budgets: Figure[];
  components: ComponentRow[];
  stores: Array<{ component: string; configuration: string; note: string }>;
  projection: Figure[];
  savings: Figure[];
  opportunities: Opportunity[];
  charts: { days: string[]; requests: number[]; cost: number[]; saved: number[] };
}

const H = 3_600_000;
const USAGE = (q: string) => `GET /admin/usage?${q}&from=<month start>&to=<now>`;
const round = (n: number, d = 12) => Math.round(n * 10 ** d) / 10 ** d;

type Backend = RouterConfig['backends'][number];

/** Always warm unless a scale policy can park it (a driver other than none, min_replicas 0). */
export const parkable = (b: Backend) => !!b.scaling && b.scaling.driver !== 'none' && b.scaling.min_replicas === 0;

/** Runs of consecutive hours (epoch ms starts), for the idle tail a policy keeps after each. */
function runs(hours: number[]): number {
  const s = [...new Set(hours)].sort((a, b) => a - b);
  let n = 0;
  for (let i = 0; i < s.length; i++) if (i === 0 || s[i]! - s[i - 1]! > H) n++;
  return n;
}

const bucketMs = (r: UsageRow) => (r.bucket ? Date.parse(r.bucket) : Number.NaN);

/**
 * Warm hours of a backend over the period. Always-on: the whole period. Parkable: the hours with at
 * least one request (hourly /admin/usage), each counted whole, plus idle_minutes after each run of
 * them (the scale policy's idle window). An estimate from hourly data, and labelled so.
 */
export function warmHours(b: Backend, activeHourStarts: number[], elapsedHours: number): { hours: number; how: string } {
  if (!parkable(b)) return { hours: elapsedHours, how: 'always on: every hour of the period' };
  const idleH = (b.scaling?.idle_minutes ?? 15) / 60;
  const active = new Set(activeHourStarts).size;
  const hours = Math.min(elapsedHours, active + runs(activeHourStarts) * idleH);
  return { hours, how: `${active} hours with requests + ${idleH.toFixed(2)} h idle window after each of ${runs(activeHourStarts)} runs` };
}

function price(cfg: RouterConfig, model: string) {
  return cfg.prices[model];
}

export function buildReport(c: Collected): Report {
  const cfg = c.config;
  const p = c.period;
  const elapsedHours = (p.to - p.from) / H;
  const monthHours = (p.monthEnd - p.from) / H;
  const scale = elapsedHours > 0 ? monthHours / elapsedHours : 0;
  const t = c.total;
  const requests = t?.requests ?? 0;
  const days = Math.max(elapsedHours / 24, 1 / 24);

  // ---------------------------------------------------------------- requirements
  const peakHour = c.hourly.reduce<UsageRow | undefined>((m, r) => (!m || r.requests > m.requests ? r : m), undefined);
  const peakDay = c.daily.reduce<UsageRow | undefined>((m, r) => (!m || r.requests > m.requests ? r : m), undefined);
  const availability = requests > 0 ? 1 - (t?.errors ?? 0) / requests : null;
  const requirements: Figure[] = [
    { label: 'requests this period', value: requests, unit: 'count', source: `${USAGE('group_by=')}: requests` },
    { label: 'traffic per day (mean)', value: round(requests / days, 1), unit: 'count', source: `requests / ${days.toFixed(2)} elapsed days` },
    { label: `busiest day${peakDay?.bucket ? ` (${peakDay.bucket.slice(0, 10)})` : ''}`, value: peakDay?.requests ?? 0, unit: 'count', source: `${USAGE('group_by=&granularity=day')}: max requests` },
    { label: `peak QPS (busiest hour's mean${peakHour?.bucket ? `, ${peakHour.bucket.slice(0, 13)}h` : ''})`, value: round((peakHour?.requests ?? 0) / 3600, 4), unit: 'qps', source: `${USAGE('group_by=&granularity=hour')}: max requests / 3600 s (finer peaks are not in the ledger's report)` },
    { label: 'p95 latency', value: t?.latency_ms_p95 ?? null, unit: 'ms', target: cfg.slo.p95_latency_ms, ok: t?.latency_ms_p95 == null ? null : t.latency_ms_p95 <= cfg.slo.p95_latency_ms, source: `${USAGE('group_by=')}: latency_ms_p95; target [slo].p95_latency_ms` },
    { label: 'p95 time to first token', value: t?.ttft_ms_p95 ?? null, unit: 'ms', target: cfg.slo.p95_ttft_ms, ok: t?.ttft_ms_p95 == null ? null : t.ttft_ms_p95 <= cfg.slo.p95_ttft_ms, source: `${USAGE('group_by=')}: ttft_ms_p95 (streams with a first token); target [slo].p95_ttft_ms` },
    { label: 'availability', value: availability === null ? null : round(availability, 6), unit: 'ratio', target: cfg.slo.availability, ok: availability === null ? null : availability >= cfg.slo.availability, source: `1 − errors / requests, ${USAGE('group_by=')}; target [slo].availability` },
    { label: 'spend (metered tokens)', value: round(t?.cost_usd ?? 0), unit: 'usd', source: `${USAGE('group_by=')}: cost_usd (tokens priced from [prices])` },
  ];

  // ---------------------------------------------------------------- budgets
  const budgets: Figure[] = Object.entries(cfg.tenants).map(([tenant, tc]) => {
    const used = c.byTenant.find((r) => r.tenant === tenant)?.cost_usd ?? 0;
    const limit = tc.budget?.monthly_usd ?? null;
    return {
      label: `${tenant}: spend this month`,
      value: round(used),
      unit: 'usd' as const,
      target: limit,
      ok: limit === null ? null : used * scale <= limit,
      source: `${USAGE('group_by=tenant')}: cost_usd; budget [tenants.${tenant}.budget].monthly_usd${limit === null ? ' (none)' : `; projected ${round(used * scale, 2)} at this pace`}`,
    };
  });

  // ---------------------------------------------------------------- components
  const now = new Map<string, BackendNow>(c.backends.map((b) => [b.id, b]));
  const components: ComponentRow[] = cfg.backends.map((b) => {
    const usage = c.byBackend.find((r) => r.backend === b.id);
    const active = c.byBackendHourly.filter((r) => r.backend === b.id && r.requests > 0).map(bucketMs).filter(Number.isFinite);
    const warm = warmHours(b, active, elapsedHours);
    const gpus = b.gpus ?? 1;
    const rate = b.usd_per_gpu_hour;
    const gpuCost = rate === undefined ? null : round(warm.hours * gpus * rate, 2);
    const projectedGpu = rate === undefined ? null : parkable(b) ? round(warm.hours * scale * gpus * rate, 2) : round(monthHours * gpus * rate, 2);
    const tokenCost = usage?.cost_usd ?? 0;
    const conf = [`${b.models.join(', ')}`, `max_concurrency ${b.max_concurrency}`, rate === undefined ? 'no usd_per_gpu_hour' : `${gpus} GPU × $${rate}/h`, b.scaling ? `scaling ${b.scaling.driver}${parkable(b) ? `, idle ${b.scaling.idle_minutes} min` : ''}` : 'always on'];
    return {
      component: b.id,
      kind: b.kind,
      region: b.region,
      configuration: conf.join('; '),
      state_now: now.get(b.id)?.state ?? 'n/a',
      requests: usage?.requests ?? 0,
      warm_hours: round(warm.hours, 2),
      gpu_cost_usd: gpuCost,
      token_cost_usd: round(tokenCost),
      projected_month_usd: projectedGpu === null ? null : projectedGpu,
      source: `requests, token cost: ${USAGE('group_by=backend')}; warm hours: ${warm.how} (${USAGE('group_by=backend&granularity=hour')}); GPU cost: warm hours × [backends].gpus × usd_per_gpu_hour; state: GET /admin/backends`,
    };
  });
  const stores = [
    { component: 'Durable Objects (keys, breakers, budgets, usage, metrics, alerts)', configuration: 'wrangler.toml [[durable_objects.bindings]]', note: 'billed by Cloudflare per request and GB-s; no price in the config, not projected' },
    ...(cfg.upstash?.redis_url ? [{ component: 'Upstash Redis', configuration: cfg.upstash.redis_url, note: 'no price in the config, not projected' }] : []),
    ...(cfg.upstash?.vector_url ? [{ component: 'Upstash Vector', configuration: cfg.upstash.vector_url, note: 'no price in the config, not projected' }] : []),
  ];

  // ---------------------------------------------------------------- projection
  const gpuSoFar = components.reduce((a, r) => a + (r.gpu_cost_usd ?? 0), 0);
  const gpuMonth = components.reduce((a, r) => a + (r.projected_month_usd ?? 0), 0);
  const tokensMonth = (t?.cost_usd ?? 0) * scale;
  const unpriced = components.filter((r) => r.gpu_cost_usd === null).map((r) => r.component);
  const projection: Figure[] = [
    { label: 'elapsed share of the month', value: round(elapsedHours / monthHours, 4), unit: 'ratio', source: `${elapsedHours.toFixed(1)} h of ${monthHours} h` },
    { label: 'metered token spend so far', value: round(t?.cost_usd ?? 0), unit: 'usd', source: `${USAGE('group_by=')}: cost_usd` },
    { label: 'metered token spend, month (extrapolated)', value: round(tokensMonth, 4), unit: 'usd', source: 'so far × month hours / elapsed hours' },
    { label: 'GPU cost so far', value: round(gpuSoFar, 2), unit: 'usd', source: `Σ components' GPU cost${unpriced.length ? `; not priced (no usd_per_gpu_hour): ${unpriced.join(', ')}` : ''}` },
    { label: 'GPU cost, month (projected)', value: round(gpuMonth, 2), unit: 'usd', source: 'always-on backends: every hour of the month; parkable ones: warm hours so far × month / elapsed' },
    { label: 'total, month (projected)', value: round(gpuMonth + tokensMonth, 2), unit: 'usd', source: 'GPU cost (projected) + metered token spend (extrapolated)' },
  ];

  // ---------------------------------------------------------------- savings
  const cacheCounts = (result: string) => (c.metrics.get('router_cache_requests_total') ?? []).filter(([l]) => l.result === result).reduce((a, [, v]) => a + v, 0);
  const exactHits = cacheCounts('hit');
  const semanticHits = cacheCounts('semantic-hit');
  const saved = t?.saved_usd ?? 0;
  const top = topTierModel(cfg);
  let tierSaving = 0;
  let tiered = 0;
  if (top) {
    const pt = price(cfg, top)!;
    for (const r of c.byTierModel) {
      if (!r.tier) continue;
      tiered += r.requests;
      // A cache hit costs 0 and its saved_usd is what it would have cost: counted under the caches, not twice.
      tierSaving += (r.prompt_tokens * pt.input + r.completion_tokens * pt.output) / 1e6 - r.cost_usd - r.saved_usd;
    }
  }
  const parkedHours = components.filter((r) => parkable(cfg.backends.find((b) => b.id === r.component)!));
  const scaleSaving = parkedHours.reduce((a, r) => {
    const b = cfg.backends.find((x) => x.id === r.component)!;
    return a + (b.usd_per_gpu_hour === undefined ? 0 : (elapsedHours - (r.warm_hours ?? 0)) * (b.gpus ?? 1) * b.usd_per_gpu_hour);
  }, 0);
  const savings: Figure[] = [
    { label: 'response caches (exact + semantic)', value: round(saved), unit: 'usd', source: `${USAGE('group_by=')}: saved_usd (what the hits would have cost); ${t?.cache_hits ?? 0} hits` },
    { label: 'of which exact-cache hits (count, all time)', value: exactHits, unit: 'count', source: 'GET /metrics: router_cache_requests_total{result="hit"} (cumulative since the metrics store began)' },
    { label: 'of which semantic-cache hits (count, all time)', value: semanticHits, unit: 'count', source: 'GET /metrics: router_cache_requests_total{result="semantic-hit"}' },
    {
      label: 'tiering (complexity routing)',
      value: top ? round(tierSaving) : null,
      unit: 'usd',
      source: top
        ? `${USAGE('group_by=tier,model')}: the tokens of ${tiered} requests with a tier priced at ${top}, the priciest tier model ([prices]), − their cost_usd and saved_usd (requests that named a tier's model directly are included: /admin/usage does not group by requested_model)`
        : 'no priced tier model',
    },
    { label: 'scale to zero (GPU-hours not paid)', value: round(scaleSaving, 2), unit: 'usd', source: 'parkable backends: (elapsed hours − warm hours) × gpus × usd_per_gpu_hour' },
  ];

  // ---------------------------------------------------------------- opportunities
  const opportunities: Opportunity[] = [];
  for (const r of components) {
    const b = cfg.backends.find((x) => x.id === r.component)!;
    const activeHours = new Set(c.byBackendHourly.filter((x) => x.backend === b.id && x.requests > 0).map(bucketMs)).size;
    const warm = r.warm_hours ?? 0;
    if (warm <= 0 || b.usd_per_gpu_hour === undefined) continue;
    const busy = activeHours / warm;
    if (busy < 0.7) {
      const idleCost = (warm - activeHours) * (b.gpus ?? 1) * b.usd_per_gpu_hour * scale;
      opportunities.push({
        title: `${b.id}: warm but idle ${Math.round((1 - busy) * 100)}% of its warm hours`,
        saving_usd_per_month: round(idleCost, 2),
        detail: parkable(b)
          ? `a shorter idle_minutes (now ${b.scaling!.idle_minutes}) or predictive parking (npm run bench -- scale-day) keeps fewer idle hours`
          : `always on: a [scaling] policy (or keep_warm only over its busy hours) would park it in the ${Math.round(warm - activeHours)} hours without a request`,
        source: `hours with ≥ 1 request (${USAGE('group_by=backend&granularity=hour')}) / warm hours; saving = idle warm hours × gpus × usd_per_gpu_hour, extrapolated to the month`,
      });
    }
  }
  const idleHoursOfDay = idleHoursOfDayUtc(c.hourly);
  if (idleHoursOfDay.length && elapsedHours >= 24) {
    const alwaysOn = cfg.backends.filter((b) => !parkable(b) && b.usd_per_gpu_hour !== undefined);
    const perDay = alwaysOn.reduce((a, b) => a + idleHoursOfDay.length * (b.gpus ?? 1) * b.usd_per_gpu_hour!, 0);
    if (perDay > 0)
      opportunities.push({
        title: `no traffic at all in ${idleHoursOfDay.length} hours of the day (UTC ${idleHoursOfDay.map((h) => `${h}h`).join(', ')})`,
        saving_usd_per_month: round((perDay * monthHours) / 24, 2),
        detail: `${alwaysOn.length} always-on backends stay warm through them; keep_warm windows outside those hours park them`,
        source: `${USAGE('group_by=&granularity=hour')}: hours of the day with 0 requests on every day; × gpus × usd_per_gpu_hour of the always-on backends`,
      });
  }
  const tierRows = aggregateBy(c.byTierModel, 'tier');
  const tierNames = Object.keys(cfg.tiers).sort((a, b) => (cfg.tiers[a]!.min_complexity ?? 0) - (cfg.tiers[b]!.min_complexity ?? 0));
  const [cheapest, ...higher] = tierNames;
  const cheapRow = cheapest ? tierRows.get(cheapest) : undefined;
  for (const name of higher) {
    const row = tierRows.get(name);
    if (!row || !cheapRow || row.requests === 0 || cheapRow.requests === 0) continue;
    const diff = row.cost_usd / row.requests - cheapRow.cost_usd / cheapRow.requests;
    if (diff <= 0) continue;
    opportunities.push({
      title: `tier "${name}": each 10% of its requests a "${cheapest}" model answers well saves`,
      saving_usd_per_month: round(0.1 * row.requests * diff * scale, 4),
      detail: `${row.requests} requests at $${(row.cost_usd / row.requests).toFixed(8)} each vs $${(cheapRow.cost_usd / cheapRow.requests).toFixed(8)} in "${cheapest}". Which prompts a cheaper tier answers well is a quality question these sources cannot answer: replay a sample through both tiers (npm run bench -- complexity) before moving [tiers].${name}.min_complexity`,
      source: `${USAGE('group_by=tier,model')}: mean cost per request by tier; a what-if, not a measurement`,
    });
  }
  opportunities.push({
    title: 'cache TTLs that expire hot entries',
    saving_usd_per_month: null,
    detail: `not measurable from these sources: the ledger records hits and misses (hit rate this period ${requests ? round((t?.cache_hits ?? 0) / requests, 4) : 0}), not expiries. [cache].ttl_seconds is ${cfg.cache.ttl_seconds} s.`,
    source: `${USAGE('group_by=')}: cache_hits; config [cache]`,
  });

  return {
    month: p.month,
    from: new Date(p.from).toISOString(),
    to: new Date(p.to).toISOString(),
    elapsedHours: round(elapsedHours, 2),
    monthHours,
    requirements,
    budgets,
    components,
    stores,
    projection,
    savings,
    opportunities,
    charts: {
      days: c.daily.map((r) => (r.bucket ?? '').slice(0, 10)),
      requests: c.daily.map((r) => r.requests),
      cost: c.daily.map((r) => round(r.cost_usd)),
      saved: c.daily.map((r) => round(r.saved_usd)),
    },
  };
}

/** The priciest model (per output token) among the tiers' models that has a price. */
function topTierModel(cfg: RouterConfig): string | undefined {
  const models = [...new Set(Object.values(cfg.tiers).flatMap((t) => t.models))].filter((m) => cfg.prices[m]);
  return models.sort((a, b) => cfg.prices[b]!.output + cfg.prices[b]!.input - (cfg.prices[a]!.output + cfg.prices[a]!.input))[0];
}

function aggregateBy(rows: UsageRow[], key: string): Map<string, { requests: number; cost_usd: number }> {
  const out = new Map<string, { requests: number; cost_usd: number }>();
  for (const r of rows) {
    const k = r[key];
    if (typeof k !== 'string') continue;
    const m = out.get(k) ?? { requests: 0, cost_usd: 0 };
    m.requests += r.requests;
    m.cost_usd += r.cost_usd;
    out.set(k, m);
  }
  return out;
}

/** UTC hours of the day in which no hourly bucket of the period had a request. */
function idleHoursOfDayUtc(hourly: UsageRow[]): number[] {
  const busy = new Set<number>();
  for (const r of hourly) if (r.requests > 0 && r.bucket) busy.add(new Date(r.bucket).getUTCHours());
  if (!busy.size) return [];
  return Array.from({ length: 24 }, (_, h) => h).filter((h) => !busy.has(h));
}
