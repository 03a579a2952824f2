import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { compileConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { resetIsolate } from '../../worker/isolate/registry';
import type { ChatRequest } from '../../worker/openai/schemas';
import { learnedComplexity } from '../../worker/routing/learned-complexity';
import { boundaryOffset, promptKind, recordOutcome, resetQualityFeedback, type QualityFeedbackConfig } from '../../worker/routing/quality-feedback';
import { isRefusal } from '../../worker/quality/refusal';
import { simulatedConfig } from './sims';
import { chat, createKey, envWith } from './support';

// Issue 15 §1: truncated (and refused) answers of a tier move that tenant's boundary out of it, bounded,
// and it recovers. The simulator answers "length" whenever max_tokens comes before its natural end
// (16-64 tokens), so max_tokens 4 is a truncated answer and 200 a complete one.
const FEEDBACK = { enabled: true, max_offset: 0.1, bad_share: 0.2, window: 20, window_seconds: 600, min_samples: 5 };
const BORDERLINE = 'Write a short email asking my manager for Friday off.';
const EASY = 'hi there!';
const ask = (content: string, max_tokens: number, stream = false) => ({ model: 'auto', messages: [{ role: 'user', content }], max_tokens, ...(stream ? { stream: true } : {}) });

let e: Env;
let key: string;
let qf: QualityFeedbackConfig;

beforeAll(async () => {
  const { cfg } = await simulatedConfig();
  // The margin puts the borderline prompt's balanced boundary 0.05 above its probability: fast without
  // feedback, balanced once the boundary moves by more than 0.05 (the bound is 0.1).
  const p = learnedComplexity({ model: 'auto', messages: [{ role: 'user', content: BORDERLINE }] } as ChatRequest);
  const margin = 0.5 - p.pBalanced - 0.05;
  expect(margin).toBeGreaterThan(0);
  expect(margin).toBeLessThan(0.49);
  expect(p.pAdvanced).toBeLessThan(p.pBalanced - 0.1); // moving both boundaries by 0.1 still does not reach advanced
  const easy = learnedComplexity({ model: 'auto', messages: [{ role: 'user', content: EASY }] } as ChatRequest);
  expect(easy.pBalanced).toBeLessThan(0.5 - margin - 0.1); // bounded: a clearly easy prompt stays on fast
  cfg.routing = { ...cfg.routing, complexity_scorer: 'learned', complexity_margin: margin, quality_feedback: FEEDBACK };
  const compiled = compileConfig(cfg);
  if (!compiled.ok) throw new Error(compiled.errors.join('\n'));
  qf = compiled.config.raw.routing.quality_feedback;
  e = envWith(cfg);
  key = (await createKey('demo', e)).key;
});
beforeEach(() => {
  resetIsolate();
  resetQualityFeedback();
});

async function tierFor(content: string, max_tokens: number, stream = false): Promise<{ tier: string | null; finish: string | null }> {
  const res = await chat(key, ask(content, max_tokens, stream), { env: e });
  expect(res.status).toBe(200);
  const text = await res.text();
  const finish = stream ? (/"finish_reason":"(\w+)"/.exec(text)?.[1] ?? null) : (JSON.parse(text).choices[0].finish_reason as string);
  return { tier: res.headers.get('x-router-tier'), finish };
}

describe('quality feedback for auto', () => {
  it('a tenant whose fast-tier answers keep getting truncated gets borderline prompts routed up, bounded, and recovers', async () => {
    expect((await tierFor(BORDERLINE, 200)).tier).toBe('fast');

    // Truncated fast-tier answers, streamed and not: each one counts.
    for (let i = 0; i < 3; i++) expect(await tierFor(EASY, 4, true)).toEqual({ tier: 'fast', finish: 'length' });
    expect(boundaryOffset({ ...qf, min_samples: 1 }, 'demo', 'fast', 'text')).toBe(0.1);
    expect(boundaryOffset(qf, 'demo', 'fast', 'text')).toBe(0); // too few answers yet to move
    for (let i = 0; i < 3; i++) expect(await tierFor(EASY, 4)).toEqual({ tier: 'fast', finish: 'length' });
    expect(boundaryOffset(qf, 'demo', 'fast', 'text')).toBe(0.1);

    expect((await tierFor(BORDERLINE, 200)).tier).toBe('balanced');
    // Bounded: more bad answers do not move it further, and a clearly easy prompt stays cheap.
    for (let i = 0; i < 4; i++) await tierFor(EASY, 4);
    expect(boundaryOffset(qf, 'demo', 'fast', 'text')).toBe(0.1);
    expect((await tierFor(EASY, 4)).tier).toBe('fast');
    // Per prompt kind: code prompts of the same tenant are not shifted.
    expect(boundaryOffset(qf, 'demo', 'fast', 'code')).toBe(0);

    // Recovery: complete answers push the truncated ones out of the window.
    for (let i = 0; i < FEEDBACK.window; i++) expect((await tierFor(EASY, 200)).finish).toBe('stop');
    expect(boundaryOffset(qf, 'demo', 'fast', 'text')).toBe(0);
    expect((await tierFor(BORDERLINE, 200)).tier).toBe('fast');
  });

  it('bad answers age out of the window, and the shift ramps between bad_share and twice it', () => {
    const t0 = 1_000_000;
    for (let i = 0; i < 10; i++) recordOutcome(qf, 'acme', 'fast', 'text', i < 3, t0); // 30% bad
    expect(boundaryOffset(qf, 'acme', 'fast', 'text', t0)).toBeCloseTo(0.05, 4);
    expect(boundaryOffset(qf, 'other', 'fast', 'text', t0)).toBe(0); // per tenant
    expect(boundaryOffset(qf, 'acme', 'fast', 'text', t0 + qf.window_seconds * 1000 + 1)).toBe(0);
    expect(boundaryOffset({ ...qf, enabled: false }, 'acme', 'fast', 'text', t0)).toBe(0);
  });

  it('judges refusals on the first sentences only, and tells code prompts from text', () => {
    expect(isRefusal("I'm sorry, but I can't help with that request.")).toBe(true);
    expect(isRefusal('I cannot assist with creating malware.')).toBe(true);
    expect(isRefusal('As an AI language model, I cannot browse the web.')).toBe(true);
    expect(isRefusal('Sure! Here is the plan. I cannot stress enough how simple it is.')).toBe(false);
    expect(isRefusal(`${'Here is a long answer. '.repeat(20)}I can't help with that.`)).toBe(false);
    expect(promptKind('Fix this:\n```js\nconst x = 1\n```')).toBe('code');
    expect(promptKind('What is the capital of France?')).toBe('text');
  });

  it('validates its bounds', () => {
    const bad = (quality_feedback: Record<string, unknown>) => compileConfig({ ...structuredClone((e as unknown as { ROUTER: Record<string, any> }).ROUTER), routing: { quality_feedback } }).ok;
    expect(bad({ max_offset: 0.2 })).toBe(false);
    expect(bad({ bad_share: 0 })).toBe(false);
    expect(bad({ window: 2 })).toBe(false);
    expect(bad({ enabled: true })).toBe(true);
  });
});
