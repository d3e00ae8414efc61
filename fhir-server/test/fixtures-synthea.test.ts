/**
 * The Synthea R4 set in ../shared/fixtures/synthea-r4 loads through the REST API with referential integrity on:
 * the two batch bundles of Organizations/Locations and Practitioners/PractitionerRoles first, then the 47 patient
 * transaction bundles (urn:uuid fullUrls, conditional references such as `Organization?identifier=...`). Then the
 * stored counts per type must equal what the files hold, a patient's `$everything` must hold its Encounters and
 * Observations, and references must have been rewritten to resolvable `Type/id`. The fixtures are read in place.
 *
 * Backends: see BACKENDS below.
 */
import request from 'supertest';
import type { Bundle, BundleEntry, Encounter, OperationOutcome, Resource } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';
import { describeWithFixtures, listFixtureFiles, mapWithConcurrency, readFixtureJson } from '../../test/fixtures';

const FHIR_JSON = 'application/fhir+json';
const SYNTHEA = 'synthea-r4';
const INFO_BUNDLES = ['0-hospitalInformation', '0-practitionerInformation'];
/** Patient bundles in flight at once. */
const CONCURRENCY = 2;
const LONG = 900_000;

/**
 * PostgreSQL only by default. Measured: loading the whole set takes ~50-60 s on PostgreSQL and ~75 s more on PGlite
 * (62 s for the patient bundles + 11 s for the batches), which together with the examples' PGlite run (~13 s) is
 * over the 60 s extra budget for PGlite; set HUIMIN_FIXTURES_PGLITE=1 to run this suite on PGlite too.
 */
const BACKENDS: Backend[] = process.env.HUIMIN_FIXTURES_PGLITE === '1' ? ['postgres', 'pglite'] : ['postgres'];

interface KnownBug {
  /** The patient bundles it stops (file names), or 'all'. */
  files: string[] | 'all';
  /** The failing response must match this, so that a different failure of a listed bundle is still reported. */
  signature: RegExp;
  diagnosis: string;
}

/**
 * TO FIX: valid Synthea bundles our server refuses, by bug. These are bugs in files this test does not own
 * (fhir-server/validation); they are listed so that the suite stays green and the list stays visible. A listed
 * bundle that loads, or fails differently, fails the test, so the list must shrink as the bugs are fixed.
 *
 * Verified by disabling only the two profiles below (jest.mock of getCoreProfile, not committed): then all 47
 * bundles load on PostgreSQL and PGlite, the per-type counts match (24/24 types, 16 257 resources) and the
 * $everything / reference checks pass.
 */
const KNOWN_SERVER_BUGS: Record<string, KnownBug> = {};

function knownBugsOf(file: string): KnownBug[] {
  return Object.values(KNOWN_SERVER_BUGS).filter((b) => b.files === 'all' || b.files.includes(file));
}

const infoFiles = (): string[] => INFO_BUNDLES.map((prefix) => listFixtureFiles(SYNTHEA, '.json').find((f) => f.startsWith(prefix)) ?? `${prefix}*.json (missing)`);
const patientFiles = (): string[] => listFixtureFiles(SYNTHEA, '.json').filter((f) => !f.startsWith('0-'));

/**
 * Expected count per resource type over all files: every POST creates one resource, except that conditional
 * creates (ifNoneExist) with the same type and condition create only one. (In this set every ifNoneExist of the
 * batches is distinct and the patient bundles have none, so nothing is actually deduplicated, but computing it
 * this way keeps the test right if the set changes.)
 */
function expectedCounts(files: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const conditions = new Set<string>();
  for (const file of files) {
    for (const entry of readFixtureJson<Bundle>(SYNTHEA, file).entry ?? []) {
      const type = entry.resource?.resourceType;
      if (!type || entry.request?.method !== 'POST') {
        continue;
      }
      const condition = entry.request.ifNoneExist;
      if (condition) {
        const key = `${type}?${condition}`;
        if (conditions.has(key)) {
          continue;
        }
        conditions.add(key);
      }
      counts.set(type, (counts.get(type) ?? 0) + 1);
    }
  }
  return counts;
}

/** Error issues of an OperationOutcome, short. */
function describeOutcome(body: unknown): string {
  const oo = body as OperationOutcome;
  if (oo?.resourceType !== 'OperationOutcome') {
    return JSON.stringify(body).slice(0, 500);
  }
  const errors = (oo.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal');
  return JSON.stringify(errors.slice(0, 5).map((i) => `[${i.code}] ${i.diagnostics ?? i.details?.text ?? ''} @ ${(i.expression ?? []).join(',')}`));
}

/** `Type/id` from a response entry's location (`.../Type/id/_history/n`). */
function typeAndId(location: string | undefined): string | undefined {
  const match = /([A-Z][A-Za-z]+)\/([^/]+)\/_history\/[^/]+$/.exec(location ?? '');
  return match ? `${match[1]}/${match[2]}` : undefined;
}

describeWithFixtures(SYNTHEA, 'Synthea R4 bundles', () => {
  describe.each<Backend>(BACKENDS)('load on %s', (backend) => {
    let server: TestServer;
    const api = () => request(server.app);
    /** Per patient file: the bundle's fullUrl → the stored `Type/id`. */
    const stored = new Map<string, Map<string, string>>();
    let patientsLoaded = 0;

    beforeAll(async () => {
      server = await createTestServer(backend, { enforceReferentialIntegrity: true });
    });
    afterAll(async () => {
      await server.close();
    });

    it('loads the organization and practitioner batch bundles (every entry 2xx)', async () => {
      const started = Date.now();
      const failures: string[] = [];
      for (const file of infoFiles()) {
        const bundle = readFixtureJson<Bundle>(SYNTHEA, file);
        expect(bundle.type).toBe('batch');
        const res = await api().post('/fhir').set('Content-Type', FHIR_JSON).send(bundle);
        if (res.status !== 200) {
          failures.push(`${file}: POST answered ${res.status}: ${describeOutcome(res.body)}`);
          continue;
        }
        const entries = (res.body as Bundle).entry ?? [];
        if (entries.length !== bundle.entry?.length) {
          failures.push(`${file}: ${entries.length} response entries for ${bundle.entry?.length} entries`);
        }
        entries.forEach((e, i) => {
          if (!/^2\d\d/.test(e.response?.status ?? '')) {
            failures.push(`${file} entry[${i}] (${bundle.entry?.[i]?.resource?.resourceType}): ${e.response?.status} ${describeOutcome(e.response?.outcome)}`);
          }
        });
      }
      console.log(`[${backend}] Synthea info batches: ${failures.length} failures, ${((Date.now() - started) / 1000).toFixed(1)} s`);
      expect(failures.slice(0, 50)).toEqual([]);
    }, LONG);

    it('loads every patient transaction bundle (200, every entry 201/200)', async () => {
      const started = Date.now();
      const failures: string[] = [];
      const unexpectedlyPassing: string[] = [];
      let knownFailures = 0;
      await mapWithConcurrency(patientFiles(), CONCURRENCY, async (file) => {
        const bundle = readFixtureJson<Bundle>(SYNTHEA, file);
        const problems: string[] = [];
        if (bundle.type !== 'transaction') {
          problems.push(`Bundle.type is ${bundle.type}`);
        }
        const res = await api().post('/fhir').set('Content-Type', FHIR_JSON).send(bundle);
        const mapping = new Map<string, string>();
        if (res.status !== 200) {
          problems.push(`POST answered ${res.status}: ${describeOutcome(res.body)}`);
        } else {
          const entries: BundleEntry[] = (res.body as Bundle).entry ?? [];
          if ((res.body as Bundle).type !== 'transaction-response' || entries.length !== bundle.entry?.length) {
            problems.push(`${(res.body as Bundle).type} with ${entries.length} entries for ${bundle.entry?.length}`);
          }
          entries.forEach((e, i) => {
            const status = e.response?.status ?? '';
            const location = typeAndId(e.response?.location);
            if (!/^20[01]/.test(status) || !location) {
              problems.push(`entry[${i}]: status ${status}, location ${e.response?.location}`);
            } else if (bundle.entry?.[i]?.fullUrl) {
              mapping.set(bundle.entry[i].fullUrl as string, location);
            }
          });
        }
        const known = knownBugsOf(file);
        if (problems.length === 0) {
          patientsLoaded++;
          stored.set(file, mapping);
          if (known.length > 0) {
            unexpectedlyPassing.push(file);
          }
        } else if (known.some((bug) => bug.signature.test(problems.join(' ')))) {
          knownFailures++;
        } else {
          failures.push(`${file}: ${problems.slice(0, 5).join(' | ')}`);
        }
      });
      console.log(
        `[${backend}] Synthea patient bundles: ${patientsLoaded}/${patientFiles().length} loaded, ${knownFailures} refused by known server bugs, ${failures.length} new failures, ` +
          `${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      expect(failures).toEqual([]);
      expect(unexpectedlyPassing).toEqual([]);
      expect(patientFiles().length).toBe(47);
    }, LONG);

    it('stores as many resources of each type as the files hold', async () => {
      const loaded = [...infoFiles(), ...patientFiles().filter((f) => stored.has(f))];
      const expected = expectedCounts(loaded);
      const mismatches: string[] = [];
      let total = 0;
      for (const [type, count] of [...expected].sort()) {
        const res = await api().get(`/fhir/${type}?_summary=count`);
        const actual = res.status === 200 ? (res.body as Bundle).total : `HTTP ${res.status} ${describeOutcome(res.body)}`;
        total += typeof actual === 'number' ? actual : 0;
        if (actual !== count) {
          mismatches.push(`${type}: expected ${count}, got ${String(actual)}`);
        }
      }
      console.log(`[${backend}] Synthea counts: ${expected.size - mismatches.length}/${expected.size} types match, ${total} resources stored`);
      expect(mismatches).toEqual([]);
      // All 24 types of the set, 16 257 resources when every bundle loaded.
      if (stored.size === patientFiles().length) {
        expect(expected.size).toBe(24);
        expect([...expected.values()].reduce((a, b) => a + b, 0)).toBe(16257);
      }
    }, LONG);

    it("gives a patient's Encounters and Observations in $everything, and rewrites urn:uuid and conditional references", async () => {
      if (stored.size === 0) {
        console.warn(`[${backend}] SKIPPED the $everything/reference checks: no patient bundle loaded (see KNOWN_SERVER_BUGS)`);
        return;
      }
      // The smallest patient bundle that loaded.
      const file = patientFiles().find((f) => stored.has(f) && f.startsWith('8a4c9c04')) ?? patientFiles().find((f) => stored.has(f));
      expect(file).toBeDefined();
      const bundle = readFixtureJson<Bundle>(SYNTHEA, file as string);
      const mapping = stored.get(file as string) as Map<string, string>;
      const patientEntry = bundle.entry?.find((e) => e.resource?.resourceType === 'Patient') as BundleEntry;
      const patientRef = mapping.get(patientEntry.fullUrl as string) as string;
      expect(patientRef).toMatch(/^Patient\//);

      const wanted = (type: string): string[] =>
        (bundle.entry ?? []).filter((e) => e.resource?.resourceType === type).map((e) => mapping.get(e.fullUrl as string) as string);
      const encounters = wanted('Encounter');
      const observations = wanted('Observation');
      expect(encounters.length).toBeGreaterThan(0);
      expect(observations.length).toBeGreaterThan(0);

      // $everything, following the next links.
      const seen = new Set<string>();
      let next: string | undefined = `/fhir/${patientRef}/$everything?_count=1000`;
      for (let pages = 0; next && pages < 50; pages++) {
        const res = await api().get(next);
        expect(res.status).toBe(200);
        const page = res.body as Bundle;
        page.entry?.forEach((e) => seen.add(`${e.resource?.resourceType}/${e.resource?.id}`));
        const link = page.link?.find((l) => l.relation === 'next')?.url;
        next = link ? link.replace(server.baseUrl, '/fhir') : undefined;
      }
      expect(seen.has(patientRef)).toBe(true);
      expect(encounters.filter((r) => !seen.has(r))).toEqual([]);
      expect(observations.filter((r) => !seen.has(r))).toEqual([]);

      // A urn:uuid reference (Encounter.subject) and conditional references (serviceProvider, participant) were
      // rewritten to Type/id, and each resolves.
      const original = bundle.entry?.find((e) => e.resource?.resourceType === 'Encounter') as BundleEntry<Encounter>;
      expect(original.resource?.subject?.reference).toMatch(/^urn:uuid:/);
      expect(original.resource?.serviceProvider?.reference).toMatch(/^Organization\?identifier=/);
      const encounterRef = mapping.get(original.fullUrl as string) as string;
      const encounter = (await api().get(`/fhir/${encounterRef}`)).body as Encounter;
      expect(encounter.subject?.reference).toBe(patientRef);
      const serviceProvider = encounter.serviceProvider?.reference ?? '';
      expect(serviceProvider).toMatch(/^Organization\/[^/?]+$/);
      const practitioner = encounter.participant?.[0]?.individual?.reference ?? '';
      expect(practitioner).toMatch(/^Practitioner\/[^/?]+$/);
      for (const ref of [encounter.subject?.reference, serviceProvider, practitioner]) {
        const res = await api().get(`/fhir/${ref}`);
        expect(res.status).toBe(200);
        expect(`${(res.body as Resource).resourceType}/${(res.body as Resource).id}`).toBe(ref);
      }
      // The conditional reference resolved to the Organization with that identifier.
      const [system, value] = (original.resource?.serviceProvider?.reference ?? '').replace(/^Organization\?identifier=/, '').split('|');
      const org = (await api().get(`/fhir/${serviceProvider}`)).body as { identifier?: { system?: string; value?: string }[] };
      expect(org.identifier?.some((i) => i.system === system && i.value === value)).toBe(true);
    }, LONG);

    it("pages a patient's Observations newest first by keyset, in the order the bundle file gives", async () => {
      if (stored.size === 0) {
        console.warn(`[${backend}] SKIPPED the sort check: no patient bundle loaded (see KNOWN_SERVER_BUGS)`);
        return;
      }
      const file = patientFiles().find((f) => stored.has(f) && f.startsWith('8a4c9c04')) ?? (patientFiles().find((f) => stored.has(f)) as string);
      const bundle = readFixtureJson<Bundle>(SYNTHEA, file);
      const mapping = stored.get(file) as Map<string, string>;
      const patientRef = mapping.get(bundle.entry?.find((e) => e.resource?.resourceType === 'Patient')?.fullUrl as string) as string;
      // From the file: every Observation's effective instant, newest first; equal instants by stored id.
      const expected = (bundle.entry ?? [])
        .filter((e) => e.resource?.resourceType === 'Observation')
        .map((e) => ({ ref: mapping.get(e.fullUrl as string) as string, at: Date.parse((e.resource as { effectiveDateTime: string }).effectiveDateTime) }))
        .sort((a, b) => b.at - a.at || (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0))
        .map((o) => o.ref);
      expect(expected.length).toBeGreaterThan(25);

      const seen: string[] = [];
      let next: string | undefined = `/fhir/Observation?patient=${patientRef}&_sort=-date&_count=25`;
      while (next) {
        const res = await api().get(next);
        expect(res.status).toBe(200);
        const page = res.body as Bundle;
        page.entry?.forEach((e) => seen.push(`Observation/${e.resource?.id}`));
        const link = page.link?.find((l) => l.relation === 'next')?.url;
        next = link ? link.replace(server.baseUrl, '/fhir') : undefined;
      }
      expect(seen).toEqual(expected);
      const total = (await api().get(`/fhir/Observation?patient=${patientRef}&_total=accurate&_count=1`)).body as Bundle;
      expect(total.total).toBe(expected.length);
    }, LONG);
  });
});
