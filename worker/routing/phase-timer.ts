/**
 * One runtime timer for an attempt's successive deadlines (connect, first token, total). Moving to
 * a later deadline only records it: the armed timer fires at the earlier one, sees the phase moved
 * on and re-arms for what is left. An attempt that answers in time (nearly all) costs one
 * setTimeout and one clearTimeout instead of one pair per phase.
 */
export class PhaseTimer {
  private at = Infinity;
  private onExpire: (() => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;

  /** From now on, `onExpire` runs once at `at` (epoch ms) unless set() or clear() comes first. */
  set(at: number, onExpire: () => void): void {
    this.at = at;
    this.onExpire = onExpire;
    if (this.timer !== null && this.timerAt <= at) return; // fires first, then re-arms for the rest
    this.stop();
    this.arm(at);
  }

  clear(): void {
    this.at = Infinity;
    this.onExpire = null;
    this.stop();
  }

  private arm(at: number): void {
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(0, at - Date.now()));
  }

  private stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    const onExpire = this.onExpire;
    if (onExpire === null) return;
    // 1 ms of slack: the Workers clock moves in steps, and a re-arm for 0 ms would only spin.
    if (Date.now() + 1 >= this.at) {
      this.clear();
      onExpire();
    } else this.arm(this.at);
  };
}
