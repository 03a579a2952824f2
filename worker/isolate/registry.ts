// Every piece of module-level isolate state (the views of Durable Objects, the local backend
// memory) registers its reset here, so a test can start from a fresh isolate with one call.

const resets = new Map<string, () => void>();

/** Registers (or replaces) the reset of one piece of isolate state, under a unique name. */
export function registerIsolateState(name: string, reset: () => void): void {
  resets.set(name, reset);
}

/**
 * For tests: forget every registered view and memory (or only the named ones), as a fresh isolate
 * would. Work in flight lands nowhere. An unknown name throws, so a typo cannot pass silently.
 */
export function resetIsolate(...names: string[]): void {
  for (const name of names) if (!resets.has(name)) throw new Error(`resetIsolate: no isolate state named "${name}" (known: ${[...resets.keys()].join(', ')})`);
  for (const [name, reset] of resets) if (names.length === 0 || names.includes(name)) reset();
}

/** The registered names (for tests and debugging). */
export const isolateStateNames = (): string[] => [...resets.keys()];
