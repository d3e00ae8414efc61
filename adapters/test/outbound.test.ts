/**
 * Outbound: REF^I12, ORU^R01 and the responses to HL7 orders (ORR^O02, ORL^O22) to a facility's MLLP Endpoint with
 * BullMQ retries, a dead-letter list and its requeue operation; QBP^Q22.
 */
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import type { AuditEvent, Bundle, DetectedIssue, DiagnosticReport, Endpoint, Observation, Organization, Parameters, Patient, ServiceRequest, Task } from '@medplum/fhirtypes';
import request from 'supertest';
import { MllpServer } from '../mllp/server';
import { Hl7Outbound } from '../outbound/queue';
import { queryDemographics } from '../outbound/query';
import { Hl7ReferralSender } from '../outbound/referral-sender';
import { hl7, readAck, startHl7Platform, type Hl7TestPlatform } from './harness';

const logger = pino({ level: 'silent' });

/** A hospital system: answers AE to the first message it gets, AA afterwards, and RSP^K22 to queries. */
async function fakeFacility(): Promise<{ server: MllpServer; port: number; received: string[] }> {
  const received: string[] = [];
  const server = new MllpServer({ port: 0, host: '127.0.0.1', maxMessageBytes: 1 << 20, idleTimeoutMs: 10_000, logger }, {
    onMessage: async (bytes) => {
      const text = bytes.toString('utf8');
      received.push(text);
      const controlId = text.split('\r')[0].split('|')[9];
      if (text.includes('|QBP^Q22')) {
        return Buffer.from(hl7('MSH|^~\\&|HIS|HOSP-OUT|HUIMIN|CITY|20250301||RSP^K22^RSP_K21|R1|P|2.5', `MSA|AA|${controlId}`, 'QAK|tag|OK', 'QPD|IHE PDQ Query|tag', 'PID|1||Q-1^^^HOSP-OUT^MR||宋^江||19700101|M'));
      }
      const code = received.length === 1 ? 'AE' : 'AA';
      return Buffer.from(hl7('MSH|^~\\&|HIS|HOSP-OUT|HUIMIN|CITY|20250301||ACK|A1|P|2.5', `MSA|${code}|${controlId}`));
    },
    onOversized: async () => undefined,
  });
  const port = await server.listen();
  return { server, port, received };
}

async function until(check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('HL7 v2 outbound', () => {
  let p: Hl7TestPlatform;
  let outbound: Hl7Outbound;
  let facility: Awaited<ReturnType<typeof fakeFacility>>;
  let orgId: string;
  let patient: Patient;

  beforeAll(async () => {
    p = await startHl7Platform();
    facility = await fakeFacility();
    orgId = await p.registerFacility('HOSP-OUT');
    const endpoint: Endpoint = {
      resourceType: 'Endpoint',
      status: 'active',
      connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7v2-mllp' },
      payloadType: [{ text: 'HL7 v2' }],
      address: `mllp://127.0.0.1:${facility.port}`,
      managingOrganization: { reference: `Organization/${orgId}` },
    };
    await p.server.repository.write((s) => s.create(endpoint));
    patient = (await p.server.repository.write((s) =>
      s.create({ resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '110101199003074477' }], name: [{ family: '张', given: ['伟'] }], birthDate: '1990-03-07', gender: 'male' }),
    )) as Patient;
    outbound = new Hl7Outbound({ repo: p.server.repository, redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-out-${randomBytes(3).toString('hex')}`, logger, attempts: 3, backoffMs: 50 });
    outbound.start();
  });
  afterAll(async () => {
    await outbound.stop();
    await facility.server.close();
    await p.close();
  });

  it('sends a referral as REF^I12, retrying after an AE until the facility accepts it', async () => {
    const request = (await p.server.repository.write((s) =>
      s.create({ resourceType: 'ServiceRequest', status: 'active', intent: 'order', identifier: [{ system: 'urn:huimin:referral', value: 'REF-1' }], priority: 'urgent', subject: { reference: `Patient/${patient.id}` }, authoredOn: '2025-03-01T10:00:00+08:00', code: { coding: [{ system: 'http://loinc.org', code: '11502-2', display: 'Laboratory report' }] } }),
    )) as ServiceRequest;
    await outbound.enqueue({ kind: 'referral', resource: `ServiceRequest/${request.id}`, facility: orgId, facilityKey: 'HOSP-OUT' });
    await until(() => facility.received.length >= 2);
    const [first, second] = facility.received;
    expect(first).toMatch(/^MSH\|\^~\\&\|HUIMIN\|HUIMIN\|HIS\|HOSP-OUT\|.*\|REF\^I12\^REF_I12\|/);
    expect(second).toContain('RF1|P^Pending^HL70283|A^^HL70280||||REF-1|20250301100000+0800');
    expect(second).toContain('PID|1||110101199003074477^^^&2.16.156.10011.1.3&ISO||张^伟||19900307|M');
    expect(second).toContain('OBR|1|REF-1||11502-2^Laboratory report^LN');
  });

  it('sends the referral workflow\'s REF^I12 once per notification, with the same MSH-10 however often it is asked', async () => {
    const request = (await p.server.repository.write((s) =>
      s.create({ resourceType: 'ServiceRequest', status: 'active', intent: 'order', identifier: [{ system: 'urn:huimin:referral', value: 'REF-W' }], subject: { reference: `Patient/${patient.id}` } }),
    )) as ServiceRequest;
    const task = { resourceType: 'Task', id: 't1', status: 'requested', intent: 'order', owner: { reference: `Organization/${orgId}` } } as Task;
    const sender = new Hl7ReferralSender(outbound, p.server.repository);
    const before = facility.received.length;
    await sender.sendReferral({ task, serviceRequest: request, controlId: 't1-2' });
    await sender.sendReferral({ task, serviceRequest: request, controlId: 't1-2' });
    await until(() => facility.received.some((m) => m.includes('REF-W')));
    await new Promise((r) => setTimeout(r, 300));
    const sent = facility.received.slice(before).filter((m) => m.includes('REF-W'));
    expect(sent).toHaveLength(1);
    expect(sent[0].split('\r')[0].split('|')[9]).toMatch(/^[A-Za-z0-9_-]{20}$/);
    // A receiver without an MLLP Endpoint learns of referrals through Communications and Subscriptions: nothing is queued.
    const other = (await p.server.repository.write((s) => s.create({ resourceType: 'Organization', name: 'No HL7 here' }))) as Organization;
    await sender.sendReferral({ task: { ...task, owner: { reference: `Organization/${other.id}` } }, serviceRequest: request, controlId: 't1-3' });
    // Queued, it would fail three times (no endpoint, 50 ms backoff) and land among the dead letters.
    await new Promise((r) => setTimeout(r, 800));
    expect(await outbound.deadLetters()).toEqual([]);
  });

  it('notifies a result as ORU^R01 with its observations', async () => {
    const before = facility.received.length;
    const [observation] = (await p.server.repository.write(async (s) => [
      await s.create({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '2345-7', display: 'Glucose' }] }, subject: { reference: `Patient/${patient.id}` }, valueQuantity: { value: 5.6, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' }, referenceRange: [{ low: { value: 3.9 }, high: { value: 6.1 } }] }),
    ])) as Observation[];
    const report = (await p.server.repository.write((s) =>
      s.create({ resourceType: 'DiagnosticReport', status: 'final', identifier: [{ value: 'DR-1' }], code: { coding: [{ system: 'http://loinc.org', code: '24323-8' }] }, subject: { reference: `Patient/${patient.id}` }, result: [{ reference: `Observation/${observation.id}` }] }),
    )) as DiagnosticReport;
    await outbound.enqueue({ kind: 'result', resource: `DiagnosticReport/${report.id}`, facility: orgId, facilityKey: 'HOSP-OUT' });
    await until(() => facility.received.length > before);
    const sent = facility.received[before];
    expect(sent).toContain('|ORU^R01^ORU_R01|');
    expect(sent).toContain('OBR|1||DR-1|24323-8^^LN');
    expect(sent).toContain('OBX|1|NM|2345-7^Glucose^LN||5.6|mmol/L^mmol/L^UCUM|3.9-6.1||||F');
  });

  it('answers an HL7 order with ORR^O02 (ORM^O01) or ORL^O22 (OML^O21) naming the order and the advisory', async () => {
    const client = await p.connect();
    const orders: Record<string, ServiceRequest> = {};
    for (const [type, id] of [['ORM^O01^ORM_O01', 'ORM-7'], ['OML^O21^OML_O21', 'OML-7']] as const) {
      const ack = readAck(await client.send(Buffer.from(hl7(
        `MSH|^~\\&|HIS|HOSP-OUT|HUIMIN|CITY|20261120080000+0800||${type}|${id}|P|2.5|||||CHN|UNICODE UTF-8`,
        'PID|1||OUT-7^^^HOSP-OUT^MR||赵^云||19800101|M',
        `ORC|NW|P-${id}|||||||20261120080000+0800`,
        `OBR|1|P-${id}||2823-3^Potassium^LN`,
      ), 'utf8')));
      expect(ack.code).toBe('AA');
      [orders[id]] = await p.search<ServiceRequest>('ServiceRequest', { identifier: `P-${id}` });
    }
    const issue = (await p.server.repository.write((s) =>
      s.create({ resourceType: 'DetectedIssue', status: 'preliminary', code: { coding: [{ system: 'http://huimin.health/fhir/CodeSystem/recognition-issue', code: 'duplicate-test', display: 'Recognisable prior result' }] }, detail: '血钾 4.1 mmol/L, 2026-11-19, Hospital A, 本省HR\n血糖 6.0 mmol/L, 2026-11-19, Hospital A, 本省HR' }),
    )) as DetectedIssue;
    for (const id of ['ORM-7', 'OML-7']) {
      await outbound.enqueue({ kind: 'order-response', resource: `ServiceRequest/${orders[id].id}`, advisory: `DetectedIssue/${issue.id}`, facility: orgId, facilityKey: 'HOSP-OUT', controlId: `RESP-${id}` });
    }
    await until(() => ['RESP-ORM-7', 'RESP-OML-7'].every((c) => facility.received.some((m) => m.includes(`|${c}|`))));
    const orr = facility.received.find((m) => m.includes('|RESP-ORM-7|')) as string;
    const orl = facility.received.find((m) => m.includes('|RESP-OML-7|')) as string;
    expect(orr).toContain('|ORR^O02^ORR_O02|');
    expect(orl).toContain('|ORL^O22^ORL_O22|');
    const lines = orr.split('\r');
    expect(lines[1]).toBe('MSA|AA|ORM-7');
    expect(lines).toContain('NTE|1|L|血钾 4.1 mmol/L, 2026-11-19, Hospital A, 本省HR|RE^Remark^HL70364');
    expect(lines.find((l) => l.startsWith('ORC'))).toBe('ORC|OK|P-ORM-7|||IP|||||||||||duplicate-test^Recognisable prior result^L');
    expect(lines.find((l) => l.startsWith('OBR'))).toBe('OBR|1|P-ORM-7||2823-3^Potassium^LN');
    expect(orl.split('\r')[1]).toBe('MSA|AA|OML-7');
  });

  it('dead-letters an order response for an order that did not come by HL7 at once, without retrying', async () => {
    const order = (await p.server.repository.write((s) => s.create({ resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject: { reference: `Patient/${patient.id}` } }))) as ServiceRequest;
    await outbound.enqueue({ kind: 'order-response', resource: `ServiceRequest/${order.id}`, advisory: 'DetectedIssue/none', facility: orgId, facilityKey: 'HOSP-OUT' });
    await until(async () => (await outbound.deadLetters()).some((d) => d.resource === `ServiceRequest/${order.id}`));
    const [dead] = (await outbound.deadLetters()).filter((d) => d.resource === `ServiceRequest/${order.id}`);
    expect(dead.error).toContain('did not come by HL7 ORM/OML');
    expect(dead.failedAt).toBeDefined();
  });

  it('moves a message the facility never accepts to the dead-letter list, and an administrator requeues it once fixed', async () => {
    const silentOrg = await p.registerFacility('HOSP-GONE');
    const endpoint = (await p.server.repository.write((s) =>
      s.create({ resourceType: 'Endpoint', status: 'active', connectionType: { system: 'http://terminology.hl7.org/CodeSystem/endpoint-connection-type', code: 'hl7v2-mllp' }, payloadType: [{ text: 'HL7 v2' }], address: 'mllp://127.0.0.1:1', managingOrganization: { reference: `Organization/${silentOrg}` } } as Endpoint),
    )) as Endpoint;
    const referral = (await p.server.repository.write((s) =>
      s.create({ resourceType: 'ServiceRequest', status: 'active', intent: 'order', identifier: [{ system: 'urn:huimin:referral', value: 'REF-GONE' }], subject: { reference: `Patient/${patient.id}` } }),
    )) as ServiceRequest;
    await outbound.enqueue({ kind: 'referral', resource: `ServiceRequest/${referral.id}`, facility: silentOrg, facilityKey: 'HOSP-GONE', controlId: 'REF-GONE-1' });
    await until(async () => (await outbound.deadLetters()).some((d) => d.resource === `ServiceRequest/${referral.id}`));
    const [dead] = (await outbound.deadLetters()).filter((d) => d.resource === `ServiceRequest/${referral.id}`);
    expect(dead.error).toMatch(/ECONNREFUSED/);

    // Operators see the list; only administrators send again.
    const listed = await request(p.server.app).get('/fhir/$hl7-outbound-dead').expect(200);
    expect(JSON.stringify(listed.body)).toContain(`ServiceRequest/${referral.id}`);
    const supervisor = (await p.server.tokenFor({ role: 'supervisor', organization: `Organization/${silentOrg}` })).token;
    const requeue = (body: Parameters, token?: string) => {
      const call = request(token ? p.server.rawApp : p.server.app).post('/fhir/$hl7-outbound-requeue').set('Content-Type', 'application/fhir+json');
      return (token ? call.set('Authorization', `Bearer ${token}`) : call).send(body);
    };
    expect((await requeue({ resourceType: 'Parameters', parameter: [{ name: 'deadLetter', valueString: dead.id }] }, supervisor)).status).toBe(403);
    expect((await requeue({ resourceType: 'Parameters' })).status).toBe(400);

    // The hospital's system is back at another address: requeued, it is delivered with its own MSH-10.
    await p.server.repository.write((s) => s.update('Endpoint', endpoint.id as string, { ...endpoint, address: `mllp://127.0.0.1:${facility.port}` }));
    const res = await requeue({ resourceType: 'Parameters', parameter: [{ name: 'facility', valueString: `Organization/${silentOrg}` }] });
    expect(res.status).toBe(200);
    expect((res.body as Parameters).parameter).toHaveLength(1);
    await until(() => facility.received.some((m) => m.includes('|REF-GONE-1|') && m.includes('REF^I12')));
    expect((await outbound.deadLetters()).some((d) => d.resource === `ServiceRequest/${referral.id}`)).toBe(false);
    // The call is on the audit record.
    await until(async () => {
      const audit = await request(p.server.app).get('/fhir/AuditEvent').query({ _count: '200' });
      return audit.status === 200 && ((audit.body as Bundle<AuditEvent>).entry ?? []).some((e) => JSON.stringify(e.resource).includes('hl7-outbound-requeue'));
    });
  });

  it('queries a facility for a patient with QBP^Q22 and maps the RSP^K22 answer', async () => {
    const found = await queryDemographics(p.server.repository, (await p.adapters.facilities.find('HOSP-OUT', ''))!, { system: 'urn:oid:2.16.156.10011.1.3', value: '110101199003074477' });
    expect(facility.received[facility.received.length - 1]).toContain('QPD|IHE PDQ Query|');
    expect(found).toHaveLength(1);
    expect(found[0].name?.[0]).toMatchObject({ family: '宋', given: ['江'] });
  });
});
