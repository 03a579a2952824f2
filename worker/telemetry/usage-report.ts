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
      merged.set(id, { ...withQuality(g), costs: [...g.costs], latencies: [...g.latencies], ttfts: [...g.ttfts], output_tokens: [...(g.output_tokens ?? [])] });
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
    const q = withQuality(g);
    m.answered += q.answered;
    m.refusals += q.refusals;
    m.truncations += q.truncations;
    m.output_tokens.push(...q.output_tokens);
    m.feedback += q.feedback;
    m.feedback_positive += q.feedback_positive;
    m.feedback_negative += q.feedback_negative;
    m.feedback_score_sum += q.feedback_score_sum;
    m.feedback_custom += q.feedback_custom;
  }
  const rows = [...merged.values()].map((g) => {
    const costs = g.costs.sort((a, b) => a - b);
    const lat = g.latencies.sort((a, b) => a - b);
    const ttft = g.ttfts.sort((a, b) => a - b);
    const ttftAt = (p: number) => (ttft.length ? percentile(ttft, p) : null);
    const out = g.output_tokens.sort((a, b) => a - b);
    const rate = (n: number, of: number) => (of > 0 ? n / of : null);
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
      // Quality signals (README "Quality signals and drift"), over the answered requests: served
      // chat/completions answers that missed the caches and were judged. Null when none was.
      answered: g.answered,
      refusals: g.refusals,
      refusal_rate: rate(g.refusals, g.answered),
      truncations: g.truncations,
      truncation_rate: rate(g.truncations, g.answered),
      output_tokens_mean: out.length ? out.reduce((a, b) => a + b, 0) / out.length : null,
      output_tokens_p50: out.length ? percentile(out, 0.5) : null,
      output_tokens_p95: out.length ? percentile(out, 0.95) : null,
      // Default feedback (no custom metric) on the group's requests; custom-metric feedback counted apart.
      feedback: g.feedback,
      feedback_positive: g.feedback_positive,
      feedback_negative: g.feedback_negative,
      negative_feedback_rate: rate(g.feedback_negative, g.feedback),
      feedback_mean_score: g.feedback > 0 ? g.feedback_score_sum / g.feedback : null,
      feedback_custom: g.feedback_custom,
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

/** A group from a ledger of an older build (no quality fields) reads as one with none. */
function withQuality(g: LedgerGroup): LedgerGroup {
  return {
    ...g,
    answered: g.answered ?? 0,
    refusals: g.refusals ?? 0,
    truncations: g.truncations ?? 0,
    output_tokens: g.output_tokens ?? [],
    feedback: g.feedback ?? 0,
    feedback_positive: g.feedback_positive ?? 0,
    feedback_negative: g.feedback_negative ?? 0,
    feedback_score_sum: g.feedback_score_sum ?? 0,
    feedback_custom: g.feedback_custom ?? 0,
  };
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
  'answered', 'refusals', 'refusal_rate', 'truncations', 'truncation_rate', 'output_tokens_mean', 'output_tokens_p50', 'output_tokens_p95',
  'feedback', 'feedback_positive', 'feedback_negative', 'negative_feedback_rate', 'feedback_mean_score', 'feedback_custom',
] as const;
