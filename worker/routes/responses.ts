import type { Context } from 'hono';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { responseEvents, responseFromChat } from '../openai/responses/answer';
import { responsesRequestSchema, toChatBody } from '../openai/responses/request';
import { runTranslated } from './translated';

/** POST /v1/responses: OpenAI's Responses API, served as a chat completion (worker/openai/responses/). */
export async function responsesRoute(c: Context<AppEnv>): Promise<Response> {
  const req = await readJsonBody(c.req.raw, responsesRequestSchema, c.get('config').raw.max_body_bytes);
  return runTranslated(c, toChatBody(req), {
    json: (answer) => responseFromChat(req, answer),
    stream: (emit) => responseEvents(req, emit),
  });
}
