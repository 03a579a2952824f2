/** The rollout script's printed views: one rollout in detail, and the list of deployments. */
import { renderTable } from '../regress/table';
import type { ArmView, DeploymentView, RolloutView } from './schemas';

type Fmt = (v: number) => string;
const rate: Fmt = (v) => `${(v * 100).toFixed(2)}%`;
const ms: Fmt = (v) => `${Math.round(v)} ms`;
const count: Fmt = (v) => String(Math.round(v));
const dec: Fmt = (v) => v.toFixed(3);
const show = (v: number | null | undefined, f: Fmt) => (v === null || v === undefined || !Number.isFinite(v) ? '—' : f(v));
const signed = (v: number | null | undefined, f: Fmt) => (v === null || v === undefined ? '—' : `${v >= 0 ? '+' : ''}${f(v)}`);
export const when = (t: string | number | null | undefined) => (t === null || t === undefined ? '—' : new Date(typeof t === 'number' && t < 1e12 ? t * 1000 : t).toISOString());

/** Every signal of an ArmSummary, in the order of the rollback checks (`check` = the Comparison's signal name). */
const SIGNALS: Array<{ label: string; check?: string; pick: (a: ArmView) => number | null | undefined; f: Fmt }> = [
  { label: 'requests', pick: (a) => a.requests, f: count },
  { label: 'errors', pick: (a) => a.errors, f: count },
  { label: 'error rate', check: 'error_rate', pick: (a) => a.error_rate, f: rate },
  { label: 'p95 latency', check: 'p95_latency', pick: (a) => a.p95_latency_ms, f: ms },
  { label: 'p95 TTFT', check: 'p95_ttft', pick: (a) => a.p95_ttft_ms, f: ms },
  { label: 'refusal rate', check: 'refusal_rate', pick: (a) => a.refusal_rate, f: rate },
  { label: 'truncation rate', check: 'truncation_rate', pick: (a) => a.truncation_rate, f: rate },
  { label: 'mean output tokens', check: 'mean_output_tokens', pick: (a) => a.mean_output_tokens, f: dec },
  { label: 'negative feedback rate', check: 'negative_feedback_rate', pick: (a) => a.feedback?.negative_rate, f: rate },
  { label: 'positive feedback rate', pick: (a) => a.feedback?.positive_rate, f: rate },
  { label: 'feedback count', pick: (a) => a.feedback?.count, f: count },
];

export function renderRollout(r: RolloutView): string {
  const out: string[] = [];
  out.push(`Rollout ${r.id} of ${r.deployment}: ${r.mode} ${r.stable} → ${r.candidate}, ${r.state}`);
  // `step` is an index into `steps` (canary); A/B tests and blue-green switches have no steps.
  const steps = r.steps?.length ? r.steps : null;
  const stepNo = r.step ?? null;
  out.push(
    [
      stepNo === null || steps === null || r.mode !== 'canary' ? null : `step ${stepNo + 1}/${steps.length} of ${steps.map((s) => `${s}%`).join(' → ')}`,
      `candidate share ${show(r.share, (v) => `${v}%`)}`,
      `step started ${when(r.step_started_at)}`,
    ]
      .filter(Boolean)
      .join(', '),
  );
  out.push(`started ${when(r.started_at)}${r.ended_at ? `, ended ${when(r.ended_at)}` : ''}${r.reason ? `; reason: ${r.reason}` : ''}`);
  if (r.next && r.state === 'running') out.push(`next: ${r.next.share}% after ${Math.ceil(r.next.wait_seconds)} s more and ${r.next.requests_needed} more candidate requests (and a healthy comparison)`);
  out.push('');

  const checks = new Map((r.comparison?.checks ?? []).map((c) => [c.signal, c]));
  const arms = r.arms ?? { stable: {}, candidate: {} };
  const rows = SIGNALS.map((s) => {
    const c = s.check ? checks.get(s.check) : undefined;
    return [s.label, show(s.pick(arms.stable), s.f), show(s.pick(arms.candidate), s.f), c ? show(c.limit, s.f) : '', c ? (c.worse ? 'WORSE' : 'ok') : ''];
  });
  out.push(renderTable(['signal', `stable (${r.stable})`, `candidate (${r.candidate})`, 'limit', 'check'], rows, { right: [1, 2, 3] }));
  out.push('');
  if (r.comparison) {
    out.push(`verdict: ${r.comparison.verdict}`);
    for (const reason of r.comparison.reasons) out.push(`  - ${reason}`);
  } else out.push('verdict: — (no comparison yet)');

  if (r.ab) {
    const ab = r.ab;
    out.push('');
    out.push(`A/B test: ${ab.metric}${ab.test ? `, ${ab.test} test` : ''}${ab.alpha !== null && ab.alpha !== undefined ? `, alpha ${ab.alpha}` : ''}`);
    out.push(
      renderTable(
        ['arm', 'n', 'value'],
        [
          [`stable (${r.stable})`, String(ab.stable.n), show(ab.stable.value, dec)],
          [`candidate (${r.candidate})`, String(ab.candidate.n), show(ab.candidate.value, dec)],
        ],
        { right: [1, 2] },
      ),
    );
    out.push(
      `diff ${signed(ab.diff, dec)}, CI ${ab.ci ? `[${signed(ab.ci[0], dec)}, ${signed(ab.ci[1], dec)}]` : '—'}, p-value ${show(ab.p_value, (v) => v.toPrecision(3))}, ${ab.significant ? 'significant' : 'not significant'}, winner: ${ab.winner ?? 'none yet'}`,
    );
  }
  return out.join('\n');
}

export function renderList(deployments: Array<Pick<DeploymentView, 'name' | 'serving'> & { versions?: string[]; rollout?: RolloutView | null }>): string {
  if (deployments.length === 0) return 'No deployment configured.';
  return renderTable(
    ['deployment', 'serving', 'versions', 'rollout', 'mode', 'candidate', 'state', 'share'],
    deployments.map((d) => [d.name, d.serving, (d.versions ?? []).join(', '), d.rollout?.id ?? '—', d.rollout?.mode ?? '', d.rollout?.candidate ?? '', d.rollout?.state ?? '', d.rollout ? show(d.rollout.share, (v) => `${v}%`) : '']),
  );
}

export function renderHistory(d: DeploymentView, last = 10): string {
  const h = (d.history ?? []).slice(-last);
  if (h.length === 0) return '';
  return `History (last ${h.length}):\n${renderTable(
    ['at', 'actor', 'action', 'version', 'reason'],
    h.map((e) => [when(e.at), e.actor ?? '', e.action, e.version ?? '', e.reason ?? '']),
  )}`;
}
