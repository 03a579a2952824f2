// Budget alert webhooks: HMAC-SHA256 signatures (sent by durable-objects/tenant-quota.ts).
//
// Each delivery is a POST with a JSON body and these headers:
//   x-router-event:      budget.threshold_reached
//   x-router-delivery:   the alert's id (the same on every retry: receivers can dedupe on it)
//   x-router-timestamp:  unix seconds of this attempt
//   x-router-signature:  sha256=<hex HMAC-SHA256 of `${timestamp}.${raw body}` with the secret>
// A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares in constant
// time, and rejects timestamps too far from its clock (replays).

export const SIGNATURE_HEADER = 'x-router-signature';
export const TIMESTAMP_HEADER = 'x-router-timestamp';
export const DELIVERY_HEADER = 'x-router-delivery';
export const EVENT_HEADER = 'x-router-event';
export const ALERT_EVENT = 'budget.threshold_reached';

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
