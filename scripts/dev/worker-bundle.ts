/**
 * Bundles the Worker the way wrangler would (ESM, workerd conditions, `cloudflare:*` left to
 * the runtime), so Miniflare can run it without wrangler's dev proxy in front.
 */
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { DEV_DIR, ROOT } from './paths';

export async function bundleWorker(entry: string, define: Record<string, string> = {}, opts: { outName?: string; external?: string[] } = {}): Promise<string> {
  const outDir = join(DEV_DIR, 'build');
  const outName = opts.outName ?? 'worker.js';
  const outFile = join(outDir, outName);
  const result = await build({
    entryPoints: [resolve(ROOT, entry)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    target: 'es2022',
    external: ['cloudflare:*', ...(opts.external ?? [])],
    sourcemap: 'linked',
    outfile: outFile,
    define,
    write: false,
    logLevel: 'silent',
  });
  mkdirSync(outDir, { recursive: true });
  // Write-then-rename: stacks started in parallel (test files) never read a half-written bundle.
  const tag = `${process.pid}-${Math.random().toString(36).slice(2)}`;
  for (const file of result.outputFiles) {
    const tmp = `${file.path}.${tag}.tmp`;
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
  if (!result.outputFiles.some((f) => basename(f.path) === outName)) throw new Error(`esbuild produced no ${outName}`);
  return outFile;
}
