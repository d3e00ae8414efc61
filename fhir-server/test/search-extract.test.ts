import type { Observation, Patient, RiskAssessment } from '@medplum/fhirtypes';
import { loadFhirDefinitions } from '../definitions';
import { decimalRange } from '../search/decimal';
import { instantRange } from '../search/instant';
import { splitEscaped } from '../search/escape';
import { normalizeString } from '../search/normalize';
import { compartmentsOf, extractIndexRows } from '../search';

beforeAll(() => loadFhirDefinitions());

const patient: Patient = {
  resourceType: 'Patient',
  id: 'p1',
  meta: {
    tag: [{ system: 'http://huimin/tags', code: 'vip', display: 'Important' }],
    security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }],
    profile: ['http://huimin/StructureDefinition/patient'],
    source: 'http://huimin/his',
  },
  identifier: [{ system: 'urn:huimin:mrn', value: 'MRN-1' }],
  active: true,
  name: [
    { family: '张', given: ['伟'], text: '张伟' },
    { family: 'Zoë', given: ['Élodie', 'Anne'], prefix: ['Dr'] },
  ],
  telecom: [{ system: 'phone', value: '+86 10 1234 5678' }],
  gender: 'female',
  birthDate: '1980',
  address: [{ line: ['1 Rue Saint-Honoré'], city: 'Paris', postalCode: '75001', country: 'FR' }],
  generalPractitioner: [
    { reference: 'Practitioner/dr1/_history/3' },
    { reference: 'https://other.example/fhir/Practitioner/x' },
    { reference: '#contained' },
    { identifier: { system: 'urn:x', value: 'only-identifier' } },
  ],
  managingOrganization: { reference: 'Organization/org1' },
};

describe('extractIndexRows on a Patient', () => {
  const rows = () => extractIndexRows(patient);

  test('strings: names and addresses, normalised, Chinese intact', () => {
    const family = rows().string.filter((r) => r.code === 'family');
    expect(family).toEqual([
      { code: 'family', value: '张', valueNorm: '张' },
      { code: 'family', value: 'Zoë', valueNorm: 'zoe' },
    ]);
    const name = rows().string.filter((r) => r.code === 'name').map((r) => r.valueNorm);
    expect(name).toEqual(expect.arrayContaining(['张', '伟', '张伟', 'zoe', 'elodie', 'anne', 'dr']));
    const address = rows().string.filter((r) => r.code === 'address').map((r) => r.valueNorm);
    expect(address).toEqual(expect.arrayContaining(['1 rue saint-honore', 'paris', '75001', 'fr']));
  });

  test('tokens: codes, identifiers, booleans, contact points, meta', () => {
    const token = rows().token;
    expect(token).toContainEqual({ code: 'gender', value: 'female', system: undefined, display: undefined });
    expect(token).toContainEqual({ code: 'identifier', system: 'urn:huimin:mrn', value: 'MRN-1' });
    expect(token).toContainEqual({ code: 'active', value: 'true' });
    expect(token).toContainEqual({ code: 'phone', value: '+86 10 1234 5678' });
    expect(token).toContainEqual({ code: '_tag', system: 'http://huimin/tags', value: 'vip', display: 'important' });
    expect(token.filter((r) => r.code === '_security').map((r) => r.value)).toEqual(['R']);
    expect(token.some((r) => r.code === '_id')).toBe(false);
  });

  test('uris: meta.profile and meta.source', () => {
    expect(rows().uri).toEqual(
      expect.arrayContaining([
        { code: '_profile', value: 'http://huimin/StructureDefinition/patient' },
        { code: '_source', value: 'http://huimin/his' },
      ]),
    );
  });

  test('dates: a year covers the whole year', () => {
    expect(rows().date.filter((r) => r.code === 'birthdate')).toEqual([
      { code: 'birthdate', low: '1980-01-01T00:00:00.000Z', high: '1980-12-31T23:59:59.999Z' },
    ]);
  });

  test('references: local with history dropped, absolute as URL, contained and identifier-only skipped', () => {
    expect(rows().reference.filter((r) => r.code === 'general-practitioner')).toEqual([
      { code: 'general-practitioner', targetType: 'Practitioner', targetId: 'dr1' },
      { code: 'general-practitioner', targetUrl: 'https://other.example/fhir/Practitioner/x' },
    ]);
  });

  test('a patient is in its own compartment', () => {
    expect(compartmentsOf(patient)).toEqual(['Patient/p1']);
  });
});

describe('extractIndexRows on other types', () => {
  const observation: Observation = {
    resourceType: 'Observation',
    id: 'o1',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '29463-7', display: 'Body weight' }], text: 'Weight' },
    subject: { reference: 'Patient/p1' },
    performer: [{ reference: 'Patient/p2' }, { reference: 'Practitioner/dr1' }],
    effectivePeriod: { start: '2024-03-01T10:00:00+08:00' },
    valueQuantity: { value: 5.4, unit: 'milligram', system: 'http://unitsofmeasure.org', code: 'mg' },
  };

  test('CodeableConcept: a row per coding and one for the text', () => {
    expect(extractIndexRows(observation).token.filter((r) => r.code === 'code')).toEqual([
      { code: 'code', system: 'http://loinc.org', value: '29463-7', display: 'body weight' },
      { code: 'code', display: 'weight' },
    ]);
  });

  test('each token and local reference once per resource (the match indexes are unique on them)', () => {
    const repeated: Observation = {
      ...observation,
      code: {
        coding: [
          { system: 'http://loinc.org', code: '29463-7', display: 'Body weight' },
          { system: 'http://loinc.org', code: '29463-7', display: 'Weight measured' },
          { system: 'http://loinc.org', code: '29463-7' },
        ],
      },
      performer: [{ reference: 'Patient/p2' }, { reference: 'Patient/p2/_history/3' }, { reference: 'Practitioner/dr1' }],
    };
    const rows = extractIndexRows(repeated);
    // The second display stays findable by :text as a display-only row.
    expect(rows.token.filter((r) => r.code === 'code')).toEqual([
      { code: 'code', system: 'http://loinc.org', value: '29463-7', display: 'body weight' },
      { code: 'code', display: 'weight measured' },
    ]);
    expect(rows.reference.filter((r) => r.code === 'performer')).toEqual([
      { code: 'performer', targetType: 'Patient', targetId: 'p2' },
      { code: 'performer', targetType: 'Practitioner', targetId: 'dr1' },
    ]);
  });

  test('quantity: precision range, code preferred to unit; unit when there is no code', () => {
    expect(extractIndexRows(observation).quantity.filter((r) => r.code === 'value-quantity')).toEqual([
      // 5.4 mg is 0.0054 g in UCUM base units, written to 15 significant digits.
      {
        code: 'value-quantity',
        value: '5.4',
        low: '5.35',
        high: '5.45',
        system: 'http://unitsofmeasure.org',
        unit: 'mg',
        canonicalValue: '0.00540000000000000',
        canonicalUnit: 'g',
      },
    ]);
    const noCode = extractIndexRows({ ...observation, valueQuantity: { value: 120, unit: 'mmHg' } });
    expect(noCode.quantity.find((r) => r.code === 'value-quantity')).toEqual({
      code: 'value-quantity',
      value: '120',
      low: '119.5',
      high: '120.5',
      system: undefined,
      unit: 'mmHg',
    });
  });

  test('Period: time zone applied, open end is far future', () => {
    expect(extractIndexRows(observation).date.filter((r) => r.code === 'date')).toEqual([
      { code: 'date', low: '2024-03-01T02:00:00.000Z', high: '9999-12-31T23:59:59.999Z' },
    ]);
  });

  test('compartments from the compartment parameters', () => {
    expect(compartmentsOf(observation).sort()).toEqual(['Patient/p1', 'Patient/p2']);
  });

  test('number', () => {
    const risk: RiskAssessment = {
      resourceType: 'RiskAssessment',
      status: 'final',
      subject: { reference: 'Patient/p1' },
      prediction: [{ probabilityDecimal: 0.02 }],
    };
    expect(extractIndexRows(risk).number).toEqual([{ code: 'probability', value: '0.02', low: '0.015', high: '0.025' }]);
  });

  test('an unknown resource type has no rows', () => {
    expect(extractIndexRows({ resourceType: 'Nonsense' } as unknown as Patient).token).toEqual([]);
  });
});

describe('value helpers', () => {
  test.each([
    ['5.4', '5.4', '5.35', '5.45'],
    ['100', '100', '99.5', '100.5'],
    ['-5.4', '-5.4', '-5.45', '-5.35'],
    ['0.02', '0.02', '0.015', '0.025'],
    ['1e2', '100', '50', '150'],
    ['1.5e-7', '0.00000015', '0.000000145', '0.000000155'],
  ])('decimalRange(%s)', (input, value, low, high) => {
    expect(decimalRange(input)).toEqual({ value, low, high });
  });

  test('decimalRange rejects non-numbers', () => {
    expect(decimalRange('abc')).toBeUndefined();
    expect(decimalRange('.')).toBeUndefined();
  });

  test.each([
    ['2020', '2020-01-01T00:00:00.000Z', '2020-12-31T23:59:59.999Z'],
    ['2020-02', '2020-02-01T00:00:00.000Z', '2020-02-29T23:59:59.999Z'],
    ['2020-12-31', '2020-12-31T00:00:00.000Z', '2020-12-31T23:59:59.999Z'],
    ['2020-03-01T10:00:00+02:00', '2020-03-01T08:00:00.000Z', '2020-03-01T08:00:00.999Z'],
    ['2020-03-01T10:00', '2020-03-01T10:00:00.000Z', '2020-03-01T10:00:59.999Z'],
    ['2020-03-01T10:00:00.5Z', '2020-03-01T10:00:00.500Z', '2020-03-01T10:00:00.599Z'],
    ['2020-03-01T10:00:00.1234Z', '2020-03-01T10:00:00.123Z', '2020-03-01T10:00:00.123Z'],
    ['0050', '0050-01-01T00:00:00.000Z', '0050-12-31T23:59:59.999Z'],
  ])('instantRange(%s)', (input, low, high) => {
    expect(instantRange(input)).toEqual({ low, high });
  });

  test('instantRange rejects impossible dates', () => {
    expect(instantRange('2021-02-30')).toBeUndefined();
    expect(instantRange('2021-13')).toBeUndefined();
    expect(instantRange('yesterday')).toBeUndefined();
  });

  test('normalizeString folds Latin accents and case only', () => {
    expect(normalizeString('ZOË Ångström')).toBe('zoe angstrom');
    expect(normalizeString('张伟')).toBe('张伟');
    expect(normalizeString('ガ')).toBe('ガ');
  });

  test('splitEscaped', () => {
    expect(splitEscaped('a\\|b|c', '|')).toEqual(['a|b', 'c']);
  });
});
