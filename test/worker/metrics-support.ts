// A small Prometheus text-format (0.0.4) parser for the metrics tests: it checks what a scraper
// relies on (every sample belongs to a family with a TYPE; histograms cumulative, ending with +Inf,
// _count equal to the +Inf bucket) and throws on anything malformed.

import type { UsageRecord } from '../../worker/protocol/usage-record';

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    const name = text.slice(i, eq);
    if (!NAME.test(name) || text[eq + 1] !== '"') throw new Error(`bad label in: ${line}`);
    let j = eq + 2;
    let value = '';
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`bad escape in: ${line}`);
      } else value += text[j];
    }
    if (text[j] !== '"') throw new Error(`unterminated label value in: ${line}`);
    if (name in labels) throw new Error(`duplicate label ${name} in: ${line}`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`expected "," in: ${line}`);
  }
  return labels;
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
    if (base && types.get(base) === 'histogram') return base;
  }
  return undefined;
}

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const types = new Map<string, string>();
  const samples: PromSample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      if (!name || !NAME.test(name) || !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type ?? '')) throw new Error(`bad TYPE: ${line}`);
      if (types.has(name)) throw new Error(`second TYPE for ${name}`);
      types.set(name, type!);
      continue;
    }
    if (line.startsWith('#') || line === '') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`bad value: ${line}`);
    const family = familyOf(m[1]!, types);
    if (!family) throw new Error(`sample without a TYPE: ${line}`);
    if (types.get(family) === 'counter' && !family.endsWith('_total')) throw new Error(`counter not named _total: ${family}`);
    samples.push({ name: m[1]!, labels: parseLabels(m[2] ?? '', line), value });
  }
  checkHistograms(types, samples);
  return { types, samples };
}

function checkHistograms(types: Map<string, string>, samples: PromSample[]): void {
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const groups = new Map<string, { le: string; value: number }[]>();
    const counts = new Map<string, number>();
    for (const s of samples) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      if (s.name === `${family}_bucket`) {
        if (le === undefined) throw new Error(`${family}_bucket without le`);
        groups.set(key, [...(groups.get(key) ?? []), { le, value: s.value }]);
      } else if (s.name === `${family}_count`) counts.set(key, s.value);
    }
    for (const [key, buckets] of groups) {
      if (buckets.at(-1)?.le !== '+Inf') throw new Error(`${family}${key}: buckets do not end with +Inf`);
      for (let i = 1; i < buckets.length; i++) {
        if (Number(buckets[i]!.le) <= Number(buckets[i - 1]!.le)) throw new Error(`${family}${key}: le not increasing`);
        if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${family}${key}: buckets not cumulative`);
      }
      if (counts.get(key) !== buckets.at(-1)!.value) throw new Error(`${family}${key}: _count differs from the +Inf bucket`);
    }
  }
}

/** The value of the one sample with this name and (at least) these labels; undefined if none. */
export function valueOf(e: Exposition, name: string, labels: Record<string, string>): number | undefined {
  const hits = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

/** A usage record with sensible defaults. */
export function record(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    v: 1,
    request_id: `req_${crypto.randomUUID()}`,
    ts: Date.now(),
    tenant: 'demo',
    key_id: 'key_1',
    user: null,
    feature: null,
    endpoint: 'chat',
    requested_model: 'small',
    model: 'llama-3.1-8b',
    backend: 'vllm-us-east-8b',
    region: 'us-east',
    tier: 'fast',
    prompt_tokens: 10,
    cached_tokens: 0,
    completion_tokens: 20,
    tokens_estimated: false,
    cost_usd: 0.001,
    saved_usd: 0,
    latency_ms: 120,
    ttft_ms: 40,
    tokens_per_s: null,
    status: 200,
    outcome: 'ok',
    cache: 'miss',
    attempts: 1,
    path: ['vllm-us-east-8b'],
    error_code: null,
    ...over,
  };
}
