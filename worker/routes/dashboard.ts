import { Hono } from 'hono';
import { secretsEqual } from '../auth/hash';
import { DASHBOARD_CSS, DASHBOARD_CSS_HASH, DASHBOARD_JS, DASHBOARD_JS_HASH } from '../dashboard/client.generated';
import { DASHBOARD_CSP, dashboardPage } from '../dashboard/page';
import { sessionCookie } from '../dashboard/session';
import type { AppEnv } from '../env';
import { errors } from '../http/errors';
import { requireAdminToken } from '../middleware/auth';

/**
 * /dashboard: the operator's page (worker/dashboard/). `?token=<ADMIN_TOKEN>` opens a session
 * (cookie, see worker/dashboard/session.ts) and redirects to the bare URL; after that the page and
 * its assets need the session (or a Bearer token), like the /admin/* APIs the page reads.
 */
export const dashboard = new Hono<AppEnv>();

const SECURITY_HEADERS = {
  'content-security-policy': DASHBOARD_CSP,
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
};

dashboard.get('/', async (c, next) => {
  const token = c.req.query('token');
  if (token === undefined) return next();
  const expected = c.env.ADMIN_TOKEN;
  if (!expected) throw errors.unauthorized('The admin API is disabled: the ADMIN_TOKEN secret is not set.', 'admin_disabled');
  if (!(await secretsEqual(token, expected))) throw errors.unauthorized('Missing or incorrect admin token.', 'invalid_admin_token');
  const url = new URL(c.req.url);
  return new Response(null, {
    status: 303,
    headers: { location: '/dashboard', 'set-cookie': await sessionCookie(expected, url), 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' },
  });
});

dashboard.use('*', requireAdminToken);

dashboard.get('/', (c) => {
  const tenants = Object.keys(c.get('config').raw.tenants).sort();
  return c.html(dashboardPage(tenants), 200, { ...SECURITY_HEADERS, 'cache-control': 'no-store' });
});

// Named by content hash in the page (?v=…), so they can be cached for good; private: behind auth.
const asset = (body: string, hash: string, type: string) => (c: { req: { query: (k: string) => string | undefined } }) =>
  new Response(body, {
    headers: {
      'content-type': type,
      'cache-control': c.req.query('v') === hash ? 'private, max-age=31536000, immutable' : 'no-cache',
      ...SECURITY_HEADERS,
    },
  });

dashboard.get('/app.js', asset(DASHBOARD_JS, DASHBOARD_JS_HASH, 'text/javascript; charset=utf-8'));
dashboard.get('/app.css', asset(DASHBOARD_CSS, DASHBOARD_CSS_HASH, 'text/css; charset=utf-8'));
