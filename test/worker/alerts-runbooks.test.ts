import { env as testEnv } from 'cloudflare:test';
import { describe, expect, inject, it } from 'vitest';
import { lookbackMs } from '../../worker/alerts/detectors';
import { runbookForAlert } from '../../worker/alerts/runbooks';
import { alertsSchema } from '../../worker/config/alerts';
import { runAlerts } from '../../worker/alerts/scheduled';
import { tenantBudget } from '../../worker/budget/settings';
import { compileConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { LATENCY_BUCKETS_MS, type MinuteBucket } from '../../worker/protocol/rules/minute-series';
import { ADMIN_TOKEN, baseConfig, call, envWith } from './support';

// Every alert the router sends names its runbook (docs/runbooks/, [alerts].runbook_base_url):
// the scheduled alerts' webhooks, the budget alerts' webhooks, and GET /admin/alerts.

const base = testEnv as unknown as Env;
const MIN = 60_000;
const LOOKBACK = lookbackMs(alertsSchema.parse({}));

async function spawnWebhook() {
  const res = await fetch(`${inject('simSpawner')}/spawn-webhook`, { method: 'POST', body: '{}' });
  const { url } = (await res.json()) as { url: string };
  return { url, calls: async () => (await (await fetch(`${url}/calls`)).json()) as { body: string; status: number }[] };
}

/** The last 10 complete minutes, 100 requests each, 5 failed: the error-rate detector fires. */
function failingMinutes(now: number): MinuteBucket[] {
  const end = Math.floor(now / MIN) * MIN;
  const empty = () => new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  return Array.from({ length: 10 }, (_, i) => ({
    minute: end - (10 - i) * MIN,
    tenant: 'acme',
    key_id: 'key_a',
    model: 'm',
    requests: 100,
    errors: 5,
    prompt_tokens: 1_000,
    completion_tokens: 1_000,
    cost_usd: 0.01,
    ttft_ms_buckets: empty(),
    latency_ms_buckets: empty(),
  }));
}

function alertEnv(hookUrl: string, alerts: Record<string, unknown>) {
  const suffix = crypto.randomUUID();
  const real = base.ALERTS;
  const ALERTS = { idFromName: (n: string) => real.idFromName(`${n}:${suffix}`), get: (id: DurableObjectId) => real.get(id) } as unknown as Env['ALERTS'];
  const METRICS = { idFromName: (n: string) => n, get: () => ({ minutes: async (since: number) => failingMinutes(since + LOOKBACK), qualityMinutes: async () => [] }) } as unknown as Env['METRICS'];
  const cfg = baseConfig();
  cfg.slo = { availability: 0.5 };
  cfg.alerts = { webhooks: [{ url: hookUrl }], ...alerts };
  return { ...envWith(cfg), ALERTS, METRICS } as Env;
}

describe('runbook links', () => {
  it('maps every detector alert to a runbook', () => {
    expect(runbookForAlert('error_rate')).toBe('error-rate');
    expect(runbookForAlert('slo_availability')).toBe('error-rate');
    expect(runbookForAlert('slo_p95_ttft')).toBe('ttft-slo');
    expect(runbookForAlert('slo_p95_latency')).toBe('ttft-slo');
    expect(runbookForAlert('cost_without_traffic')).toBe('cost-spike');
    expect(runbookForAlert('slo_cost_per_request')).toBe('cost-spike');
    expect(runbookForAlert('key_tokens_spike:key_abc')).toBe('key-leak');
    expect(runbookForAlert('key_requests_spike:key_abc')).toBe('key-leak');
  });

  it('alert webhooks carry runbook_url: the repository path by default, under a configured base otherwise; /admin/alerts lists it', async () => {
    const hook = await spawnWebhook();
    const now = Math.floor(Date.now() / MIN) * MIN;
    const byDefault = alertEnv(hook.url, { resolve_after_runs: 1 });
    expect(await runAlerts(byDefault, now)).toMatchObject({ fired: ['error_rate'], delivered: 1 });
    const first = JSON.parse((await hook.calls())[0]!.body);
    expect(first).toMatchObject({ type: 'router.alert', status: 'firing', alert: { id: 'error_rate' }, runbook_url: 'docs/runbooks/error-rate.md' });

    const configured = alertEnv(hook.url, { runbook_base_url: 'https://git.example.com/ops/edge-router/blob/main/docs/runbooks/' });
    expect(await runAlerts(configured, now)).toMatchObject({ fired: ['error_rate'], delivered: 1 });
    const second = JSON.parse((await hook.calls())[1]!.body);
    expect(second.runbook_url).toBe('https://git.example.com/ops/edge-router/blob/main/docs/runbooks/error-rate.md');

    const res = await call('/admin/alerts', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, env: configured });
    expect(res.status).toBe(200);
    const list = (await res.json()) as { data: { id: string; runbook_url: string }[]; runbooks: { slug: string; url: string }[] };
    expect(list.data).toEqual([expect.objectContaining({ id: 'error_rate', runbook_url: 'https://git.example.com/ops/edge-router/blob/main/docs/runbooks/error-rate.md' })]);
    expect(list.runbooks.map((r) => r.slug)).toContain('budget-exhausted');
    expect((await call('/admin/alerts', { env: configured })).status).toBe(401);
  });

  it('rejects a runbook base that is neither a URL nor a path', () => {
    const cfg = baseConfig();
    cfg.alerts = { runbook_base_url: 'javascript:alert(1) ' };
    const r = compileConfig(cfg);
    expect(r.ok).toBe(false);
  });

  it('budget alert webhooks carry the budget runbook', async () => {
    const hook = await spawnWebhook();
    const r = compileConfig({
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'm' }],
      backends: [{ id: 'x', kind: 'vllm', region: 'here', url: 'http://127.0.0.1:9', models: ['m'] }],
      tenants: { t: { budget: { monthly_tokens: 1_000, alert_webhook_url: hook.url } } },
      budgets: { alert_thresholds: [0.5] },
      alerts: { runbook_base_url: 'https://runbooks.example.com/edge' },
    });
    if (!r.ok) throw new Error(r.errors.join('; '));
    const settings = tenantBudget(r.config, 't')!.settings;
    const tenant = `rb-${crypto.randomUUID().slice(0, 8)}`;
    const stub = base.QUOTAS.get(base.QUOTAS.idFromName(tenant));
    await stub.sync({ scope: { tenant, feature: null }, settings, lease: 'a', create: true, now: Date.now(), debits: [{ id: 'u1', tokens: 600, nano: 0 }] });
    let calls: { body: string; status: number }[] = [];
    for (let i = 0; i < 100 && calls.length === 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
      calls = await hook.calls();
    }
    expect(JSON.parse(calls[0]!.body)).toMatchObject({ type: 'budget.threshold_reached', threshold: 0.5, runbook_url: 'https://runbooks.example.com/edge/budget-exhausted.md' });
  });
});
