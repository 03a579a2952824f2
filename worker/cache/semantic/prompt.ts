import { normalizeSpace } from '../../protocol/rules/semantic-text';

/**
 * What the semantic cache looks at in a request: the text it embeds (the last user message, or
 * a completion's prompt) and everything else. Everything else must be IDENTICAL for a semantic
 * hit: it goes into the scope key (semantic.ts hashes it the way the exact cache hashes a body),
 * so the system prompt, every earlier turn, the depth, tools, response_format, max_tokens and
 * every sampling parameter are matched exactly, and only the last message is matched by
 * similarity. (A follow-up such as "and how far is it?" means something else after another
 * conversation; the earlier turns are why.)
 */
export interface SemanticPrompt {
  /** The text to embed, whitespace-normalized (NFKC, collapsed). */
  text: string;
  /** Messages in the conversation, the last one included (1 for a completion prompt). */
  depth: number;
  /** The request without the embedded text: hashed into the scope. */
  rest: Record<string, unknown>;
}

/**
 * The request's semantic form, or null when it is not a candidate: not a chat or completion
 * request, the last message is not the user's, it holds non-text parts (images, audio, files),
 * the completion prompt is not one string, the text is empty, or longer than maxChars (a long
 * document that differs in one clause would look "similar": never replayed).
 */
export function semanticPrompt(endpoint: string, body: Record<string, unknown>, maxChars: number): SemanticPrompt | null {
  if (endpoint === 'completions') {
    if (typeof body.prompt !== 'string') return null;
    const text = normalizeSpace(body.prompt);
    if (!text || text.length > maxChars) return null;
    const { prompt: _p, ...rest } = body;
    return { text, depth: 1, rest };
  }
  if (endpoint !== 'chat' || !Array.isArray(body.messages) || body.messages.length === 0) return null;
  const messages = body.messages as Record<string, unknown>[];
  const last = messages[messages.length - 1]!;
  if (last.role !== 'user') return null;
  const raw = textOf(last.content);
  if (raw === null) return null;
  const text = normalizeSpace(raw);
  if (!text || text.length > maxChars) return null;
  const { content: _c, ...lastWithoutContent } = last;
  return { text, depth: messages.length, rest: { ...body, messages: messages.slice(0, -1), last_message: lastWithoutContent } };
}

function textOf(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  const parts: string[] = [];
  for (const p of content as { type?: unknown; text?: unknown }[]) {
    if (p?.type !== 'text' || typeof p.text !== 'string') return null;
    parts.push(p.text);
  }
  return parts.join('\n');
}
