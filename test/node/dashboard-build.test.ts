import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { GENERATED, renderDashboardModule } from '../../scripts/dashboard/build';

// worker/dashboard/client.generated.ts is committed (the Worker's three bundlers take it as is):
// it must be what `npm run build:dashboard` makes from today's sources.
it('worker/dashboard/client.generated.ts is up to date (else: npm run build:dashboard)', async () => {
  expect(readFileSync(GENERATED, 'utf8') === (await renderDashboardModule())).toBe(true);
});

it('the bundle is small and makes no request off the router', async () => {
  const { DASHBOARD_JS, DASHBOARD_CSS } = await import('../../worker/dashboard/client.generated');
  expect(DASHBOARD_JS.length + DASHBOARD_CSS.length).toBeLessThan(120_000);
  // Only same-origin paths: no absolute URL that a fetch or a stylesheet could reach.
  expect(DASHBOARD_JS).not.toMatch(/fetch\(\s*["'`]https?:/);
  expect(DASHBOARD_CSS).not.toMatch(/url\(\s*["']?(https?:)?\/\//);
});
