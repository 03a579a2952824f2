import type { MiddlewareHandler } from 'hono';
import { FEATURE_HEADER } from '../budget/settings';
import type { AppEnv } from '../env';
import { RouterError } from '../http/errors';
import type { EndpointKind } from '../openai/schemas';
import { recordUsage } from '../telemetry/record';
import { UsageDraft } from '../telemetry/usage-draft';

const FEATURE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const CACHE_RESULTS = new Set(['hit', 'semantic-hit', 'miss', 'bypass']);

/**
 * One usage record per inference request that got past authentication: around the route, so a
 * request refused later (400, 403, 429, a failed upstream) is recorded too, with the status and
 * error code the client got. The route fills the draft in (c.get('usage')); the record leaves
 * when the response is made or, for a relayed stream, when the stream ends. Built whatever
 * [usage] enabled says: /metrics (which has no off switch) counts every request from it, and
 * recordUsage() sends it to the usage sinks only when they are on. Never fails the request.
 */
export function usageRecorder(endpoint: EndpointKind): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const config = c.get('config');
    const key = c.get('key');
    const feature = c.req.header(FEATURE_HEADER);
    const ctx = c.executionCtx;
    const draft = new UsageDraft(
      { requestId: c.get('requestId'), started: Date.now(), tenant: key.tenant, keyId: key.id ?? null, feature: feature && FEATURE_RE.test(feature) ? feature : null, endpoint },
      config,
      (record) => recordUsage(c.env, ctx, config, record),
    );
    draft.user = c.req.header('x-router-user')?.slice(0, 256) ?? null;
    c.set('usage', draft);
    await next();
    try {
      const res = c.res;
      const errorCode = res.status < 400 ? null : c.error instanceof RouterError ? c.error.code : await errorCodeOf(res);
      const cache = res.headers.get('x-router-cache') ?? 'bypass';
      draft.responded(res.status, errorCode, (CACHE_RESULTS.has(cache) ? cache : 'bypass') as 'bypass', c.get('cacheSavings') ?? null);
    } catch (e) {
      console.error(JSON.stringify({ msg: 'usage: record not built', request_id: c.get('requestId'), error: String(e) }));
    }
  };
}

/** The OpenAI error `code` of an error answer made without a throw (the executor's 502/504). */
async function errorCodeOf(res: Response): Promise<string | null> {
  if (!res.headers.get('content-type')?.includes('application/json')) return null;
  try {
    const body = (await res.clone().json()) as { error?: { code?: unknown } };
    return typeof body.error?.code === 'string' ? body.error.code : null;
  } catch {
    return null;
  }
}
