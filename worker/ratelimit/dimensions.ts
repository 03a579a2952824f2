// Which buckets a request counts against: for each limited dimension (key, user, feature,
// tenant, global), one bucket per limited unit. User and feature buckets are per tenant (two
// tenants' "alice" are two users). Requests without a user are not counted per user; requests
// without x-router-feature count as feature "default", as budgets do.

import { sha256Hex } from '../protocol/rules/hash';
import { DEFAULT_FEATURE, FEATURE_HEADER } from '../budget/settings';
import { errors } from '../http/errors';
import type { LimitSpec, ResolvedLimits } from './settings';
import type { Bucket, Dimension, Unit } from './store';

/** Same rule as budgets' per-feature scopes. */
const FEATURE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** User ids used as they are in keys; others (long, odd characters) by their SHA-256. */
const PLAIN_USER_RE = /^[A-Za-z0-9._:@+-]{1,64}$/;

export interface RequestIdentity {
  tenantId: string;
  keyId: string;
  /** `user` from the body, else x-router-user; null when neither. */
  user: string | null;
  /** The x-router-feature header, if any. */
  feature: string | null | undefined;
}

/**
 * The request's buckets: requests (cost 1) and tokens (cost `tokens`, the reservation), for the
 * limits that apply. Throws 400 for a malformed x-router-feature when a feature limit applies.
 */
export async function bucketsFor(limits: ResolvedLimits, who: RequestIdentity, tokens: number): Promise<{ requests: Bucket[]; tokens: Bucket[] }> {
  const out = { requests: [] as Bucket[], tokens: [] as Bucket[] };
  const tenantShard = `tenant:${who.tenantId}`;
  const add = async (dimension: Dimension, spec: LimitSpec | undefined, subject: () => Promise<string | null> | string | null, shard: string) => {
    if (!spec) return;
    const s = await subject();
    if (s === null) return;
    for (const unit of ['requests', 'tokens'] as const) {
      const limit = spec[unit];
      if (limit === null) continue;
      out[unit].push({
        dimension,
        subject: s,
        unit,
        limit,
        windowMs: spec.windowS * 1_000,
        cost: unit === 'requests' ? 1 : Math.max(1, tokens),
        shard,
        key: bucketKey(unit, dimension, s, limit, spec.windowS),
      });
    }
  };
  await add('key', limits.key, () => who.keyId, tenantShard);
  await add('user', limits.user, async () => (who.user === null ? null : `${who.tenantId}/${await userId(who.user)}`), tenantShard);
  await add('feature', limits.feature, () => `${who.tenantId}/${feature(who.feature)}`, tenantShard);
  await add('tenant', limits.tenant, () => who.tenantId, tenantShard);
  await add('global', limits.global, () => 'global', 'global');
  return out;
}

/** A bucket's identity: the limit and window are part of it, so a changed limit starts a fresh, full bucket. */
const bucketKey = (unit: Unit, dimension: Dimension, subject: string, limit: number, windowS: number) => `${unit}:${dimension}:${subject}:${limit}:${windowS}`;

async function userId(user: string): Promise<string> {
  return PLAIN_USER_RE.test(user) ? user : `sha256.${(await sha256Hex(user)).slice(0, 32)}`;
}

function feature(header: string | null | undefined): string {
  const f = header ?? DEFAULT_FEATURE;
  if (!FEATURE_RE.test(f)) {
    throw errors.badRequest(`${FEATURE_HEADER} must be 1-64 letters, digits, ".", "_", ":" or "-", starting with a letter or digit.`, FEATURE_HEADER, 'invalid_header');
  }
  return f;
}
