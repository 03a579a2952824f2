import { SELF } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { hasValidSession, SESSION_TTL_S, sessionCookie } from '../../worker/dashboard/session';

// The dashboard's token → cookie exchange and the cookie's reach (worker/dashboard/session.ts).
// The browser end to end is test/node/dashboard.test.ts.

const TOKEN = 'test-admin-token'; // vitest.config.mts
const value = (setCookie: string) => setCookie.split(';')[0]!;

describe('dashboard session cookie', () => {
  it('on https: __Host- prefix, Secure, HttpOnly, SameSite=Strict, Path=/; then a 303 to the bare URL', async () => {
    const res = await SELF.fetch(`https://router.example/dashboard?token=${TOKEN}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/dashboard');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const c = res.headers.get('set-cookie')!;
    expect(c).toMatch(/^__Host-er_dashboard=v1\.\d+\.[\w-]{43}; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict; Secure$/);
    expect(c).not.toContain(TOKEN);

    const page = await SELF.fetch('https://router.example/dashboard', { headers: { cookie: value(c) } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toContain(TOKEN);
    expect(html).toMatch(/<script src="\/dashboard\/app\.js\?v=[0-9a-f]{16}" defer><\/script>/);
    expect(html).not.toMatch(/<script>/); // no inline script: the CSP forbids it
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'/);
    expect(page.headers.get('cache-control')).toBe('no-store');
  });

  it('reads /admin/* (GET only), never writes; Bearer still works', async () => {
    const c = value((await SELF.fetch(`http://127.0.0.1/dashboard?token=${TOKEN}`, { redirect: 'manual' })).headers.get('set-cookie')!);
    expect(c).toMatch(/^er_dashboard=/);
    expect((await SELF.fetch('http://127.0.0.1/admin/breakers', { headers: { cookie: c } })).status).toBe(200);
    expect((await SELF.fetch('http://127.0.0.1/admin/keys', { method: 'POST', headers: { cookie: c }, body: '{"tenant":"demo"}' })).status).toBe(401);
    // A wrong Bearer is not rescued by a good cookie.
    expect((await SELF.fetch('http://127.0.0.1/admin/breakers', { headers: { cookie: c, authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await SELF.fetch('http://127.0.0.1/admin/breakers', { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it('refuses a wrong token, no token, a tampered, expired or foreign-key cookie', async () => {
    expect((await SELF.fetch('http://127.0.0.1/dashboard?token=wrong', { redirect: 'manual' })).status).toBe(401);
    expect((await SELF.fetch('http://127.0.0.1/dashboard')).status).toBe(401);
    expect((await SELF.fetch('http://127.0.0.1/dashboard/app.js')).status).toBe(401);

    const url = new URL('http://127.0.0.1/');
    const now = Date.now();
    const good = value(await sessionCookie(TOKEN, url, now));
    expect(await hasValidSession(good, TOKEN, now)).toBe(true);
    expect(await hasValidSession(good, TOKEN, now + SESSION_TTL_S * 1000 + 1)).toBe(false); // expired
    expect(await hasValidSession(good, 'rotated-token', now)).toBe(false); // ADMIN_TOKEN rotated
    const [name, v] = good.split('=') as [string, string];
    const parts = v.split('.');
    expect(await hasValidSession(`${name}=v1.${Number(parts[1]) + 1000}.${parts[2]}`, TOKEN, now)).toBe(false); // expiry moved
    expect(await hasValidSession(`${name}=v1.${now + (SESSION_TTL_S + 60) * 1000}.${parts[2]}`, TOKEN, now)).toBe(false); // beyond the TTL
    expect(await hasValidSession(`${name}=${TOKEN}`, TOKEN, now)).toBe(false); // the raw token is not a session
    expect(await hasValidSession(`other=1; ${good}`, TOKEN, now)).toBe(true);
  });

  it('serves the script and stylesheet, cached for good only under their content hash', async () => {
    const c = value((await SELF.fetch(`http://127.0.0.1/dashboard?token=${TOKEN}`, { redirect: 'manual' })).headers.get('set-cookie')!);
    const html = await (await SELF.fetch('http://127.0.0.1/dashboard', { headers: { cookie: c } })).text();
    const js = html.match(/src="(\/dashboard\/app\.js\?v=[0-9a-f]+)"/)![1]!;
    const res = await SELF.fetch(`http://127.0.0.1${js}`, { headers: { cookie: c } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('javascript');
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect((await res.text()).length).toBeGreaterThan(10_000);
    const stale = await SELF.fetch('http://127.0.0.1/dashboard/app.css?v=old', { headers: { cookie: c } });
    expect(stale.headers.get('cache-control')).toBe('no-cache');
    expect(await stale.text()).toContain('.uplot');
  });
});
