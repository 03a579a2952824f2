import type { SplitConfig } from '../config/schema';
import { hash32, unit } from './hash';

export type SplitTarget = SplitConfig['targets'][number];

/**
 * Picks a target of a weighted split (canary, A/B). With a user id the pick is sticky: the
 * same user lands on the same target for as long as the weights stay; without one, it is random.
 */
export function pickSplitTarget(name: string, split: SplitConfig, user: string | null): SplitTarget {
  const total = split.targets.reduce((sum, t) => sum + t.weight, 0);
  const point = (user ? unit(hash32(`${name}\u0000${user}`)) : Math.random()) * total;
  let acc = 0;
  for (const t of split.targets) {
    acc += t.weight;
    if (point < acc) return t;
  }
  return split.targets.findLast((t) => t.weight > 0)!;
}
