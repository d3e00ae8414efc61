/** Operator operations: searching the message store, replaying failed messages, the facility-connection view. */
import request from 'supertest';
import type { OperationOutcome, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { hl7, readAck, startHl7Platform, type Hl7TestPlatform } from './harness';

const part = (p: ParametersParameter, name: string): ParametersParameter | undefined => p.part?.find((x) => x.name === name);

describe('HL7 operator operations', () => {
  let p: Hl7TestPlatform;
  beforeAll(async () => {
    p = await startHl7Platform();
    await p.registerFacility('HOSP-A', { name: 'Hospital A' });
    await p.registerFacility('QUIET', { name: 'Quiet county clinic' });
  });
  afterAll(async () => p.close());

  const message = (facility: string, id: string, mrn: string): string =>
    hl7(`MSH|^~\\&|HIS|${facility}|HUIMIN|CITY|20250301100000+0800||ADT^A04^ADT_A01|${id}|P|2.5`, `PID|1||${mrn}^^^${facility}^MR||WU^YI||19800101|M`);

  it('finds failed messages, replays them once the facility is registered, and records the replay', async () => {
    const c = await p.connect();
    expect(readAck(await c.send(message('LATE', 'L-1', 'L-1'))).code).toBe('AR');
    const found = await request(p.server.app).get('/fhir/$hl7-messages?outcome=AR&pending-replay=true');
    expect(found.status).toBe(200);
    const failed = (found.body as Parameters).parameter?.find((m) => part(m, 'controlId')?.valueString === 'L-1');
    expect(part(failed as ParametersParameter, 'error')?.valueString).toMatch(/MSH-4.*not registered/);
    const id = part(failed as ParametersParameter, 'id')?.valueString as string;

    await p.registerFacility('LATE');
    const replay = await request(p.server.app)
      .post('/fhir/$hl7-replay')
      .set('Content-Type', 'application/fhir+json')
      .send({ resourceType: 'Parameters', parameter: [{ name: 'message', valueString: id }] });
    expect(replay.status).toBe(200);
    const result = (replay.body as Parameters).parameter?.[0] as ParametersParameter;
    expect(part(result, 'outcome')?.valueString).toBe('AA');
    expect(await p.search('Patient', { identifier: 'L-1' })).toHaveLength(1);

    const pending = await request(p.server.app).get('/fhir/$hl7-messages?pending-replay=true');
    expect((pending.body as Parameters).parameter?.some((m) => part(m, 'id')?.valueString === id)).toBe(false);
    const original = await request(p.server.app).get('/fhir/$hl7-messages?control-id=L-1&content=true');
    const rows = (original.body as Parameters).parameter ?? [];
    expect(rows).toHaveLength(2);
    const first = rows.find((r) => part(r, 'id')?.valueString === id) as ParametersParameter;
    expect(part(first, 'replayedBy')?.valueString).toBe(part(result, 'replay')?.valueString);
    expect(Buffer.from(part(first, 'content')?.valueBase64Binary as string, 'base64').toString()).toContain('L-1');
  });

  it('shows per facility the last message, counts per type, error rate, and flags the silent ones', async () => {
    const c = await p.connect();
    await c.send(message('HOSP-A', 'A-1', 'A-1'));
    await c.send(hl7('MSH|^~\\&|HIS|HOSP-A|HUIMIN|CITY|20250301100000+0800||ADT^A04^ADT_A01|A-2|P|2.5', 'PID|1||A-2^^^HOSP-A^MR||X^Y||baddate'));
    const view = await request(p.server.app).get('/fhir/$hl7-facilities?silent-after-hours=1');
    expect(view.status).toBe(200);
    const params = (view.body as Parameters).parameter ?? [];
    const facility = (name: string): ParametersParameter | undefined => params.find((x) => x.name === 'facility' && part(x, 'organization')?.valueReference?.display === name);
    const a = facility('Hospital A') as ParametersParameter;
    expect(part(a, 'messages')?.valueInteger).toBe(2);
    expect(part(a, 'errors')?.valueInteger).toBe(1);
    expect(part(a, 'errorRate')?.valueDecimal).toBe(0.5);
    expect(part(a, 'silent')?.valueBoolean).toBe(false);
    expect(part(a, 'lastMessage')?.valueInstant).toBeDefined();
    expect(part(part(a, 'type') as ParametersParameter, 'code')?.valueString).toBe('ADT^A04');
    expect(part(facility('Quiet county clinic') as ParametersParameter, 'silent')?.valueBoolean).toBe(true);
    expect(params.find((x) => x.name === 'registered')?.valueInteger).toBe(3);
  });

  it('keeps the raw message store from facility systems: it holds every facility\'s patients', async () => {
    const { token } = await p.server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-a', scope: 'system/*.cruds' });
    const res = await request(p.server.rawApp).get('/fhir/$hl7-messages').set('Authorization', `Bearer ${token}`);
    expect(res.status).toBe(403);
    expect((res.body as OperationOutcome).issue?.[0]?.diagnostics).toBe("$hl7-messages is open to admin, supervisor callers; this client's role is facility-system");
    const { token: supervisor } = await p.server.tokenFor({ role: 'supervisor', scope: 'system/*.rs' });
    expect((await request(p.server.rawApp).get('/fhir/$hl7-facilities').set('Authorization', `Bearer ${supervisor}`)).status).toBe(200);
    expect((await request(p.server.rawApp).post('/fhir/$hl7-replay').set('Authorization', `Bearer ${supervisor}`).send({ resourceType: 'Parameters' })).status).toBe(403);
  });
});
