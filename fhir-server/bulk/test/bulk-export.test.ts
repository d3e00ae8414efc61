/**
 * Bulk Data `$export` (STU2) end to end over HTTP: the three kick-off levels and every parameter, each refusal,
 * the manifest and its files, and who may read them (only the client that started the export; scopes, consent
 * and roles apply to what it contains).
 */
import type { Consent } from '@medplum/fhirtypes';
import request from 'supertest';
import type { Backend } from '../../../test/databases';
import { createTestServer, type TestServer } from '../../../test/server';
import { BulkClient, pathOf } from './helpers';

const FHIR_JSON = 'application/fhir+json';
const LOINC = 'http://loinc.org';

function denyHospB(patientRef: string): Consent {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: LOINC, code: '59284-0' }] }],
    patient: { reference: patientRef },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: { type: 'permit', provision: [
        {
          type: 'deny',
          actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: 'Organization/hosp-b' } }],
        },
      ],
    },
  };
}

describe.each<Backend>(['postgres', 'pglite'])('$export on %s', (backend) => {
  let server: TestServer;
  let admin: BulkClient;
  let since: string;

  const put = async (resource: { resourceType: string; id: string; [k: string]: unknown }, token?: string) => {
    const req = request(server.rawApp).put(`/fhir/${resource.resourceType}/${resource.id}`).set('Content-Type', FHIR_JSON);
    const res = await req.set('Authorization', `Bearer ${token ?? server.adminToken}`).send(resource);
    expect([200, 201]).toContain(res.status);
  };
  const obs = (id: string, patient: string, code: string) => ({
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: LOINC, code }] },
    subject: { reference: `Patient/${patient}` },
  });

  // Setting up a server and its data takes long on a busy machine: 5 minutes, not the default minute.
  beforeAll(async () => {
    // Small parts and files, so that a few resources already span several of each.
    // A small clock margin: every export waits that long past its kick-off (consistency.ts).
    server = await createTestServer(backend, { bulkExport: { partSize: 2, resourcesPerFile: 3, pollIntervalMs: 60_000, clockMarginMs: 20 } });
    admin = new BulkClient(server, server.adminToken);
    for (const id of ['hosp-a', 'hosp-b']) {
      await put({ resourceType: 'Organization', id, name: id });
    }
    for (const id of ['p1', 'p2', 'p3']) {
      await put({ resourceType: 'Patient', id, name: [{ family: id }] });
    }
    await put({ resourceType: 'Practitioner', id: 'dr1', name: [{ family: 'Doctor' }] });
    await put(obs('o1', 'p1', '2345-7'));
    await put(obs('o2', 'p1', '718-7'));
    await put(obs('o3', 'p1', '2345-7'));
    await put(obs('o4', 'p2', '2345-7'));
    await put(obs('o5', 'p3', '8867-4'));
    await put({ resourceType: 'Encounter', id: 'e1', status: 'finished', class: { code: 'AMB' }, subject: { reference: 'Patient/p1' }, serviceProvider: { reference: 'Organization/hosp-b' } });
    await put({
      resourceType: 'Group',
      id: 'g1',
      type: 'person',
      actual: true,
      member: [{ entity: { reference: 'Patient/p1' } }, { entity: { reference: 'Patient/p2' } }, { entity: { reference: 'Practitioner/dr1' } }, { entity: { reference: 'Patient/p3' }, inactive: true }],
    });
    await put({ ...denyHospB('Patient/p2'), id: 'c2' });
    await put(obs('o6', 'p1', '8867-4'));
    await new Promise((r) => setTimeout(r, 20));
    since = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    // Changed after `since`: o5 and p3.
    await put({ ...obs('o5', 'p3', '8867-4'), valueString: 'changed' });
    await put({ resourceType: 'Patient', id: 'p3', name: [{ family: 'p3-changed' }] });
    // Deleted after `since`: o6.
    expect((await request(server.app).delete('/fhir/Observation/o6')).status).toBe(200);
  }, 300_000);
  afterAll(async () => {
    await server.close();
  });

  describe('kick-off and manifest', () => {
    it('exports the system: every type, files split by size, counts equal to the lines, and a complete manifest', async () => {
      const kick = await admin.kickOff('/fhir/$export?_type=Patient,Observation,Practitioner,Group');
      expect(kick.status).toBe(202);
      expect(kick.headers['content-location']).toMatch(/^http:\/\/127\.0\.0\.1:8080\/fhir\/\$export-poll-status\?_jobId=[0-9a-f]{32}$/);
      expect(kick.body.resourceType).toBe('OperationOutcome');
      const manifest = await admin.manifest(kick.headers['content-location']);
      expect(manifest.requiresAccessToken).toBe(true);
      expect(manifest.request).toBe('http://127.0.0.1:8080/fhir/$export?_type=Patient%2CObservation%2CPractitioner%2CGroup');
      expect(Date.parse(manifest.transactionTime)).toBeGreaterThan(Date.parse(since));
      expect(manifest.error).toEqual([]);
      // Deletions are reported by _since exports only.
      expect(manifest).not.toHaveProperty('deleted');
      // Types in the order asked; Observation (5, in parts of 2) in two files of at most 3.
      expect(manifest.output.map((o) => [o.type, o.count])).toEqual([
        ['Patient', 3],
        ['Observation', 2],
        ['Observation', 3],
        ['Practitioner', 1],
        ['Group', 1],
      ]);
      expect(await admin.exported(manifest)).toEqual(['Group/g1', 'Observation/o1', 'Observation/o2', 'Observation/o3', 'Observation/o4', 'Observation/o5', 'Patient/p1', 'Patient/p2', 'Patient/p3', 'Practitioner/dr1'].sort());
      // The current version, as stored.
      const patients = await admin.lines(manifest.output[0].url);
      expect(patients.find((p) => p.id === 'p3')).toMatchObject({ name: [{ family: 'p3-changed' }], meta: { versionId: '2' } });
    });

    it('exports every type when _type is absent (system level), none of them empty', async () => {
      const manifest = await admin.export('/fhir/$export');
      const types = manifest.output.map((o) => o.type);
      expect(types).toEqual(expect.arrayContaining(['Consent', 'Encounter', 'Group', 'Observation', 'Organization', 'Patient', 'Practitioner']));
      expect(manifest.output.every((o) => o.count > 0)).toBe(true);
    });

    it('exports patients\' compartments at Patient level: no Practitioner or Organization', async () => {
      const manifest = await admin.export('/fhir/Patient/$export');
      const types = [...new Set(manifest.output.map((o) => o.type))].sort();
      // A Group is in its members' compartments (R4 CompartmentDefinition: Group.member).
      expect(types).toEqual(['Consent', 'Encounter', 'Group', 'Observation', 'Patient']);
    });

    it('exports a Group\'s active patient members only, and reports the members that are not patients in the error file', async () => {
      const manifest = await admin.export('/fhir/Group/g1/$export?_type=Patient,Observation');
      expect(await admin.exported(manifest)).toEqual(['Observation/o1', 'Observation/o2', 'Observation/o3', 'Observation/o4', 'Patient/p1', 'Patient/p2']);
      expect(manifest.error).toHaveLength(1);
      expect(manifest.error[0]).toMatchObject({ type: 'OperationOutcome', count: 1 });
      const [problem] = await admin.lines(manifest.error[0].url);
      expect(problem.resourceType).toBe('OperationOutcome');
      expect(JSON.stringify(problem)).toContain('Practitioner/dr1');
    });

    it('takes the parameters from a Parameters body by POST, with patient references', async () => {
      const kick = await admin.kickOffPost('/fhir/Patient/$export', {
        resourceType: 'Parameters',
        parameter: [
          { name: '_type', valueString: 'Observation' },
          { name: 'patient', valueReference: { reference: 'Patient/p2' } },
          { name: '_outputFormat', valueString: 'application/fhir+ndjson' },
        ],
      });
      expect(kick.status).toBe(202);
      expect(await admin.exported(await admin.manifest(kick.headers['content-location']))).toEqual(['Observation/o4']);
    });

    it('answers 404 for a Group that does not exist', async () => {
      const res = await admin.kickOff('/fhir/Group/nope/$export');
      expect(res.status).toBe(404);
    });

    it('is advertised in the CapabilityStatement (instantiates bulk data; status and file URLs are not operations of their own)', async () => {
      const cs = (await request(server.rawApp).get('/fhir/metadata')).body;
      expect(cs.instantiates).toContain('http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data');
      const system = cs.rest[0].operation.map((o: { name: string }) => o.name);
      expect(system).toContain('export');
      expect(system).not.toContain('export-poll-status');
      const byType = (type: string) => cs.rest[0].resource.find((r: { type: string }) => r.type === type).operation.map((o: { definition: string }) => o.definition);
      expect(byType('Patient')).toContain('http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export');
      expect(byType('Group')).toContain('http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export');
    });
  });

  describe('parameters', () => {
    it('_type limits the types', async () => {
      const manifest = await admin.export('/fhir/$export?_type=Practitioner');
      expect(await admin.exported(manifest)).toEqual(['Practitioner/dr1']);
    });

    it('_since keeps what changed at or after the instant, and lists what was deleted since as DELETE Bundles', async () => {
      const manifest = await admin.export(`/fhir/$export?_type=Patient,Observation&_since=${encodeURIComponent(since)}`);
      expect(await admin.exported(manifest)).toEqual(['Observation/o5', 'Patient/p3']);
      expect(manifest.deleted).toEqual([{ type: 'Bundle', url: expect.stringContaining('file=deleted-Bundle-1.ndjson'), count: 1 }]);
      const [bundle] = await admin.lines(manifest.deleted![0].url);
      expect(bundle).toEqual({
        resourceType: 'Bundle',
        type: 'transaction',
        meta: { lastUpdated: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/) },
        entry: [{ request: { method: 'DELETE', url: 'Observation/o6' } }],
      });
      expect(Date.parse((bundle.meta as { lastUpdated: string }).lastUpdated)).toBeGreaterThanOrEqual(Date.parse(since));
      // Not at patient level: a deleted resource keeps no compartments to check; the error file says so.
      const patientLevel = await admin.export(`/fhir/Patient/$export?_type=Observation&_since=${encodeURIComponent(since)}`);
      expect(patientLevel.deleted).toEqual([]);
      const [note] = await admin.lines(patientLevel.error[0].url);
      expect(JSON.stringify(note)).toContain('Deleted resources are not reported');
    });

    it('_elements keeps the listed and mandatory elements, per type when prefixed, marked SUBSETTED', async () => {
      const manifest = await admin.export('/fhir/$export?_type=Observation,Patient&_elements=subject,Patient.gender');
      const observations = await admin.lines(manifest.output.find((o) => o.type === 'Observation')!.url);
      const o1 = observations.find((o) => o.id === 'o1')!;
      // status and code are mandatory; subject was asked; valueString and the rest are not.
      expect(Object.keys(o1).sort()).toEqual(['code', 'id', 'meta', 'resourceType', 'status', 'subject']);
      expect((o1.meta as { tag: Array<{ code: string }> }).tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
      const patients = await admin.lines(manifest.output.find((o) => o.type === 'Patient')!.url);
      // subject is no element of Patient, and gender is absent: a Patient keeps id and meta only.
      expect(patients.map((p) => Object.keys(p).sort())).toEqual(patients.map(() => ['id', 'meta', 'resourceType']));
    });

    it('_typeFilter runs the store\'s search on its type; several filters of one type are alternatives', async () => {
      const one = await admin.export(`/fhir/$export?_type=Observation,Patient&_typeFilter=${encodeURIComponent(`Observation?code=${LOINC}|2345-7`)}`);
      expect(await admin.exported(one)).toEqual(['Observation/o1', 'Observation/o3', 'Observation/o4', 'Patient/p1', 'Patient/p2', 'Patient/p3']);
      const filters = [`Observation?code=${encodeURIComponent(`${LOINC}|718-7`)}`, 'Observation?subject=Patient/p3', 'Patient?family=p2'].map(encodeURIComponent).join(',');
      const two = await admin.export(`/fhir/$export?_type=Observation,Patient&_typeFilter=${filters}`);
      expect(await admin.exported(two)).toEqual(['Observation/o2', 'Observation/o5', 'Patient/p2']);
    });

    it.each(['application/fhir+ndjson', 'application/ndjson', 'ndjson'])('_outputFormat %s is NDJSON', async (format) => {
      const res = await admin.kickOff(`/fhir/$export?_type=Practitioner&_outputFormat=${encodeURIComponent(format)}`);
      expect(res.status).toBe(202);
      await server.bulkExport.idle();
    });

    it.each([
      ['/fhir/$export?_type=Patient,Nonsense', /Nonsense.*not a FHIR R4 resource type/],
      ['/fhir/Patient/$export?_type=Practitioner', /Practitioner cannot be in a patient's compartment/],
      ['/fhir/$export?_since=yesterday', /_since must be a FHIR instant/],
      ['/fhir/$export?_since=2024-01-01', /_since must be a FHIR instant/],
      ['/fhir/$export?_outputFormat=text/csv', /_outputFormat "text\/csv" is not supported/],
      ['/fhir/$export?_typeFilter=Observation', /must be a search such as/],
      ['/fhir/$export?_type=Patient&_typeFilter=Observation%3Fcode%3Dx', /on Observation, which is not exported: add it to _type/],
      ['/fhir/$export?_typeFilter=Observation%3F_sort%3Ddate', /_sort is not a search parameter/],
      ['/fhir/$export?_typeFilter=Observation%3Fbogus%3D1', /bogus is not a search parameter of Observation/],
      ['/fhir/$export?_typeFilter=Observation%3Fdate%3Dxx2020', /./],
      ['/fhir/$export?_type=Patient&_elements=Observation.code', /_elements "Observation.code" is on Observation, which is not exported/],
      ['/fhir/$export?_elements=name.given', /must be a root element/],
      ['/fhir/$export?includeAssociatedData=LatestProvenanceResources', /LatestProvenanceResources is not supported/],
      ['/fhir/$export?includeAssociatedData=_custom', /_custom is not supported/],
      ['/fhir/$export?foo=bar', /"foo" is not a parameter of \$export/],
      ['/fhir/$export?_since=2024-01-01T00:00:00Z&_since=2025-01-01T00:00:00Z', /_since may be given once/],
    ])('%s is a 400 OperationOutcome', async (path, message) => {
      const res = await admin.kickOff(path);
      expect(res.status).toBe(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(res.body.issue[0].diagnostics).toMatch(message);
    });

    it('ignores unsupported parameters under Prefer: handling=lenient, saying so in the error file', async () => {
      const res = await admin.kickOff('/fhir/$export?_type=Practitioner&includeAssociatedData=LatestProvenanceResources', { Prefer: 'respond-async, handling=lenient' });
      expect(res.status).toBe(202);
      const manifest = await admin.manifest(res.headers['content-location']);
      expect(await admin.exported(manifest)).toEqual(['Practitioner/dr1']);
      const [note] = await admin.lines(manifest.error[0].url);
      expect(note.issue).toEqual([expect.objectContaining({ severity: 'warning', diagnostics: expect.stringContaining('LatestProvenanceResources is not supported') })]);
    });

    it('requires Prefer: respond-async', async () => {
      const res = await admin.kickOff('/fhir/$export', {});
      expect(res.status).toBe(400);
      expect(res.body.issue[0].diagnostics).toMatch(/Prefer: respond-async/);
    });

    it('cannot be an entry of a transaction', async () => {
      const res = await request(server.app)
        .post('/fhir')
        .set('Content-Type', FHIR_JSON)
        .send({ resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'GET', url: '$export' } }] });
      expect(res.status).toBe(400);
    });
  });

  describe('authorization', () => {
    it('serves status and files to the client that started the export only', async () => {
      const kick = await admin.kickOff('/fhir/$export?_type=Patient');
      const poll = kick.headers['content-location'];
      const manifest = await admin.manifest(poll);
      const other = new BulkClient(server, (await server.tokenFor({ role: 'admin' })).token);
      expect((await other.get(poll)).status).toBe(404);
      expect((await other.get(manifest.output[0].url)).status).toBe(404);
      expect((await other.delete(poll)).status).toBe(404);
      // No token, or a bad one: 401.
      expect((await request(server.rawApp).get(pathOf(manifest.output[0].url))).status).toBe(401);
      expect((await request(server.rawApp).get(pathOf(manifest.output[0].url)).set('Authorization', 'Bearer x.y.z')).status).toBe(401);
      // The owner still can.
      expect((await admin.get(manifest.output[0].url)).status).toBe(200);
      // A file name that is not in the manifest, or a malformed job id.
      expect((await admin.get(manifest.output[0].url.replace('Patient-1', 'Observation-1'))).status).toBe(404);
      expect((await admin.get(manifest.output[0].url.replace('Patient-1.ndjson', '..%2Fsecret'))).status).toBe(404);
      expect((await admin.get(`${poll.split('=')[0]}=nope`)).status).toBe(400);
    });

    it('applies consent: an organisation the patient denied gets none of its record', async () => {
      const hospB = new BulkClient(server, (await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-b', scope: 'system/*.rs' })).token);
      const exported = await hospB.exported(await hospB.export('/fhir/Patient/$export?_type=Patient,Observation'));
      expect(exported).toEqual(['Observation/o1', 'Observation/o2', 'Observation/o3', 'Observation/o5', 'Patient/p1', 'Patient/p3']);
      const hospA = new BulkClient(server, (await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-a', scope: 'system/*.rs' })).token);
      expect(await hospA.exported(await hospA.export('/fhir/Patient/$export?_type=Patient'))).toEqual(['Patient/p1', 'Patient/p2', 'Patient/p3']);
    });

    it('applies the care relationship: a clinician exports only its organisation\'s patients', async () => {
      const clinician = new BulkClient(server, (await server.tokenFor({ role: 'clinician', organization: 'Organization/hosp-b', practitioner: 'Practitioner/dr1', scope: 'system/*.rs' })).token);
      const exported = await clinician.exported(await clinician.export('/fhir/Patient/$export?_type=Patient,Observation,Encounter'));
      expect(exported).toEqual(['Encounter/e1', 'Observation/o1', 'Observation/o2', 'Observation/o3', 'Patient/p1']);
    });

    it('applies scopes: only the types the token may read', async () => {
      const limited = new BulkClient(server, (await server.tokenFor({ role: 'supervisor', organization: 'Organization/hosp-a', scope: 'system/Patient.rs' })).token);
      expect(await limited.exported(await limited.export('/fhir/Patient/$export'))).toEqual(['Patient/p1', 'Patient/p2', 'Patient/p3']);
      const refused = await limited.kickOff('/fhir/Patient/$export?_type=Observation');
      expect(refused.status).toBe(403);
      // A system-level export needs search on every type.
      expect((await limited.kickOff('/fhir/$export?_type=Patient')).status).toBe(403);
      // A Group-level export needs read on Group.
      expect((await limited.kickOff('/fhir/Group/g1/$export')).status).toBe(403);
    });

    it('limits the exports a client may have running at once (429 with Retry-After)', async () => {
      const busy = await createTestServer(backend, { bulkExport: { maxActivePerClient: 1, runJobs: false } });
      try {
        const client = new BulkClient(busy, busy.adminToken);
        expect((await client.kickOff('/fhir/$export')).status).toBe(202);
        const second = await client.kickOff('/fhir/$export');
        expect(second.status).toBe(429);
        expect(second.headers['retry-after']).toBe('60');
      } finally {
        await busy.close();
      }
    });
  });
  describe('consistency point', () => {
    // PGlite runs one transaction at a time: no write can be in flight while an export reads.
    (backend === 'postgres' ? it : it.skip)('never loses a write that began before the kick-off and commits after the export read', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let began!: () => void;
      const open = new Promise<void>((resolve) => (began = resolve));
      // The write takes its lastUpdated as its transaction starts, then stays open while the export runs.
      const write = server.repository.write(async (session) => {
        await session.update('Patient', 'late', { resourceType: 'Patient', id: 'late', name: [{ family: 'Late' }] });
        began();
        await gate;
      });
      await open;
      const kickedOff = Date.now();
      const first = await admin.export('/fhir/$export?_type=Patient');
      release();
      await write;
      const { lastUpdated } = await server.repository.read('Patient', 'late');
      // The gap: stamped before the kick-off, committed after the export's snapshot.
      expect(lastUpdated.getTime()).toBeLessThan(kickedOff);
      expect(await admin.exported(first)).not.toContain('Patient/late');
      // transactionTime went back to before that write began, so the next _since export has it.
      expect(Date.parse(first.transactionTime)).toBeLessThanOrEqual(lastUpdated.getTime());
      const next = await admin.export(`/fhir/$export?_type=Patient&_since=${encodeURIComponent(first.transactionTime)}`);
      expect(await admin.exported(next)).toContain('Patient/late');
    });
  });
});
