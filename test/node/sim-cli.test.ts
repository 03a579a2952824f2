/**
 * The CLI (regional/sim/main.ts): single server from flags, a fleet from JSON with the
 * ready line a launcher parses, clean exit on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function run(args: string[]): { child: ChildProcess; lines: string[]; next: (pred: (l: string) => boolean) => Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'regional/sim/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: string[] = [];
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) {
      if (w.pred(l)) w.resolve(l);
      else waiters.push(w);
    }
  });
  const next = (pred: (l: string) => boolean) =>
    new Promise<string>((res, rej) => {
      const found = lines.find(pred);
      if (found) return res(found);
      waiters.push({ pred, resolve: res });
      child.once('exit', (code) => rej(new Error(`exited ${code}: ${stderr}`)));
      setTimeout(() => rej(new Error(`timeout; stdout=${lines.join('\n')} stderr=${stderr}`)), 15_000);
    });
  return { child, lines, next };
}

const exitOf = (c: ChildProcess) => new Promise<number | null>((r) => c.once('exit', (code) => r(code)));

describe('sim CLI', () => {
  it('--fleet starts every server, prints one line each and the ready JSON; SIGTERM exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-cli-'));
    dirs.push(dir);
    const file = join(dir, 'fleet.json');
    writeFileSync(
      file,
      JSON.stringify([
        { name: 'small', host: '127.0.0.1', port: 0, models: ['a'], latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 8 } },
        { name: 'large', port: 0, models: ['b'], embedding_models: ['emb'], api_key: 'k', cold_start_ms: 0, idle_scale_down_ms: 0 },
      ]),
    );
    const { child, lines, next } = run(['--fleet', file, '--ready-json']);
    const ready = JSON.parse(await next((l) => l.startsWith('{')));
    expect(ready.ready).toBe(true);
    expect(Object.keys(ready.servers)).toEqual(['small', 'large']);
    expect(lines.filter((l) => l.startsWith('sim '))).toEqual([
      `sim small listening on ${ready.servers.small}`,
      `sim large listening on ${ready.servers.large}`,
    ]);
    const r = await fetch(`${ready.servers.small}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    });
    expect(r.status).toBe(200);
    expect((await fetch(`${ready.servers.large}/v1/models`)).status).toBe(401);
    const exited = exitOf(child);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('single server from flags', async () => {
    const { child, next } = run(['--port', '0', '--model', 'x', '--model', 'y', '--instant', '--name', 'solo']);
    const line = await next((l) => l.startsWith('sim solo listening on '));
    const url = line.slice('sim solo listening on '.length);
    const models = (await (await fetch(`${url}/v1/models`)).json()) as any;
    expect(models.data.map((m: any) => m.id)).toEqual(['x', 'y']);
    expect(await (await fetch(`${url}/sim/config`)).json()).toMatchObject({ base_ttft_ms: 0, itl_ms: 0, prefill_ms_per_token: 0 });
    const exited = exitOf(child);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });

  it('bad options exit non-zero with a message', async () => {
    const { child } = run(['--max-num-seqs', '0']);
    expect(await exitOf(child)).not.toBe(0);
  });
});
