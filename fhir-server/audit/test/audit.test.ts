/**
 * The audit log over HTTP: an AuditEvent for allowed and refused requests alike, "who looked at my record"
 * (AuditEvent?entity=Patient/{id}), no writes of AuditEvents over the API (not even by an admin), and a hash chain
 * that detects tampering in the database.
 */
import type { AuditEvent, Bundle } from '@medplum/fhirtypes';
import request from 'supertest';
import { BREAK_GLASS_FLAG } from '../audit-event';
import { verifyAuditChain } from '../hash-chain';
import { createTestServer, type TestServer } from '../../../test/server';
import type { Backend } from '../../../test/databases';

const FHIR_JSON = 'application/fhir+json';

describe.each<Backend>(['postgres', 'pglite'])('audit log on %s', (backend) => {
  let server: TestServer;
  let facility: { token: string; clientId: string };
  let supervisor: string;
  let patientId: string;
  const get = (token: string, path: string) => request(server.rawApp).get(path).set('Authorization', `Bearer ${token}`);
  const events = (bundle: Bundle): AuditEvent[] => (bundle.entry ?? []).map((e) => e.resource as AuditEvent);

  beforeAll(async () => {
    server = await createTestServer(backend);
    await request(server.app).put('/fhir/Organization/hosp-a').set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id: 'hosp-a' });
    const f = await server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-a', scope: 'system/Patient.cruds system/Observation.rs' });
    facility = { token: f.token, clientId: f.client.clientId };
    supervisor = (await server.tokenFor({ role: 'supervisor', organization: 'Organization/bureau' })).token;
    const created = await request(server.rawApp).post('/fhir/Patient').set('Authorization', `Bearer ${facility.token}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Patient' });
    patientId = created.body.id;
  });
  afterAll(async () => {
    await server.close();
  });

  it('records reads, searches and writes, and answers "who looked at my record"', async () => {
    expect((await get(facility.token, `/fhir/Patient/${patientId}`)).status).toBe(200);
    expect((await get(facility.token, `/fhir/Observation?patient=${patientId}`)).status).toBe(200);
    const log = await get(supervisor, `/fhir/AuditEvent?entity=Patient/${patientId}`);
    expect(log.status).toBe(200);
    const found = events(log.body);
    const byFacility = found.filter((e) => e.agent?.[0]?.who?.identifier?.value === facility.clientId);
    expect(byFacility.map((e) => e.subtype?.[0]?.code).sort()).toEqual(['create', 'read', 'search-type']);
    const read = byFacility.find((e) => e.subtype?.[0]?.code === 'read') as AuditEvent;
    expect(read.action).toBe('R');
    expect(read.outcome).toBe('0');
    expect(read.agent?.some((a) => a.who?.reference === 'Organization/hosp-a')).toBe(true);
    expect(read.agent?.[0]?.network?.address).toBeDefined();
    expect(read.purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('HOPERAT');
    const search = byFacility.find((e) => e.subtype?.[0]?.code === 'search-type') as AuditEvent;
    const query = search.entity?.find((e) => e.query)?.query as string;
    expect(Buffer.from(query, 'base64').toString()).toBe(`patient=${patientId}`);
    // `patient=` is a shorthand for the same thing, and the log can be read one event at a time.
    expect(events((await get(supervisor, `/fhir/AuditEvent?patient=${patientId}&agent=${facility.clientId}`)).body)).toHaveLength(3);
    expect((await get(supervisor, `/fhir/AuditEvent/${read.id}`)).body.id).toBe(read.id);
    // The intents journaled before writes stay out of the log when the writes finished.
    expect(events((await get(supervisor, '/fhir/AuditEvent?outcome=8')).body)).toEqual([]);
  });

  it('records refused requests: a bad token, a forbidden interaction', async () => {
    expect((await request(server.rawApp).get(`/fhir/Patient/${patientId}`).set('Authorization', 'Bearer forged.token.x')).status).toBe(401);
    expect((await get(facility.token, '/fhir/Encounter')).status).toBe(403);
    const failures = events((await get(supervisor, '/fhir/AuditEvent?outcome=4&_count=50')).body);
    expect(failures.some((e) => e.entity?.some((x) => x.what?.reference === `Patient/${patientId}`) && e.agent?.[0]?.who?.display === 'unauthenticated caller')).toBe(true);
    const forbidden = failures.find((e) => e.agent?.[0]?.who?.identifier?.value === facility.clientId && e.subtype?.[0]?.code === 'search-type');
    expect(forbidden?.outcomeDesc).toMatch(/scopes/);
  });

  it('flags break-the-glass access for review', async () => {
    const { token } = await server.tokenFor({ role: 'clinician', organization: 'Organization/clinic-c', practitioner: 'Practitioner/doc-9' });
    const res = await get(token, `/fhir/Patient/${patientId}`).set('X-Break-The-Glass', 'patient collapsed in the waiting room');
    expect(res.status).toBe(200);
    const flagged = events((await get(supervisor, `/fhir/AuditEvent?_tag=${BREAK_GLASS_FLAG}`)).body);
    expect(flagged).toHaveLength(1);
    expect(flagged[0].purposeOfEvent?.[0]?.coding?.[0]?.code).toBe('BTG');
    expect(flagged[0].outcomeDesc).toMatch(/collapsed/);
    expect(flagged[0].agent?.some((a) => a.who?.reference === 'Practitioner/doc-9' && a.requestor)).toBe(true);
  });

  it('refuses every write of an AuditEvent over the API, admin included, and reads to other roles', async () => {
    const event = events((await get(supervisor, '/fhir/AuditEvent?_count=1')).body)[0];
    expect((await request(server.app).put(`/fhir/AuditEvent/${event.id}`).set('Content-Type', FHIR_JSON).send(event)).status).toBe(405);
    expect((await request(server.app).delete(`/fhir/AuditEvent/${event.id}`)).status).toBe(405);
    expect((await request(server.app).post('/fhir/AuditEvent').set('Content-Type', FHIR_JSON).send({ ...event, id: undefined })).status).toBe(405);
    const bundle: Bundle = { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'DELETE', url: `AuditEvent/${event.id}` } }] };
    expect((await request(server.app).post('/fhir').set('Content-Type', FHIR_JSON).send(bundle)).body.entry[0].response.status).toMatch(/^405/);
    expect((await get(facility.token, '/fhir/AuditEvent')).status).toBe(403);
    expect((await get(supervisor, '/fhir/AuditEvent?code=x')).status).toBe(400);
  });

  it('chains every event, refuses changes in the database, and detects tampering', async () => {
    await server.audit.seal();
    const intact = await verifyAuditChain(server.db);
    expect(intact.ok).toBe(true);
    expect(intact.checked).toBeGreaterThan(5);
    const at = (pos: number) => `(SELECT seq FROM audit_chain WHERE chain_pos = ${pos})`;
    await expect(server.db.query(`UPDATE audit_event SET content = 'x' WHERE seq = ${at(2)}`)).rejects.toThrow(/append-only/);
    await expect(server.db.query(`DELETE FROM audit_event WHERE seq = ${at(3)}`)).rejects.toThrow(/append-only/);
    await expect(server.db.query('DELETE FROM audit_chain WHERE chain_pos = 3')).rejects.toThrow(/append-only/);
    await expect(server.db.query('TRUNCATE audit_event CASCADE')).rejects.toThrow(/append-only/);
    // Someone with the power to switch the guards off changes an event, removes another and a link: the chain shows it.
    await server.db.exec('ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only; ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only');
    await server.db.query(`UPDATE audit_event SET content = replace(content, '"interaction":"', '"interaction":"x') WHERE seq = ${at(2)}`);
    await server.db.query(`DELETE FROM audit_event WHERE seq = ${at(4)}`);
    await server.db.query('DELETE FROM audit_chain WHERE chain_pos = 5');
    await server.db.exec('ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only; ALTER TABLE audit_chain ENABLE TRIGGER audit_chain_append_only');
    const broken = await verifyAuditChain(server.db);
    expect(broken.ok).toBe(false);
    const report = broken.problems.join('\n');
    expect(report).toMatch(/event 2 .* changed after it was sealed/);
    expect(report).toMatch(/event 4 of the chain was removed/);
    expect(report).toMatch(/events 5 to 5 of the chain are missing/);
  });
});
