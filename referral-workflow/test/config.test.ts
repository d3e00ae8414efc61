/** Workflow configuration from the environment. */
import { loadWorkflowConfig, parseDeadlines, parseDuration } from '..';

describe('workflow configuration', () => {
  it('reads ISO 8601 durations', () => {
    expect(parseDuration('PT30M')).toBe(30 * 60_000);
    expect(parseDuration('P2D')).toBe(2 * 24 * 3600_000);
    expect(parseDuration('P1DT2H3M4.5S')).toBe(((24 + 2) * 60 + 3) * 60_000 + 4500);
    expect(() => parseDuration('30m')).toThrow('is not an ISO 8601 duration');
    expect(() => parseDuration('PT')).toThrow('is not an ISO 8601 duration');
  });

  it('reads deadlines on top of the defaults, the green channel included', () => {
    const deadlines = parseDeadlines('stat=PT20M,routine=P3D');
    expect(deadlines).toMatchObject({ stat: 20 * 60_000, routine: 3 * 24 * 3600_000, asap: 2 * 3600_000, green: 15 * 60_000 });
    expect(() => parseDeadlines('stat')).toThrow('priority=duration');
  });

  it('has working defaults and names the variable in its errors', () => {
    const config = loadWorkflowConfig({});
    expect(config.referralSlotShare).toBe(0.3);
    expect(config.reservedSlotReleaseMs).toBe(24 * 3600_000);
    expect(config.deadlines.urgent).toBe(12 * 3600_000);
    expect(() => loadWorkflowConfig({ REFERRAL_SLOT_SHARE: '1.5' })).toThrow('REFERRAL_SLOT_SHARE must be a number from 0 to 1');
    expect(() => loadWorkflowConfig({ REFERRAL_DEADLINES: 'stat=soon' })).toThrow('REFERRAL_DEADLINES');
  });
});
