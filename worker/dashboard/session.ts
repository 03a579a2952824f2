import { base64url } from '../protocol/rules/hash';
import { digestsEqual } from '../auth/hash';

/**
 * The dashboard's browser session. A browser cannot send `Authorization: Bearer` when it navigates,
 * so `/dashboard?token=<ADMIN_TOKEN>` is exchanged once for a cookie and the browser is redirected
 * to `/dashboard` (the token leaves the address bar and history at once; `Referrer-Policy:
 * no-referrer` keeps it out of Referer).
 *
 * Why a signed value rather than the token itself: the cookie is `v1.<expiry ms>.<HMAC-SHA256(
 * ADMIN_TOKEN, expiry)>`, so the token is never stored by the browser, a session ends by itself
 * (SESSION_TTL_S), and rotating ADMIN_TOKEN ends every session. No server state is needed.
 *
 * Why the cookie is safe to accept on /admin/*: HttpOnly (page scripts cannot read it),
 * SameSite=Strict (no cross-site request carries it) and accepted for GET/HEAD only
 * (worker/middleware/auth.ts), so it can read the admin API but never change anything; writes
 * still need the Bearer token. Secure everywhere but plain-http loopback (local dev), where
 * browsers would refuse a Secure cookie; on https it also takes the `__Host-` prefix (no Domain,
 * Path=/), so a sibling subdomain cannot plant one. Path=/ because the page and the /admin/*
 * endpoints it reads are both at the router's root.
 */

export const SESSION_TTL_S = 8 * 3600;
const COOKIE_SECURE = '__Host-er_dashboard';
const COOKIE_LOCAL = 'er_dashboard';
const encoder = new TextEncoder();

async function mac(secret: string, expiresAt: number): Promise<string> {
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sig = await crypto.subtle.sign('HMAC', key, encoder.encode(`edge-router dashboard session v1|${expiresAt}`));
  return base64url(new Uint8Array(sig));
}

/** Plain http on a loopback host: the only place the cookie goes without Secure. */
export function isLocalHttp(url: URL): boolean {
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

/** The Set-Cookie header that opens a session for `url`'s origin. */
export async function sessionCookie(secret: string, url: URL, now = Date.now()): Promise<string> {
  const expiresAt = now + SESSION_TTL_S * 1000;
  const value = `v1.${expiresAt}.${await mac(secret, expiresAt)}`;
  const local = isLocalHttp(url);
  const attrs = [`${local ? COOKIE_LOCAL : COOKIE_SECURE}=${value}`, 'Path=/', `Max-Age=${SESSION_TTL_S}`, 'HttpOnly', 'SameSite=Strict'];
  if (!local) attrs.push('Secure');
  return attrs.join('; ');
}

function cookieValues(header: string | undefined, name: string): string[] {
  if (!header) return [];
  return header
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p.startsWith(`${name}=`))
    .map((p) => p.slice(name.length + 1));
}

/** True when the request carries an unexpired session cookie signed with `secret` (constant-time compare). */
export async function hasValidSession(cookieHeader: string | undefined, secret: string, now = Date.now()): Promise<boolean> {
  for (const value of [...cookieValues(cookieHeader, COOKIE_SECURE), ...cookieValues(cookieHeader, COOKIE_LOCAL)]) {
    const m = /^v1\.(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (!m) continue;
    const expiresAt = Number(m[1]);
    if (expiresAt <= now || expiresAt > now + SESSION_TTL_S * 1000) continue;
    if (digestsEqual(m[2]!, await mac(secret, expiresAt))) return true;
  }
  return false;
}
