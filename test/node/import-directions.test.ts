// The layering between the Worker and its Durable Objects (README "Protocol layer"):
// - durable-objects/** imports only cloudflare:workers, worker/protocol/** and worker/config/**;
// - worker/protocol/** imports only itself, worker/config/** and packages (zod);
// - worker/config/** imports only itself and packages (the objects may import it);
// - worker/** imports durable-objects/** only from worker/index.ts (the classes wrangler needs)
//   and worker/env.ts (namespace and stub types).
// Read from the source tree: a broken rule fails naming the file and the import.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** Every module specifier of a file: static imports and re-exports (multi-line too) and import('…'). */
export function specifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|[;\n])\s*(?:import|export)\s[^;'"]*?from\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of code.matchAll(/(?:^|[;\n])\s*import\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

const under = (path: string, dir: string) => path === dir || path.startsWith(dir + '/');

/** The broken rules in a tree of files (path relative to the repository → source), one line each. */
export function violations(files: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [file, source] of files) {
    for (const spec of specifiers(source)) {
      const target = spec.startsWith('.') ? normalize(join(dirname(file), spec)).replace(/\\/g, '/').replace(/\.(ts|js)$/, '') : null;
      const bad = (rule: string) => found.push(`${file}: '${spec}' (${rule})`);
      if (under(file, 'durable-objects')) {
        if (target === null) {
          if (spec !== 'cloudflare:workers') bad('a Durable Object imports only cloudflare:workers among packages');
        } else if (!under(target, 'durable-objects') && !under(target, 'worker/protocol') && !under(target, 'worker/config')) {
          bad('a Durable Object imports only worker/protocol/ and worker/config/');
        }
      } else if (under(file, 'worker/protocol')) {
        if (target !== null && !under(target, 'worker/protocol') && !under(target, 'worker/config')) bad('worker/protocol/ imports only itself and worker/config/');
      } else if (under(file, 'worker/config')) {
        if (target !== null && !under(target, 'worker/config')) bad('worker/config/ imports only itself');
      } else if (under(file, 'worker')) {
        if (target !== null && under(target, 'durable-objects') && file !== 'worker/index.ts' && file !== 'worker/env.ts') {
          bad('worker/ takes Durable Object classes from worker/env.ts and wire types from worker/protocol/');
        }
      }
    }
  }
  return found;
}

function sourceTree(): Map<string, string> {
  const files = new Map<string, string>();
  for (const top of ['worker', 'durable-objects']) {
    for (const entry of readdirSync(join(ROOT, top), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
      const path = join(entry.parentPath, entry.name);
      files.set(relative(ROOT, path).replace(/\\/g, '/'), readFileSync(path, 'utf8'));
    }
  }
  return files;
}

describe('import directions between the Worker and its Durable Objects', () => {
  it('the source tree keeps them', () => {
    const tree = sourceTree();
    // Not vacuous: the objects are found and their imports are read.
    expect(tree.size).toBeGreaterThan(100);
    expect(specifiers(tree.get('durable-objects/circuit-breaker.ts')!)).toContain('../worker/protocol/breaker');
    expect(specifiers(tree.get('worker/index.ts')!)).toContain('../durable-objects/tenant-quota');
    expect(violations(tree)).toEqual([]);
  });

  it('names each offending import', () => {
    const tree = new Map([
      ['durable-objects/x.ts', "import { DurableObject } from 'cloudflare:workers';\nimport {\n  adapterFor,\n} from '../worker/backends/index';\nimport { z } from 'zod';\n"],
      ['durable-objects/y.ts', "import type { A } from '../worker/protocol/a';\nimport { s } from '../worker/config/schema';\n"],
      ['worker/protocol/a.ts', "export type { B } from '../telemetry/b';\n"],
      ['worker/config/c.ts', "import type { D } from '../protocol/d';\n"],
      ['worker/routing/view.ts', "type S = DurableObjectStub<import('../../durable-objects/x').X>;\n// import { Y } from '../../durable-objects/y';\n"],
      ['worker/env.ts', "import type { X } from '../durable-objects/x';\n"],
    ]);
    expect(violations(tree)).toEqual([
      "durable-objects/x.ts: '../worker/backends/index' (a Durable Object imports only worker/protocol/ and worker/config/)",
      "durable-objects/x.ts: 'zod' (a Durable Object imports only cloudflare:workers among packages)",
      "worker/protocol/a.ts: '../telemetry/b' (worker/protocol/ imports only itself and worker/config/)",
      "worker/config/c.ts: '../protocol/d' (worker/config/ imports only itself)",
      "worker/routing/view.ts: '../../durable-objects/x' (worker/ takes Durable Object classes from worker/env.ts and wire types from worker/protocol/)",
    ]);
  });
});
