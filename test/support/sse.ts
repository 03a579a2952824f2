import { createParser } from 'eventsource-parser';

/** An SSE body read whole: each event's data in order (`[DONE]` included), its JSON events (without `[DONE]`), and whether `[DONE]` came last. */
export interface SseBody {
  raw: string;
  data: string[];
  events: any[];
  done: boolean;
}

/** Parses a server-sent-events body with eventsource-parser (the spec's rules: multi-line data, comments, CRLF). Runs in workerd and Node. */
export function parseSse(raw: string): SseBody {
  const data: string[] = [];
  const parser = createParser({ onEvent: (e) => void data.push(e.data) });
  parser.feed(raw);
  parser.reset({ consume: true });
  const events = data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
  return { raw, data, events, done: data.at(-1) === '[DONE]' };
}

/** Reads a response's SSE body to the end and parses it. */
export async function sse(res: Response): Promise<SseBody> {
  return parseSse(await res.text());
}

/** The data of each SSE event of a body, in order (`[DONE]` included). */
export async function sseData(res: Response): Promise<string[]> {
  return (await sse(res)).data;
}
