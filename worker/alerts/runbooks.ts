// The runbooks (docs/runbooks/<slug>.md) and which one answers each alert. Every alert webhook
// carries `runbook_url` ([alerts].runbook_base_url + "/<slug>.md"); the dashboard links them too.

export const RUNBOOKS = {
  'backend-down': 'Backend down or flapping',
  'region-outage': 'Region outage',
  'budget-exhausted': 'Budget exhausted',
  'cost-spike': 'Cost spike',
  'error-rate': 'Error-rate alert',
  'ttft-slo': 'TTFT / latency SLO alert',
  'cold-start-storm': 'Cold-start storm',
  'upstash-outage': 'Upstash outage',
  'key-leak': 'Key leak (usage spike on one key)',
  'quality-drift': 'Quality drift (refusals, truncations, output length, negative feedback)',
  'queue-backlog': 'Batch queue backlog',
} as const;

export type RunbookSlug = keyof typeof RUNBOOKS;

/** The runbook for an alert id of worker/alerts/detectors.ts (`kind` or `kind:<key>`). */
export function runbookForAlert(alertId: string): RunbookSlug {
  const kind = alertId.split(':')[0];
  switch (kind) {
    case 'key_tokens_spike':
    case 'key_requests_spike':
      return 'key-leak';
    case 'cost_without_traffic':
    case 'slo_cost_per_request':
      return 'cost-spike';
    case 'quality_drift':
      return 'quality-drift';
    case 'slo_p95_ttft':
    case 'slo_p95_latency':
      return 'ttft-slo';
    case 'queue_backlog':
      return 'queue-backlog';
    case 'error_rate':
    case 'slo_availability':
    default:
      return 'error-rate';
  }
}

export function runbookUrl(base: string, slug: RunbookSlug): string {
  return `${base.replace(/\/+$/, '')}/${slug}.md`;
}
