/**
 * The router's admin API as the scale scripts use it: `GET /admin/backends` (what the router
 * knows of each backend) and `POST /admin/backends/:id/events` (what the scripts did). Both sides
 * share the zod schemas of worker/protocol/backends-api.ts.
 */
import { backendEventSchema, backendListSchema, type BackendEvent, type BackendList } from '../../worker/protocol/backends-api';
import { formatIssues } from '../../worker/config/format-issues';

export class RouterError extends Error {
  override name = 'RouterError';
}

export interface RouterClient {
  readonly url: string;
  backends(): Promise<BackendList>;
  report(backendId: string, event: BackendEvent): Promise<void>;
}

/** `fetchImpl`: a stand-in for global fetch (a test can route the calls into a Worker). */
export function routerClient(url: string, adminToken: string, timeoutMs = 10_000, fetchImpl: typeof fetch = fetch): RouterClient {
  const base = url.replace(/\/+$/, '');

  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetchImpl(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : '';
      throw new RouterError(`router: ${method} ${path}: cannot reach ${base} (${e instanceof Error ? e.message : String(e)}${cause})`);
    }
    const text = await res.text();
    if (!res.ok) {
      const hint =
        res.status === 401 || res.status === 403 ? ' (admin token rejected: check --admin-token / ROUTER_ADMIN_TOKEN)'
        : res.status === 404 && path === '/admin/backends' ? ' (does this router have the backends admin API?)'
        : '';
      throw new RouterError(`router: ${method} ${path}: HTTP ${res.status}${hint}${errorText(text)}`);
    }
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new RouterError(`router: ${method} ${path}: the answer is not JSON`);
    }
  }

  return {
    url: base,
    async backends() {
      const body = await call('GET', '/admin/backends');
      const parsed = backendListSchema.safeParse(body);
      if (!parsed.success) throw new RouterError(`router: GET /admin/backends: unexpected answer:\n  ${formatIssues(parsed.error.issues, 'body').join('\n  ')}`);
      return parsed.data;
    },
    async report(backendId, event) {
      // Validate our own body too: a bad event is a bug here, better caught before the router 400s.
      const body = backendEventSchema.parse(event);
      await call('POST', `/admin/backends/${encodeURIComponent(backendId)}/events`, body);
    },
  };
}

/** OpenAI-style `{"error":{"message"}}` from the router, else the start of the body. */
function errorText(text: string): string {
  if (!text) return '';
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } };
    if (typeof j.error?.message === 'string') return `: ${j.error.message}`;
  } catch {
    // not JSON
  }
  return `: ${text.slice(0, 200)}`;
}
