/**
 * The dashboard's browser script (bundled with uPlot into client.generated.ts by
 * `npm run build:dashboard`). It reads the admin JSON APIs with the session cookie, renders with
 * plain DOM calls (textContent only: nothing from the API is parsed as HTML) and refreshes itself.
 *
 * Every figure has a stable `data-testid` and its raw number (or state) in `data-value`, so a test
 * can compare what is shown with what the API says, exactly.
 */
import uPlot from 'uplot';

const REFRESH_MS = 15_000;
const WINDOW_H = 24;
const HOUR_MS = 3_600_000;

/** A row of GET /admin/usage: the group's fields, then the metrics (some optional: older or newer servers). */
interface UsageRow {
  [field: string]: unknown;
  bucket?: string | number;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  saved_usd: number;
  errors: number;
  latency_ms_p50?: number | null;
  latency_ms_p95?: number | null;
  ttft_ms_p50?: number | null;
  ttft_ms_p95?: number | null;
  cache_hits?: number;
}
interface Breaker { backend: string; state: string; enabled: boolean; consecutive_failures: number; trips: number; opened_until: string | null; window: { requests: number; failures: number } }
interface Backend { id: string; kind: string; region: string; state: string; tracked: boolean; in_flight: number; request_rate_per_min: number; replicas: number | null }
interface Budget { tenant: string; enabled: boolean; state: string; used_usd?: number; used_tokens?: number; daily?: { used_usd: number; used_tokens: number }; monthly_usd: number | null; monthly_tokens: number | null; daily_usd: number | null; daily_tokens: number | null; usage?: Record<string, number> }

/** GET /admin/deployments (issue 14's contract; arms and comparison as worker/protocol/rules/rollout-stats.ts). */
interface Arm { requests?: number; error_rate?: number | null; p95_latency_ms?: number | null; p95_ttft_ms?: number | null; refusal_rate?: number | null; truncation_rate?: number | null; mean_output_tokens?: number | null; feedback?: { negative_rate?: number | null } }
interface Rollout {
  id: string;
  mode: string;
  stable: string;
  candidate: string;
  state: string;
  step?: number | null;
  steps?: number[] | null;
  share?: number | null;
  arms?: { stable: Arm; candidate: Arm } | null;
  comparison?: { verdict: string; reasons: string[]; checks?: Array<{ signal: string; limit: number | null; worse: boolean }> } | null;
  ab?: { metric: string; diff: number | null; p_value: number | null; winner: string | null } | null;
}
interface Deployment { name: string; serving: string; versions?: string[]; rollout: Rollout | null }
/** The batch queue counts lines (lines_done), the async queue jobs (jobs_done). */
interface Queue { queue: string; depth: number; running: number; oldest_age_seconds: number | null; retries: number; dead_letters: number; lines_done?: number; jobs_done?: number }

interface ActiveAlert { id: string; severity: string; summary: string; started_at: string; runbook_url: string }
interface Runbook { slug: string; title: string; url: string }

class Unauthorized extends Error {}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (res.status === 401) throw new Unauthorized('session expired');
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

// ---------------------------------------------------------------- DOM helpers

const $ = (id: string): HTMLElement => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el;
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

/** A cell showing `text`, with the raw value for tests. */
function figure<K extends keyof HTMLElementTagNameMap>(tag: K, testId: string, value: number | string | null, text: string): HTMLElementTagNameMap[K] {
  const e = el(tag, text);
  e.dataset.testid = testId;
  e.dataset.value = value === null ? '' : String(value);
  return e;
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const fmtInt = (n: number) => int.format(n);
const fmtUsd = (n: number) => `$${n < 1 ? n.toFixed(6) : n.toFixed(2)}`;
const fmtMs = (n: number | null | undefined) => (n === null || n === undefined ? 'n/a' : `${Math.round(n)} ms`);
const fmtPct = (n: number | null) => (n === null ? 'n/a' : `${(n * 100).toFixed(1)}%`);

function table(container: HTMLElement, head: string[], rows: HTMLTableCellElement[][], empty = 'No data in the window.'): void {
  const t = el('table');
  const tr = el('tr');
  for (const h of head) tr.append(el('th', h));
  t.append(el('thead'), el('tbody'));
  t.tHead!.append(tr);
  for (const cells of rows) {
    const r = el('tr');
    r.append(...cells);
    t.tBodies[0]!.append(r);
  }
  container.replaceChildren(rows.length ? t : el('p', empty, 'muted'));
}

function badge(testId: string, state: string, tone: 'ok' | 'warn' | 'bad' | ''): HTMLTableCellElement {
  const td = el('td');
  td.dataset.testid = testId;
  td.dataset.value = state;
  td.append(el('span', state, `badge ${tone}`));
  return td;
}

// ---------------------------------------------------------------- usage

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

interface Totals { requests: number; errors: number; cost_usd: number; saved_usd: number; prompt_tokens: number; completion_tokens: number; cache_hits: number | null }

function sum(rows: UsageRow[]): Totals {
  const t: Totals = { requests: 0, errors: 0, cost_usd: 0, saved_usd: 0, prompt_tokens: 0, completion_tokens: 0, cache_hits: 0 };
  for (const r of rows) {
    t.requests += num(r.requests);
    t.errors += num(r.errors);
    t.cost_usd += num(r.cost_usd);
    t.saved_usd += num(r.saved_usd);
    t.prompt_tokens += num(r.prompt_tokens);
    t.completion_tokens += num(r.completion_tokens);
    // Cache hits are only shown when the usage API reports them; never guessed.
    t.cache_hits = typeof r.cache_hits === 'number' && t.cache_hits !== null ? t.cache_hits + r.cache_hits : null;
  }
  return t;
}

/** Rows grouped by `field`, summed (the API may split a group further, e.g. by bucket). */
function byField(rows: UsageRow[], field: string): Array<[string, Totals]> {
  const groups = new Map<string, UsageRow[]>();
  for (const r of rows) {
    const key = r[field] === null || r[field] === undefined ? '(none)' : String(r[field]);
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups].map(([k, rs]) => [k, sum(rs)] as [string, Totals]).sort((a, b) => b[1].cost_usd - a[1].cost_usd || b[1].requests - a[1].requests);
}

function renderKpis(t: Totals, overall: UsageRow | undefined): void {
  const hitRate = t.cache_hits === null || t.requests === 0 ? null : t.cache_hits / t.requests;
  const kpis: Array<[string, string, number | null, string]> = [
    ['total-requests', 'requests', t.requests, fmtInt(t.requests)],
    ['total-errors', 'errors', t.errors, fmtInt(t.errors)],
    ['total-cost', 'cost', t.cost_usd, fmtUsd(t.cost_usd)],
    ['latency-p50', 'latency p50', overall?.latency_ms_p50 ?? null, fmtMs(overall?.latency_ms_p50)],
    ['latency-p95', 'latency p95', overall?.latency_ms_p95 ?? null, fmtMs(overall?.latency_ms_p95)],
    ['ttft-p50', 'TTFT p50', overall?.ttft_ms_p50 ?? null, fmtMs(overall?.ttft_ms_p50)],
    ['ttft-p95', 'TTFT p95', overall?.ttft_ms_p95 ?? null, fmtMs(overall?.ttft_ms_p95)],
    ['cache-hit-rate', 'cache hit rate', hitRate, fmtPct(hitRate)],
    ['cache-saved', 'saved by the cache', t.saved_usd, fmtUsd(t.saved_usd)],
  ];
  $('kpis').replaceChildren(
    ...kpis.map(([id, label, value, text]) => {
      const box = el('div', undefined, 'kpi');
      box.append(figure('div', id, value, text), el('div', label, 'l'));
      box.firstElementChild!.className = 'v';
      return box;
    }),
  );
}

function renderBreakdown(container: string, dim: string, rows: UsageRow[]): void {
  const groups = byField(rows, dim);
  const maxCost = Math.max(0, ...groups.map(([, t]) => t.cost_usd));
  table(
    $(container),
    [dim, 'requests', 'errors', 'tokens', 'cost', '', 'saved'],
    groups.map(([key, t]) => {
      const bar = el('td');
      const track = el('div', undefined, 'bar');
      const fill = el('div');
      fill.style.width = `${maxCost > 0 ? (100 * t.cost_usd) / maxCost : 0}%`;
      track.append(fill);
      bar.append(track);
      return [
        el('td', key),
        figure('td', `by-${dim}:${key}:requests`, t.requests, fmtInt(t.requests)),
        figure('td', `by-${dim}:${key}:errors`, t.errors, fmtInt(t.errors)),
        figure('td', `by-${dim}:${key}:tokens`, t.prompt_tokens + t.completion_tokens, fmtInt(t.prompt_tokens + t.completion_tokens)),
        figure('td', `by-${dim}:${key}:cost`, t.cost_usd, fmtUsd(t.cost_usd)),
        bar,
        figure('td', `by-${dim}:${key}:saved`, t.saved_usd, fmtUsd(t.saved_usd)),
      ];
    }),
  );
}

// ---------------------------------------------------------------- charts

const charts = new Map<string, uPlot>();

function bucketMs(b: UsageRow['bucket']): number {
  return typeof b === 'number' ? (b < 1e12 ? b * 1000 : b) : Date.parse(String(b));
}

/** One x per hour of the window (uPlot wants seconds), and each series aligned on it. */
function hourly(rows: UsageRow[], from: number, pick: Array<(r: UsageRow[]) => number | null>): uPlot.AlignedData {
  const start = Math.floor(from / HOUR_MS) * HOUR_MS;
  const xs: number[] = [];
  for (let t = start; t <= Date.now(); t += HOUR_MS) xs.push(t / 1000);
  const at = new Map<number, UsageRow[]>();
  for (const r of rows) {
    const x = Math.floor(bucketMs(r.bucket) / HOUR_MS) * 3600;
    at.set(x, [...(at.get(x) ?? []), r]);
  }
  return [xs, ...pick.map((f) => xs.map((x) => (at.has(x) ? f(at.get(x)!) : null)))];
}

function chart(id: string, series: Array<{ label: string; stroke: string; scale?: string }>, data: uPlot.AlignedData, axes: { y: string; y2?: string; fmt?: (v: number) => string }): void {
  const host = $(id);
  host.dataset.points = String(data[0].length);
  const existing = charts.get(id);
  if (existing) {
    existing.setData(data);
    return;
  }
  const width = Math.max(300, host.clientWidth || 600);
  const axis = { stroke: '#9aa3b2', grid: { stroke: '#2a2f3a' }, ticks: { stroke: '#2a2f3a' } };
  const opts: uPlot.Options = {
    width,
    height: 220,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, scale: s.scale ?? 'y', spanGaps: false, points: { show: true, size: 4 } }))],
    axes: [axis, { ...axis, label: axes.y, scale: 'y', size: axes.fmt ? 90 : 60, ...(axes.fmt ? { values: (_u: uPlot, splits: number[]) => splits.map(axes.fmt!) } : {}) }, ...(axes.y2 ? [{ ...axis, label: axes.y2, scale: 'y2', side: 1 as const, grid: { show: false } }] : [])],
    scales: { x: { time: true } },
  };
  charts.set(id, new uPlot(opts, data, host));
}

const pctOf = (key: 'latency_ms_p50' | 'latency_ms_p95' | 'ttft_ms_p50' | 'ttft_ms_p95') => (rs: UsageRow[]) => {
  // Percentiles of a bucket cannot be summed: take the request-weighted mean of the groups' (an approximation when the bucket is split).
  let w = 0;
  let s = 0;
  for (const r of rs) {
    const v = r[key];
    if (typeof v === 'number') {
      w += num(r.requests);
      s += v * num(r.requests);
    }
  }
  return w > 0 ? s / w : null;
};

// ---------------------------------------------------------------- the rest

function renderBudgets(budgets: Budget[]): void {
  table(
    $('budgets'),
    ['tenant', 'state', 'used', 'limit', '% used', '', ''],
    budgets.map((b) => {
      if (!b.enabled) return [el('td', b.tenant), badge(`budget-state:${b.tenant}`, 'no budget', ''), el('td', '—'), el('td', '—'), figure('td', `budget:${b.tenant}`, null, 'n/a'), el('td'), el('td')];
      // The limit nearest to being used up is the one that matters.
      const [limit, share] = Object.entries(b.usage ?? {}).sort((x, y) => y[1] - x[1])[0] ?? ['', 0];
      const usd = limit.endsWith('_usd');
      const period = limit.startsWith('daily') ? b.daily : b;
      const used = usd ? (period?.used_usd ?? 0) : (period?.used_tokens ?? 0);
      const cap = (b as unknown as Record<string, number | null>)[limit] ?? null;
      const bar = el('td');
      const track = el('div', undefined, `bar ${share >= 1 ? 'bad' : share >= 0.8 ? 'warn' : ''}`);
      const fill = el('div');
      fill.style.width = `${Math.min(100, share * 100)}%`;
      track.append(fill);
      bar.append(track);
      const tone = b.state === 'ok' ? 'ok' : b.state === 'warning' ? 'warn' : 'bad';
      return [
        el('td', b.tenant),
        badge(`budget-state:${b.tenant}`, b.state, tone),
        el('td', usd ? fmtUsd(used) : fmtInt(used)),
        el('td', cap === null ? '—' : `${usd ? fmtUsd(cap) : fmtInt(cap)} (${limit.replace('_', ' ')})`),
        figure('td', `budget:${b.tenant}`, share, fmtPct(share)),
        bar,
        runbookCell(`budget-runbook:${b.tenant}`, b.state === 'soft_limited' || b.state === 'hard_limited' ? runbooks['budget-exhausted'] : undefined),
      ];
    }),
    'No tenants.',
  );
}

/**
 * A runbook reference: a link when [alerts].runbook_base_url is an http(s) URL; the repository path
 * as text otherwise (the default, docs/runbooks/…, is not served by the router).
 */
function runbookCell(testId: string, url: string | undefined): HTMLTableCellElement {
  const td = el('td');
  if (!url) return td;
  td.dataset.testid = testId;
  td.dataset.value = url;
  if (/^https?:\/\//.test(url)) {
    const a = el('a', 'runbook');
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    td.append(a);
  } else td.append(el('code', url));
  return td;
}

let runbooks: Record<string, string> = {};

function renderAlerts(alerts: ActiveAlert[], list: Runbook[]): void {
  runbooks = Object.fromEntries(list.map((r) => [r.slug, r.url]));
  table(
    $('alerts'),
    ['alert', 'severity', 'summary', 'since', 'runbook'],
    alerts.map((a) => [
      el('td', a.id),
      badge(`alert:${a.id}`, a.severity, a.severity === 'critical' ? 'bad' : 'warn'),
      el('td', a.summary),
      el('td', new Date(a.started_at).toLocaleTimeString()),
      runbookCell(`alert-runbook:${a.id}`, a.runbook_url),
    ]),
    'No alert in force.',
  );
  const index = el('p', 'Runbooks: ', 'muted');
  list.forEach((r, i) => {
    if (i > 0) index.append(' · ');
    const link = /^https?:\/\//.test(r.url) ? el('a', r.title) : el('span', `${r.title} (${r.url})`);
    if (link instanceof HTMLAnchorElement) {
      link.href = r.url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
    }
    link.dataset.testid = `runbook:${r.slug}`;
    link.dataset.value = r.url;
    index.append(link);
  });
  $('alerts').append(index);
}

const breakerTone = (s: string) => (s === 'closed' ? 'ok' : s === 'half_open' || s === 'half-open' ? 'warn' : 'bad');
const backendTone = (s: string) => (s === 'warm' ? 'ok' : s === 'waking' ? 'warn' : s === 'cold' ? 'bad' : '');

function renderBreakers(list: Breaker[]): void {
  table(
    $('breakers'),
    ['backend', 'state', 'window req', 'window fail', 'consecutive', 'trips', 'open until', ''],
    list.map((b) => [
      el('td', b.backend),
      badge(`breaker:${b.backend}`, b.enabled ? b.state : 'disabled', b.enabled ? breakerTone(b.state) : ''),
      el('td', fmtInt(b.window.requests)),
      el('td', fmtInt(b.window.failures)),
      el('td', fmtInt(b.consecutive_failures)),
      el('td', fmtInt(b.trips)),
      el('td', b.opened_until ? new Date(b.opened_until).toLocaleTimeString() : '—'),
      runbookCell(`breaker-runbook:${b.backend}`, b.enabled && b.state !== 'closed' ? runbooks['backend-down'] : undefined),
    ]),
  );
}

function renderBackends(list: Backend[]): void {
  table(
    $('backends'),
    ['backend', 'kind', 'region', 'state', 'in flight', 'req/min', 'replicas', ''],
    list.map((b) => [
      el('td', b.id),
      el('td', b.kind),
      el('td', b.region),
      badge(`backend:${b.id}`, b.state, backendTone(b.state)),
      el('td', fmtInt(b.in_flight)),
      el('td', b.request_rate_per_min.toFixed(1)),
      el('td', b.replicas === null ? '—' : String(b.replicas)),
      runbookCell(`backend-runbook:${b.id}`, b.state === 'waking' ? runbooks['cold-start-storm'] : undefined),
    ]),
  );
}

const ROLLOUT_SIGNALS: Array<[string, string, (a: Arm) => number | null | undefined, (n: number) => string]> = [
  ['requests', 'requests', (a) => a.requests, fmtInt],
  ['error_rate', 'error rate', (a) => a.error_rate, fmtPct],
  ['p95_latency', 'p95 latency', (a) => a.p95_latency_ms, fmtMs],
  ['p95_ttft', 'p95 TTFT', (a) => a.p95_ttft_ms, fmtMs],
  ['refusal_rate', 'refusal rate', (a) => a.refusal_rate, fmtPct],
  ['truncation_rate', 'truncation rate', (a) => a.truncation_rate, fmtPct],
  ['mean_output_tokens', 'mean output tokens', (a) => a.mean_output_tokens, (n) => n.toFixed(1)],
  ['negative_feedback_rate', 'negative feedback', (a) => a.feedback?.negative_rate, fmtPct],
];
const rolloutTone = (s: string) => (s === 'running' || s === 'promoted' ? 'ok' : s === 'paused' ? 'warn' : s === 'rolled_back' ? 'bad' : '');
const verdictTone = (v: string) => (v === 'healthy' ? 'ok' : v === 'rollback' ? 'bad' : 'warn');

/** Each deployment: what serves, and its rollout (step, share, verdict), then the arms' signals side by side. */
function renderRollouts(list: Deployment[] | null): void {
  const host = $('rollouts');
  if (list === null) {
    host.replaceChildren(el('p', 'The deployments API is not available on this router.', 'muted'));
    return;
  }
  table(
    host,
    ['deployment', 'serving', 'rollout', 'mode', 'stable → candidate', 'state', 'step', 'candidate share', 'verdict'],
    list.map((d) => {
      const r = d.rollout;
      // `step` is an index into `steps` (canary only): shown 1-based; data-value keeps the API's index.
      const steps = r?.mode === 'canary' && r.steps?.length ? `/${r.steps.length} of ${r.steps.map((s) => `${s}%`).join(' → ')}` : '';
      return [
        el('td', d.name),
        figure('td', `deployment-serving:${d.name}`, d.serving, d.serving),
        el('td', r?.id ?? '—'),
        el('td', r?.mode ?? ''),
        el('td', r ? `${r.stable} → ${r.candidate}` : ''),
        r ? badge(`rollout-state:${d.name}`, r.state, rolloutTone(r.state)) : el('td'),
        figure('td', `rollout-step:${d.name}`, r?.step ?? null, r?.step === null || r?.step === undefined || !steps ? '—' : `${r.step + 1}${steps}`),
        figure('td', `rollout-share:${d.name}`, r?.share ?? null, r?.share === null || r?.share === undefined ? '—' : `${r.share}%`),
        r?.comparison ? badge(`rollout-verdict:${d.name}`, r.comparison.verdict, verdictTone(r.comparison.verdict)) : el('td', r ? '—' : ''),
      ];
    }),
    'No deployment configured.',
  );
  for (const d of list) {
    const r = d.rollout;
    if (!r?.arms) continue;
    const arms = r.arms;
    const limits = new Map((r.comparison?.checks ?? []).map((c) => [c.signal, c]));
    const box = el('div');
    const caption = `${d.name}: ${r.stable} (stable) vs ${r.candidate} (candidate)${r.comparison?.reasons.length ? ` — ${r.comparison.reasons.join('; ')}` : ''}${r.ab ? ` — A/B ${r.ab.metric}: diff ${r.ab.diff === null ? 'n/a' : r.ab.diff.toFixed(3)}, p ${r.ab.p_value === null ? 'n/a' : r.ab.p_value.toPrecision(3)}, winner ${r.ab.winner ?? 'none yet'}` : ''}`;
    box.append(el('h3', caption));
    const sub = el('div');
    box.append(sub);
    host.append(box);
    table(
      sub,
      ['signal', 'stable', 'candidate', 'limit'],
      ROLLOUT_SIGNALS.map(([key, label, pick, f]) => {
        const cell = (arm: 'stable' | 'candidate') => {
          const v = pick(arms[arm]);
          return figure('td', `rollout-signal:${d.name}:${arm}:${key}`, v ?? null, v === null || v === undefined ? 'n/a' : f(v));
        };
        const check = limits.get(key);
        const limit = check ? el('td', check.limit === null ? 'n/a' : f(check.limit), check.worse ? 'bad' : '') : el('td');
        return [el('td', label), cell('stable'), cell('candidate'), limit];
      }),
    );
  }
}

/** The batch and async queues (GET /admin/queues, README "Batch and async"). */
function renderQueues(list: Queue[]): void {
  table(
    $('queues'),
    ['queue', 'depth', 'running', 'oldest', 'retries', 'dead letters', 'done', ''],
    list.map((q) => [
      el('td', q.queue),
      el('td', fmtInt(q.depth)),
      el('td', fmtInt(q.running)),
      el('td', q.oldest_age_seconds === null ? '—' : `${fmtInt(q.oldest_age_seconds)} s`),
      el('td', fmtInt(q.retries)),
      el('td', fmtInt(q.dead_letters)),
      el('td', fmtInt(q.lines_done ?? q.jobs_done ?? 0)),
      runbookCell(`queue-runbook:${q.queue}`, q.dead_letters > 0 || (q.oldest_age_seconds ?? 0) > 3600 ? runbooks['queue-backlog'] : undefined),
    ]),
  );
}

async function refresh(tenants: string[]): Promise<void> {
  const to = Date.now();
  const from = to - WINDOW_H * HOUR_MS;
  const range = `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}`;
  const usage = (q: string) => getJson<{ rows: UsageRow[] }>(`/admin/usage?${q}&${range}`).then((r) => r.rows);
  const [byTenant, byModel, byFeature, overall, hourlyRows, breakers, backends, budgets, alerts, deployments, queues] = await Promise.all([
    usage('group_by=tenant'),
    usage('group_by=model'),
    usage('group_by=feature'),
    usage('group_by=').then((rows) => rows[0]),
    usage('group_by=&granularity=hour'),
    getJson<{ data: Breaker[] }>('/admin/breakers').then((r) => r.data),
    getJson<{ data: Backend[] }>('/admin/backends').then((r) => r.data),
    Promise.all(tenants.map((t) => getJson<Budget>(`/admin/tenants/${encodeURIComponent(t)}/budget`))),
    getJson<{ data: ActiveAlert[]; runbooks: Runbook[] }>('/admin/alerts'),
    // A router without the deployments API (older) still gets the rest of the page.
    getJson<{ data: Deployment[] }>('/admin/deployments').then(
      (r) => r.data,
      (e: unknown) => {
        if (e instanceof Unauthorized) throw e;
        return null;
      },
    ),
    getJson<{ data: Queue[] }>('/admin/queues').then((r) => r.data, () => [] as Queue[]),
  ]);

  const w = $('window');
  w.dataset.from = new Date(from).toISOString();
  w.dataset.to = new Date(to).toISOString();
  w.textContent = `last ${WINDOW_H} h`;
  // Totals from the ungrouped row (not a sum of the groups' floats), so they equal the API's exactly.
  renderKpis(sum(overall ? [overall] : []), overall);
  renderBreakdown('by-tenant', 'tenant', byTenant);
  renderBreakdown('by-model', 'model', byModel);
  renderBreakdown('by-feature', 'feature', byFeature);
  const sumOf = (k: 'requests' | 'errors') => (rs: UsageRow[]) => rs.reduce((a, r) => a + num(r[k]), 0);
  chart('chart-traffic', [{ label: 'requests', stroke: '#4c8eda' }, { label: 'errors', stroke: '#e5534b' }], hourly(hourlyRows, from, [sumOf('requests'), sumOf('errors')]), { y: 'per hour' });
  chart(
    'chart-latency',
    [
      { label: 'latency p50', stroke: '#2fb171' },
      { label: 'latency p95', stroke: '#e0a526' },
      { label: 'TTFT p50', stroke: '#4c8eda' },
      { label: 'TTFT p95', stroke: '#b083f0' },
    ],
    hourly(hourlyRows, from, [pctOf('latency_ms_p50'), pctOf('latency_ms_p95'), pctOf('ttft_ms_p50'), pctOf('ttft_ms_p95')]),
    { y: 'ms' },
  );
  const savedOf = (rs: UsageRow[]) => rs.reduce((a, r) => a + num(r.saved_usd), 0);
  const costOf = (rs: UsageRow[]) => rs.reduce((a, r) => a + num(r.cost_usd), 0);
  chart('chart-cost', [{ label: 'cost', stroke: '#e0a526' }, { label: 'saved by the cache', stroke: '#2fb171' }], hourly(hourlyRows, from, [costOf, savedOf]), { y: 'USD per hour', fmt: (v) => (v === 0 ? '0' : `$${v.toPrecision(2)}`) });
  renderAlerts(alerts.data, alerts.runbooks);
  renderBudgets(budgets);
  renderBreakers(breakers);
  renderBackends(backends);
  renderRollouts(deployments);
  renderQueues(queues);
}

async function loop(tenants: string[]): Promise<void> {
  const status = $('status');
  try {
    await refresh(tenants);
    const now = new Date();
    status.className = '';
    status.textContent = `last updated ${now.toLocaleTimeString()}`;
    status.dataset.value = now.toISOString();
    document.body.dataset.state = 'ready';
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
  } catch (e) {
    status.className = 'error';
    status.textContent = e instanceof Unauthorized ? 'Session expired: open /dashboard?token=… again.' : `Refresh failed (${e instanceof Error ? e.message : String(e)}); retrying.`;
    if (e instanceof Unauthorized) return; // no point polling without a session
  }
  // setTimeout after each refresh (not setInterval): a slow refresh never overlaps the next one.
  setTimeout(() => void loop(tenants), REFRESH_MS);
}

const tenants = JSON.parse(document.body.dataset.tenants ?? '[]') as string[];
void loop(tenants);
