// The wire contract of KeyRegistry (durable-objects/key-registry.ts): the key records it hands
// to isolates (worker/auth/key-cache.ts) and the admin routes.

import type { KeyLimits } from '../config/limits';

/** A key as stored: never the key itself, only its SHA-256. */
export interface KeyRecord {
  id: string;
  tenant: string;
  name: string;
  key_prefix: string;
  created_at: string;
  revoked_at: string | null;
  /** The key's own rate limit (PUT /admin/keys/:id/limits), merged over its tenant's; only on lookups. */
  limits?: KeyLimits | null;
}

export interface CreatedKey extends KeyRecord {
  key: string;
}
