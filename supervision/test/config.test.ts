/** Supervision's configuration from the environment, and the checks on rule parameters. */
import { localMonth, localMonthOf, startOfLocalDate } from '../../referral-workflow';
import { loadSupervisionConfig, parseReviewDeadlines } from '../config';
import { parsePeriod } from '../measures';
import { checkParams } from '../rules/params';
import { SHIPPED_RULES } from '../rules/catalogue';

describe('supervision configuration', () => {
  it('has working defaults', () => {
    const config = loadSupervisionConfig({});
    expect(config.bureau).toBe('Organization/health-bureau');
    expect(config.reviewDeadlines.appeal).toBe(15 * 86_400_000);
    expect(config.tickMs).toBe(60_000);
    expect(config.timeZone).toBe('Asia/Shanghai');
    expect(config.eventBatch).toBe(500);
    expect(loadSupervisionConfig({ HUIMIN_TIME_ZONE: 'Europe/Berlin' }).timeZone).toBe('Europe/Berlin');
    expect(() => loadSupervisionConfig({ HUIMIN_TIME_ZONE: 'Mars/Olympus' })).toThrow(/HUIMIN_TIME_ZONE/);
    expect(() => loadSupervisionConfig({ SUPERVISION_EVENT_BATCH: '0' })).toThrow(/SUPERVISION_EVENT_BATCH/);
  });

  it('counts months and dates from local midnight in the configured time zone', () => {
    // China Standard Time: UTC+8 all year; 1 October local begins at 16:00 UTC on 30 September.
    expect(localMonthOf('2026-10', 'Asia/Shanghai')).toEqual({ start: '2026-09-30T16:00:00.000Z', end: '2026-10-31T16:00:00.000Z' });
    // 30 September 20:00 UTC is already 1 October in Shanghai: its "last month" is September.
    expect(localMonth(Date.parse('2026-09-30T20:00:00Z'), 'Asia/Shanghai', -1)).toEqual({ month: '2026-09', start: '2026-08-31T16:00:00.000Z', end: '2026-09-30T16:00:00.000Z' });
    // A zone with daylight saving time: March 2026 in New York begins at UTC-5 and ends at UTC-4.
    expect(localMonthOf('2026-03', 'America/New_York')).toEqual({ start: '2026-03-01T05:00:00.000Z', end: '2026-04-01T04:00:00.000Z' });
    expect(startOfLocalDate('2026-11-01', 'America/New_York')).toBe(Date.parse('2026-11-01T04:00:00Z'));
    // $evaluate-measure dates are local days, the end date inclusive.
    expect(parsePeriod('2026-09-01', '2026-09-30', 'Asia/Shanghai')).toEqual({ start: '2026-08-31T16:00:00.000Z', end: '2026-09-30T16:00:00.000Z' });
    expect(parsePeriod('2026-09-01T00:00:00Z', '2026-10-01T00:00:00Z', 'Asia/Shanghai')).toEqual({ start: '2026-09-01T00:00:00.000Z', end: '2026-10-01T00:00:00.000Z' });
  });

  it('overrides review deadlines by step and refuses unknown steps and bad durations', () => {
    expect(parseReviewDeadlines('appeal=P5D').appeal).toBe(5 * 86_400_000);
    expect(() => parseReviewDeadlines('appeals=P5D')).toThrow(/first-review/);
    expect(() => parseReviewDeadlines('appeal=5 days')).toThrow(/ISO 8601/);
    expect(() => loadSupervisionConfig({ SUPERVISION_BUREAU_ORG: 'bureau' })).toThrow(/Organization/);
    expect(() => loadSupervisionConfig({ SUPERVISION_RULES_FILE: '/nonexistent/rules.json' })).toThrow(/not readable/);
  });

  it('every shipped rule has the parameters its kind takes; wrong types and unknown names are refused', () => {
    for (const rule of SHIPPED_RULES) {
      expect(() => checkParams(rule.kind, rule.params)).not.toThrow();
    }
    expect(() => checkParams('length-of-stay', { maxDays: -1 })).toThrow(/non-negative number/);
    expect(() => checkParams('length-of-stay', { maxDays: 30, minDays: 1 })).toThrow(/no parameter "minDays"/);
    expect(() => checkParams('length-of-stay', {})).toThrow(/need parameter "maxDays"/);
  });
});
