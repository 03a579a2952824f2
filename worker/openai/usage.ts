/** Token usage as OpenAI reports it (vLLM adds prompt_tokens_details.cached_tokens). */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cached_tokens?: number;
  /**
   * The router counted these tokens itself (a backend that reports none: Triton, some Replicate
   * models): an estimate, not the backend's count. On the wire it is a non-standard
   * `"estimated": true` inside `usage`, which OpenAI's SDKs keep as an extra field.
   */
  estimated?: true;
}

export function readUsage(value: unknown): Usage | null {
  if (!value || typeof value !== 'object') return null;
  const u = value as Record<string, unknown>;
  const prompt = num(u.prompt_tokens);
  const completion = num(u.completion_tokens) ?? 0;
  if (prompt === undefined) return null;
  const details = u.prompt_tokens_details as Record<string, unknown> | null | undefined;
  const cached = num(details?.cached_tokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: num(u.total_tokens) ?? prompt + completion,
    ...(cached !== undefined ? { cached_tokens: cached } : {}),
    ...(u.estimated === true ? { estimated: true as const } : {}),
  };
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
