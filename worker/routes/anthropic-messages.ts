import type { Context } from 'hono';
import { messageEvents, messageFromChat } from '../anthropic/answer';
import { messagesRequestSchema, toChatBody } from '../anthropic/request';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { runTranslated } from './translated';

/** POST /v1/messages: Anthropic's Messages API, served as a chat completion (worker/anthropic/). */
export async function anthropicMessagesRoute(c: Context<AppEnv>): Promise<Response> {
  const req = await readJsonBody(c.req.raw, messagesRequestSchema, c.get('config').raw.max_body_bytes);
  return runTranslated(c, toChatBody(req), { json: messageFromChat, stream: messageEvents });
}
