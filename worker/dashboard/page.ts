import { DASHBOARD_CSS_HASH, DASHBOARD_JS_HASH } from './client.generated';

/**
 * The dashboard's HTML shell: empty panels that client.ts fills. The script and stylesheet are
 * same-origin files (/dashboard/app.js, /dashboard/app.css) named by content hash, so the CSP can
 * be `script-src 'self'; style-src 'self'` (no inline code at all) and the browser caches them
 * until they change. The page carries no secret: only the config's tenant names, for the budgets.
 */

/** No third-party origin anywhere: everything the page loads or fetches is this router. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const escapeAttr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const panel = (id: string, title: string, cls = '') => `<section${cls ? ` class="${cls}"` : ''}><h2>${title}</h2><div id="${id}" data-testid="${id}"></div></section>`;
const chartPanel = (id: string, title: string) => `<section><h2>${title}</h2><div id="${id}" data-testid="${id}" class="chart"></div></section>`;

export function dashboardPage(tenants: readonly string[]): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>edge-router dashboard</title>
<link rel="stylesheet" href="/dashboard/app.css?v=${DASHBOARD_CSS_HASH}">
<script src="/dashboard/app.js?v=${DASHBOARD_JS_HASH}" defer></script>
</head>
<body data-state="loading" data-tenants="${escapeAttr(JSON.stringify(tenants))}">
<header><h1>edge-router</h1><span class="meta" id="window" data-testid="window">loading…</span><span class="meta" id="status" data-testid="last-updated">loading…</span></header>
<main>
<section class="wide"><h2>Totals</h2><div id="kpis" class="kpis"></div></section>
${panel('alerts', 'Alerts in force', 'wide')}
${panel('rollouts', 'Deployments and rollouts', 'wide')}
${chartPanel('chart-traffic', 'Requests and errors per hour')}
${chartPanel('chart-latency', 'Latency and time to first token (p50 / p95)')}
${chartPanel('chart-cost', 'Cost and cache savings per hour')}
${panel('budgets', 'Budgets (this month)')}
${panel('by-tenant', 'By tenant', 'wide')}
${panel('by-model', 'By model', 'wide')}
${panel('by-feature', 'By feature', 'wide')}
${panel('breakers', 'Circuit breakers')}
${panel('backends', 'Backends')}
${panel('queues', 'Queues (batch, async)')}
</main>
</body>
</html>
`;
}
