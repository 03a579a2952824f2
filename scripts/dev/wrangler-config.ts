import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from 'wrangler';
import { compileConfig } from '../../worker/config/compiled';
import type { RouterConfigInput } from '../../worker/config/schema';

/**
 * wrangler.toml as wrangler itself reads it (name, vars incl. ROUTER, DO bindings, compat
 * date/flags), plus the ROUTER var checked with the Worker's own schema so a bad config fails
 * before any process starts.
 */
export function readWranglerConfig(configPath: string) {
  // wrangler announces "Using secrets defined in .dev.vars" (left by `npm run dev`); the stack sets
  // its own secrets, so the line would only mislead.
  const level = process.env.WRANGLER_LOG;
  process.env.WRANGLER_LOG = 'warn';
  try {
    const config = unstable_readConfig({ config: configPath }, { hideWarnings: true });
    const { workerOptions, define, main } = unstable_getMiniflareWorkerOptions(config);
    const bindings = (workerOptions.bindings ?? {}) as Record<string, unknown>;
    const router = validRouter(bindings.ROUTER, configPath);
    return { name: config.name ?? 'worker', workerOptions, bindings, define, main, router };
  } finally {
    if (level === undefined) delete process.env.WRANGLER_LOG;
    else process.env.WRANGLER_LOG = level;
  }
}

export function validRouter(value: unknown, where: string): RouterConfigInput {
  const result = compileConfig(value);
  if (!result.ok) throw new Error(`invalid router config (${where}):\n  ${result.errors.join('\n  ')}`);
  return value as RouterConfigInput;
}
