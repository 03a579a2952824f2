/**
 * Request bodies may nest JSON at most this deep (objects and arrays, counted from the body
 * itself = 1). OpenAI's own fields need fewer than 10 levels; the rest is room for free-form
 * fields (tool `parameters`, `response_format.json_schema`, `metadata`, extra sampling
 * parameters). Past it the body is refused with 400 before anything walks it, so no recursive
 * code downstream (canonical cache keys, schema checks, scorers) can run out of stack.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * The first position where `text` (JSON) nests deeper than `limit`, or -1. A single pass over the
 * characters, skipping strings: it neither parses nor recurses, so a hostile body costs O(length).
 */
export function jsonDepthExceeded(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return i;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return -1;
}
