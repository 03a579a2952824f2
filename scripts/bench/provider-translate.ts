/**
 * provider-translate: the CPU the managed-provider adapters spend translating a streamed answer
 * into OpenAI chunks (worker/backends/anthropic.ts, bedrock.ts), against reading the same bytes
 * untranslated. The upstream is an in-memory body of N tokens in 4 KiB network-sized pieces
 * (fetch is replaced for the run and restored after), so only the adapter's own work is timed:
 * SSE parsing (Anthropic), event-stream framing, CRCs and decoding (Bedrock, SigV4 signing
 * included), JSON, and writing the chunks. Workers bill CPU time, so µs per token is the number.
 */
import { EventStreamCodec } from '@smithy/core/event-streams';
import { anthropicAdapter } from '../../worker/backends/anthropic';
import { bedrockAdapter } from '../../worker/backends/bedrock';
import type { BackendConfig } from '../../worker/config/schema';
import type { BenchSection } from './lib/section';

const enc = new TextEncoder();

function anthropicBody(tokens: number): Uint8Array {
  const ev = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  let s = ev('message_start', { message: { usage: { input_tokens: 10, output_tokens: 1 } } });
  s += ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
  for (let i = 0; i < tokens; i++) s += ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: ` tok${i}` } });
  s += ev('content_block_stop', { index: 0 }) + ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: tokens } }) + ev('message_stop', {});
  return enc.encode(s);
}

function bedrockBody(tokens: number): Uint8Array {
  const codec = new EventStreamCodec((b) => new TextDecoder().decode(b), (s) => enc.encode(s));
  const frame = (event: string, payload: unknown) =>
    codec.encode({
      headers: { ':event-type': { type: 'string', value: event }, ':message-type': { type: 'string', value: 'event' }, ':content-type': { type: 'string', value: 'application/json' } },
      body: enc.encode(JSON.stringify(payload)),
    });
  const parts = [frame('messageStart', { role: 'assistant' })];
  for (let i = 0; i < tokens; i++) parts.push(frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: ` tok${i}` } }));
  parts.push(frame('contentBlockStop', { contentBlockIndex: 0 }), frame('messageStop', { stopReason: 'end_turn' }), frame('metadata', { usage: { inputTokens: 10, outputTokens: tokens } }));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const pieces = (b: Uint8Array) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < b.length; i += 4096) c.enqueue(b.subarray(i, i + 4096));
      c.close();
    },
  });

const anthropic = { id: 'a', kind: 'anthropic', url: 'http://upstream.invalid', anthropic: { version: '2023-06-01', beta: [], default_max_tokens: 10 } } as unknown as BackendConfig;
const bedrock = { id: 'b', kind: 'bedrock', url: 'http://upstream.invalid', bedrock: { region: 'us-east-1', access_key_secret: 'K', secret_key_secret: 'S', default_max_tokens: 10 } } as unknown as BackendConfig;
const request = { endpoint: 'chat' as const, body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } }, stream: true, requestId: 'bench' };
const init = { signal: new AbortController().signal, secret: 'key', env: { K: 'AKIDBENCH', S: 'secret' } };

export const providerTranslate: BenchSection = {
  name: 'provider-translate',
  description: 'CPU per streamed token to translate Anthropic SSE and Bedrock event streams into OpenAI chunks',
  async run({ smoke }) {
    const tokens = smoke ? 50 : 1000;
    const rounds = smoke ? 5 : 300;
    const realFetch = globalThis.fetch;
    const rows: string[][] = [];
    const json: Record<string, unknown>[] = [];
    try {
      const cases: [string, Uint8Array, string, (() => Promise<Response>) | null][] = [
        ['read only (no translation)', anthropicBody(tokens), 'text/event-stream', null],
        ['anthropic SSE → OpenAI chunks', anthropicBody(tokens), 'text/event-stream', () => anthropicAdapter.send(anthropic, request, init)],
        ['bedrock event stream → OpenAI chunks (SigV4 included)', bedrockBody(tokens), 'application/vnd.amazon.eventstream', () => bedrockAdapter.send(bedrock, request, init)],
      ];
      for (const [name, body, type, send] of cases) {
        globalThis.fetch = (async () => new Response(pieces(body), { headers: { 'content-type': type } })) as typeof fetch;
        const once = send ?? (async () => new Response(pieces(body)));
        for (let i = 0; i < Math.min(20, rounds); i++) await (await once()).text(); // warm-up
        const t0 = performance.now();
        for (let i = 0; i < rounds; i++) await (await once()).text();
        const ms = (performance.now() - t0) / rounds;
        rows.push([name, String(tokens), ms.toFixed(2), ((ms * 1000) / tokens).toFixed(2)]);
        json.push({ case: name, tokens, ms_per_stream: ms, us_per_token: (ms * 1000) / tokens });
      }
    } finally {
      globalThis.fetch = realFetch;
    }
    return {
      tables: [{ title: 'Translating a streamed answer (Node, one core)', columns: ['case', 'tokens', 'ms per stream', 'µs per token'], rows, notes: [`${rounds} streams per case after warm-up; upstream bytes in 4 KiB pieces from memory`] }],
      json,
    };
  },
};
