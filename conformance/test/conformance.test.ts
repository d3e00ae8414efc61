/**
 * The regional implementation guide on a real store (PostgreSQL, one server for the file): installed and served,
 * registered with the validator (writes and $validate judged by the regional profiles, undefined regional
 * extensions refused), and the conformance kit passing against the server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Bundle, ImplementationGuide, OperationOutcome, Resource, ServiceRequest, StructureDefinition } from '@medplum/fhirtypes';
import request from 'supertest';
import { ClientStore, registerProfile, validateResourceForWrite } from '../../fhir-server';
import { createTestServer, type TestServer } from '../../test/server';
import {
  DEFAULT_CANONICAL_BASE,
  guideResources,
  installImplementationGuide,
  loadConformanceConfig,
  loadImplementationGuide,
  registerImplementationGuide,
  runConformanceKit,
  withSnapshot,
  type ImplementationGuideContent,
} from '..';

const BASE = DEFAULT_CANONICAL_BASE;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.once('error', reject);
  });
}
const guide = loadImplementationGuide();
const errorsOf = (outcome: OperationOutcome): string[] =>
  (outcome.issue ?? []).filter((i) => i.severity === 'error' || i.severity === 'fatal').map((i) => i.expression?.[0] ?? '(none)');
const example = (id: string): Resource => structuredClone(guide.examples.find((e) => e.resource.id === id)?.resource as Resource);

describe('regional implementation guide', () => {
  let server: TestServer;
  let listener: Server;
  let firstInstall: number;

  beforeAll(async () => {
    registerImplementationGuide(guide);
    // The kit reaches the server over HTTP and follows the SMART configuration's token endpoint, which names the
    // public base URL: the server is told the port it will listen on.
    const port = await freePort();
    server = await createTestServer('postgres', { publicBaseUrl: `http://127.0.0.1:${port}` });
    firstInstall = await installImplementationGuide(server.repository, guide);
    listener = createServer(server.rawApp).listen(port, '127.0.0.1');
    await new Promise((resolve) => listener.once('listening', resolve));
  });

  afterAll(async () => {
    await new Promise((resolve) => listener.close(resolve));
    await server.close();
  });

  describe('content', () => {
    it('is valid FHIR: every resource the guide writes passes the store validator', () => {
      for (const resource of guideResources(guide)) {
        const issues = validateResourceForWrite(resource).filter((i) => i.severity === 'error');
        expect({ resource: `${resource.resourceType}/${resource.id}`, issues }).toEqual({ resource: `${resource.resourceType}/${resource.id}`, issues: [] });
      }
    });

    it('lists every definition, terminology resource and example it holds in the ImplementationGuide', () => {
      const listed = new Set((guide.implementationGuide.definition?.resource ?? []).map((r) => r.reference.reference));
      for (const resource of [...guide.structureDefinitions, ...guide.terminology]) {
        expect(listed).toContain(`${resource.resourceType}/${resource.id}`);
      }
      for (const e of guide.examples) {
        expect(listed).toContain(`${BASE}/${e.resource.resourceType}/${e.resource.id}`);
      }
      expect(guide.examples.filter((e) => e.valid).map((e) => e.profile).sort()).toEqual(guide.examples.filter((e) => !e.valid).map((e) => e.profile).sort());
    });

    it('defines the extensions the modules write, with their contexts and value types', () => {
      const byUrl = new Map(guide.structureDefinitions.map((sd) => [sd.url, sd]));
      const direction = byUrl.get(`${BASE}/StructureDefinition/referral-direction`) as StructureDefinition;
      expect(direction.context).toEqual([{ type: 'element', expression: 'ServiceRequest' }]);
      expect(direction.snapshot?.element.find((e) => e.id === 'Extension.value[x]')?.type).toEqual([{ code: 'code' }]);
      for (const id of ['referral-green-channel', 'recognition-grant', 'hl7-facility', 'administrative-division', 'binary-content', 'ethnicity', 'recognition-monitored-condition']) {
        expect(byUrl.has(`${BASE}/StructureDefinition/${id}`)).toBe(true);
      }
      // Supervision and audit still write under https://…; defined at the urls the data carries.
      for (const id of ['supervision-rule', 'supervision-finding', 'supervision-review', 'repeat-test-reason', 'extended-supply-reason', 'stable-chronic-patient', 'planned-readmission', 'request-id']) {
        expect(byUrl.has(`https://huimin.health/fhir/StructureDefinition/${id}`)).toBe(true);
      }
    });

    it('defines every regional extension the platform code names (a new one undefined would be refused on writes)', () => {
      const root = path.resolve(__dirname, '..', '..');
      const sources = (dir: string): string[] =>
        readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
          const full = path.join(dir, entry.name);
          if (entry.isDirectory()) {
            return ['node_modules', 'dist', 'test', 'data', '.git'].includes(entry.name) ? [] : sources(full);
          }
          return /\.tsx?$/.test(entry.name) ? [full] : [];
        });
      const named = new Set<string>();
      for (const file of sources(root)) {
        for (const m of readFileSync(file, 'utf8').matchAll(/(https?:\/\/huimin\.health\/fhir|\$\{[A-Z_]*BASE\})\/StructureDefinition\/([a-z][a-z0-9-]*)/g)) {
          named.add(m[2]);
        }
      }
      const defined = new Set(guide.structureDefinitions.map((sd) => sd.id));
      expect(named.size).toBeGreaterThan(10);
      expect([...named].filter((id) => !defined.has(id))).toEqual([]);
    });

    it('builds complex extension snapshots with a slice per part, its url fixed', () => {
      const grant = guide.structureDefinitions.find((sd) => sd.id === 'recognition-grant') as StructureDefinition;
      const ids = (grant.snapshot?.element ?? []).map((e) => e.id);
      expect(ids).toEqual(expect.arrayContaining(['Extension.extension:scope', 'Extension.extension:scope.url', 'Extension.extension:scope.value[x]', 'Extension.extension:period.value[x]']));
      expect(grant.snapshot?.element.find((e) => e.id === 'Extension.extension:scope.url')?.fixedUri).toBe('scope');
      expect(grant.snapshot?.element.find((e) => e.id === 'Extension.value[x]')?.max).toBe('0');
      // A profile's slice of a simple extension takes the extension's own elements (value type, url).
      const referral = guide.structureDefinitions.find((sd) => sd.id === 'huimin-referral-request') as StructureDefinition;
      const directionValue = referral.snapshot?.element.find((e) => e.id === 'ServiceRequest.extension:direction.value[x]');
      expect([directionValue?.min, directionValue?.type]).toEqual([1, [{ code: 'code' }]]);
      expect(referral.snapshot?.element.find((e) => e.id === 'ServiceRequest.extension:direction.url')?.fixedUri).toBe(`${BASE}/StructureDefinition/referral-direction`);
      expect(() => withSnapshot({ ...grant, differential: { element: [{ id: 'Extension.extension:scope.extension:deeper', path: 'Extension.extension.extension', sliceName: 'deeper' }] } })).toThrow(/slices within slices/);
      expect(() => withSnapshot({ ...grant, differential: { element: [{ id: 'Extension.nothing', path: 'Extension.nothing' }] } })).toThrow(/not an element/);
    });

    it('takes another canonical base from HUIMIN_CANONICAL_BASE, throughout', () => {
      const other = 'https://fhir.region.example.cn/ig';
      expect(loadConformanceConfig({ HUIMIN_CANONICAL_BASE: other }).canonicalBase).toBe(other);
      expect(loadConformanceConfig({}).canonicalBase).toBe(BASE);
      for (const bad of ['huimin.health/fhir', 'http://huimin.health/fhir/', 'http://huimin.health/fhir?x=1', `http://huimin.health/f"hir`, 'ftp://huimin.health/fhir']) {
        expect(() => loadConformanceConfig({ HUIMIN_CANONICAL_BASE: bad })).toThrow(/HUIMIN_CANONICAL_BASE/);
      }
      expect(loadConformanceConfig({ HUIMIN_CANONICAL_BASE: 'http://127.0.0.1:8080/fhir' }).canonicalBase).toBe('http://127.0.0.1:8080/fhir');
      const moved = loadImplementationGuide(other);
      expect(moved.implementationGuide.url).toBe(`${other}/ImplementationGuide/huimin`);
      expect(JSON.stringify([...guideResources(moved), ...moved.examples.map((e) => e.resource)])).not.toContain(BASE);
      expect(moved.examples[0].profile.startsWith(`${other}/StructureDefinition/`)).toBe(true);
    });
  });

  describe('in the store', () => {
    it('installs once: a second start writes nothing', async () => {
      expect(firstInstall).toBe(guideResources(guide).length);
      expect(await installImplementationGuide(server.repository, guide)).toBe(0);
    });

    it('serves StructureDefinitions by url and the ImplementationGuide', async () => {
      const url = `${BASE}/StructureDefinition/huimin-referral-request`;
      const sds = await request(server.app).get('/fhir/StructureDefinition').query({ url });
      expect(sds.status).toBe(200);
      const sd = (sds.body as Bundle<StructureDefinition>).entry?.map((e) => e.resource) ?? [];
      expect(sd.map((r) => r?.url)).toEqual([url]);
      expect(sd[0]?.snapshot?.element.some((e) => e.id === 'ServiceRequest.extension:direction')).toBe(true);
      const igs = await request(server.app).get('/fhir/ImplementationGuide');
      const ig = (igs.body as Bundle<ImplementationGuide>).entry?.[0]?.resource;
      expect(ig?.url).toBe(`${BASE}/ImplementationGuide/huimin`);
      const metadata = (await request(server.app).get('/fhir/metadata')).body;
      expect(metadata.implementationGuide).toEqual([`${BASE}/ImplementationGuide/huimin`]);
      const task = metadata.rest[0].resource.find((r: { type: string }) => r.type === 'Task');
      expect(task.supportedProfile).toEqual([`${BASE}/StructureDefinition/huimin-referral-task`]);
      const cs = await request(server.app).get('/fhir/CodeSystem').query({ url: `${BASE}/CodeSystem/referral-direction` });
      expect(cs.body.entry?.[0]?.resource?.concept?.map((c: { code: string }) => c.code)).toEqual(['up', 'down']);
    });
  });

  describe('validation against the regional profiles', () => {
    it.each(guide.examples.map((e) => [e.file, e] as const))('$validate judges %s as the guide says', async (_file, e) => {
      const res = await request(server.app).post(`/fhir/${e.resource.resourceType}/$validate`).send(e.resource);
      expect(res.status).toBe(200);
      const outcome = res.body as OperationOutcome;
      const errors = errorsOf(outcome);
      if (e.valid) {
        expect(errors).toEqual([]);
      } else {
        expect(errors).toContain(e.expression);
        if (e.message) {
          const at = outcome.issue?.find((i) => i.severity === 'error' && i.expression?.[0] === e.expression);
          expect(`${at?.details?.text} ${at?.diagnostics}`).toContain(e.message);
        }
      }
    });

    it('refuses a write claiming a regional profile it breaks, and names the element', async () => {
      const task = example('huimin-referral-task-invalid');
      delete task.id;
      const res = await request(server.app).post('/fhir/Task').send(task);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.body.resourceType).toBe('OperationOutcome');
      expect(errorsOf(res.body)).toContain('Task.owner');
      // The same Task without the claim is an ordinary R4 Task: the profile is not imposed on what does not claim it.
      const unclaimed = { ...task, meta: undefined, focus: undefined, for: undefined };
      expect(errorsOf({ resourceType: 'OperationOutcome', issue: validateResourceForWrite(unclaimed) } as OperationOutcome)).toEqual([]);
    });

    it('checks the referral direction code and the regional extensions on every write', () => {
      const sr = example('huimin-referral-request-valid') as ServiceRequest;
      sr.extension = [{ url: `${BASE}/StructureDefinition/referral-direction`, valueCode: 'sideways' }];
      expect(errorsOf({ resourceType: 'OperationOutcome', issue: validateResourceForWrite(sr) } as OperationOutcome)).toEqual(['ServiceRequest']);
      sr.extension = [{ url: `${BASE}/StructureDefinition/referral-direction`, valueString: 'up' }];
      expect(errorsOf({ resourceType: 'OperationOutcome', issue: validateResourceForWrite(sr) } as OperationOutcome)).toContain('ServiceRequest.extension[0].valueString');
    });

    it('refuses an undefined extension under the regional base, warns about other unknown ones', () => {
      const patient = { resourceType: 'Patient', extension: [{ url: `${BASE}/StructureDefinition/referal-direction`, valueCode: 'up' }, { url: 'http://example.org/fhir/StructureDefinition/hobby', valueString: 'go' }] };
      const issues = validateResourceForWrite(patient);
      expect(issues.filter((i) => i.severity === 'error').map((i) => [i.expression?.[0], i.diagnostics])).toEqual([
        ['Patient.extension[0]', expect.stringContaining(`every extension under ${BASE}/StructureDefinition/ must be defined`)],
      ]);
      expect(issues.find((i) => i.expression?.[0] === 'Patient.extension[1]')?.severity).toBe('warning');
      const misplaced = { resourceType: 'Patient', extension: [{ url: `${BASE}/StructureDefinition/referral-direction`, valueCode: 'up' }] };
      expect(validateResourceForWrite(misplaced).find((i) => i.severity === 'error')?.diagnostics).toMatch(/not allowed on Patient \(allowed on: ServiceRequest\)/);
    });

    it('checks an extension registered after it was first seen as unknown', () => {
      const url = 'http://example.org/fhir/StructureDefinition/late-registered';
      const patient = { resourceType: 'Patient', extension: [{ url, valueString: 'x' }] };
      expect(validateResourceForWrite(patient).find((i) => i.expression?.[0] === 'Patient.extension[0]')?.severity).toBe('warning');
      const direction = guide.structureDefinitions.find((sd) => sd.id === 'referral-direction') as StructureDefinition;
      registerProfile(withSnapshot({ ...direction, id: 'late-registered', url, differential: { element: direction.differential?.element.map((e) => (e.id === 'Extension.url' ? { ...e, fixedUri: url } : e)) ?? [] } }));
      expect(validateResourceForWrite(patient).filter((i) => i.severity === 'error').map((i) => i.diagnostics)).toEqual([
        expect.stringMatching(/not allowed on Patient/),
        expect.stringMatching(/takes a value of type code, found valueString/),
      ]);
    });

    it('accepts the regional extensions as the modules write them', () => {
      const grant = {
        resourceType: 'HealthcareService',
        extension: [{ url: `${BASE}/StructureDefinition/recognition-grant`, extension: [{ url: 'scope', valueCoding: { system: `${BASE}/CodeSystem/recognition-scope`, code: 'provincial' } }, { url: 'period', valuePeriod: { start: '2026-01-01', end: '2027-12-31' } }] }],
      };
      const facility = {
        resourceType: 'Organization',
        name: 'Hospital A',
        extension: [{ url: `${BASE}/StructureDefinition/hl7-facility`, extension: [{ url: 'charset', valueString: 'GB 18030-2000' }, { url: 'mrnSystem', valueUri: 'urn:oid:1.2.156.1' }, { url: 'allowedAddress', valueString: '10.0.0.1' }] }],
      };
      const finding = {
        resourceType: 'DetectedIssue',
        status: 'preliminary',
        extension: [{ url: 'https://huimin.health/fhir/StructureDefinition/supervision-rule', extension: [{ url: 'id', valueCode: 'RX-1' }, { url: 'version', valueInteger: 2 }] }],
      };
      const S = 'https://huimin.health/fhir/StructureDefinition';
      const decided = { resourceType: 'DetectedIssue', status: 'final', mitigation: [{ extension: [{ url: `${BASE}/StructureDefinition/recognition-monitored-condition`, valueCodeableConcept: { text: '2型糖尿病' } }], action: { text: 'serial monitoring' } }] };
      const binary = { resourceType: 'Binary', contentType: 'application/pdf', meta: { extension: [{ url: `${BASE}/StructureDefinition/binary-content`, valueAttachment: { url: `urn:sha256:${'0'.repeat(64)}`, size: 3 } }] } };
      const institution = { resourceType: 'Organization', name: 'Clinic', address: [{ extension: [{ url: `${BASE}/StructureDefinition/administrative-division`, valueCoding: { system: `${BASE}/CodeSystem/gb-t-2260`, code: '340104' } }] }] };
      const stay = { resourceType: 'Encounter', status: 'finished', class: { code: 'IMP' }, hospitalization: { extension: [{ url: `${S}/planned-readmission`, valueBoolean: true }] } };
      const prescription = {
        resourceType: 'MedicationRequest', status: 'active', intent: 'order', subject: { reference: 'Patient/p' }, medicationCodeableConcept: { text: 'metformin' },
        extension: [{ url: `${S}/stable-chronic-patient`, valueBoolean: true }],
        dispenseRequest: { extension: [{ url: `${S}/extended-supply-reason`, valueString: '慢病长处方' }] },
      };
      for (const resource of [grant, facility, finding, decided, binary, institution, stay, prescription]) {
        expect(validateResourceForWrite(resource).filter((i) => i.severity !== 'information' && i.severity !== 'warning')).toEqual([]);
      }
    });
  });

  describe('conformance kit', () => {
    const baseUrl = (): string => `http://127.0.0.1:${(listener.address() as AddressInfo).port}/fhir`;

    it('passes against a platform serving the guide', async () => {
      const report = await runConformanceKit({ baseUrl: baseUrl(), token: server.adminToken, guide });
      expect(report.checks.filter((c) => !c.ok)).toEqual([]);
      expect(report.passed).toBe(1 + 1 + guide.structureDefinitions.length + guide.terminology.length + guide.examples.length);
    });

    it('fails, saying why, when the server does not judge an example as the guide expects or lacks a definition', async () => {
      const altered: ImplementationGuideContent = {
        ...guide,
        terminology: [...guide.terminology, { resourceType: 'CodeSystem', id: 'missing', url: `${BASE}/CodeSystem/not-installed`, status: 'active', content: 'complete' }],
        examples: guide.examples.map((e) => (e.valid ? e : { ...e, expression: 'Patient.birthDate' })),
      };
      const report = await runConformanceKit({ baseUrl: baseUrl(), token: server.adminToken, guide: altered });
      expect(report.failed).toBe(1 + guide.examples.filter((e) => !e.valid).length);
      expect(report.checks.find((c) => c.name.includes('not-installed'))?.detail).toMatch(/not found/);
      expect(report.checks.find((c) => !c.ok && c.name.startsWith('$validate'))?.detail).toMatch(/^expected an error at Patient.birthDate( \(hm-pat-1\))?, got: Patient: Constraint hm-pat-1 not met/);
    });

    it('signs in with client credentials through the SMART configuration', async () => {
      await new ClientStore(server.db).ensureAdmin({ clientId: 'conformance-kit', secret: 'kit-secret-0123456789' });
      const onlyMetadata = { ...guide, structureDefinitions: [], terminology: [], examples: [] };
      const report = await runConformanceKit({ baseUrl: baseUrl(), client: { id: 'conformance-kit', secret: 'kit-secret-0123456789' }, guide: onlyMetadata });
      expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
        ['token (client credentials)', true],
        ['CapabilityStatement', true],
        [`served: ImplementationGuide ${BASE}/ImplementationGuide/huimin`, true],
      ]);
      const refused = await runConformanceKit({ baseUrl: baseUrl(), client: { id: 'conformance-kit', secret: 'wrong-secret-0123456789' }, guide: onlyMetadata });
      expect([refused.failed, refused.checks[0].detail]).toEqual([1, expect.stringMatching(/token endpoint .* answered HTTP 401/)]);
    });

    it('reports a refused token as a failure, not a crash', async () => {
      const report = await runConformanceKit({ baseUrl: baseUrl(), token: 'not-a-token', guide: { ...guide, structureDefinitions: [], terminology: [], examples: [] } });
      expect(report.failed).toBe(2);
      expect(report.checks[0].detail).toMatch(/HTTP 401/);
    });
  });
});
