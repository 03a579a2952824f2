/** The contract between `scripts/bench/main.ts` and one bench section (one file per section). */

export interface BenchContext {
  /** Seconds per measured load run ($BENCH_DURATION_S, default per section). */
  durationS: number | undefined;
  /** Where sections may write results (`.dev/bench`, or `.dev/bench/smoke`). */
  outDir: string;
  /**
   * `--smoke`: prove the section still starts and runs end to end, as fast as it can (durationS is
   * then 1 unless BENCH_DURATION_S says otherwise; sections also cut their counts and rounds).
   * Numbers from a smoke run mean nothing.
   */
  smoke: boolean;
}

export interface BenchTable {
  title: string;
  columns: string[];
  rows: string[][];
  notes?: string[];
}

export interface SectionReport {
  tables: BenchTable[];
  /** Written to `<outDir>/<section>.json`. */
  json: unknown;
}

export interface BenchSection {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<SectionReport>;
}
