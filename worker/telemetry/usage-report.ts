import type { GroupColumn, LedgerGroup } from '../protocol/ledger';

export interface ReportRow {
  [field: string]: string | number | null;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/**
 * Merges the groups of several ledgers (one per tenant) into report rows: sums add up, the raw
 * cost, latency and TTFT values are pooled, so the percentiles are exact over the whole group
 * (nearest rank). Rows are sorted by bucket, then by their group fields.
 */
export function mergeGroups(groups: LedgerGroup[], groupBy: readonly GroupColumn[], bucketed: boolean): ReportRow[] {
  const merged = new Map<string, LedgerGroup>();
  for (const g of groups) {
    const id = JSON.stringify([g.bucket, ...groupBy.map((k) => g.keys[k] ?? null)]);
    const m = merged.get(id);
    if (!m) {
      merged.set(id, { ...g, costs: [...g.costs], latencies: [...g.latencies], ttfts: [...g.ttfts] });
      continue;
    }
    m.requests += g.requests;
    m.prompt_tokens += g.prompt_tokens;
    m.completion_tokens += g.completion_tokens;
    m.cost_usd += g.cost_usd;
    m.saved_usd += g.saved_usd;
    m.errors += g.errors;
    m.cache_hits += g.cache_hits;
    m.costs.push(...g.costs);
    m.latencies.push(...g.latencies);
    m.ttfts.push(...g.ttfts);
  }
  const rows = [...merged.values()].map((g) => {
    const costs = g.costs.sort((a, b) => a - b);
    const lat = g.latencies.sort((a, b) => a - b);
    const ttft = g.ttfts.sort((a, b) => a - b);
    const ttftAt = (p: number) => (ttft.length ? percentile(ttft, p) : null);
    const row: ReportRow = {};
    if (bucketed) row.bucket = g.bucket === null ? null : new Date(g.bucket).toISOString();
    for (const k of groupBy) row[k] = g.keys[k] ?? null;
    Object.assign(row, {
      requests: g.requests,
      prompt_tokens: g.prompt_tokens,
      completion_tokens: g.completion_tokens,
      cost_usd: round(g.cost_usd),
      saved_usd: round(g.saved_usd),
      errors: g.errors,
      cost_per_request_p50: round(percentile(costs, 0.5)),
      cost_per_request_p95: round(percentile(costs, 0.95)),
      cost_per_request_p99: round(percentile(costs, 0.99)),
      latency_ms_p50: percentile(lat, 0.5),
      latency_ms_p95: percentile(lat, 0.95),
      latency_ms_p99: percentile(lat, 0.99),
      // Over the records with a TTFT (streams that got a first token); null when none has one.
      ttft_ms_p50: ttftAt(0.5),
      ttft_ms_p95: ttftAt(0.95),
      ttft_ms_p99: ttftAt(0.99),
      cache_hits: g.cache_hits,
      cache_hit_rate: g.requests ? g.cache_hits / g.requests : 0,
    });
    return row;
  });
  const keys = [...(bucketed ? ['bucket'] : []), ...groupBy];
  return rows.sort((a, b) => {
    for (const k of keys) {
      const c = String(a[k] ?? '').localeCompare(String(b[k] ?? ''));
      if (c) return c;
    }
    return 0;
  });
}

/** Nearest-rank percentile of sorted values: the smallest value with at least p of them at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/** USD to 1e-12 (a picodollar): sums of floats print without noise, far below any price's precision. */
const round = (usd: number) => Math.round(usd * 1e12) / 1e12;

/**
 * RFC 4180 CSV: a header row, CRLF line ends, fields quoted when they hold a comma, quote or line break.
 * Text cells come from clients (`user`, x-router-feature): one that begins with =, +, -, @, tab or
 * CR would run as a formula in a spreadsheet, so it gets a leading ' (OWASP's CSV-injection advice).
 * Numbers are written as they are.
 */
export function toCsv(rows: readonly ReportRow[], columns: readonly string[]): string {
  const cell = (v: string | number | null | undefined) => {
    let s = v === null || v === undefined ? '' : String(v);
    if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.map(cell).join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\r\n') + '\r\n';
}

export const METRIC_COLUMNS = [
  'requests', 'prompt_tokens', 'completion_tokens', 'cost_usd', 'saved_usd', 'errors',
  'cost_per_request_p50', 'cost_per_request_p95', 'cost_per_request_p99', 'latency_ms_p50', 'latency_ms_p95', 'latency_ms_p99',
  'ttft_ms_p50', 'ttft_ms_p95', 'ttft_ms_p99', 'cache_hits', 'cache_hit_rate',
] as const;
