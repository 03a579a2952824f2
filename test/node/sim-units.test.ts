import { describe, expect, it } from 'vitest';
import { FaultState } from '../../regional/sim/faults';
import { generate, naturalLength } from '../../regional/sim/generate';
import { pyFloat, SimMetrics } from '../../regional/sim/metrics';
import { parseSimOptions } from '../../regional/sim/options';
import { cacheRoot, PrefixCache } from '../../regional/sim/prefix-cache';
import { renderChat } from '../../regional/sim/prompt';
import { Scheduler, type SchedJob } from '../../regional/sim/scheduler';
import { countTokens, tokenize } from '../../regional/sim/tokenizer';

describe('tokenizer', () => {
  it('is lossless, deterministic and ~4-5 chars per token on English prose', () => {
    const text = 'The quick brown fox jumps over the lazy dog. It was, by all accounts, an unremarkable Tuesday!';
    const toks = tokenize(text);
    expect(toks.join('')).toBe(text);
    expect(tokenize(text)).toEqual(toks);
    expect(countTokens(text)).toBe(toks.length);
    const charsPerToken = text.length / toks.length;
    expect(charsPerToken).toBeGreaterThan(3);
    expect(charsPerToken).toBeLessThan(6);
  });

  it('charges long words, numbers and whitespace runs more', () => {
    expect(countTokens('supercalifragilisticexpialidocious')).toBeGreaterThan(5);
    expect(countTokens('1234567')).toBe(3); // 3-digit groups like Llama 3
    expect(countTokens(' '.repeat(40))).toBe(3);
    expect(countTokens('')).toBe(0);
    const mixed = 'héllo wörld 你好 🙂 x=1;y=22';
    expect(tokenize(mixed).join('')).toBe(mixed);
    expect(countTokens(mixed)).toBe(tokenize(mixed).length);
  });
});

describe('generate', () => {
  const base = { model: 'm', promptHash: 12345, seed: 7, index: 0, maxTokens: 1000, stop: undefined };

  it('is deterministic per (prompt, seed, model, index) and differs otherwise', () => {
    const a = generate(base);
    expect(generate(base)).toEqual(a);
    expect(generate({ ...base, seed: 8 }).text).not.toBe(a.text);
    expect(generate({ ...base, index: 1 }).text).not.toBe(a.text);
    expect(generate({ ...base, promptHash: 54321 }).text).not.toBe(a.text);
    expect(generate({ ...base, model: 'other' }).text).not.toBe(a.text);
    expect(a.pieces.join('')).toBe(a.text);
  });

  it('ends naturally (stop) between 16 and 64 tokens, or at max_tokens (length)', () => {
    const nat = naturalLength(base);
    expect(nat).toBeGreaterThanOrEqual(16);
    expect(nat).toBeLessThanOrEqual(64);
    const a = generate(base);
    expect(a).toMatchObject({ tokens: nat, finishReason: 'stop', stopReason: null });
    expect(a.text.endsWith('.')).toBe(true);
    const short = generate({ ...base, maxTokens: 5 });
    expect(short).toMatchObject({ tokens: 5, finishReason: 'length', stopReason: null });
    expect(a.text.startsWith(short.text)).toBe(true);
    const long = generate({ ...base, maxTokens: 200, ignoreEos: true });
    expect(long).toMatchObject({ tokens: 200, finishReason: 'length' });
  });

  it('honours stop strings like vLLM (cut before, or after with include_stop_str_in_output)', () => {
    const full = generate({ ...base, maxTokens: 64 });
    // Pick a word that occurs after the first token.
    const word = full.pieces.slice(2).find((p) => p.length > 2) as string;
    const cut = generate({ ...base, maxTokens: 64, stop: [word] });
    const at = full.text.indexOf(word);
    expect(cut).toMatchObject({ finishReason: 'stop', stopReason: word, text: full.text.slice(0, at) });
    expect(cut.pieces.join('')).toBe(cut.text);
    expect(cut.tokens).toBeLessThan(full.tokens);
    const incl = generate({ ...base, maxTokens: 64, stop: [word], includeStopStr: true });
    expect(incl.text).toBe(full.text.slice(0, at + word.length));
  });
});

describe('prefix cache', () => {
  const cache = () => new PrefixCache(4, 100);
  const toks = (s: string) => s.split('');

  it('hits only on whole leading blocks, chained on the prefix, and never the last token', () => {
    const c = cache();
    const root = cacheRoot('m');
    const a = toks('abcdefghijkl'); // 3 full blocks
    const ha = c.blockHashes(a, root);
    expect(ha).toHaveLength(3);
    expect(c.lookup(ha, a.length)).toBe(0);
    c.insert(ha);
    // Fully cached prompt: the last token is recomputed → floor((12-1)/4) = 2 blocks.
    expect(c.lookup(ha, a.length)).toBe(8);
    // Same first block, different second block: only block 0 hits, and block 2 does not
    // hit even though its tokens are equal (its parent differs).
    const b = toks('abcdXXXXijklmn');
    expect(c.lookup(c.blockHashes(b, root), b.length)).toBe(4);
    // Another model (root) shares nothing.
    expect(c.lookup(c.blockHashes(a, cacheRoot('other')), a.length)).toBe(0);
  });

  it('evicts least recently used blocks beyond capacity', () => {
    const c = new PrefixCache(2, 4);
    const root = cacheRoot('m');
    const x = c.blockHashes(toks('aabbccdd'), root);
    c.insert(x);
    expect(c.size).toBe(4);
    const y = c.blockHashes(toks('zzyy'), root);
    c.insert(y); // evicts the two oldest (x[0], x[1])
    expect(c.size).toBe(4);
    expect(c.lookup(x, 9)).toBe(0);
    expect(c.lookup(y, 5)).toBe(4);
  });

  it('chat prompts sharing leading messages share cached blocks', () => {
    const c = new PrefixCache(16, 1000);
    const root = cacheRoot('m');
    const sys = { role: 'system', content: 'You are a helpful assistant. '.repeat(20) };
    const p1 = renderChat({ messages: [sys, { role: 'user', content: 'first question' }] });
    const p2 = renderChat({ messages: [sys, { role: 'user', content: 'another one entirely' }] });
    c.insert(c.blockHashes(p1.tokens, root));
    const hit = c.lookup(c.blockHashes(p2.tokens, root), p2.tokens.length);
    expect(hit).toBeGreaterThan(100);
    expect(hit % 16).toBe(0);
    expect(hit).toBeLessThan(p2.tokens.length);
  });
});

describe('scheduler', () => {
  function job(log: string[], name: string, finishNow = false, s?: { sched?: Scheduler }): SchedJob {
    const j: SchedJob = {
      schedState: 0,
      enqueuedAt: 0,
      start() {
        log.push(name);
        if (finishNow) s!.sched!.release(j);
      },
    };
    return j;
  }

  it('runs max_num_seqs at once, queues the rest FIFO, and cancels waiters', () => {
    const log: string[] = [];
    const s = new Scheduler(2);
    const a = job(log, 'a');
    const b = job(log, 'b');
    const c = job(log, 'c');
    const d = job(log, 'd');
    for (const j of [a, b, c, d]) s.submit(j);
    expect(log).toEqual(['a', 'b']);
    expect([s.numRunning, s.numWaiting]).toEqual([2, 2]);
    s.cancel(c);
    expect(s.numWaiting).toBe(1);
    s.release(a);
    expect(log).toEqual(['a', 'b', 'd']);
    s.release(b);
    s.release(d);
    expect([s.numRunning, s.numWaiting]).toEqual([0, 0]);
  });

  it('does not recurse when queued jobs complete synchronously', () => {
    const log: string[] = [];
    const holder: { sched?: Scheduler } = {};
    const s = new Scheduler(1);
    holder.sched = s;
    const blocker = job(log, 'blocker');
    s.submit(blocker);
    for (let i = 0; i < 50_000; i++) s.submit(job(log, `j${i}`, true, holder));
    expect(s.numWaiting).toBe(50_000);
    s.release(blocker); // would overflow the stack if pump recursed
    expect(log).toHaveLength(50_001);
    expect([s.numRunning, s.numWaiting]).toEqual([0, 0]);
  });
});

describe('faults: deterministic error_rate', () => {
  const pattern = (rate: number, n: number) => {
    const f = new FaultState();
    f.set({ error_rate: rate });
    return Array.from({ length: n }, () => (f.nextFails() ? 'x' : '.')).join('');
  };
  it('fails exactly the documented share, spread evenly', () => {
    expect(pattern(1, 6)).toBe('xxxxxx');
    expect(pattern(0.5, 6)).toBe('.x.x.x');
    expect(pattern(0.25, 8)).toBe('...x...x');
    expect(pattern(0, 5)).toBe('.....');
    expect([...pattern(0.3, 100)].filter((c) => c === 'x')).toHaveLength(30);
  });
});

describe('metrics text', () => {
  it('formats numbers like prometheus_client and sorts labels', () => {
    expect(pyFloat(3)).toBe('3.0');
    expect(pyFloat(0.25)).toBe('0.25');
    expect(pyFloat(1e-5)).toBe('1e-05');
    expect(pyFloat(Infinity)).toBe('+Inf');
    const m = new SimMetrics('meta-llama/Llama-3.1-8B-Instruct');
    m.ttft.observe(0.003);
    m.ttft.observe(0.5);
    const text = m.render({ running: 2, waiting: 1, kvCacheUsage: 0.5 });
    expect(text).toContain('vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0');
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0');
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",le="0.005",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0');
    expect(text).toContain('vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0');
    expect(text).toContain('vllm:time_to_first_token_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0');
  });
});

describe('options', () => {
  it('fills defaults and rejects bad input', () => {
    const o = parseSimOptions({ models: ['a'], latency: { itl_ms: 0 } });
    expect(o).toMatchObject({ host: '127.0.0.1', port: 0, prefix_block_tokens: 16, max_model_len: 8192 });
    expect(o.latency).toMatchObject({ itl_ms: 0, max_num_seqs: 256 });
    expect(() => parseSimOptions({ latency: { max_num_seqs: 0 } })).toThrow(/max_num_seqs/);
    expect(() => parseSimOptions({ models: [], embedding_models: [] })).toThrow(/at least one/);
    expect(() => parseSimOptions({ models: ['a'], embedding_models: ['a'] })).toThrow(/duplicate/);
  });
});
