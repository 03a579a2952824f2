// What the global setups provide to the workerd tests (vitest's provide/inject):
// test/setup/sim-spawner.ts and test/setup/redis.ts.
declare module 'vitest' {
  export interface ProvidedContext {
    simSpawner: string;
    /** The shared Upstash REST bridge in front of a real redis-server. */
    upstash: { url: string; token: string };
    /** Control server for bridges of a test's own (stop/start them mid-test). */
    upstashControl: string;
  }
}
export {};
