/**
 * Canonical JSON: object keys sorted at every depth, arrays in order, no whitespace, undefined
 * members left out (as JSON.stringify does). Two requests that differ only in key order give
 * the same text, so the same cache key. Iterative (an explicit stack, not recursion): however
 * deep a value nests, this cannot overflow the call stack (request bodies are bounded to
 * MAX_JSON_DEPTH anyway, worker/http/json-depth.ts).
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  // Work items, popped last-first: a value to write, or literal text (brackets, commas, keys).
  const stack: Array<{ v: unknown } | string> = [{ v: value }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item === 'string') {
      out.push(item);
      continue;
    }
    const v = item.v;
    if (v === null || typeof v !== 'object') {
      out.push(JSON.stringify(v) ?? 'null');
      continue;
    }
    const parts: Array<{ v: unknown } | string> = [];
    if (Array.isArray(v)) {
      parts.push('[');
      v.forEach((x, i) => parts.push(...(i ? [','] : []), { v: x }));
      parts.push(']');
    } else {
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
      parts.push('{');
      keys.forEach((k, i) => parts.push(`${i ? ',' : ''}${JSON.stringify(k)}:`, { v: obj[k] }));
      parts.push('}');
    }
    for (let i = parts.length - 1; i >= 0; i--) stack.push(parts[i]!);
  }
  return out.join('');
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
