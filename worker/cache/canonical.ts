/**
 * Canonical JSON: object keys sorted at every depth, arrays in order, no whitespace, undefined
 * members left out (as JSON.stringify does). Two requests that differ only in key order give
 * the same text, so the same cache key. Iterative (an explicit stack of open containers, not
 * recursion): however deep a value nests, this cannot overflow the call stack (request bodies
 * are bounded to MAX_JSON_DEPTH anyway, worker/http/json-depth.ts).
 *
 * On every request with a cacheable body (the exact key, the semantic scope): one frame per
 * array or object and nothing per member but the text (an earlier version allocated a work item
 * per member). The text is unchanged, so keys derived from it are too.
 */
export function canonicalJson(value: unknown): string {
  let out = '';
  const stack: Frame[] = [];
  const open = (v: unknown) => {
    if (v === null || typeof v !== 'object') {
      out += JSON.stringify(v) ?? 'null';
    } else if (Array.isArray(v)) {
      out += '[';
      stack.push({ items: v, keys: null, i: 0 });
    } else {
      const obj = v as Record<string, unknown>;
      out += '{';
      stack.push({ items: obj, keys: Object.keys(obj).filter((k) => obj[k] !== undefined).sort(), i: 0 });
    }
  };
  open(value);
  while (stack.length > 0) {
    const f = stack[stack.length - 1]!;
    if (f.keys === null) {
      const items = f.items as unknown[];
      if (f.i === items.length) {
        out += ']';
        stack.pop();
        continue;
      }
      if (f.i > 0) out += ',';
      open(items[f.i++]);
    } else {
      if (f.i === f.keys.length) {
        out += '}';
        stack.pop();
        continue;
      }
      const k = f.keys[f.i]!;
      out += `${f.i++ > 0 ? ',' : ''}${JSON.stringify(k)}:`;
      open((f.items as Record<string, unknown>)[k]);
    }
  }
  return out;
}

/** An array (keys null) or an object (its keys, sorted) being written; i: the next member. */
interface Frame {
  items: unknown[] | Record<string, unknown>;
  keys: string[] | null;
  i: number;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Lower-case hex of a byte buffer (a table lookup per byte). */
export function hex(bytes: ArrayBuffer | Uint8Array): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i]!];
  return s;
}

const encoder = new TextEncoder();

export async function sha256Hex(text: string): Promise<string> {
  return hex(await crypto.subtle.digest('SHA-256', encoder.encode(text)));
}
