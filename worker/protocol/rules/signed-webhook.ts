// Signed webhooks (budget alerts, router alerts): HMAC-SHA256 over the timestamp and the raw body.
//
// Each delivery is a POST with a JSON body and these headers:
//   x-router-event:      the event type (budget.threshold_reached, router.alert)
//   x-router-delivery:   the delivery's id (the same on every retry: receivers can dedupe on it)
//   x-router-timestamp:  unix seconds of this attempt
//   x-router-signature:  sha256=<hex HMAC-SHA256 of `${timestamp}.${raw body}` with the secret>
//   x-router-attempt:    1 for the first try, then 2, 3, …
// A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares in constant
// time, and rejects timestamps too far from its clock (replays).

export const SIGNATURE_HEADER = 'x-router-signature';
export const TIMESTAMP_HEADER = 'x-router-timestamp';
export const DELIVERY_HEADER = 'x-router-delivery';
export const EVENT_HEADER = 'x-router-event';
export const ATTEMPT_HEADER = 'x-router-attempt';

const encoder = new TextEncoder();

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(message)));
  let hex = '';
  for (const b of mac) hex += b.toString(16).padStart(2, '0');
  return hex;
}

/** The x-router-signature value for a body sent at `timestamp` (unix seconds). */
export async function signWebhook(secret: string, timestamp: number, body: string): Promise<string> {
  return `sha256=${await hmacHex(secret, `${timestamp}.${body}`)}`;
}

/** Checks a delivery as a receiver would: signature over timestamp + body, and the timestamp within toleranceS of nowS. */
export async function verifyWebhook(
  secret: string,
  headers: { signature: string | null | undefined; timestamp: string | null | undefined },
  body: string,
  nowS: number = Math.floor(Date.now() / 1000),
  toleranceS = 300,
): Promise<boolean> {
  const ts = Number(headers.timestamp);
  if (!headers.signature || !Number.isInteger(ts) || Math.abs(nowS - ts) > toleranceS) return false;
  const expected = await signWebhook(secret, ts, body);
  if (expected.length !== headers.signature.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ headers.signature.charCodeAt(i);
  return diff === 0;
}

export interface SignedDelivery {
  url: string;
  event: string;
  /** Stable across retries. */
  deliveryId: string;
  body: string;
  /** The HMAC key itself (not its name); null sends the delivery unsigned. */
  secret: string | null;
  attempt: number;
  userAgent: string;
  timeoutMs: number;
}

/** One POST attempt; throws on a network error, a timeout or a non-2xx answer (callers retry). */
export async function sendSignedWebhook(d: SignedDelivery): Promise<void> {
  const ts = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': d.userAgent,
    [EVENT_HEADER]: d.event,
    [DELIVERY_HEADER]: d.deliveryId,
    [TIMESTAMP_HEADER]: String(ts),
    [ATTEMPT_HEADER]: String(d.attempt),
  };
  if (d.secret !== null) headers[SIGNATURE_HEADER] = await signWebhook(d.secret, ts, d.body);
  const res = await fetch(d.url, { method: 'POST', headers, body: d.body, signal: AbortSignal.timeout(d.timeoutMs) });
  await res.body?.cancel().catch(() => {});
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
}

/** Reads a secret by name from the env: null when unnamed; throws when named but unset (a delivery must not go out unsigned by accident). */
export function webhookSecret(env: Record<string, unknown>, name: string | null | undefined): string | null {
  if (!name) return null;
  const value = env[name];
  if (typeof value !== 'string' || value === '') throw new Error(`the secret ${name} is not set`);
  return value;
}
