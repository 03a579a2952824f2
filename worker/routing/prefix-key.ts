import type { RoutingConfig } from '../config/schema';
import { hash32 } from './hash';

/**
 * The key of a request's prompt prefix for affinity: the first whole blocks of the prompt
 * (system prompt and first turns, up to `prefix_max_blocks` × `prefix_block_chars`), hashed.
 * Requests that share those blocks share vLLM prefix-cache blocks too. A prompt shorter than
 * one block keys on itself.
 */
export function prefixKey(body: Record<string, unknown>, routing: RoutingConfig): number | null {
  const limit = routing.prefix_block_chars * routing.prefix_max_blocks;
  let text = '';
  if (Array.isArray(body.messages)) {
    for (const m of body.messages as { role?: unknown; content?: unknown }[]) {
      text += `\u0000${String(m.role)}\u0000${contentText(m.content)}`;
      if (text.length >= limit) break;
    }
  } else if (typeof body.prompt === 'string') {
    text = body.prompt;
  } else if (Array.isArray(body.prompt) && typeof body.prompt[0] === 'string') {
    text = body.prompt[0];
  }
  if (text.length === 0) return null;
  const whole = Math.floor(Math.min(text.length, limit) / routing.prefix_block_chars) * routing.prefix_block_chars;
  return hash32(whole > 0 ? text.slice(0, whole) : text);
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content as { type?: unknown; text?: unknown }[]) if (typeof part.text === 'string') out += part.text;
  return out;
}
