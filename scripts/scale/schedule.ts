/**
 * Keep-warm windows ([[backends.scaling.keep_warm]]) evaluated on the wall clock of the window's
 * own time zone. Intl does the conversion, so DST shifts move the window with local time: 09:00
 * in Europe/Paris is 08:00Z in winter and 07:00Z in summer, with no offset arithmetic here.
 */
import type { ScalingConfig } from '../../worker/config/scaling';

export type KeepWarmWindow = ScalingConfig['keep_warm'][number];
type Weekday = KeepWarmWindow['days'][number];

const WEEKDAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    // Throws RangeError on an unknown zone; config loading checks zones first (validTimeZone).
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  return f;
}

export function validTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** Weekday and minutes since local midnight at `now` in `timeZone`. */
export function localTime(now: Date, timeZone: string): { day: Weekday; minutes: number } {
  const parts = formatter(timeZone).formatToParts(now);
  const get = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
  const day = get('weekday').slice(0, 3).toLowerCase() as Weekday;
  if (!WEEKDAYS.includes(day)) throw new Error(`unexpected weekday "${get('weekday')}" from Intl`);
  return { day, minutes: Number(get('hour')) * 60 + Number(get('minute')) };
}

const toMinutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
const previousDay = (d: Weekday): Weekday => WEEKDAYS[(WEEKDAYS.indexOf(d) + 6) % 7]!;

/**
 * Is `now` inside the window? `from` < `to`: the same day. `from` > `to` (e.g. 22:00-06:00): an
 * overnight window that belongs to the day it starts on. `from` = `to`: the whole day.
 */
export function inWindow(w: KeepWarmWindow, now: Date): boolean {
  const { day, minutes } = localTime(now, w.time_zone);
  const from = toMinutes(w.from);
  const to = toMinutes(w.to);
  if (from === to) return w.days.includes(day);
  if (from < to) return w.days.includes(day) && minutes >= from && minutes < to;
  return (w.days.includes(day) && minutes >= from) || (w.days.includes(previousDay(day)) && minutes < to);
}

export function describeWindow(w: KeepWarmWindow): string {
  return `${w.days.join(',')} ${w.from}-${w.to} ${w.time_zone}`;
}

/** The active window asking for the most replicas, if any. */
export function activeWindow(windows: readonly KeepWarmWindow[], now: Date): KeepWarmWindow | undefined {
  let best: KeepWarmWindow | undefined;
  for (const w of windows) if (inWindow(w, now) && (!best || w.replicas > best.replicas)) best = w;
  return best;
}
