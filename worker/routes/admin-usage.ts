import { Hono } from 'hono';
import { z } from 'zod';
import { GROUP_COLUMNS, type GroupColumn, type LedgerGroup } from '../protocol/ledger';
import type { AppEnv } from '../env';
import { errors } from '../http/errors';
import { ledgerName } from '../telemetry/record';
import { DAY_MS, HOUR_MS, mergeGroups, METRIC_COLUMNS, toCsv } from '../telemetry/usage-report';

/**
 * GET /admin/usage?group_by=tenant,model&from=&to=&granularity=hour|day&format=json|csv[&tenant=]
 * Usage and cost from the ledgers (one per tenant): one row per group (and time bucket). Without
 * `tenant`, every tenant of the config is read (one call each, in parallel) and the groups merged.
 */
export const adminUsage = new Hono<AppEnv>();

/** ISO 8601, or epoch seconds (up to 11 digits) or milliseconds. */
const instant = z
  .string()
  .trim()
  .min(1)
  .transform((s, ctx) => {
    const n = /^\d+$/.test(s) ? Number(s) : Number.NaN;
    const ms = Number.isFinite(n) ? (n < 1e11 ? n * 1000 : n) : /^\d{4}-\d{2}-\d{2}/.test(s) ? Date.parse(s) : Number.NaN;
    if (!Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 time (2026-05-01T00:00:00Z) or epoch seconds / milliseconds' });
      return z.NEVER;
    }
    return ms;
  });

const groupBy = z
  .string()
  .transform((s) => [...new Set(s.split(',').map((x) => x.trim()).filter(Boolean))])
  .pipe(z.array(z.enum(GROUP_COLUMNS, { error: `must be a comma-separated list of ${GROUP_COLUMNS.join(', ')}` })));

export const usageQuerySchema = z
  .strictObject({
    group_by: groupBy.optional(),
    from: instant.optional(),
    to: instant.optional(),
    granularity: z.enum(['hour', 'day']).optional(),
    format: z.enum(['json', 'csv']).default('json'),
    tenant: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/).optional(),
  })
  .transform((q) => {
    const to = q.to ?? Date.now();
    return { ...q, group_by: (q.group_by ?? []) as GroupColumn[], to, from: q.from ?? to - DAY_MS };
  })
  .refine((q) => q.from < q.to, { message: 'from must be before to', path: ['from'] });

adminUsage.get('/', async (c) => {
  const parsed = usageQuerySchema.safeParse(c.req.query());
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.length ? String(issue.path[0]) : null;
    throw errors.badRequest(`Invalid query${param ? ` parameter ${param}` : ''}: ${issue.message}`, param, 'invalid_value');
  }
  const q = parsed.data;
  const ns = c.env.USAGE_LEDGER;
  const tenants = q.tenant ? [q.tenant] : Object.keys(c.get('config').raw.tenants);
  const bucketMs = q.granularity === 'hour' ? HOUR_MS : q.granularity === 'day' ? DAY_MS : null;
  let groups: LedgerGroup[];
  try {
    const parts = await Promise.all(tenants.map((t) => ns.get(ns.idFromName(ledgerName(t))).report({ from: q.from, to: q.to, groupBy: q.group_by, bucketMs })));
    groups = parts.flat() as LedgerGroup[];
  } catch (e) {
    console.error(JSON.stringify({ msg: 'usage report failed', error: String(e) }));
    throw errors.unavailable('The usage ledger could not be read; try again.', 'usage_unavailable');
  }
  const rows = mergeGroups(groups, q.group_by, bucketMs !== null);
  if (q.format === 'csv') {
    const columns = [...(bucketMs !== null ? ['bucket'] : []), ...q.group_by, ...METRIC_COLUMNS];
    return c.body(toCsv(rows, columns), 200, { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': 'attachment; filename="usage.csv"' });
  }
  return c.json({ from: new Date(q.from).toISOString(), to: new Date(q.to).toISOString(), rows });
});
