/** The admin token the tests' Worker is given (vitest.config.mts, worker project). */
export const ADMIN_TOKEN = 'test-admin-token';

/** `init` with the admin bearer token and a JSON content type (headers given in `init` win). Runs in workerd and Node. */
export function withAdmin<I extends RequestInit>(init: I = {} as I, token = ADMIN_TOKEN): I {
  return { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } };
}
