/**
 * A table of searches over real-shaped data: the Synthea organization and practitioner batches and the six smallest
 * patient bundles of ../shared/fixtures/synthea-r4 are loaded through the REST API, and each search's expected
 * matches are worked out from the bundle files directly (by walking their JSON), not by the server. Only the
 * mapping from a bundle entry's fullUrl to the id the server gave it comes from the load's response.
 *
 * It covers chaining (through urn:uuid and conditional references), `_has`, composite parameters on real
 * blood-pressure panels, UCUM conversion of real mg/dL values, and `_revinclude`.
 */
import request from 'supertest';
import type { Bundle, BundleEntry, Encounter, Identifier, Observation, Organization, Patient, Resource } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import { describeWithFixtures, listFixtureFiles, readFixtureJson } from '../../test/fixtures';

const FHIR_JSON = 'application/fhir+json';
const SYNTHEA = 'synthea-r4';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const LONG = 300_000;
/** The six smallest patient bundles (by file size), enough for every shape below and quick to load. */
const PATIENT_FILES = [
  '8a4c9c04-1524-9f1c-d65b-9b17e4520fef.json',
  '6c8f3e83-c351-ed33-c38d-6be101c275d2.json',
  '8708d3e1-f718-96bb-03f0-f2a6564ae1cd.json',
  'd1193889-ebd9-4e35-bf1b-8a73ecbfc00b.json',
  '9a174f9e-ed67-6617-0106-745fb1f9a344.json',
  '53eac4c0-8d6b-72da-2768-a6d08e687f48.json',
];

interface LoadedBundle {
  entries: BundleEntry[];
  /** fullUrl → `Type/id` as stored. */
  stored: Map<string, string>;
}

const resourcesOf = <T extends Resource>(b: LoadedBundle, type: T['resourceType']): Array<{ fullUrl: string; resource: T }> =>
  b.entries.filter((e) => e.resource?.resourceType === type).map((e) => ({ fullUrl: e.fullUrl as string, resource: e.resource as T }));
const hasCoding = (concept: { coding?: Array<{ system?: string; code?: string }> } | undefined, code: string) =>
  (concept?.coding ?? []).some((c) => c.system === LOINC && c.code === code);

describeWithFixtures(SYNTHEA, 'searches over Synthea bundles, answers derived from the files', () => {
  let server: TestServer;
  const api = () => request(server.app);
  const bundles: LoadedBundle[] = [];
  const organizations: Organization[] = [];

  /** The sorted `Type/id`s a search matches (mode match, or include), following next links. */
  async function search(url: string, mode = 'match'): Promise<string[]> {
    const found: string[] = [];
    let next: string | undefined = `${url}&_count=1000`;
    while (next) {
      const res = await api().get(next);
      if (res.status !== 200) {
        throw new Error(`${url}: ${res.status} ${JSON.stringify(res.body).slice(0, 400)}`);
      }
      const page = res.body as Bundle;
      for (const e of page.entry ?? []) {
        if (e.search?.mode === mode) {
          found.push(`${e.resource?.resourceType}/${e.resource?.id}`);
        }
      }
      const link = page.link?.find((l) => l.relation === 'next')?.url;
      next = link ? link.replace(server.baseUrl, '/fhir') : undefined;
    }
    return found.sort();
  }

  const storedIds = (pairs: Array<{ bundle: LoadedBundle; fullUrl: string }>) => pairs.map((p) => p.bundle.stored.get(p.fullUrl) as string).sort();

  /** Every resource of `type` across the loaded bundles that satisfies `test`. */
  function where<T extends Resource>(type: T['resourceType'], test: (resource: T, bundle: LoadedBundle) => boolean): string[] {
    return storedIds(bundles.flatMap((bundle) => resourcesOf<T>(bundle, type).filter(({ resource }) => test(resource, bundle)).map(({ fullUrl }) => ({ bundle, fullUrl }))));
  }

  /** The Organization of the info batch that a conditional reference `Organization?identifier=system|value` names. */
  function organizationOf(reference: string | undefined): Organization | undefined {
    const [system, value] = (reference ?? '').replace(/^Organization\?identifier=/, '').split('|');
    return organizations.find((o) => (o.identifier ?? []).some((i: Identifier) => i.system === system && i.value === value));
  }

  beforeAll(async () => {
    server = await createTestServer('postgres');
    const info = listFixtureFiles(SYNTHEA, '.json').filter((f) => f.startsWith('0-'));
    for (const file of info) {
      const bundle = readFixtureJson<Bundle>(SYNTHEA, file);
      expect((await api().post('/fhir').set('Content-Type', FHIR_JSON).send(bundle)).status).toBe(200);
      organizations.push(...(bundle.entry ?? []).map((e) => e.resource).filter((r): r is Organization => r?.resourceType === 'Organization'));
    }
    for (const file of PATIENT_FILES) {
      const bundle = readFixtureJson<Bundle>(SYNTHEA, file);
      const res = await api().post('/fhir').set('Content-Type', FHIR_JSON).send(bundle);
      expect(res.status).toBe(200);
      const stored = new Map<string, string>();
      ((res.body as Bundle).entry ?? []).forEach((e, i) => {
        const match = /([A-Z][A-Za-z]+\/[^/]+)\/_history\//.exec(e.response?.location ?? '');
        stored.set(bundle.entry?.[i]?.fullUrl as string, match?.[1] as string);
      });
      bundles.push({ entries: bundle.entry ?? [], stored });
    }
  }, LONG);
  afterAll(async () => {
    await server?.close();
  });

  it('chains from Observation to its Patient by exact family name, for every patient', async () => {
    for (const bundle of bundles) {
      const patient = resourcesOf<Patient>(bundle, 'Patient')[0].resource;
      const family = patient.name?.[0]?.family as string;
      const expected = storedIds(
        resourcesOf<Observation>(bundle, 'Observation')
          .filter(({ resource }) => hasCoding(resource.code, '72514-3'))
          .map(({ fullUrl }) => ({ bundle, fullUrl })),
      );
      expect(expected.length).toBeGreaterThan(0);
      expect(await search(`/fhir/Observation?subject:Patient.family:exact=${encodeURIComponent(family)}&code=${LOINC}|72514-3`)).toEqual(expected);
    }
  }, LONG);

  it('chains two links, through urn:uuid and conditional references: Observation → Encounter → Organization', async () => {
    // The service provider of the first patient's first encounter; its observations, in any loaded bundle.
    const first = resourcesOf<Encounter>(bundles[0], 'Encounter')[0].resource;
    const name = organizationOf(first.serviceProvider?.reference)?.name as string;
    expect(name).toBeDefined();
    const expected = where<Observation>('Observation', (obs, bundle) => {
      const encounter = resourcesOf<Encounter>(bundle, 'Encounter').find((e) => e.fullUrl === obs.encounter?.reference)?.resource;
      return organizationOf(encounter?.serviceProvider?.reference)?.name === name;
    });
    expect(expected.length).toBeGreaterThan(0);
    expect(await search(`/fhir/Observation?encounter.service-provider.name:exact=${encodeURIComponent(name)}`)).toEqual(expected);
  }, LONG);

  it('finds patients by the observations that refer to them (_has)', async () => {
    const patientsWith = (code: string) =>
      where<Patient>('Patient', (_p, bundle) => resourcesOf<Observation>(bundle, 'Observation').some(({ resource }) => hasCoding(resource.code, code)));
    // Of these six patients only one has a glucose result, and every one a smoking status.
    expect(patientsWith('2339-0')).toHaveLength(1);
    expect(patientsWith('72166-2')).toHaveLength(6);
    for (const code of ['2339-0', '72166-2', '33914-3']) {
      expect(await search(`/fhir/Patient?_has:Observation:patient:code=${LOINC}|${code}`)).toEqual(patientsWith(code));
    }
  }, LONG);

  it('matches composite parameters only within one blood-pressure component', async () => {
    const componentValue = (obs: Observation, code: string) =>
      (obs.component ?? []).filter((c) => hasCoding(c.code, code)).map((c) => c.valueQuantity?.value as number);
    const systolicAbove = where<Observation>('Observation', (o) => componentValue(o, '8480-6').some((v) => v > 120));
    const diastolicBelow = where<Observation>('Observation', (o) => componentValue(o, '8462-4').some((v) => v < 80));
    expect(systolicAbove.length).toBeGreaterThan(0);
    expect(await search(`/fhir/Observation?component-code-value-quantity=${LOINC}|8480-6$gt120`.replace('$', '%24'))).toEqual(systolicAbove);
    expect(await search(`/fhir/Observation?combo-code-value-quantity=${LOINC}|8462-4$lt80`.replace('$', '%24'))).toEqual(diastolicBelow);
  }, LONG);

  it('compares glucose in mg/dL with a search in g/L (UCUM)', async () => {
    const glucose = (test: (mgPerDl: number) => boolean) =>
      where<Observation>('Observation', (o) => hasCoding(o.code, '2339-0') && o.valueQuantity?.code === 'mg/dL' && test(o.valueQuantity.value as number));
    const above = glucose((v) => v > 100);
    expect(await search(`/fhir/Observation?code=${LOINC}|2339-0&value-quantity=gt1|${UCUM}|g/L`)).toEqual(above);
    expect(await search(`/fhir/Observation?code=${LOINC}|2339-0&value-quantity=le1000|${UCUM}|mg/L`)).toEqual(glucose((v) => v <= 100));
    expect(above.length + glucose((v) => v <= 100).length).toBeGreaterThan(0);
  }, LONG);

  it('reverse-includes a patient’s encounters, once each, as include', async () => {
    const bundle = bundles[1];
    const { fullUrl, resource } = resourcesOf<Patient>(bundle, 'Patient')[0];
    const family = resource.name?.[0]?.family as string;
    const url = `/fhir/Patient?family:exact=${encodeURIComponent(family)}&_revinclude=Encounter:patient`;
    expect(await search(url)).toEqual([bundle.stored.get(fullUrl)]);
    expect(await search(url, 'include')).toEqual(storedIds(resourcesOf<Encounter>(bundle, 'Encounter').map((e) => ({ bundle, fullUrl: e.fullUrl }))));
  }, LONG);
});
