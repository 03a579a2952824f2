import { errors, RouterError } from './errors';

/**
 * A Durable Object call made for an admin request: its answer, or 503 in OpenAI's error format
 * when the object cannot be reached (never a 500). `service` names it in the log line and the
 * message ("budget service"), `code` is the error code ("budget_unavailable").
 */
export function objectCall(service: string, code: string) {
  return async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (e) {
      if (e instanceof RouterError) throw e;
      console.error(JSON.stringify({ msg: `${service} call failed`, error: String(e) }));
      throw errors.unavailable(`The ${service} is unreachable; retry shortly.`, code);
    }
  };
}
