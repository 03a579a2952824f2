/** The FinOps report as Markdown and as a standalone HTML page (same content, with SVG charts). */
import type { Figure, Report } from './model';

export function fmt(value: number | string | null, unit: Figure['unit']): string {
  if (value === null) return 'n/a';
  if (typeof value === 'string') return value;
  switch (unit) {
    case 'usd':
      return Math.abs(value) < 1 ? `$${value.toFixed(6)}` : `$${value.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
    case 'ms':
      return `${Math.round(value)} ms`;
    case 'ratio':
      return `${(value * 100).toFixed(value >= 0.99 && value < 1 ? 3 : 1)}%`;
    case 'hours':
      return `${value.toFixed(1)} h`;
    case 'qps':
      return `${value.toFixed(4)} req/s`;
    default:
      return value.toLocaleString('en-US');
  }
}

const esc = (s: string) => s.replace(/\|/g, '\\|');
const mdTable = (head: string[], rows: string[][]) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
const verdict = (f: Figure) => (f.ok === undefined ? '' : f.ok === null ? 'n/a' : f.ok ? 'met' : 'missed');
const target = (f: Figure) => (f.target === undefined ? '' : f.target === null ? 'none' : fmt(f.target, f.unit));

export function renderMarkdown(r: Report): string {
  const figures = (list: Figure[], withTarget = false) =>
    mdTable(withTarget ? ['figure', 'value', 'target', '', 'source'] : ['figure', 'value', 'source'], list.map((f) => (withTarget ? [f.label, fmt(f.value, f.unit), target(f), verdict(f), f.source] : [f.label, fmt(f.value, f.unit), f.source])));
  return `# edge-router FinOps report, ${r.month}

Period: ${r.from} to ${r.to} (${r.elapsedHours} h of the month's ${r.monthHours} h). Built only from the router's
\`/admin/usage\`, \`/admin/backends\`, \`/metrics\` and the config; each figure names its source.

## Requirements summary

${figures(r.requirements, true)}

### Spend against budgets

${r.budgets.length ? figures(r.budgets, true) : 'No tenants.'}

## Components

${mdTable(
  ['component', 'kind', 'region', 'configuration', 'state now', 'requests', 'warm hours', 'GPU cost so far', 'token cost so far', 'GPU cost, month (projected)'],
  r.components.map((c) => [c.component, c.kind, c.region, c.configuration, c.state_now, fmt(c.requests, 'count'), c.warm_hours === null ? 'n/a' : fmt(c.warm_hours, 'hours'), fmt(c.gpu_cost_usd, 'usd'), fmt(c.token_cost_usd, 'usd'), fmt(c.projected_month_usd, 'usd')]),
)}

Sources, per component:
${r.components.map((c) => `- ${c.component}: ${c.source}`).join('\n')}

${mdTable(['store', 'configuration', 'monthly cost'], r.stores.map((s) => [s.component, s.configuration, s.note]))}

## Cost projection for the month

${figures(r.projection)}

## Savings already made

${figures(r.savings)}

## Optimisation opportunities

${mdTable(['opportunity', 'saving per month', 'what to do', 'source'], r.opportunities.map((o) => [o.title, o.saving_usd_per_month === null ? 'n/a' : fmt(o.saving_usd_per_month, 'usd'), o.detail, o.source]))}

## Per day

${mdTable(['day', 'requests', 'cost', 'saved by the caches'], r.charts.days.map((d, i) => [d, fmt(r.charts.requests[i]!, 'count'), fmt(r.charts.cost[i]!, 'usd'), fmt(r.charts.saved[i]!, 'usd')]))}
`;
}

const h = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A bar chart (one or two series) as inline SVG. */
function barChart(title: string, labels: string[], series: Array<{ name: string; values: number[]; color: string }>, unit: Figure['unit']): string {
  const W = 720;
  const HT = 200;
  const pad = 40;
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values));
  const slot = labels.length ? (W - pad * 2) / labels.length : 0;
  const bw = Math.max(1, slot / (series.length + 1));
  const bars = series
    .map((s, si) =>
      s.values
        .map((v, i) => {
          const bh = (v / max) * (HT - pad * 1.5);
          return `<rect x="${(pad + i * slot + si * bw).toFixed(1)}" y="${(HT - pad / 2 - bh).toFixed(1)}" width="${bw.toFixed(1)}" height="${bh.toFixed(1)}" fill="${s.color}"><title>${h(labels[i]!)} ${h(s.name)}: ${h(fmt(v, unit))}</title></rect>`;
        })
        .join(''),
    )
    .join('');
  const legend = series.map((s, i) => `<text x="${pad + i * 200}" y="14" fill="${s.color}" font-size="12">■ ${h(s.name)}</text>`).join('');
  const axis = `<text x="4" y="${pad}" font-size="11" fill="#9aa3b2">${h(fmt(max, unit))}</text><line x1="${pad}" x2="${W - pad}" y1="${HT - pad / 2}" y2="${HT - pad / 2}" stroke="#2a2f3a"/>`;
  const ticks = labels.map((l, i) => (labels.length <= 16 || i % Math.ceil(labels.length / 16) === 0 ? `<text x="${(pad + i * slot).toFixed(1)}" y="${HT - 4}" font-size="10" fill="#9aa3b2">${h(l.slice(5))}</text>` : '')).join('');
  return `<figure><figcaption>${h(title)}</figcaption><svg viewBox="0 0 ${W} ${HT}" width="100%" role="img" aria-label="${h(title)}">${legend}${axis}${bars}${ticks}</svg></figure>`;
}

/** The same report as a standalone page: no script, no outside resource. */
export function renderHtml(r: Report): string {
  const table = (head: string[], rows: string[][]) => `<table><thead><tr>${head.map((x) => `<th>${h(x)}</th>`).join('')}</tr></thead><tbody>${rows.map((row) => `<tr>${row.map((x) => `<td>${h(x)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const figures = (list: Figure[], withTarget = false) =>
    table(withTarget ? ['figure', 'value', 'target', '', 'source'] : ['figure', 'value', 'source'], list.map((f) => (withTarget ? [f.label, fmt(f.value, f.unit), target(f), verdict(f), f.source] : [f.label, fmt(f.value, f.unit), f.source])));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edge-router FinOps report ${h(r.month)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;background:#0f1115;color:#e6e8ec;margin:0 auto;max-width:1200px;padding:1rem 1.5rem}
h1{font-size:1.3rem}h2{font-size:1.05rem;color:#9aa3b2;margin-top:2rem}table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border-bottom:1px solid #2a2f3a;padding:.25rem .4rem;text-align:left;vertical-align:top}th{color:#9aa3b2;font-weight:500}
td:nth-child(2){white-space:nowrap;font-variant-numeric:tabular-nums}figure{margin:1rem 0}figcaption{color:#9aa3b2}.muted{color:#9aa3b2}
</style></head><body>
<h1>edge-router FinOps report, ${h(r.month)}</h1>
<p class="muted">Period ${h(r.from)} to ${h(r.to)} (${r.elapsedHours} h of ${r.monthHours} h). Built only from <code>/admin/usage</code>, <code>/admin/backends</code>, <code>/metrics</code> and the config; each figure names its source.</p>
<h2>Requirements summary</h2>${figures(r.requirements, true)}
<h2>Spend against budgets</h2>${r.budgets.length ? figures(r.budgets, true) : '<p>No tenants.</p>'}
${barChart('Requests per day', r.charts.days, [{ name: 'requests', values: r.charts.requests, color: '#4c8eda' }], 'count')}
${barChart('Cost and cache savings per day', r.charts.days, [{ name: 'cost', values: r.charts.cost, color: '#e0a526' }, { name: 'saved by the caches', values: r.charts.saved, color: '#2fb171' }], 'usd')}
<h2>Components</h2>${table(
    ['component', 'kind', 'region', 'configuration', 'state now', 'requests', 'warm hours', 'GPU cost so far', 'token cost so far', 'GPU cost, month (projected)'],
    r.components.map((c) => [c.component, c.kind, c.region, c.configuration, c.state_now, fmt(c.requests, 'count'), c.warm_hours === null ? 'n/a' : fmt(c.warm_hours, 'hours'), fmt(c.gpu_cost_usd, 'usd'), fmt(c.token_cost_usd, 'usd'), fmt(c.projected_month_usd, 'usd')]),
  )}
<ul class="muted">${r.components.map((c) => `<li>${h(c.component)}: ${h(c.source)}</li>`).join('')}</ul>
${table(['store', 'configuration', 'monthly cost'], r.stores.map((s) => [s.component, s.configuration, s.note]))}
<h2>Cost projection for the month</h2>${figures(r.projection)}
<h2>Savings already made</h2>${figures(r.savings)}
<h2>Optimisation opportunities</h2>${table(['opportunity', 'saving per month', 'what to do', 'source'], r.opportunities.map((o) => [o.title, o.saving_usd_per_month === null ? 'n/a' : fmt(o.saving_usd_per_month, 'usd'), o.detail, o.source]))}
</body></html>
`;
}
