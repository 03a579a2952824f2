import { describe, expect, it } from 'vitest';
import { CompletionAssembler } from '../../worker/openai/assemble';
import { chatContentChunk, chatRoleChunk, chunkHead, completionChunk, usageChunk } from '../../regional/sim/wire';

// The assembler's plain-text-chunk shortcut (worker/openai/assemble.ts) must give exactly what
// parsing every chunk whole gives: random streams, assembled both ways, compared field by field.

/** Deterministic PRNG (mulberry32). */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['Hello', ' world', '', '"', '\\', '\n', 'é', '\u2028', '😀', '","x":"', '\\"', '{"content":"a"}', ' "quoted"', '\t', '</s>'];

/** Events (SSE data, without "data: " and the blank line) of one random stream. */
function randomStream(rand: () => number, kind: 'chat' | 'completions'): string[] {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const model = JSON.stringify(pick(['llama-3.1-8b', 'm"x', 'content']));
  let head = chunkHead(kind === 'chat' ? 'chat' : 'completion', `id${Math.floor(rand() * 1e6)}`, 1700000000, model);
  const choices = rand() < 0.3 ? 2 : 1;
  const out: string[] = [];
  const raw = (s: string) => out.push(s.replace(/^data: /, '').replace(/\n\n$/, ''));
  if (kind === 'chat') for (let i = 0; i < choices; i++) raw(chatRoleChunk(head, i, null));
  const n = 1 + Math.floor(rand() * 30);
  for (let k = 0; k < n; k++) {
    const index = Math.floor(rand() * choices);
    const piece = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(PIECES)).join('');
    const r = rand();
    if (r < 0.05) head = chunkHead(kind === 'chat' ? 'chat' : 'completion', `other${k}`, 1700000001, model); // the envelope changes
    if (r > 0.05 && r < 0.1) out.push('not json');
    if (r > 0.1 && r < 0.14 && kind === 'chat') out.push(`{"id":"x","choices":[{"index":${index},"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":${JSON.stringify(piece)}}}]},"logprobs":null,"finish_reason":null}]}`);
    if (r > 0.14 && r < 0.18) out.push(`{"id":"x","system_fingerprint":"fp${k}","choices":[{"index":${index},"delta":{"content":${JSON.stringify(piece)}},"text":${JSON.stringify(piece)},"logprobs":{"content":[{"token":"t","logprob":-0.5}]},"finish_reason":null}]}`);
    if (r > 0.18 && r < 0.2) {
      // Written with escapes the shortcut must decode like JSON.parse does.
      const escaped = JSON.stringify(piece).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
      out.push((kind === 'chat' ? chatContentChunk(head, index, 'PLACEHOLDER', null, null, null) : completionChunk(head, index, 'PLACEHOLDER', null, null, null)).replace('"PLACEHOLDER"', escaped).replace(/^data: /, '').replace(/\n\n$/, ''));
      continue;
    }
    if (kind === 'chat') raw(chatContentChunk(head, index, piece, null, null, rand() < 0.05 ? '{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1}' : null));
    else raw(completionChunk(head, index, piece, null, null, null));
  }
  for (let i = 0; i < choices; i++) {
    if (kind === 'chat') raw(chatContentChunk(head, i, pick(PIECES), 'stop', rand() < 0.5 ? null : 'x', null));
    else raw(completionChunk(head, i, pick(PIECES), 'length', null, null));
  }
  // A plain-looking chunk after the finish (the full path would overwrite the extra fields again).
  if (rand() < 0.3) raw(kind === 'chat' ? chatContentChunk(head, 0, 'late', null, null, null) : completionChunk(head, 0, 'late', null, null, null));
  raw(usageChunk(head, { prompt: 5, completion: n, cached: 0 }));
  out.push('[DONE]');
  return out;
}

function assemble(events: string[], kind: 'chat' | 'completions', templates: boolean) {
  const a = new CompletionAssembler(kind, templates);
  for (const e of events) a.add(e);
  return { result: a.result(), usage: a.reportedUsage, textChunks: a.textChunks };
}

describe('CompletionAssembler', () => {
  it('gives the same answer with the plain-text-chunk shortcut as parsing every chunk (3,000 random streams)', () => {
    const rand = prng(16);
    for (let i = 0; i < 3_000; i++) {
      const kind = i % 2 === 0 ? 'chat' : 'completions';
      const events = randomStream(rand, kind);
      expect(assemble(events, kind, true), `stream ${i}: ${JSON.stringify(events).slice(0, 400)}`).toEqual(assemble(events, kind, false));
    }
  });

  it('parses only the envelope-changing chunks of a vLLM-style stream whole', () => {
    const head = chunkHead('chat', 'abc', 1700000000, '"llama-3.1-8b"');
    const events = [chatRoleChunk(head, 0, null), ...Array.from({ length: 40 }, (_, k) => chatContentChunk(head, 0, ` tok"${k}\\`, null, null, null)), chatContentChunk(head, 0, '.', 'stop', null, null)].map((s) => s.replace(/^data: /, '').replace(/\n\n$/, ''));
    const parse = JSON.parse;
    let whole = 0;
    JSON.parse = ((text: string, reviver?: never) => {
      if (text.startsWith('{')) whole++;
      return parse(text, reviver);
    }) as typeof JSON.parse;
    let fast: ReturnType<typeof assemble>;
    try {
      fast = assemble(events, 'chat', true);
    } finally {
      JSON.parse = parse;
    }
    // The role chunk, the first content chunk (it makes the template) and the finish chunk.
    expect(whole).toBe(3);
    expect(fast).toEqual(assemble(events, 'chat', false));
    expect((fast.result.choices as { message: { content: string } }[])[0]!.message.content).toBe(Array.from({ length: 40 }, (_, k) => ` tok"${k}\\`).join('') + '.');
  });
});
