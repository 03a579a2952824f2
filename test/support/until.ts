/**
 * Waits on an event instead of the clock: polls `read` until `ok` holds and returns the value that
 * satisfied it. Past the deadline it throws with what it was waiting for and the last value seen,
 * so a failure says how far things got. Runs in workerd and Node.
 *
 * The deadline is a bound for a stuck run, never a measurement: a test must not assert that
 * something happened quickly (speed belongs in `npm run bench`).
 */
export async function until<T>(what: string, read: () => T | Promise<T>, ok: (v: T) => boolean = (v) => Boolean(v), timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: T = await read();
  while (!ok(last)) {
    if (Date.now() > end) throw new Error(`${what}: not reached in ${timeoutMs} ms; last seen: ${show(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
    last = await read();
  }
  return last;
}

function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 2_000 ? `${s.slice(0, 2_000)}…` : s;
  } catch {
    return String(v);
  }
}
