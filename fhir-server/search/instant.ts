/**
 * FHIR date, dateTime and instant values (and date search values) as the range of instants they cover, at their
 * precision: "2020" is [2020-01-01T00:00:00.000Z, 2020-12-31T23:59:59.999Z]. Both ends are inclusive, to the
 * millisecond.
 *
 * A value with a time but no time zone, and every plain date, is taken as UTC: FHIR leaves the zone of such values
 * to the server, and the region this server runs in stores UTC consistently.
 */

export interface InstantRange {
  low: string;
  high: string;
}

/** Used for the missing end of an open Period. */
export const FAR_PAST = '0001-01-01T00:00:00.000Z';
export const FAR_FUTURE = '9999-12-31T23:59:59.999Z';

const FAR_PAST_MS = Date.parse(FAR_PAST);
const FAR_FUTURE_MS = Date.parse(FAR_FUTURE);

// YYYY[-MM[-DD[Thh:mm[:ss[.fff…]][zone]]]]: the fixed FHIR formats. Minutes without seconds are allowed because
// search values may have them ("2028-05-15T14:30" is that whole minute).
const DATE_TIME =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** Returns undefined when `input` is not a FHIR date, dateTime or instant. */
export function instantRange(input: string): InstantRange | undefined {
  const m = DATE_TIME.exec(input.trim());
  if (!m) {
    return undefined;
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const month = mo === undefined ? 0 : Number(mo) - 1;
  const day = d === undefined ? 1 : Number(d);
  const hour = h === undefined ? 0 : Number(h);
  const minute = mi === undefined ? 0 : Number(mi);
  const second = s === undefined ? 0 : Number(s);
  const millis = frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0'));
  if (month > 11 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  const start = utc(year, month, day, hour, minute, second, millis);
  if (new Date(start).getUTCDate() !== day) {
    return undefined; // 2021-02-30 rolled over into March
  }
  // The first instant after the value's precision ends.
  let next: number;
  if (mo === undefined) {
    next = utc(year + 1, 0, 1, 0, 0, 0, 0);
  } else if (d === undefined) {
    next = utc(year, month + 1, 1, 0, 0, 0, 0);
  } else if (h === undefined) {
    next = start + 86_400_000;
  } else if (s === undefined) {
    next = start + 60_000;
  } else if (frac === undefined) {
    next = start + 1000;
  } else {
    next = start + (frac.length >= 3 ? 1 : 10 ** (3 - frac.length));
  }
  const offset = zone === undefined || zone === 'Z' ? 0 : zoneOffsetMs(zone);
  return { low: toIso(start - offset), high: toIso(next - 1 - offset) };
}

function utc(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number) {
  // setUTCFullYear, unlike Date.UTC, leaves years 0–99 alone; a month of 12 rolls over into the next year.
  const date = new Date(0);
  date.setUTCFullYear(year, month, day);
  date.setUTCHours(hour, minute, second, ms);
  return date.getTime();
}

function zoneOffsetMs(zone: string): number {
  const sign = zone[0] === '-' ? -1 : 1;
  return sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
}

/**
 * The ISO form of an instant, clamped to [FAR_PAST, FAR_FUTURE]: time zones (and widened `ap` ranges) can push a
 * value past year 9999 or before year 1, which toISOString would write as "+010000-…".
 */
export function toIso(ms: number): string {
  return new Date(Math.min(Math.max(ms, FAR_PAST_MS), FAR_FUTURE_MS)).toISOString();
}
