import { beforeAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../worker/config/compiled';
import { chat, createKey, envWith, errorOf } from './support';
import { simulatedConfig } from './sims';

// Issue 12 item 3: `limits.user.required = true` refuses a request without an end-user id (400) for that tenant.

let strictKey: string;
let otherKey: string;
let cfg: Record<string, any>;
const hi = [{ role: 'user', content: 'Say hello.' }];

beforeAll(async () => {
  ({ cfg } = await simulatedConfig());
  delete cfg.degraded_answer;
  cfg.tenants.strict = { models: ['*'], limits: { user: { required: true } } };
  cfg.tenants.loose = { models: ['*'] };
  strictKey = (await createKey('strict', envWith(cfg))).key;
  otherKey = (await createKey('loose', envWith(cfg))).key;
});

describe('limits.user.required', () => {
  it('answers 400 user_required without a user, and serves with `user` or x-router-user', async () => {
    const e = envWith(cfg);
    const none = await chat(strictKey, { model: 'small', messages: hi, max_tokens: 4 }, { env: e });
    expect(none.status).toBe(400);
    expect(await errorOf(none)).toMatchObject({ type: 'invalid_request_error', code: 'user_required', param: 'user' });
    const empty = await chat(strictKey, { model: 'small', messages: hi, max_tokens: 4, user: '' }, { env: e });
    expect(empty.status).toBe(400);

    const body = await chat(strictKey, { model: 'small', messages: hi, max_tokens: 4, user: 'u-1' }, { env: e });
    expect(body.status).toBe(200);
    const header = await chat(strictKey, { model: 'small', messages: hi, max_tokens: 4 }, { env: e, headers: { 'x-router-user': 'u-2' } });
    expect(header.status).toBe(200);
    // Another tenant is not concerned.
    expect((await chat(otherKey, { model: 'small', messages: hi, max_tokens: 4 }, { env: e })).status).toBe(200);
  });

  it('holds under [limits] for every tenant without its own user table, and combines with a per-user limit', async () => {
    const c = structuredClone(cfg);
    c.limits = { user: { requests: 100, required: true } };
    const e = envWith(c);
    expect((await chat(otherKey, { model: 'small', messages: hi, max_tokens: 4 }, { env: e })).status).toBe(400);
    const ok = await chat(otherKey, { model: 'small', messages: hi, max_tokens: 4, user: 'u-3' }, { env: e });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-ratelimit-limit-requests')).toBe('100');
  });

  it('is config: a user table needs requests, tokens or required', () => {
    const base = structuredClone(cfg);
    base.limits = { user: { window_s: 60 } };
    expect(compileConfig(base).ok).toBe(false);
    base.limits = { user: { required: true } };
    expect(compileConfig(base).ok).toBe(true);
  });
});
