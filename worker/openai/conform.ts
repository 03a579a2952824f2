// OpenAI's published schemas (openai/openai-openapi) type some fields as an array, object or
// string, never null; vLLM and others send them as null (pydantic's model_dump). Strict clients
// and validators reject those answers, so the router drops such a field rather than relay the
// null: OpenAI itself leaves the field out. Only bodies that have one are parsed again.

const NULL_FIELD = /"(?:system_fingerprint|annotations|function_call|tool_calls|usage|prompt_tokens_details|completion_tokens_details)"\s*:\s*null/;

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function dropNull(o: Json, keys: readonly string[]): void {
  for (const k of keys) if (o[k] === null) delete o[k];
}

/** A chat/completions answer or stream chunk (its JSON text), without the nulls the spec does not allow. */
export function conformAnswer(text: string): string {
  if (!NULL_FIELD.test(text)) return text;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return text;
  }
  if (!isObj(body)) return text;
  dropNull(body, ['system_fingerprint', 'usage']);
  if (isObj(body.usage)) dropNull(body.usage, ['prompt_tokens_details', 'completion_tokens_details']);
  if (Array.isArray(body.choices)) {
    for (const c of body.choices) {
      if (!isObj(c)) continue;
      if (isObj(c.message)) dropNull(c.message, ['annotations', 'function_call', 'tool_calls']);
      if (isObj(c.delta)) dropNull(c.delta, ['function_call', 'tool_calls']);
    }
  }
  return JSON.stringify(body);
}
