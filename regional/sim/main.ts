/**
 * CLI of the simulated vLLM server.
 *
 *   tsx regional/sim/main.ts --port 18101 --model meta-llama/Llama-3.1-8B-Instruct \
 *       [--model NAME ...] [--embedding-model BAAI/bge-small-en-v1.5] [--api-key KEY] \
 *       [--base-ttft-ms N --prefill-ms-per-token N --itl-ms N --max-num-seqs N] \
 *       [--cold-start-ms N --idle-scale-down-ms N --start-cold] [--instant] \
 *       [--max-model-len N --block-size N --prefix-cache-blocks N] [--name NAME] [--host H]
 *
 *   tsx regional/sim/main.ts --fleet fleet.json [--ready-json]
 *
 * `--fleet` starts one server per entry of a JSON array of SimOptions (options.ts) in this
 * process. Every server prints `sim <name> listening on <url>`; with `--ready-json`, once
 * all listen, one line `{"ready":true,"servers":{"<name>":"<url>",...}}` follows on stdout.
 * SIGINT/SIGTERM close everything and exit 0.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseSimOptions, type SimOptions } from './options.js';
import { type SimServer, startSimServer } from './server.js';

const USAGE = `usage: tsx regional/sim/main.ts [options]
  --port N                   listen port (default 0 = ephemeral)
  --host H                   listen address (default 127.0.0.1)
  --name NAME                name in logs and in the ready line (default sim-<port>)
  --model NAME               served chat/completion model (repeatable; first is the default)
  --served-model-name NAME   alias of --model
  --embedding-model NAME     served embedding model (repeatable)
  --api-key KEY              require "Authorization: Bearer KEY" on /v1/* (env VLLM_API_KEY too)
  --base-ttft-ms N           latency model (see README.md)
  --prefill-ms-per-token N
  --itl-ms N
  --max-num-seqs N
  --instant                  all delays zero, no queueing (benchmarks)
  --cold-start-ms N          wake time after scale-to-zero
  --idle-scale-down-ms N     go cold after N ms idle (0 = never)
  --start-cold               start scaled to zero
  --max-model-len N          context window (default 8192)
  --block-size N             prefix-cache block size in tokens (default 16)
  --prefix-cache-blocks N    prefix-cache capacity in blocks (default 4096)
  --log-requests             log lifecycle events to stderr
  --fleet FILE               start every server of a JSON array of SimOptions
  --ready-json               print {"ready":true,"servers":{...}} once all listen
`;

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${flag}: not a number: ${v}`);
  return n;
}

function optionsFromFlags(values: Record<string, string | boolean | string[] | undefined>): SimOptions {
  const s = (k: string): string | undefined => values[k] as string | undefined;
  const list = (k: string): string[] => (values[k] as string[] | undefined) ?? [];
  const models = [...list('model'), ...list('served-model-name')];
  const embedding = list('embedding-model');
  const latency: Record<string, number> = {};
  const put = (key: string, flag: string): void => {
    const v = num(s(flag), `--${flag}`);
    if (v !== undefined) latency[key] = v;
  };
  if (values.instant === true) Object.assign(latency, { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 1_000_000 });
  put('base_ttft_ms', 'base-ttft-ms');
  put('prefill_ms_per_token', 'prefill-ms-per-token');
  put('itl_ms', 'itl-ms');
  put('max_num_seqs', 'max-num-seqs');
  const o: SimOptions = { latency };
  const name = s('name');
  if (name !== undefined) o.name = name;
  const host = s('host');
  if (host !== undefined) o.host = host;
  const port = num(s('port'), '--port');
  if (port !== undefined) o.port = port;
  if (models.length > 0) o.models = models;
  if (embedding.length > 0) {
    o.embedding_models = embedding;
    if (models.length === 0) o.models = [];
  }
  const apiKey = s('api-key') ?? process.env.VLLM_API_KEY;
  if (apiKey !== undefined && apiKey !== '') o.api_key = apiKey;
  const cold = num(s('cold-start-ms'), '--cold-start-ms');
  if (cold !== undefined) o.cold_start_ms = cold;
  if (values.instant === true && cold === undefined) o.cold_start_ms = 0;
  const idle = num(s('idle-scale-down-ms'), '--idle-scale-down-ms');
  if (idle !== undefined) o.idle_scale_down_ms = idle;
  if (values['start-cold'] === true) o.start_cold = true;
  const mml = num(s('max-model-len'), '--max-model-len');
  if (mml !== undefined) o.max_model_len = mml;
  const bs = num(s('block-size'), '--block-size');
  if (bs !== undefined) o.prefix_block_tokens = bs;
  const pcb = num(s('prefix-cache-blocks'), '--prefix-cache-blocks');
  if (pcb !== undefined) o.prefix_cache_blocks = pcb;
  if (values['log-requests'] === true) o.log_requests = true;
  return o;
}

function readFleet(file: string, logRequests: boolean): SimOptions[] {
  const raw: unknown = JSON.parse(readFileSync(file, 'utf8'));
  const list = Array.isArray(raw) ? raw : (raw as { servers?: unknown }).servers;
  if (!Array.isArray(list) || list.length === 0) throw new Error(`${file}: expected a non-empty JSON array of sim options`);
  return list.map((entry, i) => {
    try {
      const o = entry as SimOptions;
      parseSimOptions(o); // validate early, with the entry's index in the message
      return logRequests ? { ...o, log_requests: true } : o;
    } catch (e) {
      throw new Error(`${file}[${i}]: ${(e as Error).message}`);
    }
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      name: { type: 'string' },
      model: { type: 'string', multiple: true },
      'served-model-name': { type: 'string', multiple: true },
      'embedding-model': { type: 'string', multiple: true },
      'api-key': { type: 'string' },
      'base-ttft-ms': { type: 'string' },
      'prefill-ms-per-token': { type: 'string' },
      'itl-ms': { type: 'string' },
      'max-num-seqs': { type: 'string' },
      instant: { type: 'boolean' },
      'cold-start-ms': { type: 'string' },
      'idle-scale-down-ms': { type: 'string' },
      'start-cold': { type: 'boolean' },
      'max-model-len': { type: 'string' },
      'block-size': { type: 'string' },
      'prefix-cache-blocks': { type: 'string' },
      'log-requests': { type: 'boolean' },
      fleet: { type: 'string' },
      'ready-json': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const specs = values.fleet !== undefined ? readFleet(values.fleet, values['log-requests'] === true) : [optionsFromFlags(values)];
  for (const s of specs) parseSimOptions(s);

  const servers: SimServer[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) process.exit(code);
    stopping = true;
    await Promise.allSettled(servers.map((s) => s.close()));
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    for (const spec of specs) {
      const s = await startSimServer(spec);
      servers.push(s);
      process.stdout.write(`sim ${s.name} listening on ${s.url}\n`);
    }
  } catch (e) {
    process.stderr.write(`sim: ${(e as Error).message}\n`);
    await stop(1);
    return;
  }
  if (values['ready-json']) {
    const map: Record<string, string> = {};
    for (const s of servers) map[s.name] = s.url;
    process.stdout.write(`${JSON.stringify({ ready: true, servers: map })}\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`sim: ${(e as Error).message ?? String(e)}\n${USAGE}`);
  process.exit(2);
});
