// OpenAI's error format, {"error":{"message","type","param","code"}}, for every error we answer.

export type ErrorStatus = 400 | 401 | 403 | 404 | 405 | 409 | 413 | 422 | 429 | 500 | 502 | 503 | 504;

const typeByStatus: Record<ErrorStatus, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  409: 'invalid_request_error',
  413: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
  500: 'server_error',
  502: 'upstream_error',
  503: 'service_unavailable',
  504: 'timeout_error',
};

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error that becomes an OpenAI-format response; thrown anywhere below a route. */
export class RouterError extends Error {
  constructor(
    readonly status: ErrorStatus,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: typeByStatus[this.status], param: this.param, code: this.code } };
  }

  toResponse(extraHeaders?: HeadersInit): Response {
    const headers = new Headers(extraHeaders);
    headers.set('content-type', 'application/json');
    for (const [k, v] of Object.entries(this.headers)) headers.set(k, v);
    return new Response(JSON.stringify(this.body()), { status: this.status, headers });
  }
}

export const errors = {
  badRequest: (message: string, param: string | null = null, code = 'invalid_request') => new RouterError(400, message, code, param),
  unauthorized: (message: string, code = 'invalid_api_key') => new RouterError(401, message, code),
  forbidden: (message: string, code: string, param: string | null = null) => new RouterError(403, message, code, param),
  notFound: (message: string, code: string, param: string | null = null) => new RouterError(404, message, code, param),
  conflict: (message: string, code: string, param: string | null = null) => new RouterError(409, message, code, param),
  tooLarge: (limit: number) => new RouterError(413, `Request body is larger than ${limit} bytes.`, 'request_too_large'),
  unavailable: (message: string, code: string) => new RouterError(503, message, code),
  badGateway: (message: string, code = 'upstream_error') => new RouterError(502, message, code),
  timeout: (message: string, code = 'upstream_timeout') => new RouterError(504, message, code),
};
