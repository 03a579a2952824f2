import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { cosine, localEmbedding } from '../../worker/cache/semantic/local-embedding';

/**
 * A CONTRACT STAND-IN for Upstash Vector, for tests only: a small HTTP server on loopback that
 * speaks the documented REST API of an index created with an embedding model, so that the real
 * `@upstash/vector` client (and the router's semantic cache through it) runs unmodified against
 * it. It is not Upstash: one process, in memory, exact brute-force search, and a deterministic
 * stand-in for the index's embedding model (the router's own local lexical embedding,
 * worker/cache/semantic/local-embedding.ts). What it implements, after Upstash's REST docs
 * (upstash.com/docs/vector/api):
 *
 * - `Authorization: Bearer <token>` on every call; otherwise 401
 *   `{"error":"Unauthorized: Invalid auth token","status":401}`.
 * - Responses `{"result": …}` with 200; failures `{"error": "…", "status": <code>}` with 400
 *   (bad body, bad filter, unknown command), 401, or 405 for a method other than GET, HEAD, POST, PUT.
 * - The namespace is the last path segment (`/query-data/<ns>`); without it, the default
 *   namespace "". Namespaces are created by their first upsert.
 * - `upsert-data[/ns]`: `{id, data, metadata?}` or an array of them → `"Success"`; the vector is
 *   the embedding of `data`, and `data` is kept (returned with includeData).
 * - `query-data[/ns]`: `{data, topK (default 10), includeMetadata, includeVectors, includeData, filter}`,
 *   or an array of such (a batch: an array of result arrays) → `[{id, score, metadata?, vector?, data?}]`,
 *   best first. Cosine similarity, score normalized to [0, 1] as Upstash does: (1 + cosine) / 2.
 * - `upsert[/ns]` and `query[/ns]` with explicit `vector`s, `fetch[/ns]` (`{ids}` or `{prefix}`,
 *   includeMetadata/includeData/includeVectors) → items or null, `delete[/ns]` (`{ids}`, `{prefix}` or
 *   `{filter}`) → `{deleted}`, `reset[/ns]` → "Success", `info` and `list-namespaces`.
 * - Metadata filters, the subset the router uses: `field <op> value` with = != < <= > >=, string
 *   values in single quotes, numbers, booleans, combined with AND / OR (AND binds tighter) and
 *   parentheses; dotted paths for nested fields. Anything else → 400.
 */

export interface VectorStandIn {
  url: string;
  token: string;
  readonly running: boolean;
  stats: { requests: number; unauthorized: number; byCommand: Record<string, number> };
  /** Closes the port and every open connection: calls fail at once (connection refused). */
  stop(): Promise<void>;
  /** Listens again on the same port, with the data it had. */
  start(): Promise<void>;
  close(): Promise<void>;
}

type Metadata = Record<string, unknown>;
interface Item {
  id: string;
  vector: Float32Array;
  metadata?: Metadata;
  data?: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startVectorStandIn(opts: { token: string; host?: string; port?: number }): Promise<VectorStandIn> {
  const namespaces = new Map<string, Map<string, Item>>();
  const stats = { requests: 0, unauthorized: 0, byCommand: {} as Record<string, number> };
  const sockets = new Set<Socket>();
  const host = opts.host ?? '127.0.0.1';
  let server: Server | null = null;
  let port = opts.port ?? 0;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      stats.requests++;
      const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      try {
        if (!['GET', 'HEAD', 'POST', 'PUT'].includes(req.method ?? '')) throw new HttpError(405, `Method ${req.method} not allowed`);
        if (req.headers.authorization !== `Bearer ${opts.token}`) {
          stats.unauthorized++;
          throw new HttpError(401, 'Unauthorized: Invalid auth token');
        }
        const [command = '', ...rest] = (req.url ?? '/').split('?')[0]!.split('/').filter(Boolean).map(decodeURIComponent);
        stats.byCommand[command] = (stats.byCommand[command] ?? 0) + 1;
        let body: unknown = null;
        if (raw.trim() !== '') {
          try {
            body = JSON.parse(raw);
          } catch {
            throw new HttpError(400, 'Invalid JSON body');
          }
        }
        reply(200, { result: run(command, rest.join('/'), body) });
      } catch (e) {
        const status = e instanceof HttpError ? e.status : 400;
        reply(status, { error: e instanceof Error ? e.message : String(e), status });
      }
    });
  };

  const ns = (name: string, create: boolean) => {
    let m = namespaces.get(name);
    if (!m && create) namespaces.set(name, (m = new Map()));
    return m ?? new Map<string, Item>();
  };

  function run(command: string, namespace: string, body: unknown): unknown {
    switch (command) {
      case 'upsert-data':
      case 'upsert': {
        for (const v of list(body)) {
          if (typeof v.id !== 'string' && typeof v.id !== 'number') throw new HttpError(400, 'id is required');
          let vector: Float32Array | null;
          if (command === 'upsert-data') {
            if (typeof v.data !== 'string') throw new HttpError(400, 'data is required for upsert-data');
            vector = localEmbedding(v.data);
          } else {
            if (!Array.isArray(v.vector)) throw new HttpError(400, 'vector is required');
            vector = Float32Array.from(v.vector as number[]);
          }
          if (!vector) throw new HttpError(400, 'data could not be embedded');
          ns(namespace, true).set(String(v.id), {
            id: String(v.id),
            vector,
            ...(isObj(v.metadata) ? { metadata: v.metadata } : {}),
            ...(typeof v.data === 'string' ? { data: v.data } : {}),
          });
        }
        return 'Success';
      }
      case 'query-data':
      case 'query': {
        const queries = list(body);
        const results = queries.map((q) => query(namespace, q, command === 'query-data'));
        return Array.isArray(body) ? results : results[0];
      }
      case 'fetch': {
        const b = obj(body);
        const items = ns(namespace, false);
        const pick = (it: Item | undefined) => (it ? shape(it, b, null) : null);
        if (Array.isArray(b.ids)) return b.ids.map((id) => pick(items.get(String(id))));
        if (typeof b.prefix === 'string') return [...items.values()].filter((it) => it.id.startsWith(b.prefix as string)).map((it) => pick(it));
        throw new HttpError(400, 'ids or prefix is required');
      }
      case 'delete': {
        const b = obj(body);
        const items = ns(namespace, false);
        let doomed: string[];
        if (Array.isArray(b.ids)) doomed = b.ids.map(String).filter((id) => items.has(id));
        else if (typeof b.prefix === 'string') doomed = [...items.keys()].filter((id) => id.startsWith(b.prefix as string));
        else if (typeof b.filter === 'string') {
          const f = parseFilter(b.filter);
          doomed = [...items.values()].filter((it) => f(it.metadata ?? {})).map((it) => it.id);
        } else throw new HttpError(400, 'ids, prefix or filter is required');
        for (const id of doomed) items.delete(id);
        return { deleted: doomed.length };
      }
      case 'reset':
        namespaces.delete(namespace);
        return 'Success';
      case 'list-namespaces':
        return [...new Set(['', ...namespaces.keys()])];
      case 'info': {
        const ns: Record<string, { vectorCount: number; pendingVectorCount: number }> = {};
        let total = 0;
        for (const [name, m] of namespaces) {
          ns[name] = { vectorCount: m.size, pendingVectorCount: 0 };
          total += m.size;
        }
        return { vectorCount: total, pendingVectorCount: 0, indexSize: total * 2048, dimension: 512, similarityFunction: 'COSINE', namespaces: ns };
      }
      default:
        throw new HttpError(400, `Unknown command: ${command}`);
    }
  }

  function query(namespace: string, raw: Record<string, unknown>, byData: boolean) {
    let vector: Float32Array | null;
    if (byData) {
      if (typeof raw.data !== 'string') throw new HttpError(400, 'data is required for query-data');
      vector = localEmbedding(raw.data);
    } else {
      if (!Array.isArray(raw.vector)) throw new HttpError(400, 'vector is required');
      vector = Float32Array.from(raw.vector as number[]);
    }
    const topK = raw.topK === undefined ? 10 : Number(raw.topK);
    if (!Number.isInteger(topK) || topK < 1) throw new HttpError(400, 'topK must be a positive integer');
    const filter = typeof raw.filter === 'string' && raw.filter.trim() !== '' ? parseFilter(raw.filter) : () => true;
    if (!vector) return [];
    return [...ns(namespace, false).values()]
      .filter((it) => filter(it.metadata ?? {}))
      .map((it) => ({ it, score: (1 + cosine(vector!, it.vector)) / 2 }))
      .sort((a, b) => b.score - a.score)
      .slice(0, topK)
      .map(({ it, score }) => shape(it, raw, score));
  }

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(handler);
      s.on('connection', (sock) => {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
      });
      s.once('error', reject);
      s.listen(port, host, () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = null;
      if (!s) return resolve();
      s.close(() => resolve());
      for (const sock of sockets) sock.destroy();
    });

  await listen();
  return {
    url: `http://${host}:${port}`,
    token: opts.token,
    get running() {
      return server !== null;
    },
    stats,
    stop,
    start: async () => {
      if (!server) await listen();
    },
    close: stop,
  };
}

function shape(it: Item, opts: Record<string, unknown>, score: number | null) {
  return {
    id: it.id,
    ...(score !== null ? { score } : {}),
    ...(opts.includeVectors === true ? { vector: [...it.vector] } : {}),
    ...(opts.includeMetadata === true && it.metadata ? { metadata: it.metadata } : {}),
    ...(opts.includeData === true && it.data !== undefined ? { data: it.data } : {}),
  };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
function obj(body: unknown): Record<string, unknown> {
  if (!isObj(body)) throw new HttpError(400, 'Expected a JSON object');
  return body;
}
function list(body: unknown): Record<string, unknown>[] {
  const items = Array.isArray(body) ? body : [body];
  if (items.length === 0 || !items.every(isObj)) throw new HttpError(400, 'Expected a JSON object or an array of objects');
  return items;
}

// ---------------------------------------------------------------------------------------------
// Metadata filters: a recursive-descent parser for the subset above.

type Pred = (m: Metadata) => boolean;

export function parseFilter(src: string): Pred {
  const tokens = src.match(/\s*(?:'(?:[^'\\]|\\.)*'|-?\d+(?:\.\d+)?(?:e-?\d+)?|<=|>=|!=|=|<|>|\(|\)|[A-Za-z_][\w.]*)\s*/gy);
  if (!tokens || tokens.join('') !== src) throw new HttpError(400, `Invalid filter: ${src}`);
  const toks = tokens.map((t) => t.trim());
  let i = 0;
  const peek = () => toks[i];
  const next = () => {
    const t = toks[i++];
    if (t === undefined) throw new HttpError(400, `Invalid filter: unexpected end: ${src}`);
    return t;
  };
  const or = (): Pred => {
    let left = and();
    while (peek()?.toUpperCase() === 'OR') {
      next();
      const a = left;
      const b = and();
      left = (m) => a(m) || b(m);
    }
    return left;
  };
  const and = (): Pred => {
    let left = term();
    while (peek()?.toUpperCase() === 'AND') {
      next();
      const a = left;
      const b = term();
      left = (m) => a(m) && b(m);
    }
    return left;
  };
  const term = (): Pred => {
    if (peek() === '(') {
      next();
      const p = or();
      if (next() !== ')') throw new HttpError(400, `Invalid filter: expected ")": ${src}`);
      return p;
    }
    const field = next();
    if (!/^[A-Za-z_][\w.]*$/.test(field)) throw new HttpError(400, `Invalid filter: expected a field, got ${field}`);
    const op = next();
    if (!['=', '!=', '<', '<=', '>', '>='].includes(op)) throw new HttpError(400, `Invalid filter: unsupported operator ${op}`);
    const lit = next();
    let value: string | number | boolean;
    if (lit.startsWith("'")) value = lit.slice(1, -1).replace(/\\(.)/g, '$1');
    else if (/^(true|false)$/i.test(lit)) value = lit.toLowerCase() === 'true';
    else if (/^-?\d/.test(lit)) value = Number(lit);
    else throw new HttpError(400, `Invalid filter: expected a value, got ${lit}`);
    return (m) => {
      const v = field.split('.').reduce<unknown>((o, k) => (isObj(o) ? o[k] : undefined), m);
      if (v === undefined) return false;
      switch (op) {
        case '=':
          return v === value;
        case '!=':
          return v !== value;
        default: {
          if (typeof v !== typeof value || typeof v === 'boolean') return false;
          const a = v as number | string;
          const b = value as number | string;
          return op === '<' ? a < b : op === '<=' ? a <= b : op === '>' ? a > b : a >= b;
        }
      }
    };
  };
  const pred = or();
  if (i !== toks.length) throw new HttpError(400, `Invalid filter: unexpected ${toks[i]}: ${src}`);
  return pred;
}
