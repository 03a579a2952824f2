// The small mechanism every "isolate view of a Durable Object" shares (breaker-view.ts,
// backend-lifecycle-view.ts): background work handed to waitUntil without ever throwing into the
// request, and a single-flight marker that gives up on a call whose waitUntil was cut short.

export type WaitUntil = { waitUntil(p: Promise<unknown>): void };

/** A report or refresh that has not settled after this long is taken as lost (its waitUntil was cut). */
export const GIVE_UP_MS = 15_000;

/** Hands `p` to waitUntil; a context that refuses (already finished) is logged, not thrown. */
export function background(ctx: WaitUntil, p: Promise<unknown>, what: string): void {
  try {
    ctx.waitUntil(p);
  } catch (err) {
    console.warn(`${what}: waitUntil refused: ${errorMessage(err)}`);
  }
}

/** True while a call started at `since` (null: none) may still be running. */
export const stillRunning = (since: number | null, now: number): boolean => since !== null && now - since < GIVE_UP_MS;

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
