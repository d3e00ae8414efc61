/**
 * Calendar days and months in the deployment's time zone (`HUIMIN_TIME_ZONE`, default Asia/Shanghai): the bureau
 * counts a month from local midnight on the 1st, not from UTC midnight. Offsets (and any daylight saving time of
 * other zones) come from Intl's time-zone data; nothing here knows a zone's rules.
 *
 * Shared by the referral report, the recognition report and supervision's indicators, which all depend on this
 * module.
 */
export const DEFAULT_TIME_ZONE = 'Asia/Shanghai';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The zone's name if Intl knows it; otherwise a configuration error naming the variable. */
export function checkTimeZone(timeZone: string, variable = 'HUIMIN_TIME_ZONE'): string {
  try {
    formatter(timeZone);
  } catch {
    throw new Error(`Configuration error: ${variable} must be an IANA time zone such as Asia/Shanghai, got "${timeZone}"`);
  }
  return timeZone;
}

export interface LocalDate {
  year: number;
  /** 1–12 */
  month: number;
  day: number;
}

/** The local calendar date and time of an instant. */
function localParts(instant: number, timeZone: string): LocalDate & { hour: number; minute: number; second: number } {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(instant))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour, minute: parts.minute, second: parts.second };
}

/** The zone's offset from UTC at an instant, ms (Asia/Shanghai: +8 h). */
function offsetAt(instant: number, timeZone: string): number {
  const p = localParts(instant, timeZone);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - (instant - (((instant % 1000) + 1000) % 1000));
}

/** The local calendar date of an instant. */
export function localDate(instant: number, timeZone: string): LocalDate {
  const { year, month, day } = localParts(instant, timeZone);
  return { year, month, day };
}

/**
 * The instant at which a local calendar day begins. Month and day may overflow (month 13 is January of the next
 * year), as with Date.UTC. Two passes settle the offset across a change of it (DST).
 */
export function startOfLocalDay(year: number, month: number, day: number, timeZone: string): number {
  const wall = Date.UTC(year, month - 1, day);
  const first = wall - offsetAt(wall, timeZone);
  return wall - offsetAt(first, timeZone);
}

/** A `YYYY-MM-DD` date's local midnight. */
export function startOfLocalDate(date: string, timeZone: string): number {
  const [y, m, d] = date.split('-').map(Number);
  return startOfLocalDay(y, m, d, timeZone);
}

/** The local month containing `instant`, shifted by `shift` months: [start, end) as ISO instants, and its `YYYY-MM`. */
export function localMonth(instant: number, timeZone: string, shift = 0): { start: string; end: string; month: string } {
  const { year, month } = localDate(instant, timeZone);
  const start = startOfLocalDay(year, month + shift, 1, timeZone);
  const end = startOfLocalDay(year, month + shift + 1, 1, timeZone);
  const label = new Date(Date.UTC(year, month - 1 + shift, 1)).toISOString().slice(0, 7);
  return { start: new Date(start).toISOString(), end: new Date(end).toISOString(), month: label };
}

/** The local month `YYYY-MM`: [start, end) as ISO instants. */
export function localMonthOf(month: string, timeZone: string): { start: string; end: string } {
  const [y, m] = month.split('-').map(Number);
  return { start: new Date(startOfLocalDay(y, m, 1, timeZone)).toISOString(), end: new Date(startOfLocalDay(y, m + 1, 1, timeZone)).toISOString() };
}
