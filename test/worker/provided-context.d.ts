// What the global setups provide to the workerd tests (vitest's provide/inject):
// test/setup/sim-spawner.ts, test/setup/redis.ts and test/setup/upstash-vector.ts.
declare module 'vitest' {
  export interface ProvidedContext {
    simSpawner: string;
    /** The shared Upstash REST bridge in front of a real redis-server. */
    upstash: { url: string; token: string };
    /** Control server for bridges of a test's own (stop/start them mid-test). */
    upstashControl: string;
    /** Control server for Upstash Vector contract stand-ins (test/setup/upstash-vector.ts). */
    upstashVectorControl: string;
  }
}
export {};
