import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import { main as rollout } from '../../scripts/rollout';
import { renderRollout } from '../../scripts/rollout/render';
import type { RolloutView } from '../../scripts/rollout/schemas';
import { withAdmin } from '../support/admin';
import { until } from '../support/until';

// `npm run rollout` against the local stack (simulators + the Worker in workerd), and its table on
// a rollout with every figure set.

describe('the status table', () => {
  it('shows step, share, both arms, each check with its limit, the verdict and the A/B result', () => {
    const arm = (requests: number, errorRate: number, p95: number) => ({ requests, errors: Math.round(requests * errorRate), error_rate: errorRate, p95_latency_ms: p95, p95_ttft_ms: 40, refusal_rate: 0.01, truncation_rate: 0, mean_output_tokens: 38.5, feedback: { count: 10, negative_rate: 0.1, positive_rate: 0.6, mean_score: 0.5 } });
    const r: RolloutView = {
      id: 'ro_1',
      deployment: 'support-bot',
      mode: 'canary',
      stable: 'v1',
      candidate: 'v2',
      state: 'running',
      step: 1,
      steps: [5, 25, 50, 100],
      share: 25,
      step_started_at: Date.UTC(2026, 0, 2, 3, 4, 5),
      started_at: Date.UTC(2026, 0, 2, 3, 0, 0),
      ended_at: null,
      reason: null,
      arms: { stable: arm(900, 0.01, 200), candidate: arm(300, 0.05, 260) },
      comparison: {
        verdict: 'rollback',
        reasons: ['error_rate 5.00% > limit 2.00%'],
        checks: [
          { signal: 'error_rate', stable: 0.01, candidate: 0.05, limit: 0.02, worse: true, significant: true, p_value: 0.001 },
          { signal: 'p95_latency', stable: 200, candidate: 260, limit: 240, worse: true, significant: true, p_value: 0.01 },
          { signal: 'refusal_rate', stable: 0.01, candidate: 0.01, limit: 0.0105, worse: false, significant: false, p_value: 0.5 },
        ],
      },
      ab: { metric: 'positive_feedback', test: 'sequential', alpha: 0.05, stable: { n: 400, value: 0.61 }, candidate: { n: 380, value: 0.66 }, diff: 0.05, ci: [0.01, 0.09], p_value: 0.0312, significant: true, winner: 'candidate' },
      next: { share: 50, wait_seconds: 120.2, requests_needed: 40 },
    };
    const text = renderRollout(r);
    expect(text).toContain('Rollout ro_1 of support-bot: canary v1 → v2, running');
    expect(text).toContain('step 2/4 of 5% → 25% → 50% → 100%, candidate share 25%, step started 2026-01-02T03:04:05.000Z');
    expect(text).toContain('next: 50% after 121 s more and 40 more candidate requests');
    expect(text).toMatch(/signal\s+stable \(v1\)\s+candidate \(v2\)\s+limit\s+check/);
    expect(text).toMatch(/requests\s+900\s+300\n/);
    expect(text).toMatch(/error rate\s+1\.00%\s+5\.00%\s+2\.00%\s+WORSE/);
    expect(text).toMatch(/p95 latency\s+200 ms\s+260 ms\s+240 ms\s+WORSE/);
    expect(text).toMatch(/refusal rate\s+1\.00%\s+1\.00%\s+1\.05%\s+ok/);
    expect(text).toMatch(/p95 TTFT\s+40 ms\s+40 ms\n/); // no check reported: no limit shown
    expect(text).toMatch(/negative feedback rate\s+10\.00%\s+10\.00%/);
    expect(text).toContain('verdict: rollback\n  - error_rate 5.00% > limit 2.00%');
    expect(text).toContain('A/B test: positive_feedback, sequential test, alpha 0.05');
    expect(text).toMatch(/candidate \(v2\)\s+380\s+0\.660/);
    expect(text).toContain('diff +0.050, CI [+0.010, +0.090], p-value 0.0312, significant, winner: candidate');
  });
});

describe('npm run rollout against the local stack', () => {
  let stack: Stack;
  const admin = (path: string, init: RequestInit = {}) => fetch(`${stack.routerUrl}${path}`, withAdmin(init, stack.adminToken));
  async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await rollout([...args, '--router', stack.routerUrl, '--admin-token', stack.adminToken, '--actor', 'ops-test'], (s) => out.push(s), (s) => err.push(s));
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  beforeAll(async () => {
    stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant' });
  }, 60_000);
  afterAll(() => stack?.close());

  it('refuses bad flags (exit 2) and prints the router’s refusal (exit 1)', async () => {
    expect((await run('start', '--deployment', 'support-bot')).err).toContain('--version is required');
    expect((await run('start', '--deployment', 'support-bot', '--version', 'v2', '--force')).code).toBe(2);
    expect((await run('start', '--deployment', 'support-bot', '--version', 'v2', '--steps', '50,25')).code).toBe(2);
    expect((await run('deploy', '--deployment', 'support-bot')).code).toBe(2);
    const refused = await run('start', '--deployment', 'support-bot', '--version', 'v2');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^✗ POST \/admin\/deployments\/support-bot\/rollouts: HTTP 409 gate_required: Version "v2" has no passing regression gate/);
    const unknown = await run('status', '--deployment', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('HTTP 404 deployment_not_found');
  });

  it('start → status shows the table with both arms as the API reports them → pause → rollback', async () => {
    const gate = await admin('/admin/deployments/support-bot/gates', { method: 'POST', body: JSON.stringify({ version: 'v2', passed: true, summary: { cases: 120, mean_similarity: 0.97 }, golden: 'test/golden/support-bot.jsonl' }) });
    expect(gate.status).toBe(201);

    const started = await run('start', '--deployment', 'support-bot', '--version', 'v2', '--steps', '25,50,100');
    expect(started.code, started.err).toBe(0);
    const id = /^started (\S+)/.exec(started.out)![1]!;
    expect(started.out).toContain(`Rollout ${id} of support-bot: canary v1 → v2, running`);
    expect(started.out).toContain('step 1/3 of 25% → 50% → 100%, candidate share 25%');

    // Traffic from 80 users: each sticks to one arm; about a quarter go to v2.
    for (let i = 0; i < 80; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, k) => {
          const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${stack.keys.demo}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'support-bot', user: `user-${i + k}`, messages: [{ role: 'user', content: 'Where is my order?' }] }),
          });
          expect(res.status).toBe(200);
          await res.arrayBuffer();
        }),
      );
    }
    type Arms = { arms: { stable: { requests: number; p95_latency_ms: number | null }; candidate: { requests: number } } };
    const view = await until(
      'both arms reported',
      async () => (await (await admin(`/admin/deployments/support-bot/rollouts/${id}`)).json()) as Arms,
      (v) => v.arms.stable.requests + v.arms.candidate.requests === 80,
      20_000,
      200,
    );
    expect(view.arms.candidate.requests).toBeGreaterThan(0);
    expect(view.arms.stable.requests).toBeGreaterThan(view.arms.candidate.requests);

    const status = await run('status', '--deployment', 'support-bot');
    expect(status.code, status.err).toBe(0);
    expect(status.out).toContain('support-bot: serving v1');
    expect(status.out).toMatch(new RegExp(`requests\\s+${view.arms.stable.requests}\\s+${view.arms.candidate.requests}\\n`));
    expect(status.out).toMatch(/p95 latency\s+\d+ ms\s+\d+ ms/);
    expect(status.out).toMatch(/verdict: (insufficient|healthy)/);
    expect(status.out).toMatch(/rollout_started\s+v2/);

    const json = await run('status', '--deployment', 'support-bot', '--id', id, '--json');
    expect((JSON.parse(json.out) as { id: string; state: string }).id).toBe(id);

    const paused = await run('pause', '--deployment', 'support-bot', '--id', id, '--reason', 'checking latency');
    expect(paused.code, paused.err).toBe(0);
    expect(paused.out).toContain(`pause: ${id} is now paused`);

    const back = await run('rollback', '--deployment', 'support-bot', '--reason', 'test over');
    expect(back.code, back.err).toBe(0);
    expect(back.out).toContain(`rollback: ${id} is now rolled_back`);
    const detail = (await (await admin('/admin/deployments/support-bot')).json()) as { serving: string; rollout: unknown; history: Array<{ actor: string; action: string; reason: string | null }> };
    expect(detail.serving).toBe('v1');
    expect(detail.rollout).toBeNull();
    expect(detail.history.filter((h) => h.actor === 'ops-test').map((h) => [h.action, h.reason])).toEqual(expect.arrayContaining([['rollout_paused', 'checking latency'], ['rolled_back', 'test over']]));

    const list = await run('list');
    expect(list.out).toMatch(/support-bot\s+v1\s+v1, v2\s+—/);
  }, 90_000);
});
