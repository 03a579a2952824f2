/**
 * docs/runbooks/: one page per runbook the router links (worker/alerts/runbooks.ts), each with its
 * four parts, and every admin API call on them (`$R/...` in a command, or `METHOD /admin/...` in
 * the text) naming a route the router has (worker/app.ts and worker/routes/*.ts, read as source).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUNBOOKS } from '../../worker/alerts/runbooks';

const ROOT = join(import.meta.dirname, '../..');
const DIR = join(ROOT, 'docs/runbooks');

type Route = { method: string; re: RegExp; path: string };

/** The router's routes, from `app.route(prefix, module)` and each module's `.get('/x', …)`. */
function routerRoutes(): Route[] {
  const app = readFileSync(join(ROOT, 'worker/app.ts'), 'utf8');
  const fileOf = new Map<string, string>();
  for (const m of app.matchAll(/import \{ ([^}]+) \} from '\.\/routes\/([\w-]+)'/g)) for (const name of m[1]!.split(',')) fileOf.set(name.trim(), m[2]!);
  const routes: Route[] = [];
  const add = (method: string, path: string) => {
    const clean = path.replace(/\/$/, '') || '/';
    routes.push({ method, path: clean, re: new RegExp(`^${clean.replace(/:[a-z_]+/g, '[^/]+')}/?$`) });
  };
  for (const m of app.matchAll(/app\.(get|post|put|delete)\('([^']+)'/g)) add(m[1]!.toUpperCase(), m[2]!);
  for (const m of app.matchAll(/app\.route\('([^']+)', (\w+)\)/g)) {
    const file = fileOf.get(m[2]!);
    if (!file) continue;
    const src = readFileSync(join(ROOT, 'worker/routes', `${file}.ts`), 'utf8');
    for (const r of src.matchAll(new RegExp(`${m[2]}\\.(get|post|put|delete)\\('([^']*)'`, 'g'))) add(r[1]!.toUpperCase(), m[1]! + (r[2] === '/' ? '' : r[2]!));
  }
  return routes;
}

/** Admin API calls on a page: `curl … [-X M] … $R/path`, and `M /admin/path` in the text. */
function calls(text: string): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  for (const line of text.split('\n')) {
    for (const m of line.matchAll(/\$R(\/[^\s"'`)]*)/g)) {
      const before = line.slice(0, m.index);
      const method = /-X (GET|POST|PUT|DELETE)\b(?!.*curl)/.exec(before)?.[1] ?? /\b(GET|POST|PUT|DELETE) $/.exec(before.replace(/`/g, ''))?.[1] ?? 'GET';
      if (m[1] !== '/...') out.push({ method, path: m[1]!.split('?')[0]!.replace(/<[^>]+>/g, 'x') });
    }
    for (const m of line.matchAll(/\b(GET|POST|PUT|DELETE)((?:\|(?:GET|POST|PUT|DELETE))*) (\/admin\/[^\s`)]*)/g)) {
      for (const method of [m[1]!, ...m[2]!.split('|').filter(Boolean)]) out.push({ method, path: m[3]!.split('?')[0]!.replace(/\[\/:[a-z]+\]/, '') });
    }
  }
  return out;
}

describe('runbooks', () => {
  const routes = routerRoutes();

  it('reads the routes it checks against', () => {
    expect(routes.some((r) => r.method === 'POST' && r.path === '/admin/breakers/:backend/reset')).toBe(true);
    expect(routes.some((r) => r.method === 'GET' && r.path === '/admin/alerts')).toBe(true);
  });

  it('has a page for every runbook the router links, each with its four parts', () => {
    const files = readdirSync(DIR);
    for (const slug of Object.keys(RUNBOOKS)) {
      expect(files).toContain(`${slug}.md`);
      const text = readFileSync(join(DIR, `${slug}.md`), 'utf8');
      for (const h of ['## How it shows', '## What to check', '## What to do', '## How to confirm']) expect(text, `${slug}.md: ${h}`).toContain(h);
    }
  });

  it('every admin API call on the pages is a route the router serves', () => {
    let checked = 0;
    for (const file of readdirSync(DIR).filter((f) => f.endsWith('.md'))) {
      for (const c of calls(readFileSync(join(DIR, file), 'utf8'))) {
        const ok = routes.some((r) => r.method === c.method && r.re.test(c.path.replace(/\/:[a-z_]+/g, '/x')));
        expect(ok, `${file}: ${c.method} ${c.path} is not a route of worker/app.ts`).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('would catch a command naming a route that does not exist', () => {
    const bad = calls('curl -s -X POST -H "$A" $R/admin/breakers/x/open');
    expect(bad).toEqual([{ method: 'POST', path: '/admin/breakers/x/open' }]);
    expect(routes.some((r) => r.method === 'POST' && r.re.test(bad[0]!.path))).toBe(false);
  });
});
