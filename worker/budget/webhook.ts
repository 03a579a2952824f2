// Budget alert webhooks (sent by durable-objects/tenant-quota.ts): signed and sent by the shared
// worker/http/signed-webhook.ts, which documents the headers and the signature.

export { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signWebhook, verifyWebhook } from '../http/signed-webhook';
export const ALERT_EVENT = 'budget.threshold_reached';
