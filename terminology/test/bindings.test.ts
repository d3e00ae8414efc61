/** Bindings checked on writes: the store's own required-binding check, and the terminology service as its CodeValidator. */
import type { OperationOutcome } from '@medplum/fhirtypes';
import request from 'supertest';
import { BindingValidator, coreBindingValueSets, definitionSources, loadContent, regionalSources } from '..';
import { createTerminologyTestServer, type TerminologyTestServer } from './helpers';

let server: TerminologyTestServer;
beforeAll(async () => {
  server = await createTerminologyTestServer('postgres');
  // v3 code systems and value sets (Encounter.class), and the regional value sets.
  await loadContent(server.repository, server.terminology, [...definitionSources(['fhir/r4/v3-codesystems.json']), ...regionalSources()]);
});
afterAll(() => server.close());

const json = (path: string, body: object) => request(server.app).post(`/fhir/${path}`).set('Content-Type', 'application/fhir+json').send(body);

describe('required bindings', () => {
  it('refuses a Patient with a bad gender and an Observation with a bad status', async () => {
    const patient = await json('Patient', { resourceType: 'Patient', gender: 'robot' }).expect(400);
    expect(patient.body.issue[0].diagnostics).toContain('not in the required value set http://hl7.org/fhir/ValueSet/administrative-gender');
    const observation = await json('Observation', { resourceType: 'Observation', status: 'done', code: { text: 'glucose' } }).expect(400);
    expect(observation.body.issue[0].diagnostics).toContain('not in the required value set http://hl7.org/fhir/ValueSet/observation-status');
    await json('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'glucose' } }).expect(201);
  });
});

describe('the terminology service as the store\'s CodeValidator', () => {
  it('warns on extensible bindings the store cannot expand itself (filters), once the value set is compiled', async () => {
    const vs = 'http://terminology.hl7.org/ValueSet/v3-ActEncounterCode';
    expect(server.bindings.inValueSet(vs, 'http://terminology.hl7.org/CodeSystem/v3-ActCode', 'AMB')).toBeUndefined(); // cold: cannot tell yet
    await server.bindings.warm([vs]);
    const encounter = (code: string) => ({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code } });
    const good = await json('Encounter/$validate', { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: encounter('AMB') }] }).expect(200);
    expect((good.body as OperationOutcome).issue?.filter((i) => i.severity === 'warning' && i.diagnostics?.includes('extensible'))).toEqual([]);
    const odd = await json('Encounter/$validate', { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: encounter('XYZ') }] }).expect(200);
    const warnings = (odd.body as OperationOutcome).issue?.filter((i) => i.severity === 'warning' && i.diagnostics?.includes('extensible'));
    expect(warnings?.[0].diagnostics).toContain('not in the extensible value set http://terminology.hl7.org/ValueSet/v3-ActEncounterCode (Encounter.class)');
    // A warning never refuses the write.
    await json('Encounter', encounter('XYZ')).expect(201);
  });

  it('answers regional value sets, bare codes included, and costs well under 0.2 ms per coded element once warm', async () => {
    const marital = 'http://huimin.health/fhir/ValueSet/gb-t-2261.2';
    await server.bindings.warm([marital]);
    expect(server.bindings.inValueSet(marital, 'http://huimin.health/fhir/CodeSystem/gb-t-2261.2', '21')).toBe(true);
    expect(server.bindings.inValueSet(marital, 'http://huimin.health/fhir/CodeSystem/gb-t-2261.2', '99')).toBe(false);
    expect(server.bindings.inValueSet(marital, undefined, '40')).toBe(true);
    const n = 100_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      server.bindings.inValueSet(marital, 'http://huimin.health/fhir/CodeSystem/gb-t-2261.2', i % 2 ? '21' : '99');
    }
    const perCallMs = Number(process.hrtime.bigint() - started) / 1e6 / n;
    console.log(`[terminology] warm binding check: ${(perCallMs * 1000).toFixed(2)} µs per coded element`);
    expect(perCallMs).toBeLessThan(0.2);
  });

  it('lists the value sets of R4\'s required and extensible bindings, to compile them at start', () => {
    const list = coreBindingValueSets();
    expect(list).toEqual(expect.arrayContaining(['http://hl7.org/fhir/ValueSet/administrative-gender', 'http://terminology.hl7.org/ValueSet/v3-ActEncounterCode']));
    expect(list.length).toBeGreaterThan(100);
  });

  it('leaves a binding unchecked (accepted) when its value set cannot be compiled', async () => {
    const errors: string[] = [];
    const validator = new BindingValidator(server.terminology, { onError: (vs) => errors.push(vs) });
    await validator.warm(['http://example.org/ValueSet/unknown']);
    expect(validator.inValueSet('http://example.org/ValueSet/unknown', 'http://x', 'y')).toBeUndefined();
    expect(errors).toEqual(['http://example.org/ValueSet/unknown']);
  });
});
