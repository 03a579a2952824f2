/**
 * The operator scripts' view of a running router (scripts/regress.ts, scripts/rollout.ts): the
 * admin API with the admin token, and the client API with a tenant key. Every answer is checked
 * with zod (fields the scripts use); a non-2xx answer becomes a RouterError carrying the router's
 * own error message and code, which the scripts print as they are.
 */
import { z } from 'zod';

export class RouterError extends Error {
  override name = 'RouterError';
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
    /** Seconds, from Retry-After. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

const errorBody = z.object({ error: z.looseObject({ message: z.string().optional(), code: z.string().nullable().optional(), type: z.string().optional() }) });

async function failure(res: Response, what: string): Promise<RouterError> {
  const text = await res.text().catch(() => '');
  let message = text.slice(0, 500) || res.statusText;
  let code: string | null = null;
  try {
    const parsed = errorBody.safeParse(JSON.parse(text));
    if (parsed.success) {
      message = parsed.data.error.message ?? message;
      code = parsed.data.error.code ?? parsed.data.error.type ?? null;
    }
  } catch {
    // not JSON: keep the text
  }
  const retryAfter = Number(res.headers.get('retry-after') ?? NaN);
  return new RouterError(`${what}: HTTP ${res.status}${code ? ` ${code}` : ''}: ${message}`, res.status, code, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null);
}

export interface AdminOptions {
  router: string;
  adminToken: string;
  /** Who acts (x-router-actor), kept in the deployment's history. */
  actor?: string;
  fetch?: typeof fetch;
}

export class AdminClient {
  constructor(private readonly opts: AdminOptions) {}

  async call<S extends z.ZodType>(method: 'GET' | 'POST', path: string, schema: S, body?: unknown): Promise<z.infer<S>> {
    const what = `${method} ${path}`;
    let res: Response;
    try {
      res = await (this.opts.fetch ?? fetch)(new URL(path, this.opts.router), {
        method,
        headers: {
          authorization: `Bearer ${this.opts.adminToken}`,
          accept: 'application/json',
          ...(this.opts.actor ? { 'x-router-actor': this.opts.actor } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new RouterError(`${what}: cannot reach the router at ${this.opts.router} (${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)})`, 0, null);
    }
    if (!res.ok) throw await failure(res, what);
    const json: unknown = await res.json().catch(() => undefined);
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new RouterError(`${what}: unexpected answer (${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`, res.status, null);
    return parsed.data;
  }
}

/** Answers worth another try: the router or the backend was busy, or a blip. */
const RETRYABLE = new Set([429, 500, 502, 503, 504]);
const MAX_TRIES = 4;

export interface ClientOptions {
  router: string;
  key: string;
  fetch?: typeof fetch;
}

const chatAnswer = z.object({ choices: z.array(z.object({ message: z.looseObject({ content: z.string().nullable().optional() }) })).min(1) });
const embeddingsAnswer = z.object({ data: z.array(z.object({ index: z.number().int(), embedding: z.array(z.number()) })) });

export class InferenceClient {
  constructor(private readonly opts: ClientOptions) {}

  private async post(path: string, body: unknown, headers: Record<string, string>): Promise<unknown> {
    let last: RouterError | null = null;
    for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, backoffMs(attempt, last)));
      let res: Response;
      try {
        res = await (this.opts.fetch ?? fetch)(new URL(path, this.opts.router), {
          method: 'POST',
          headers: { authorization: `Bearer ${this.opts.key}`, 'content-type': 'application/json', ...headers },
          body: JSON.stringify(body),
        });
      } catch (e) {
        last = new RouterError(`POST ${path}: cannot reach the router (${e instanceof Error ? e.message : String(e)})`, 0, null);
        continue;
      }
      if (res.ok) return { json: await res.json(), headers: res.headers };
      last = await failure(res, `POST ${path}`);
      if (!RETRYABLE.has(res.status)) break;
    }
    throw last!;
  }

  /**
   * One chat answer from `deployment` pinned to `version` (x-router-deployment-version, honoured
   * only with the admin token), with the caches bypassed: the gate measures the version, not a
   * stored answer.
   */
  async chat(deployment: string, version: string, adminToken: string, messages: unknown[]): Promise<string> {
    const { json, headers } = (await this.post('/v1/chat/completions', { model: deployment, messages }, {
      'x-router-deployment-version': version,
      'x-router-admin-token': adminToken,
      'x-router-cache': 'bypass',
      'cache-control': 'no-store',
    })) as { json: unknown; headers: Headers };
    const served = headers.get('x-router-deployment-version');
    if (served !== null && served !== version) throw new RouterError(`asked for version ${version} of ${deployment}, the router served ${served}`, 200, 'version_not_pinned');
    const parsed = chatAnswer.safeParse(json);
    if (!parsed.success) throw new RouterError('POST /v1/chat/completions: the answer has no choices[0].message', 200, null);
    return parsed.data.choices[0]!.message.content ?? '';
  }

  /** Embeddings of `inputs`, in order, `batch` at a time. */
  async embed(model: string, inputs: readonly string[], batch = 64): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < inputs.length; i += batch) {
      const slice = inputs.slice(i, i + batch);
      // An empty string is not a valid input; its vector is all zeros (cosine then says 0, or 1 with another empty).
      const texts = slice.map((s) => (s.trim() === '' ? null : s));
      const asked = texts.filter((s): s is string => s !== null);
      const vectors = asked.length ? await this.embedBatch(model, asked) : [];
      let k = 0;
      for (const t of texts) out.push(t === null ? [] : vectors[k++]!);
    }
    const dim = out.find((v) => v.length > 0)?.length ?? 0;
    return out.map((v) => (v.length ? v : new Array<number>(dim).fill(0)));
  }

  private async embedBatch(model: string, input: string[]): Promise<number[][]> {
    const { json } = (await this.post('/v1/embeddings', { model, input }, {})) as { json: unknown };
    const parsed = embeddingsAnswer.safeParse(json);
    if (!parsed.success || parsed.data.data.length !== input.length) throw new RouterError(`POST /v1/embeddings: expected ${input.length} vectors`, 200, null);
    const byIndex = [...parsed.data.data].sort((a, b) => a.index - b.index);
    return byIndex.map((d) => d.embedding);
  }
}

function backoffMs(attempt: number, last: RouterError | null): number {
  if (last?.retryAfter) return Math.min(last.retryAfter, 10) * 1000;
  return 250 * 2 ** (attempt - 1);
}
