// The Prefer header (RFC 7240) as the async requests read it: `respond-async` (always queue),
// `respond-async-on-overload` (queue only when every candidate is at capacity), and
// `webhook=<name>` (a target configured for the tenant in [async].webhooks). Other preferences are
// ignored, as RFC 7240 asks. README "Async requests".

export interface AsyncPreference {
  async: boolean;
  onOverload: boolean;
  webhook: string | null;
}

const MAX_PREFER = 1_024;

export function parsePrefer(header: string | undefined): AsyncPreference {
  const out: AsyncPreference = { async: false, onOverload: false, webhook: null };
  if (!header) return out;
  for (const part of header.slice(0, MAX_PREFER).split(/[,;]/)) {
    const [rawName, ...rest] = part.split('=');
    const name = rawName!.trim().toLowerCase();
    const value = rest.join('=').trim().replace(/^"(.*)"$/, '$1');
    if (name === 'respond-async') out.async = true;
    else if (name === 'respond-async-on-overload') out.onOverload = true;
    else if (name === 'webhook' && value) out.webhook = value;
  }
  return out;
}
