import { beforeEach, describe, expect, it } from 'vitest';
import type { BackendConfig } from '../../worker/config/schema';
import { duration, gateOf, noteProviderResponse, providerGate, readBudgets, resetProviderThrottle } from '../../worker/routing/provider-throttle';

// worker/routing/provider-throttle.ts: providers' rate-limit headers read into a gate the planner
// asks (ok | low | throttled). Pure functions of the headers and the clock.

const T0 = Date.parse('2026-05-01T12:00:00Z');
const backend = (kind: BackendConfig['kind'], id = `${kind}-1`) => ({ id, kind }) as BackendConfig;
const answer = (status: number, headers: Record<string, string>) => new Response(status === 204 ? null : '{}', { status, headers });

beforeEach(() => resetProviderThrottle());

describe('header dialects', () => {
  it('OpenAI durations', () => {
    expect(duration('1s')).toBe(1_000);
    expect(duration('6m0s')).toBe(360_000);
    expect(duration('20ms')).toBe(20);
    expect(duration('1h2m3.5s')).toBe(3_723_500);
    expect(duration('soon')).toBeNull();
    expect(duration('')).toBeNull();
  });

  it('OpenAI/Azure x-ratelimit-* and Anthropic anthropic-ratelimit-*; hostile values are ignored', () => {
    const openai = readBudgets(new Headers({ 'x-ratelimit-limit-requests': '100', 'x-ratelimit-remaining-requests': '7', 'x-ratelimit-reset-requests': '30s', 'x-ratelimit-remaining-tokens': 'lots' }), T0);
    expect([...openai]).toEqual([['requests', { remaining: 7, limit: 100, resetAt: T0 + 30_000 }]]);
    const anthropic = readBudgets(
      new Headers({ 'anthropic-ratelimit-tokens-limit': '1000', 'anthropic-ratelimit-tokens-remaining': '10', 'anthropic-ratelimit-tokens-reset': new Date(T0 + 5_000).toISOString() }),
      T0,
    );
    expect(anthropic.get('tokens')).toEqual({ remaining: 10, limit: 1000, resetAt: T0 + 5_000 });
    // A reset a year away is capped at ten minutes.
    const far = readBudgets(new Headers({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '8760h' }), T0);
    expect(far.get('requests')!.resetAt).toBe(T0 + 600_000);
  });
});

describe('the gate', () => {
  it('a 429 throttles until Retry-After (or retry-after-ms), capped; a success lifts it', () => {
    const b = backend('anthropic');
    noteProviderResponse(b, answer(429, { 'retry-after': '30' }), T0);
    expect(providerGate(b.id, T0 + 29_999)).toBe('throttled');
    expect(providerGate(b.id, T0 + 30_000)).toBe('ok');
    noteProviderResponse(b, answer(429, { 'retry-after-ms': '1500', 'retry-after': '99' }), T0);
    expect(providerGate(b.id, T0 + 1_000)).toBe('throttled');
    noteProviderResponse(b, answer(200, {}), T0 + 1_000);
    expect(providerGate(b.id, T0 + 1_001)).toBe('ok');
    noteProviderResponse(b, answer(429, { 'retry-after': '999999' }), T0);
    expect(providerGate(b.id, T0 + 600_000)).toBe('ok');
  });

  it('a 429 without Retry-After waits for the reset of the spent budget, else 5 s', () => {
    const b = backend('openai');
    noteProviderResponse(b, answer(429, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '12s' }), T0);
    expect(providerGate(b.id, T0 + 11_000)).toBe('throttled');
    expect(providerGate(b.id, T0 + 12_000)).toBe('ok');
    const c = backend('bedrock');
    noteProviderResponse(c, answer(429, {}), T0);
    expect(providerGate(c.id, T0 + 4_999)).toBe('throttled');
    expect(providerGate(c.id, T0 + 5_000)).toBe('ok');
  });

  it('a budget at or below 5 % of its limit is low until its reset', () => {
    const b = backend('azure-openai');
    noteProviderResponse(b, answer(200, { 'x-ratelimit-limit-requests': '1000', 'x-ratelimit-remaining-requests': '51', 'x-ratelimit-reset-requests': '10s' }), T0);
    expect(providerGate(b.id, T0)).toBe('ok');
    noteProviderResponse(b, answer(200, { 'x-ratelimit-limit-requests': '1000', 'x-ratelimit-remaining-requests': '50', 'x-ratelimit-reset-requests': '10s' }), T0);
    expect(providerGate(b.id, T0 + 9_000)).toBe('low');
    expect(providerGate(b.id, T0 + 10_000)).toBe('ok');
    expect(gateOf({ throttledUntil: 0, budgets: new Map([['requests', { remaining: 0, limit: null, resetAt: T0 + 1 }]]) }, T0)).toBe('low');
  });

  it('self-hosted kinds are not tracked: their 429 is the breaker\'s business', () => {
    const v = backend('vllm');
    noteProviderResponse(v, answer(429, { 'retry-after': '30' }), T0);
    expect(providerGate(v.id, T0 + 1)).toBe('ok');
  });
});
