/**
 * Request bodies may nest JSON at most this deep (objects and arrays, counted from the body
 * itself = 1). OpenAI's own fields need fewer than 10 levels; the rest is room for free-form
 * fields (tool `parameters`, `response_format.json_schema`, `metadata`, extra sampling
 * parameters). Past it the body is refused with 400 before anything else walks it, so no
 * recursive code downstream (schema checks, cache keys, scorers) can run out of stack.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * True when a parsed JSON value nests objects/arrays deeper than `limit`. Iterative (an explicit
 * stack): a hostile value costs one visit per node and never recursion. JSON.parse itself is
 * iterative in V8, so parsing first and walking the result is safe and cheaper than scanning the
 * text (a long string is one node here, a million characters there).
 */
export function exceedsJsonDepth(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}
