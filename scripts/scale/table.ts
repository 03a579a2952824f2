/** Plain-text tables for plan / apply / watch output (no colours: the output is often piped to logs). */
import type { Row } from './run';
import { duration } from './policy';

export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  // The last column is free text (reasons, errors): its rule stays short.
  const rule = widths.map((w, i) => '-'.repeat(i === widths.length - 1 ? Math.min(w, headers[i]!.length + 20) : w));
  return [line(headers), line(rule), ...rows.map(line)].join('\n');
}

/** One row per backend id: what the router says, what the driver sees, the decision and (apply) the outcome. */
export function decisionTable(rows: readonly Row[], routerNow: Date, withResult: boolean): string {
  const headers = ['BACKEND', 'DRIVER', 'STATE', 'IN-FLIGHT', 'LAST REQUEST', 'REPLICAS', 'ACTION', withResult ? 'RESULT' : 'REASON'];
  const body = rows.map((r) => {
    const s = r.status;
    const last = s?.last_request_at ? Date.parse(s.last_request_at) : Number.NaN;
    const replicas = replicasCell(r);
    const action = r.decision?.action ?? 'error';
    const reason = r.decision?.reason ?? '';
    const note = r.current?.note ? ` [${r.current.note}]` : '';
    const result = withResult ? resultCell(r) : r.error ? `error: ${r.error}` : `${reason}${note}`;
    return [
      r.id,
      r.driver,
      s ? (s.pending_wakeups > 0 ? `${s.state} (+${s.pending_wakeups} wake)` : s.state) : '-',
      s ? String(s.in_flight) : '-',
      Number.isFinite(last) ? `${duration(Math.max(0, routerNow.getTime() - last))} ago` : s ? 'never' : '-',
      replicas,
      action,
      result,
    ];
  });
  return formatTable(headers, body);
}

function replicasCell(r: Row): string {
  const cur = r.current?.replicas;
  const now = cur === undefined ? '-' : cur === null ? '?' : String(cur);
  const target = r.decision?.target;
  const acting = r.decision && ['scale_to_zero', 'scale_up', 'set_replicas'].includes(r.decision.action);
  return acting && target !== null && target !== undefined ? `${now} → ${target}` : now;
}

function resultCell(r: Row): string {
  const parts: string[] = [];
  if (r.decision) parts.push(r.decision.reason);
  if (r.result) parts.push(r.result);
  if (r.events.length) parts.push(`reported ${r.events.map((e) => e.type).join(', ')}`);
  if (r.error) parts.push(`FAILED: ${r.error}`);
  return parts.join(' | ');
}
