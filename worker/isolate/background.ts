// Background work of an isolate: handed to waitUntil without ever throwing into the request,
// and tracked so that tests (and the bench) can wait until it has all settled.

export type WaitUntil = { waitUntil(p: Promise<unknown>): void };

/**
 * A report or refresh that has not settled after this long is taken as lost (its waitUntil was
 * cut short): the one give-up time of every single-flight call (single-flight.ts).
 */
export const GIVE_UP_MS = 15_000;

/** Background work not settled yet, each as a promise that never rejects. */
const pending = new Set<Promise<void>>();

/**
 * Hands `p` to waitUntil; a context that refuses (already finished) is logged, not thrown, and
 * `p` runs on. Returns whether waitUntil took it. `what` names the caller in the log line.
 */
export function background(ctx: WaitUntil, p: Promise<unknown>, what: string): boolean {
  const forget = (): void => void pending.delete(settled);
  const settled: Promise<void> = p.then(forget, forget);
  pending.add(settled);
  try {
    ctx.waitUntil(p);
    return true;
  } catch (err) {
    console.warn(`${what}: waitUntil refused: ${errorMessage(err)}`);
    return false;
  }
}

/**
 * Runs `fn` after the current response has gone out (a timer turn, not a microtask: microtasks run
 * before the runtime writes the response), kept alive by waitUntil. For work the client does not
 * wait for but that must happen (the usage record's fan-out). A throw is logged.
 */
export function afterResponse(ctx: WaitUntil, fn: () => void, what: string): void {
  const run = new Promise<void>((resolve) => setTimeout(resolve, 0)).then(() => {
    try {
      fn();
    } catch (e) {
      console.error(JSON.stringify({ msg: `${what} failed`, error: errorMessage(e) }));
    }
  });
  afterResponses.add(run);
  void run.then(() => afterResponses.delete(run));
  background(ctx, run, what);
}

const afterResponses = new Set<Promise<void>>();

/** For tests: resolves once every afterResponse() call so far (and any they make) has run. */
export async function afterResponsesRan(): Promise<void> {
  while (afterResponses.size > 0) await Promise.all([...afterResponses]);
}

/** For tests and the bench: resolves once all background work started so far (and any it starts) has settled. */
export async function backgroundSettled(): Promise<void> {
  while (pending.size > 0) await Promise.all([...pending]);
}

/** True while a call started at `since` (null: none) may still be running. */
export const stillRunning = (since: number | null, now: number): boolean => since !== null && now - since < GIVE_UP_MS;

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
