import { stillRunning } from './background';

/**
 * At most one call of a kind at a time (a refresh, a report loop), on the isolate's clock. A call
 * not done after GIVE_UP_MS is taken as cut short with its waitUntil: the next start() takes over,
 * and the old call, no longer holding the token, stops or lands nowhere.
 */
export class SingleFlight {
  private since: number | null = null;
  private token = 0;

  /** True while a call started less than GIVE_UP_MS ago is not done. */
  running(now: number): boolean {
    return stillRunning(this.since, now);
  }

  /** Marks a call started at `now`; its token, for holds() and done(). */
  start(now: number): number {
    this.since = now;
    return ++this.token;
  }

  /** Whether the call with this token is still the current one. */
  holds(token: number): boolean {
    return this.since !== null && this.token === token;
  }

  /** The call is over (a call that was taken over changes nothing). */
  done(token: number): void {
    if (this.token === token) this.since = null;
  }
}
