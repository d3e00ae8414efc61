/** Version matching for canonicals and the expansion-profile parameters (system-versions.ts). */
import { pickVersion, versionMatches } from '../resolver';
import { checkViolation, clauseVersion, parseSystemVersionRules } from '../system-versions';

it('matches versions exactly or by wildcard, not by prefix', () => {
  expect(versionMatches('1.0.0', '1.0.0')).toBe(true);
  expect(versionMatches('1', '1.0.0')).toBe(false);
  expect(versionMatches('1.0', '1.0.2')).toBe(false);
  expect(versionMatches('1.x', '1.2.0')).toBe(true);
  expect(versionMatches('1.x.x', '1.2.0')).toBe(true);
  expect(versionMatches('1.0.x', '1.2.0')).toBe(false);
  expect(versionMatches('1.*', '2.0.0')).toBe(false);
  expect(pickVersion([{ version: '1.0.0' }, { version: '1.2.0' }, { version: '2.0.0' }], '1.x')?.version).toBe('1.2.0');
});

it('reads system-version, check-system-version and force-system-version and applies them to a compose include', () => {
  const url = 'http://example.org/cs';
  const rules = parseSystemVersionRules({ 'system-version': [`${url}|1.0.0`], 'check-system-version': [], 'force-system-version': [] });
  expect(clauseVersion(rules, url, undefined)).toEqual({ pinned: undefined, lookup: '1.0.0' });
  expect(clauseVersion(rules, url, '2.0.0')).toEqual({ pinned: '2.0.0', lookup: '2.0.0' });
  const forced = parseSystemVersionRules({ 'system-version': [], 'check-system-version': [], 'force-system-version': [`${url}|1.x`] });
  expect(clauseVersion(forced, url, '2.0.0')).toEqual({ pinned: '1.x', lookup: '1.x' });
  const checked = parseSystemVersionRules({ 'system-version': [], 'check-system-version': [`${url}|1.0.x`], 'force-system-version': [] });
  expect(checkViolation(checked, url, '1.0.3')).toBeUndefined();
  expect(checkViolation(checked, url, '1.2.0')).toContain("required to be '1.0.x'");
  expect(parseSystemVersionRules({ 'system-version': [], 'check-system-version': [], 'force-system-version': [] })).toBeUndefined();
  expect(() => parseSystemVersionRules({ 'system-version': [url], 'check-system-version': [], 'force-system-version': [] })).toThrow('url|version');
});
