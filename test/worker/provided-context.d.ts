// What test/setup/sim-spawner.ts provides to the workerd tests (vitest's provide/inject).
declare module 'vitest' {
  export interface ProvidedContext {
    simSpawner: string;
  }
}
export {};
