// Prometheus text exposition format 0.0.4: HELP and TYPE once per family, then its samples;
// histograms as cumulative `_bucket{le}` ending with +Inf, then `_sum` and `_count`.

import type { MetricDef } from './metric-catalog';

export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface Sample {
  values: readonly string[];
  value: number;
}

export interface HistogramSample {
  values: readonly string[];
  /** Counts per bucket (not cumulative), one per bound plus the overflow. */
  buckets: readonly number[];
  sum: number;
}

export type Family = { def: MetricDef; samples: Sample[] } | { def: MetricDef; histogram: HistogramSample[]; boundsSeconds: readonly number[] };

/** A label value: backslash, double quote and line feed escaped. */
export const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function labelSet(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** Renders the families in order; samples sorted by labels so scrapes diff cleanly. */
export function renderExposition(families: readonly Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    const { name, type, help, labels } = f.def;
    out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    if ('samples' in f) {
      for (const s of sortByValues(f.samples)) out.push(`${name}${labelSet(labels, s.values)} ${formatValue(s.value)}`);
      continue;
    }
    for (const h of sortByValues(f.histogram)) {
      let cumulative = 0;
      f.boundsSeconds.forEach((le, i) => {
        cumulative += h.buckets[i] ?? 0;
        out.push(`${name}_bucket${labelSet(labels, h.values, ['le', String(le)])} ${cumulative}`);
      });
      cumulative += h.buckets[f.boundsSeconds.length] ?? 0;
      out.push(`${name}_bucket${labelSet(labels, h.values, ['le', '+Inf'])} ${cumulative}`);
      out.push(`${name}_sum${labelSet(labels, h.values)} ${formatValue(h.sum)}`);
      out.push(`${name}_count${labelSet(labels, h.values)} ${cumulative}`);
    }
  }
  return `${out.join('\n')}\n`;
}

function sortByValues<T extends { values: readonly string[] }>(xs: readonly T[]): T[] {
  return [...xs].sort((a, b) => {
    const ka = a.values.join('\u0000');
    const kb = b.values.join('\u0000');
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}
