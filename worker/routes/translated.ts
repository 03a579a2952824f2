import type { Context } from 'hono';
import type { AppEnv } from '../env';
import { schemaError } from '../http/body';
import { readChatAnswer, translateChatStream, type ChatAnswer, type ChatStreamSink } from '../openai/chat-reader';
import { chatRequestSchema } from '../openai/schemas';
import { runInference } from '../pipeline/inference';

/** How a route in another format writes a chat answer: whole, or as its own stream events. */
export interface AnswerWriter {
  json(answer: ChatAnswer): unknown;
  stream(emit: (text: string) => void): ChatStreamSink;
}

/**
 * Runs a chat body made from another format through the same path as /v1/chat/completions
 * (limits, budgets, caches, routing, usage records), then writes the chat answer in that format.
 * Error answers (status ≥ 400) are returned as they are: the route's own middleware reshapes
 * them if its format's errors differ from OpenAI's.
 */
export async function runTranslated(c: Context<AppEnv>, chatBody: Record<string, unknown> & { model: string }, writer: AnswerWriter): Promise<Response> {
  // Validated inside the pipeline, so a body that fails is a recorded request like any other.
  const res = await runInference(c, 'chat', async () => {
    const parsed = chatRequestSchema.safeParse(chatBody);
    if (!parsed.success) throw schemaError(parsed.error);
    return parsed.data as Record<string, unknown> & { model: string };
  });
  if (res.status >= 400 || !res.body) return res;
  const headers = new Headers(res.headers);
  headers.delete('content-length');
  if (res.headers.get('content-type')?.includes('text/event-stream')) {
    headers.set('content-type', 'text/event-stream; charset=utf-8');
    return new Response(translateChatStream(res.body, chatBody.model, writer.stream), { status: res.status, headers });
  }
  const answer = readChatAnswer(await res.json().catch(() => null), chatBody.model);
  headers.set('content-type', 'application/json');
  return new Response(JSON.stringify(writer.json(answer)), { status: res.status, headers });
}
