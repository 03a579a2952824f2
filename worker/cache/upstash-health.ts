/**
 * Upstash reachability as this isolate sees it, shared by everything that calls Upstash
 * (response caches now; rate limits and the semantic index can use the same object): after a
 * failed call, an Upstash URL is left alone for `retryAfterMs` and the embedded path serves;
 * the first call after that is the probe. Failures are logged at most once per interval per
 * component (with how many were not logged), and counted for metrics:
 *
 *   router_upstash_errors_total{component,op}     calls that failed (error or timeout)
 *   router_upstash_fallbacks_total{component,op}  operations served by the embedded path instead
 *
 * Counters are per isolate, like every other in-memory metric here.
 */
export class UpstashHealth {
  /** Minimum time between two log lines of one component. */
  logIntervalMs = 60_000;
  private readonly downUntil = new Map<string, number>();
  private readonly lastLogAt = new Map<string, number>();
  private readonly unlogged = new Map<string, number>();
  private readonly errors = new Map<string, number>();
  private readonly fallbacks = new Map<string, number>();

  /** Whether a call to this Upstash URL should be tried now. */
  available(url: string, now = Date.now()): boolean {
    const until = this.downUntil.get(url);
    return until === undefined || now >= until;
  }

  succeeded(url: string): void {
    this.downUntil.delete(url);
  }

  failed(url: string, component: string, op: string, error: unknown, retryAfterMs: number, now = Date.now()): void {
    this.downUntil.set(url, now + retryAfterMs);
    bump(this.errors, `${component}\n${op}`);
    const last = this.lastLogAt.get(component);
    if (last !== undefined && now - last < this.logIntervalMs) {
      bump(this.unlogged, component);
      return;
    }
    this.lastLogAt.set(component, now);
    const suppressed = this.unlogged.get(component) ?? 0;
    this.unlogged.delete(component);
    console.warn(
      JSON.stringify({
        msg: 'upstash unavailable: serving from the embedded store',
        component,
        op,
        upstash: hostOf(url),
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        retry_after_ms: retryAfterMs,
        failures_not_logged: suppressed,
      }),
    );
  }

  /** An operation the embedded path served because Upstash failed or is resting. */
  fellBack(component: string, op: string): void {
    bump(this.fallbacks, `${component}\n${op}`);
  }

  /** For the metrics endpoint: one row per component and operation. */
  snapshot(): { component: string; op: string; errors: number; fallbacks: number }[] {
    const keys = new Set([...this.errors.keys(), ...this.fallbacks.keys()]);
    return [...keys].sort().map((k) => {
      const [component, op] = k.split('\n') as [string, string];
      return { component, op, errors: this.errors.get(k) ?? 0, fallbacks: this.fallbacks.get(k) ?? 0 };
    });
  }

  /** Total fallbacks of a component (all operations). */
  fallbackCount(component: string): number {
    let n = 0;
    for (const [k, v] of this.fallbacks) if (k.startsWith(`${component}\n`)) n += v;
    return n;
  }

  reset(): void {
    for (const m of [this.downUntil, this.lastLogAt, this.unlogged, this.errors, this.fallbacks]) m.clear();
  }
}

function bump(m: Map<string, number>, k: string) {
  m.set(k, (m.get(k) ?? 0) + 1);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'invalid-url';
  }
}

/** The isolate's one view of Upstash. */
export const upstashHealth = new UpstashHealth();
