import { adapterFor } from '../../backends';
import { backendSecret } from '../../protocol/rules/backend-endpoints';
import type { CompiledConfig } from '../../config/compiled';
import type { BackendConfig, ModelConfig } from '../../config/schema';
import { LOCAL_EMBEDDING_ID, localEmbedding, normalize } from './local-embedding';

/** Turns a prompt into an L2-normalized vector for the embedded index; null when it cannot (the lookup is then a miss). */
export interface Embedder {
  /** Part of the index scope: vectors of two embedders are never compared. */
  readonly id: string;
  embed(text: string): Promise<Float32Array | null>;
}

export const localEmbedder: Embedder = { id: LOCAL_EMBEDDING_ID, embed: async (text) => localEmbedding(text) };

/**
 * [cache.semantic].embedding_model's backends when it is set, else the local lexical embedding
 * (local-embedding.ts). `backends` narrows them (a tenant's allowed regions, residency.ts).
 */
export function embedderFor(config: CompiledConfig, env: Record<string, unknown>, backends?: readonly BackendConfig[]): Embedder {
  const { embedding_model, embedding_timeout_ms, workers_ai } = config.raw.cache.semantic;
  if (workers_ai) return new WorkersAiEmbedder(workers_ai.model, env[workers_ai.binding], embedding_timeout_ms);
  if (embedding_model === undefined) return localEmbedder;
  const model = config.modelsByName.get(embedding_model)!; // the schema checked it
  return new BackendEmbedder(model, backends ?? config.backendsByModel.get(model.id) ?? [], env, embedding_timeout_ms);
}

let lastWarnAt = 0;

/**
 * An embedding model served by the router's own backends (vLLM's /v1/embeddings): its backends
 * are tried in config order, two at most, within one timeout; any failure is a miss, logged at
 * most once a minute. This is the router's own spending, never billed to the tenant, and it does
 * not count toward the backends' breakers (a request's answer does not depend on it).
 */
export class BackendEmbedder implements Embedder {
  readonly id: string;

  constructor(
    private readonly model: ModelConfig,
    private readonly backends: readonly BackendConfig[],
    private readonly env: Record<string, unknown>,
    private readonly timeoutMs: number,
  ) {
    this.id = `model:${model.id}`;
  }

  async embed(text: string): Promise<Float32Array | null> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    let lastError: unknown = null;
    for (const backend of this.backends.slice(0, 2)) {
      try {
        const res = await adapterFor(backend).send(
          backend,
          { endpoint: 'embeddings', body: { model: this.model.served_name ?? this.model.id, input: text }, stream: false, requestId: `semantic-${crypto.randomUUID()}` },
          { signal, secret: backendSecret(backend, this.env) },
        );
        if (!res.ok) {
          lastError = new Error(`${backend.id}: HTTP ${res.status}`);
          await res.body?.cancel();
          continue;
        }
        const body = (await res.json()) as { data?: { embedding?: unknown }[] };
        const e = body.data?.[0]?.embedding;
        if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === 'number')) throw new Error(`${backend.id}: no float embedding in the answer`);
        return normalize(Float32Array.from(e as number[]));
      } catch (err) {
        lastError = err;
        if (signal.aborted) break;
      }
    }
    if (Date.now() - lastWarnAt > 60_000) {
      lastWarnAt = Date.now();
      console.warn(JSON.stringify({ msg: 'semantic cache: embedding failed, lookup skipped', model: this.model.id, error: String(lastError) }));
    }
    return null;
  }
}

/** What the embedder needs of the Workers AI binding (`env.AI`): `run(model, { text })`. */
interface WorkersAiBinding {
  run(model: string, input: { text: string[] }): Promise<unknown>;
}

const isBinding = (x: unknown): x is WorkersAiBinding => typeof x === 'object' && x !== null && typeof (x as { run?: unknown }).run === 'function';

/**
 * [cache.semantic.workers_ai]: the Workers AI binding's text-embedding models (BGE answers
 * `{ shape: [n, dim], data: [[...]] }`). Any failure, a missing binding or an answer past the
 * timeout is a miss (the request goes upstream), logged at most once a minute, like BackendEmbedder.
 */
export class WorkersAiEmbedder implements Embedder {
  readonly id: string;

  constructor(
    private readonly model: string,
    private readonly binding: unknown,
    private readonly timeoutMs: number,
  ) {
    this.id = `workers-ai:${model}`;
  }

  async embed(text: string): Promise<Float32Array | null> {
    let timer: ReturnType<typeof setTimeout> | null = null;
    try {
      if (!isBinding(this.binding)) throw new Error('no Workers AI binding (wrangler.toml [ai])');
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      });
      const out = (await Promise.race([this.binding.run(this.model, { text: [text] }), timeout])) as { data?: unknown };
      const e = Array.isArray(out?.data) ? (out.data[0] as unknown) : undefined;
      if (!Array.isArray(e) || e.length === 0 || !e.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new Error('no float embedding in the answer');
      return normalize(Float32Array.from(e as number[]));
    } catch (err) {
      if (Date.now() - lastWarnAt > 60_000) {
        lastWarnAt = Date.now();
        console.warn(JSON.stringify({ msg: 'semantic cache: Workers AI embedding failed, lookup skipped', model: this.model, error: String(err) }));
      }
      return null;
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }
}
