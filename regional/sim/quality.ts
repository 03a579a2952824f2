/**
 * A model version that behaves worse (`POST /sim/config` `error_rate`, `refusal_rate`,
 * `length_scale`): what rollout tests and the rollout bench need from a bad candidate.
 * Unlike `/sim/faults` (the backend failing, replaced wholesale) these are properties of the
 * model, merged like the latency knobs. Defaults (0, 0, 1) change nothing.
 *
 * Both rates are deterministic, like faults.ts: counting from 1 after the rate was set (or the
 * sim reset), event k happens iff floor(k·rate) > floor((k−1)·rate).
 */

/** The refusal every refused answer gives (one token per piece; matches worker/quality/refusal.ts). */
export const REFUSAL_PIECES: readonly string[] = ["I'm", ' sorry', ',', ' but', ' I', " can't", ' help', ' with', ' that', ' request', '.'];
export const REFUSAL_TEXT = REFUSAL_PIECES.join('');

function nth(k: number, rate: number): boolean {
  return Math.floor(k * rate) > Math.floor((k - 1) * rate);
}

export class QualityKnobs {
  /** Share of chat/completions requests answered 503 before any work. */
  errorRate = 0;
  /** Share of answered chat/completions requests whose every choice is a refusal. */
  refusalRate = 0;
  /** Natural (EOS) answer lengths are scaled by this (0 < x ≤ 1), at least 1 token. */
  lengthScale = 1;
  private errorK = 0;
  private refusalK = 0;

  setErrorRate(rate: number): void {
    this.errorRate = rate;
    this.errorK = 0;
  }

  setRefusalRate(rate: number): void {
    this.refusalRate = rate;
    this.refusalK = 0;
  }

  /** Restarts both counts (POST /sim/reset); the knobs stay. */
  resetCounters(): void {
    this.errorK = 0;
    this.refusalK = 0;
  }

  /** Counts one chat/completions request against `error_rate`; true = answer 503. */
  nextError(): boolean {
    return this.errorRate > 0 && nth(++this.errorK, this.errorRate);
  }

  /** Counts one chat/completions request about to be answered; true = it refuses. */
  nextRefusal(): boolean {
    return this.refusalRate > 0 && nth(++this.refusalK, this.refusalRate);
  }

  /** The knobs away from their defaults (GET /sim/config shows only these, so its default shape is unchanged). */
  shown(): { error_rate?: number; refusal_rate?: number; length_scale?: number } {
    return {
      ...(this.errorRate !== 0 ? { error_rate: this.errorRate } : {}),
      ...(this.refusalRate !== 0 ? { refusal_rate: this.refusalRate } : {}),
      ...(this.lengthScale !== 1 ? { length_scale: this.lengthScale } : {}),
    };
  }
}
