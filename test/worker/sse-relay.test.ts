import { describe, expect, it } from 'vitest';
import { DeadlineError, relaySse, type StreamOutcome } from '../../worker/routing/sse-relay';

const enc = new TextEncoder();

/** An upstream that delivers the given text in pieces cut at awkward places. */
function upstream(text: string, cuts: number[]) {
  const bytes = enc.encode(text);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    pieces.push(bytes.slice(at, c));
    at = c;
  }
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(pieces[i++]!);
      else controller.close();
    },
  }).getReader();
}

async function relay(text: string, cuts: number[], clientWantsUsage = false) {
  const reader = upstream(text, cuts);
  const first = (await reader.read()).value!;
  let outcome: StreamOutcome | undefined;
  const out = relaySse({ reader, first, clientWantsUsage, abort: () => {}, deadline: new Promise<never>(() => {}), onDone: (o) => (outcome = o) });
  return { text: await new Response(out).text(), outcome: () => outcome };
}

const chunk = (content: string) => `data: {"choices":[{"index":0,"delta":{"content":"${content}"}}]}\n\n`;
const usage = 'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}\n\n';
const body = chunk('a') + chunk('b') + chunk('c') + usage + 'data: [DONE]\n\n';

describe('relaySse', () => {
  it('relays every event whatever the read boundaries, and strips usage not asked for', async () => {
    for (const cuts of [[3], [10, 11, 12, 13], [body.indexOf('[DONE]') + 2], Array.from({ length: body.length - 1 }, (_, i) => i + 1)]) {
      const r = await relay(body, cuts);
      expect(r.text).toBe(chunk('a') + chunk('b') + chunk('c') + 'data: [DONE]\n\n');
      expect(r.outcome()).toMatchObject({ status: 'completed', usage: { prompt_tokens: 5, completion_tokens: 3 } });
    }
  });

  it('keeps the usage chunk when the client asked for it', async () => {
    const r = await relay(body, [7], true);
    expect(r.text).toBe(body);
  });

  it('ends with an error event when the upstream ends without [DONE]', async () => {
    const r = await relay(chunk('a') + chunk('b'), [5]);
    expect(r.text.startsWith(chunk('a') + chunk('b'))).toBe(true);
    expect(r.text).toContain('"code":"upstream_stream_error"');
    expect(r.outcome()?.status).toBe('upstream_error');
  });

  it('a deadline in the middle of a stream ends it with a timeout event and cancels the upstream read it was waiting on', async () => {
    let cancelled = false;
    let sent = false;
    const reader = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) controller.enqueue(enc.encode(chunk('a') + chunk('b')));
        sent = true;
        return new Promise(() => {}); // then nothing, ever
      },
      cancel: () => void (cancelled = true),
    }).getReader();
    const first = (await reader.read()).value!;
    let fire: (e: Error) => void = () => {};
    const deadline = new Promise<never>((_, reject) => (fire = reject));
    deadline.catch(() => {});
    let outcome: StreamOutcome | undefined;
    const out = relaySse({ reader, first, clientWantsUsage: false, abort: () => {}, deadline, onDone: (o) => (outcome = o) });
    const client = out.getReader();
    const dec = new TextDecoder();
    let text = dec.decode((await client.read()).value);
    const rest = (async () => {
      for (let r = await client.read(); !r.done; r = await client.read()) text += dec.decode(r.value);
    })();
    await new Promise((r) => setTimeout(r, 20)); // the relay is now waiting on the upstream read
    fire(new DeadlineError('total timeout'));
    await rest;
    expect(text.startsWith(chunk('a') + chunk('b'))).toBe(true);
    expect(text).toContain('"code":"upstream_timeout"');
    expect(outcome?.status).toBe('timeout');
    expect(cancelled).toBe(true);
  });
});
