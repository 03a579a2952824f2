import type { CompiledConfig } from '../config/compiled';

const priced = new WeakMap<CompiledConfig, CompiledConfig>();

/**
 * The config a batch line runs with: the same in every respect but [prices], each times
 * [batch].price_factor. Budgets (reservation and settlement) and the usage record's cost_usd all
 * read prices from the config they are handed, so the discount needs no branch anywhere else.
 */
export function batchPricedConfig(config: CompiledConfig): CompiledConfig {
  const factor = config.raw.batch.price_factor;
  if (factor === 1) return config;
  let c = priced.get(config);
  if (!c) {
    const prices = Object.fromEntries(
      Object.entries(config.raw.prices).map(([m, p]) => [m, { ...p, input: p.input * factor, output: p.output * factor, ...(p.cached_input === undefined ? {} : { cached_input: p.cached_input * factor }) }]),
    );
    c = { ...config, raw: { ...config.raw, prices } };
    priced.set(config, c);
  }
  return c;
}
