import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env';

// Anthropic's error shape, {"type":"error","error":{"type","message"},"request_id"}, for every
// error answer on /v1/messages: the router's own (auth, validation, limits, budgets, no backend)
// are made in OpenAI's format below this middleware and rewritten here, status and headers kept.

const TYPE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  529: 'overloaded_error',
};

export function anthropicErrorType(status: number): string {
  return TYPE_BY_STATUS[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

export function anthropicErrorBody(status: number, message: string, requestId: string | null): string {
  return JSON.stringify({ type: 'error', error: { type: anthropicErrorType(status), message }, request_id: requestId });
}

export const anthropicErrors: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const res = c.res;
  if (res.status < 400) return;
  let message = res.statusText || 'Request failed.';
  try {
    const body = (await res.clone().json()) as { error?: { message?: unknown } | string; type?: unknown };
    if (body.type === 'error') return; // already in Anthropic's shape
    if (typeof body.error === 'object' && typeof body.error?.message === 'string') message = body.error.message;
    else if (typeof body.error === 'string') message = body.error;
  } catch {
    // not JSON: keep the status text
  }
  const headers = new Headers(res.headers);
  headers.set('content-type', 'application/json');
  headers.delete('content-length');
  c.res = new Response(anthropicErrorBody(res.status, message, c.get('requestId') ?? null), { status: res.status, headers });
};
