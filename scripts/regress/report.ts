/** The gate's printed report: the failing cases, the totals side by side with stable, the verdict. */
import { shortDiff } from './scorers';
import { renderTable } from './table';
import { FIGURES, fmt, pct, type CaseResult, type RunSummary, type Verdict } from './verdict';

const MAX_FAILURE_ROWS = 25;

export function failuresTable(results: readonly CaseResult[], version: string): string {
  const failed = results.filter((r) => !r.passed);
  if (failed.length === 0) return `No failing case for ${version}.`;
  const rows = failed
    .slice()
    .sort((a, b) => a.score - b.score)
    .slice(0, MAX_FAILURE_ROWS)
    .map((r) => [r.case.id, r.case.metric, fmt(r.score), fmt(r.case.threshold), r.error ? `error: ${r.error.slice(0, 100)}` : shortDiff(r.got ?? '', r.case.expected)]);
  const more = failed.length > MAX_FAILURE_ROWS ? `\n… and ${failed.length - MAX_FAILURE_ROWS} more failing cases (lowest scores shown)` : '';
  return `Failing cases for ${version} (${failed.length} of ${results.length}):\n${renderTable(['case', 'metric', 'score', 'threshold', 'diff (-expected +got)'], rows, { right: [2, 3] })}${more}`;
}

export function totalsTable(candidate: RunSummary, stable: RunSummary | null, verdict: Verdict): string {
  const cell = (s: RunSummary | null, f: (typeof FIGURES)[number]) => (s === null ? '' : s[f] === null ? '—' : fmt(s[f]!));
  const rows: string[][] = FIGURES.map((f) => {
    const change = verdict.vs_stable[f];
    const cases = f === 'mean_similarity' ? candidate.cases : (candidate.by_metric[f === 'exact_match' ? 'exact' : f]?.cases ?? 0);
    return [f, String(cases), cell(candidate, f), ...(stable ? [cell(stable, f), change === undefined ? '—' : `${change >= 0 ? '+' : ''}${pct(change)}`] : [])];
  });
  rows.push(['pass rate', String(candidate.cases), pct(candidate.pass_rate), ...(stable ? [pct(stable.pass_rate), ''] : [])]);
  rows.push(['errors', '', String(candidate.errors), ...(stable ? [String(stable.errors), ''] : [])]);
  const head = ['figure', 'cases', candidate.version, ...(stable ? [`${stable.version} (stable)`, 'vs stable'] : [])];
  return renderTable(head, rows, { right: [1, 2, 3, 4] });
}

export function verdictLine(version: string, verdict: Verdict): string {
  return verdict.passed ? `PASS: ${version} passes the gate.` : `FAIL: ${version} fails the gate:\n  - ${verdict.reasons.join('\n  - ')}`;
}
