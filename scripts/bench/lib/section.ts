/** The contract between `scripts/bench/main.ts` and one bench section (one file per section). */

export interface BenchContext {
  /** Seconds per measured load run ($BENCH_DURATION_S, default per section). */
  durationS: number | undefined;
  /** Where sections may write results (`.dev/bench`). */
  outDir: string;
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
