import { inject } from 'vitest';
import { call, createKey, envWith } from './support';
import type { Env } from '../../worker/env';
import { uid } from '../support/uid';

/** A call a stand-in recorded (scripts/dev/standins/common.ts; not imported: it would bring Node's types into workerd's). */
export interface RecordedCall {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** The canned answer of every stand-in model (scripts/dev/standins/common.ts ANSWER_TOKENS). */
export const ANSWER_TOKENS = ['Hello', ',', ' world', '!\n', 'Second', ' line', '.'];
export const ANSWER = ANSWER_TOKENS.join('');

/** A stand-in backend server of this test's own (scripts/dev/standins/), started by the spawner over loopback. */
export class FakeServer {
  constructor(readonly url: string) {}
  async calls(): Promise<RecordedCall[]> {
    return (await fetch(`${this.url}/_fake/calls`)).json();
  }
  async release(): Promise<void> {
    await fetch(`${this.url}/_fake/release`, { method: 'POST' });
  }
  /** Waits (bounded) until a recorded call matches; the calls so far if none does. */
  async waitFor(match: (c: RecordedCall) => boolean, tries = 200): Promise<RecordedCall | undefined> {
    for (let i = 0; i < tries; i++) {
      const found = (await this.calls()).find(match);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 10));
    }
    return undefined;
  }
}

export async function spawnFake(kind: 'modal' | 'replicate' | 'triton' | 'openai' | 'azure' | 'anthropic' | 'bedrock' | 'vertex', options: Record<string, unknown> = {}): Promise<FakeServer> {
  const res = await fetch(`${inject('simSpawner')}/spawn-fake/${kind}`, { method: 'POST', body: JSON.stringify(options) });
  if (!res.ok) throw new Error(`spawn-fake: ${await res.text()}`);
  return new FakeServer(((await res.json()) as { url: string }).url);
}


/**
 * A router of this test's own: one region, model "sl" (served as "org/sl-model") on one backend
 * (a fresh id, so breakers and failure counts of other tests do not reach it), a tenant and its key.
 * No degraded answer: upstream failures show as they are.
 */
export async function fakeRouter(backend: Record<string, unknown>, opts: { secrets?: Record<string, string>; extra?: Record<string, unknown>; tenant?: Record<string, unknown> } = {}) {
  const t = `sl-${uid()}`;
  const id = `${String(backend.kind)}-${uid()}`;
  const cfg: Record<string, any> = {
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'sl', served_name: 'org/sl-model' }],
    backends: [{ id, region: 'here', models: ['sl'], ...backend }],
    tenants: { [t]: { models: ['*'], ...opts.tenant } },
    ...opts.extra,
  };
  const env = { ...envWith(cfg), ...opts.secrets } as Env;
  const key = (await createKey(t, env)).key;
  const chat = (body: Record<string, unknown>, init: { headers?: Record<string, string>; signal?: AbortSignal } = {}) =>
    call('/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...init.headers },
      body: JSON.stringify({ model: 'sl', ...body }),
      env,
      ...(init.signal ? { signal: init.signal } : {}),
    });
  const completions = (body: Record<string, unknown>) =>
    call('/v1/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'sl', ...body }),
      env,
    });
  return { t, id, cfg, env, key, chat, completions };
}


/** The JSON events of a stream (all but [DONE]). */
export const jsonEvents = (events: string[]) => events.filter((e) => e !== '[DONE]').map((e) => JSON.parse(e) as Record<string, any>);

/** Content of a chat stream's chunks, joined. */
export const streamedText = (events: Record<string, any>[]) => events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
