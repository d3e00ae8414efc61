/**
 * The store's own parsing of search values and parameters (escape.ts, filter-parse.ts, include-parse.ts), where
 * @medplum/core's parser drops or refuses what the spec allows.
 */
import { OperationOutcomeError } from '@medplum/core';
import { loadFhirDefinitions } from '../definitions';
import { parseSearch } from '../search';
import { splitEscaped, splitUnescaped, unescape } from '../search/escape';

beforeAll(() => loadFhirDefinitions());

const parse = (type: string, query: string) => parseSearch(type, Object.fromEntries([...new URLSearchParams(query)].map(([k, v]) => [k, [v]])));

describe('escaping', () => {
  test.each([
    ['a,b', ',', ['a', 'b']],
    ['a\\,b,c', ',', ['a\\,b', 'c']],
    ['s\\|x|v\\,w', ',', ['s\\|x|v\\,w']],
    ['a\\\\,b', ',', ['a\\\\', 'b']],
    ['x$y\\$z', '$', ['x', 'y\\$z']],
    ['', ',', ['']],
  ])('splitUnescaped(%s, %s) keeps the escapes', (value, separator, parts) => {
    expect(splitUnescaped(value, separator)).toEqual(parts);
  });

  test('unescape and splitEscaped remove them', () => {
    expect(unescape('a\\,b\\|c\\$d\\\\e')).toBe('a,b|c$d\\e');
    expect(splitEscaped('urn:x\\|y|code\\,1', '|')).toEqual(['urn:x|y', 'code,1']);
    // A trailing lone backslash has nothing to escape and stays.
    expect(unescape('a\\')).toBe('a\\');
  });
});

describe('filters', () => {
  test.each([
    ['Observation', 'subject:Patient=p1', { code: 'subject', operator: 'Patient', value: 'p1' }],
    ['Patient', 'birthdate=lt1980,gt1990', { code: 'birthdate', operator: 'lt', value: '1980,gt1990' }],
    ['Patient', 'birthdate=1980', { code: 'birthdate', operator: 'eq', value: '1980' }],
    ['Patient', 'family:exact=Zoë', { code: 'family', operator: 'exact', value: 'Zoë' }],
    ['Patient', 'family:bogus=x', { code: 'family', operator: 'bogus', value: 'x' }],
    ['Patient', 'gender:missing=true', { code: 'gender', operator: 'missing', value: 'true' }],
    ['Observation', 'code-value-quantity=8480-6$gt100', { code: 'code-value-quantity', operator: 'eq', value: '8480-6$gt100' }],
    ['Observation', 'subject:Patient.name:exact=x', { code: 'subject:Patient.name:exact', operator: 'eq', value: 'x' }],
    ['Patient', '_has:Observation:patient:code=1', { code: '_has:Observation:patient:code', operator: 'eq', value: '1' }],
  ])('%s?%s', (type, query, filter) => {
    expect(parse(type, query).filters).toEqual([filter]);
  });

  test('result parameters still go to @medplum/core', () => {
    const request = parse('Patient', '_count=5&family=x');
    expect(request.count).toBe(5);
    expect(request.filters).toEqual([{ code: 'family', operator: 'eq', value: 'x' }]);
  });
});

describe('_include and _revinclude', () => {
  test.each([
    ['_include=Observation:subject', { resourceType: 'Observation', searchParam: 'subject' }],
    ['_include=Observation:subject:Patient', { resourceType: 'Observation', searchParam: 'subject', targetType: 'Patient' }],
    ['_include:iterate=Patient:*', { resourceType: 'Patient', searchParam: '*', modifier: 'iterate' }],
    ['_include=*', { resourceType: '*', searchParam: '*' }],
  ])('%s', (query, target) => {
    expect(parse('Observation', query).include).toEqual([target]);
  });

  test('a bad value or modifier is a 400', () => {
    expect(() => parse('Observation', '_revinclude=subject')).toThrow(OperationOutcomeError);
    expect(() => parse('Observation', '_include:recurse=Observation:subject')).toThrow('the only modifier');
  });
});
