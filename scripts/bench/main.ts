/**
 * `npm run bench [-- section...|all] [--smoke]`: runs bench sections (all by default) and prints a
 * table per section; results go to .dev/bench/<section>.json. A report, never a test: it does not
 * fail on numbers. BENCH_DURATION_S shortens each load run. A new section is one more file + one
 * line below.
 *
 * `--smoke` runs every named section for a second or two (1 s load runs, small counts; results go to
 * .dev/bench/smoke/ and mean nothing): CI runs `all --smoke` so a section that no longer starts, or
 * throws on its own output, fails the build instead of rotting unseen.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEV_DIR } from '../dev/paths';
import type { BenchSection } from './lib/section';
import { formatTable } from './lib/table';

const SECTIONS: Record<string, () => Promise<BenchSection>> = {
  overhead: async () => (await import('./overhead')).overhead,
  complexity: async () => (await import('./complexity')).complexity,
  'routing-prefix': async () => (await import('./routing-prefix')).routingPrefix,
  'routing-failover': async () => (await import('./routing-failover')).routingFailover,
  'routing-hedge': async () => (await import('./routing-hedge')).routingHedge,
  'budget-overhead': async () => (await import('./budget-overhead')).budgetOverhead,
  cache: async () => (await import('./cache')).cache,
  'scale-day': async () => (await import('./scale-day')).scaleDay,
  semantic: async () => (await import('./semantic')).semantic,
  'ratelimit-overhead': async () => (await import('./ratelimit-overhead')).ratelimitOverhead,
  'usage-overhead': async () => (await import('./usage-overhead')).usageOverhead,
  'provider-translate': async () => (await import('./provider-translate')).providerTranslate,
  'remote-rtt': async () => (await import('./remote-rtt')).remoteRtt,
  'cpu-profile': async () => (await import('./cpu-profile')).cpuProfile,
  rollout: async () => (await import('./rollout')).rollout,
  'rollout-stats': async () => (await import('./rollout-stats')).rolloutStats,
  batch: async () => (await import('./batch')).batch,
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flags = args.filter((a) => a.startsWith('-'));
  const badFlags = flags.filter((f) => f !== '--smoke');
  if (badFlags.length) {
    console.error(`unknown bench option(s): ${badFlags.join(', ')}. Known: --smoke`);
    process.exit(2);
  }
  const smoke = flags.includes('--smoke');
  const wanted = args.filter((a) => !a.startsWith('-') && a !== 'all');
  const unknown = wanted.filter((n) => !SECTIONS[n]);
  if (unknown.length) {
    console.error(`unknown bench section(s): ${unknown.join(', ')}. Available: ${Object.keys(SECTIONS).join(', ')}`);
    process.exit(2);
  }
  const durationS = process.env.BENCH_DURATION_S ? Number(process.env.BENCH_DURATION_S) : smoke ? 1 : undefined;
  if (durationS !== undefined && !(durationS > 0)) throw new Error('BENCH_DURATION_S must be a positive number of seconds');
  const outDir = join(DEV_DIR, 'bench', ...(smoke ? ['smoke'] : []));
  mkdirSync(outDir, { recursive: true });

  for (const name of wanted.length ? wanted : Object.keys(SECTIONS)) {
    const section = await SECTIONS[name]!();
    console.error(`\n▶ ${section.name}${smoke ? ' (smoke)' : ''}: ${section.description}`);
    const started = Date.now();
    const report = await section.run({ durationS, outDir, smoke });
    const file = join(outDir, `${section.name}.json`);
    writeFileSync(file, JSON.stringify(report.json, null, 2) + '\n');
    console.log(`\n${report.tables.map(formatTable).join('\n\n')}\n`);
    console.error(`(${section.name}: ${((Date.now() - started) / 1000).toFixed(0)} s, results in ${file})`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
