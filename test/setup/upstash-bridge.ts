import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { connect, type AddressInfo, type Socket } from 'node:net';

/**
 * A small HTTP server that speaks Upstash Redis's REST protocol in front of a real
 * `redis-server`, so that `@upstash/redis` and `@upstash/ratelimit` run their real commands
 * (Lua scripts included) in tests. What it implements, after Upstash's REST API docs:
 *
 * - `POST /` with one command as a JSON array (`["SET","k","v","EX",10]`) → `{"result": …}`;
 *   path style `/set/k/v` (arguments URL-decoded; a POST body is appended as the last one).
 * - `POST /pipeline` with an array of commands → `[{"result": …} | {"error": "…"}, …]`, 200
 *   even when some of them fail; not atomic.
 * - `POST /multi-exec` with an array of commands → the same array, run in MULTI/EXEC on one
 *   connection; a transaction Redis discards (EXECABORT) → 400 `{"error": "…"}`.
 * - `Authorization: Bearer <token>` (or `?_token=`): anything else → 401 `{"error": …}`.
 * - A failed single command → 400 `{"error": "ERR …"}` (Redis's own message). Methods other
 *   than GET/HEAD/POST/PUT → 405. Unparseable body → 400.
 * - `Upstash-Encoding: base64` (which @upstash/redis sends by default): every string in the
 *   result is base64 of its raw bytes, except the simple-string reply "OK".
 * - Lua shebang flags only Upstash knows: @upstash/ratelimit's scripts start with
 *   `#!lua flags=allow-key-locking`, which Upstash accepts and redis-server 7 rejects ("Unexpected
 *   flag in script shebang"). The bridge drops that flag before Redis sees the script, and maps
 *   the SHA1 of the script as sent to the SHA1 of the script as loaded, so SCRIPT LOAD, EVALSHA
 *   and SCRIPT EXISTS behave as on Upstash (SHA1 of the client's own text; NOSCRIPT until loaded).
 */

// ---------------------------------------------------------------------------------------------
// A minimal RESP2 client over node:net. Why not the `redis`/`ioredis` packages: this is test
// plumbing that needs only "send an array of bulk strings, read one reply" (with replies kept
// as raw bytes, for the base64 encoding), on a dedicated connection per transaction; a new
// dependency for that is not worth it, and none of this ships in the Worker.

export class ReplyError extends Error {}
export type Reply = null | number | string | Buffer | ReplyError | Reply[];

const CRLF = Buffer.from('\r\n');

/** Parses one reply from buf at offset; null when more bytes are needed. */
function parseReply(buf: Buffer, at: number): { value: Reply; end: number } | null {
  const eol = buf.indexOf(CRLF, at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]!);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new ReplyError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return null;
      return { value: buf.subarray(next, next + len), end: next + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: Reply[] = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos);
        if (!item) return null;
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`RESP: unexpected reply type ${JSON.stringify(type)}`);
  }
}

export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const bytes = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

export class RespConnection {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: { resolve(r: Reply): void; reject(e: Error): void }[] = [];
  private failed: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      try {
        this.drain();
      } catch (e) {
        this.fail(e as Error);
      }
    });
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('redis connection closed')));
  }

  static open(port: number, host = '127.0.0.1'): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new RespConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  get usable(): boolean {
    return this.failed === null;
  }

  send(args: readonly (string | Buffer)[]): Promise<Reply> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(encodeCommand(args));
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private drain() {
    while (this.waiting.length > 0) {
      const parsed = parseReply(this.buf, 0);
      if (!parsed) return;
      this.buf = this.buf.subarray(parsed.end);
      this.waiting.shift()!.resolve(parsed.value);
    }
  }

  private fail(e: Error) {
    if (!this.failed) this.failed = e;
    for (const w of this.waiting.splice(0)) w.reject(this.failed);
  }
}

/** Idle connections are reused; each HTTP request holds one for all its commands (MULTI needs that). */
class RespPool {
  private readonly idle: RespConnection[] = [];
  private readonly all = new Set<RespConnection>();
  constructor(private readonly port: number) {}

  async with<T>(fn: (conn: RespConnection) => Promise<T>): Promise<T> {
    let conn = this.idle.pop();
    while (conn && !conn.usable) conn = this.idle.pop();
    if (!conn) {
      conn = await RespConnection.open(this.port);
      this.all.add(conn);
    }
    try {
      return await fn(conn);
    } finally {
      if (conn.usable) this.idle.push(conn);
      else this.all.delete(conn);
    }
  }

  close() {
    for (const c of this.all) c.close();
    this.all.clear();
    this.idle.length = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// The REST side.

export interface UpstashBridge {
  /** Base URL, e.g. http://127.0.0.1:40123 (what @upstash/redis takes as `url`). */
  readonly url: string;
  readonly token: string;
  readonly port: number;
  /** Commands served (every command of a pipeline or transaction counts). */
  readonly stats: { requests: number; commands: number; unauthorized: number };
  /** Stops listening and drops every open connection: the REST endpoint is down. */
  stop(): Promise<void>;
  /** Listens again on the same port (and stops hanging). */
  start(): Promise<void>;
  /** Keeps listening but answers nothing (a blackholed endpoint: callers must time out). */
  hang(): Promise<void>;
  readonly running: boolean;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Arg = string | Buffer;

function toArgs(command: unknown): Arg[] {
  if (!Array.isArray(command) || command.length === 0) throw new HttpError(400, 'ERR a command must be a non-empty JSON array');
  return command.map((a) => {
    if (typeof a === 'string') return a;
    if (typeof a === 'number' || typeof a === 'boolean') return String(a);
    if (a === null) return '';
    return JSON.stringify(a);
  });
}

function encodeResult(r: Reply, base64: boolean): unknown {
  if (r === null || typeof r === 'number') return r;
  if (typeof r === 'string') return base64 && r !== 'OK' ? Buffer.from(r).toString('base64') : r;
  if (Buffer.isBuffer(r)) return base64 ? r.toString('base64') : r.toString('utf8');
  if (Array.isArray(r)) return r.map((x) => encodeResult(x, base64));
  return r.message; // an error nested in an array (a Lua table holding one): its message
}

/** Shebang flags Upstash's Redis accepts and redis-server does not. */
const UPSTASH_ONLY_FLAGS = new Set(['allow-key-locking']);
const sha1 = (s: string | Buffer) => createHash('sha1').update(s).digest('hex');

/** Script SHA1 as the client computed it → SHA1 of the script as loaded into Redis. */
class ScriptShas {
  private readonly loaded = new Map<string, string>();

  /** The script as Redis may run it (Upstash-only shebang flags dropped), remembering the SHA mapping. */
  rewrite(script: Arg): Arg {
    const text = script.toString();
    const m = /^#!lua(?:[ \t]+flags=([^\n]*))?[^\n]*(\n|$)/.exec(text);
    if (!m) return script;
    const flags = (m[1] ?? '').split(',').map((f) => f.trim()).filter(Boolean);
    const kept = flags.filter((f) => !UPSTASH_ONLY_FLAGS.has(f));
    if (kept.length === flags.length) return script;
    // No flag left: a blank first line (line numbers in Lua errors stay right), i.e. a script without shebang.
    const rewritten = (kept.length ? `#!lua flags=${kept.join(',')}` : '') + m[2] + text.slice(m[0].length);
    this.loaded.set(sha1(text), sha1(rewritten));
    return rewritten;
  }

  sha(sha: Arg): Arg {
    return this.loaded.get(sha.toString().toLowerCase()) ?? sha;
  }

  /** The command as Redis should get it; `reply` maps Redis's reply back where it names a SHA. */
  translate(args: Arg[]): { args: Arg[]; reply?: (r: Reply) => Reply } {
    const name = args[0]!.toString().toUpperCase();
    if ((name === 'EVAL' || name === 'EVAL_RO') && args.length > 1) return { args: [args[0]!, this.rewrite(args[1]!), ...args.slice(2)] };
    if ((name === 'EVALSHA' || name === 'EVALSHA_RO') && args.length > 1) return { args: [args[0]!, this.sha(args[1]!), ...args.slice(2)] };
    if (name === 'SCRIPT' && args.length > 2) {
      const sub = args[1]!.toString().toUpperCase();
      if (sub === 'LOAD') {
        const original = sha1(args[2]!.toString());
        return { args: [args[0]!, args[1]!, this.rewrite(args[2]!)], reply: (r) => (r instanceof ReplyError ? r : original) };
      }
      if (sub === 'EXISTS') return { args: [args[0]!, args[1]!, ...args.slice(2).map((a) => this.sha(a))] };
    }
    return { args };
  }
}

const entry = (r: Reply, base64: boolean) => (r instanceof ReplyError ? { error: r.message } : { result: encodeResult(r, base64) });

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'ERR failed to parse the request body as JSON');
  }
}

export async function startUpstashBridge(opts: { redisPort: number; token: string; host?: string; port?: number }): Promise<UpstashBridge> {
  const host = opts.host ?? '127.0.0.1';
  const pool = new RespPool(opts.redisPort);
  const stats = { requests: 0, commands: 0, unauthorized: 0 };
  const scripts = new ScriptShas();
  const run = async (conn: RespConnection, argv: Arg[]): Promise<Reply> => {
    const { args, reply } = scripts.translate(argv);
    const r = await conn.send(args);
    return reply ? reply(r) : r;
  };

  const authorized = (req: IncomingMessage, url: URL) => {
    const header = req.headers.authorization ?? '';
    return header === `Bearer ${opts.token}` || url.searchParams.get('_token') === opts.token;
  };

  let hanging = false;
  const held = new Set<ServerResponse>();

  async function handle(req: IncomingMessage, res: ServerResponse) {
    stats.requests++;
    if (hanging) {
      held.add(res);
      res.on('close', () => held.delete(res));
      req.resume();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://bridge');
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(req.method === 'HEAD' ? undefined : text);
    };
    try {
      if (!['GET', 'HEAD', 'POST', 'PUT'].includes(req.method ?? '')) throw new HttpError(405, 'Method Not Allowed');
      if (!authorized(req, url)) {
        stats.unauthorized++;
        throw new HttpError(401, 'Unauthorized: missing or invalid auth token');
      }
      const base64 = String(req.headers['upstash-encoding'] ?? '').toLowerCase() === 'base64';
      const body = await readBody(req);
      const path = url.pathname.replace(/\/+$/, '');

      if (path === '/pipeline' || path === '/multi-exec') {
        const commands = parseJson(body);
        if (!Array.isArray(commands) || commands.length === 0) throw new HttpError(400, 'ERR the body must be a non-empty array of commands');
        const argv = commands.map(toArgs);
        stats.commands += argv.length;
        const replies = await pool.with(async (conn) => {
          if (path === '/pipeline') return Promise.all(argv.map((a) => run(conn, a)));
          const translated = argv.map((a) => scripts.translate(a));
          await conn.send(['MULTI']);
          const queued = await Promise.all(translated.map((t) => conn.send(t.args)));
          const exec = await conn.send(['EXEC']);
          if (exec instanceof ReplyError || !Array.isArray(exec)) {
            const cause = queued.find((q) => q instanceof ReplyError) as ReplyError | undefined;
            const message = exec instanceof ReplyError ? exec.message : 'ERR transaction aborted';
            throw new HttpError(400, cause ? `${message}: ${cause.message}` : message);
          }
          return exec.map((r, i) => translated[i]!.reply?.(r) ?? r);
        });
        return send(200, replies.map((r) => entry(r, base64)));
      }

      let args: Arg[];
      if (path === '') {
        args = toArgs(parseJson(body));
      } else {
        // Path style: /set/foo/bar, the body (if any) as the last argument.
        args = path.slice(1).split('/').map(decodeURIComponent);
        if (body.length > 0) args.push(body);
      }
      stats.commands++;
      const reply = await pool.with((conn) => run(conn, args));
      if (reply instanceof ReplyError) throw new HttpError(400, reply.message);
      return send(200, { result: encodeResult(reply, base64) });
    } catch (e) {
      if (e instanceof HttpError) return send(e.status, { error: e.message });
      return send(500, { error: `bridge: ${(e as Error).message}` });
    }
  }

  let server: Server | null = null;
  let port = opts.port ?? 0;
  const listen = async () => {
    const s = createServer((req, res) => void handle(req, res));
    s.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => {
        s.removeListener('error', reject);
        resolve();
      });
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };
  const release = () => {
    hanging = false;
    for (const r of held) r.destroy();
    held.clear();
  };
  const unlisten = async () => {
    release();
    const s = server;
    if (!s) return;
    server = null;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  };

  await listen();
  return {
    get url() {
      return `http://${host}:${port}`;
    },
    token: opts.token,
    get port() {
      return port;
    },
    stats,
    get running() {
      return server !== null;
    },
    stop: unlisten,
    start: async () => {
      release();
      if (!server) await listen();
    },
    hang: async () => {
      hanging = true;
    },
    close: async () => {
      await unlisten();
      pool.close();
    },
  };
}
