/** A plain-text table for the terminal: columns padded to their widest cell, numbers right-aligned. */
export function renderTable(head: string[], rows: string[][], opts: { right?: number[] } = {}): string {
  const right = new Set(opts.right ?? []);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
