import type { BenchTable } from './section';

/** A plain-text table that reads well in a terminal and pastes into Markdown. */
export function formatTable(t: BenchTable): string {
  const all = [t.columns, ...t.rows];
  const widths = t.columns.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`;
  return [`${t.title}`, '', line(t.columns), sep, ...t.rows.map(line), ...(t.notes?.length ? ['', ...t.notes] : [])].join('\n');
}
