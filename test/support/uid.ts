/** A short random tag for names a test owns (tenants, backends, keys), so tests sharing storage never collide. Runs in workerd and Node. */
export const uid = (): string => crypto.randomUUID().slice(0, 8);
