import { estimateTokens } from '../backends/translate';
import type { EndpointKind } from '../openai/schemas';
import type { Usage } from '../openai/usage';

/**
 * The usage of a stream that ended without a usage chunk (cut by the client or by a failure):
 * one completion token per relayed chunk that carried text (vLLM and trtllm-serve send one token
 * per chunk; a backend that sends several per chunk is undercounted), and the prompt at about
 * four UTF-8 bytes per token of its text parts (estimateTokens). Marked estimated. Budgets and
 * rate limits settle with it instead of charging the whole reservation; usage records flag it.
 */
export function estimateStreamUsage(endpoint: EndpointKind, body: Record<string, unknown>, contentChunks: number): Usage {
  const prompt_tokens = estimateTokens(promptText(endpoint, body));
  return { prompt_tokens, completion_tokens: contentChunks, total_tokens: prompt_tokens + contentChunks, estimated: true };
}

function promptText(endpoint: EndpointKind, body: Record<string, unknown>): string {
  if (endpoint !== 'chat') return texts(endpoint === 'completions' ? body.prompt : body.input).join('\n');
  const messages = Array.isArray(body.messages) ? (body.messages as { content?: unknown }[]) : [];
  return messages.flatMap((m) => texts(m?.content)).join('\n');
}

/** The strings of a prompt: a string, an array of strings, or content parts with `text`. */
function texts(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value)) return [];
  return value.flatMap((v) => (typeof v === 'string' ? [v] : v && typeof v === 'object' && typeof (v as { text?: unknown }).text === 'string' ? [(v as { text: string }).text] : []));
}
