/**
 * Small helpers for tests and benchmarks that talk to a sim: SSE parsing and reading
 * values out of the Prometheus text of `/metrics`.
 */

/** The `data:` payloads of an SSE body, in order (`[DONE]` included as the string "[DONE]"). */
export function parseSse(text: string): string[] {
  const out: string[] = [];
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''));
    if (data.length > 0) out.push(data.join('\n'));
  }
  return out;
}

/**
 * Value of a metric sample from `/metrics` text. `labels` must all match (other labels are
 * ignored). NaN when absent.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    const metric = brace >= 0 ? line.slice(0, brace) : line.slice(0, space);
    if (metric !== name) continue;
    const labelText = brace >= 0 ? line.slice(brace + 1, line.lastIndexOf('}')) : '';
    const got: Record<string, string> = {};
    for (const m of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[m[1] as string] = m[2] as string;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(line.slice(space + 1));
  }
  return Number.NaN;
}
