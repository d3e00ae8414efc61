/** Supervision's configuration from the environment, and the checks on rule parameters. */
import { loadSupervisionConfig, parseReviewDeadlines } from '../config';
import { checkParams } from '../rules/params';
import { SHIPPED_RULES } from '../rules/catalogue';

describe('supervision configuration', () => {
  it('has working defaults', () => {
    const config = loadSupervisionConfig({});
    expect(config.bureau).toBe('Organization/health-bureau');
    expect(config.reviewDeadlines.appeal).toBe(15 * 86_400_000);
    expect(config.tickMs).toBe(60_000);
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
