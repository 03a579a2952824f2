/**
 * CPU time of local processes from /proc (Linux): what a workerd process used while a load ran,
 * divided by the requests it served. Unlike a sampled profile's busy share (wall time of samples,
 * inflated when the thread is descheduled on a shared machine) this is the CPU the kernel charged,
 * all threads included, so side-by-side ratios hold up better under other load. Resolution: one
 * clock tick (10 ms); runs of thousands of requests make it fine-grained enough.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_S = 100; // getconf CLK_TCK on Linux

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
}

function readProc(pid: number): Proc | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    return { pid, ppid: Number(fields[1]), comm: stat.slice(stat.indexOf('(') + 1, close) };
  } catch {
    return null;
  }
}

/** Pids of processes named `comm` descending from this process (Miniflare's workerd children). */
export function descendantsNamed(comm: string, root = process.pid): Set<number> {
  const procs = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is Proc => p !== null);
  const children = new Map<number, Proc[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out = new Set<number>();
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      if (c.comm === comm) out.add(c.pid);
      walk(c.pid);
    }
  };
  walk(root);
  return out;
}

/** The workerd processes a start call adds (run `start`, diff the descendants). */
export async function newWorkerdPids<T>(start: () => Promise<T>): Promise<{ value: T; pids: number[] }> {
  const before = descendantsNamed('workerd');
  const value = await start();
  return { value, pids: [...descendantsNamed('workerd')].filter((p) => !before.has(p)) };
}

/** CPU seconds (user + system, all threads) the processes have used so far; a gone process counts 0. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
    } catch {
      // gone
    }
  }
  return ticks / TICKS_PER_S;
}
