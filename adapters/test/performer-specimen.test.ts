/**
 * Who performed a result and on what specimen: OBX-23/24/25 → Observation.performer (the Organization resolved like
 * a facility: the facility itself, a registered department, a registered organisation by OID, else one the adapters
 * own), SPM (v2.5+) and OBR-15 (v2.3/2.4) → Specimen referenced from the Observations and the DiagnosticReport, all
 * in the message's one transaction. Public samples (NIST LRI CBC, FHIR-Converter ORU-R01-01) and messages of our own.
 */
import { readFileSync } from 'node:fs';
import type { DiagnosticReport, Observation, Organization, Practitioner, ServiceRequest, Specimen } from '@medplum/fhirtypes';
import { describeWithFixtures, fixturePath } from '../../test/fixtures';
import { hl7, readAck, startHl7Platform, type Hl7TestPlatform } from './harness';

let p: Hl7TestPlatform;
let facility: string;

async function send(message: string | Buffer): Promise<ReturnType<typeof readAck>> {
  const client = await p.connect();
  return readAck(await client.send(typeof message === 'string' ? Buffer.from(message, 'utf8') : message));
}

async function read<T>(reference: string | undefined): Promise<T> {
  const [type, id] = (reference ?? '').split('/');
  return JSON.parse((await p.server.repository.read(type, id)).json) as T;
}

beforeAll(async () => {
  p = await startHl7Platform();
  facility = await p.registerFacility('HOSP-X', { name: 'X 县人民医院' });
  await p.registerFacility('NIST Lab Facility');
  await p.registerFacility('IA Public Health Lab');
  // X's laboratory department, registered with the code X's LIS sends in OBX-23; a regional reference laboratory
  // known by its national code (an OID authority).
  await p.server.repository.write(async (s) => {
    await s.update('Organization', 'hosp-x-lab', { resourceType: 'Organization', id: 'hosp-x-lab', name: '检验科', identifier: [{ system: 'urn:huimin:hosp-x:department', value: 'LAB01' }], partOf: { reference: `Organization/${facility}` } });
    await s.update('Organization', 'ref-lab', { resourceType: 'Organization', id: 'ref-lab', name: '区域检验中心', identifier: [{ system: 'urn:oid:2.16.156.10011.99.1', value: 'QC-01' }] });
  });
});

afterAll(async () => p?.close());

const msh = (id: string, version = '2.5.1') => `MSH|^~\\&|LIS|HOSP-X|HUIMIN|CITY|20261120083000+0800||ORU^R01^ORU_R01|${id}|P|${version}|||||CHN|UNICODE UTF-8`;

describe('OBX-23 performing organization', () => {
  it('resolves the facility, its registered department, an organisation known by OID, and keeps an unknown one', async () => {
    const ack = await send(hl7(
      msh('PERF-1'),
      'PID|1||PX-1^^^HOSP-X^MR||张^伟||19800101|M',
      'OBR|1|P-1|F-1|CHEM^生化^L|||20261120070000+0800|||||||||||||||20261120080000+0800|||F',
      'OBX|1|NM|K^血钾^L||4.1|mmol/L|||||F|||20261120070000+0800|||||||||检验科^^^^^HOSP-X^XX^^^LAB01',
      'OBX|2|NM|NA^血钠^L||140|mmol/L|||||F|||20261120070000+0800|||||||||X 县人民医院^^^^^^^^^HOSP-X',
      'OBX|3|NM|GLU^血糖^L||5.6|mmol/L|||||F|||20261120070000+0800|||||||||区域检验中心^^^^^&2.16.156.10011.99.1&ISO^XX^^^QC-01',
      'OBX|4|NM|CL^血氯^L||101|mmol/L|||||F|||20261120070000+0800|||||||||外院检验所^^^^^^^^^EXT-9|某路1号^^合肥^安徽^230000^CHN^B|D77^王^主任',
    ));
    expect(ack.code).toBe('AA');
    const [report] = await p.search<DiagnosticReport>('DiagnosticReport', { identifier: 'F-1' });
    const results = await Promise.all((report.result ?? []).map((r) => read<Observation>(r.reference)));
    const performers = results.map((o) => o.performer?.[0].reference);
    expect(performers.slice(0, 3)).toEqual(['Organization/hosp-x-lab', `Organization/${facility}`, 'Organization/ref-lab']);
    const outside = await read<Organization>(performers[3]);
    expect(outside).toMatchObject({ name: '外院检验所', identifier: [{ value: 'EXT-9' }], address: [{ city: '合肥', use: 'work' }] });
    expect(outside.partOf).toBeUndefined();
    // OBX-25, the performing organisation's medical director.
    expect((await read<Practitioner>(results[3].performer?.[1].reference)).identifier?.[0].value).toBe('D77');
    expect(report.performer?.map((r) => r.reference)).toEqual(performers);

    // A correction names the same outside laboratory again: no second Organization.
    expect((await send(hl7(msh('PERF-2'), 'PID|1||PX-1^^^HOSP-X^MR||张^伟||19800101|M', 'OBR|1|P-1|F-2|CHEM^生化^L|||20261120070000+0800', 'OBX|1|NM|CL^血氯^L||102|mmol/L|||||F|||20261120070000+0800|||||||||外院检验所^^^^^^^^^EXT-9'))).code).toBe('AA');
    expect(await p.search<Organization>('Organization', { identifier: 'EXT-9' })).toHaveLength(1);
  });
});

describe('specimens', () => {
  it('maps OBR-15, OBR-7 and OBR-14 of a v2.3 result to a Specimen', async () => {
    const ack = await send(hl7(
      msh('SPEC-23', '2.3'),
      'PID|1||PX-2^^^HOSP-X^MR||李^娜||19900101|F',
      'OBR|1|P-2|F-3|CHEM^生化^L|||20261120070000+0800|||||||20261120073000+0800|SER&血清&L^^^LA&左臂&L||||||||20261120080000+0800|||F',
      'OBX|1|NM|K^血钾^L||4.0|mmol/L|||||F',
    ));
    expect(ack.code).toBe('AA');
    const [report] = await p.search<DiagnosticReport>('DiagnosticReport', { identifier: 'F-3' });
    const specimen = await read<Specimen>(report.specimen?.[0].reference);
    expect(specimen).toMatchObject({
      type: { coding: [{ code: 'SER', display: '血清' }] },
      collection: { collectedDateTime: '2026-11-20T07:00:00+08:00', bodySite: { coding: [{ code: 'LA' }] } },
      receivedTime: '2026-11-20T07:30:00+08:00',
      subject: report.subject,
    });
    expect((await read<Observation>(report.result?.[0].reference)).specimen?.reference).toBe(report.specimen?.[0].reference);
  });

  it('names the specimen an OML^O21 order is for (SPM) on its ServiceRequest', async () => {
    const ack = await send(hl7(
      'MSH|^~\\&|HIS|HOSP-X|HUIMIN|CITY|20261120083000+0800||OML^O21^OML_O21|ORDER-SPM|P|2.5.1|||||CHN|UNICODE UTF-8',
      'PID|1||PX-5^^^HOSP-X^MR||钱^七||19700101|F',
      'ORC|NW|ORD-S1|||||||20261120080000+0800',
      'OBR|1|ORD-S1||2823-3^Potassium^LN',
      'SPM|1|SP-1||119364003^Serum specimen^SCT|||||||||||||20261120075000+0800',
    ));
    expect(ack.code).toBe('AA');
    const [order] = await p.search<ServiceRequest>('ServiceRequest', { identifier: 'ORD-S1' });
    const specimen = await read<Specimen>(order.specimen?.[0].reference);
    expect(specimen).toMatchObject({ type: { coding: [{ system: 'http://snomed.info/sct', code: '119364003' }] }, collection: { collectedDateTime: '2026-11-20T07:50:00+08:00' }, subject: order.subject });
  });

  it('answers AE naming SPM-17 when the collection time is not a date', async () => {
    const ack = await send(hl7(msh('SPEC-BAD'), 'PID|1||PX-3^^^HOSP-X^MR||王^五', 'OBR|1|P-3|F-4|CHEM^生化^L', 'OBX|1|NM|K^血钾^L||4.0|mmol/L|||||F', 'SPM|1|||SER^血清^L|||||||||||||2026-11-20'));
    expect(ack.code).toBe('AE');
    expect(ack.errors.join('\n')).toContain('SPM^1^17');
  });
});

describe('what the message says is still validated (the store trusts the mappings\' structure, not their content)', () => {
  it('answers AE when a text value carries a control character (\\X01\\ escape)', async () => {
    const ack = await send(hl7(msh('CTRL-1'), 'PID|1||PX-4^^^HOSP-X^MR||赵^六', 'OBR|1|P-5|F-5|CHEM^生化^L', 'OBX|1|ST|NOTE^备注^L||a\\X01\\b||||||F'));
    expect(ack.code).toBe('AE');
    expect(ack.errors.join('\n')).toContain('control characters');
  });
});

describeWithFixtures('hl7v2', 'public samples with OBX-23 and SPM', () => {
  it('NIST LRI CBC: the performing laboratory, its director and the blood specimen on every result', async () => {
    const ack = await send(readFileSync(fixturePath('hl7v2', 'fhir-converter', 'LRI_2.0-NG_CBC_Typ_Message.hl7')));
    expect(ack.code).toBe('AA');
    const [report] = await p.search<DiagnosticReport>('DiagnosticReport', { identifier: 'R-991133' });
    expect(report.specimen).toHaveLength(1);
    const specimen = await read<Specimen>(report.specimen?.[0].reference);
    expect(specimen).toMatchObject({ type: { coding: [{ system: 'http://snomed.info/sct', code: '119297000' }] }, collection: { collectedDateTime: '2011-01-03T14:34:28-08:00' } });
    const results = await Promise.all((report.result ?? []).map((r) => read<Observation>(r.reference)));
    expect(results.length).toBeGreaterThan(20);
    const labs = new Set(results.map((o) => o.performer?.[0].reference));
    expect(labs.size).toBe(1);
    const lab = await read<Organization>([...labs][0]);
    expect(lab).toMatchObject({ name: 'Century Hospital', identifier: [{ value: '987', type: { coding: [{ code: 'XX' }] } }], address: [{ city: 'Los Angeles', postalCode: '90067' }] });
    expect(results.every((o) => o.specimen?.reference === report.specimen?.[0].reference)).toBe(true);
    expect((await read<Practitioner>(results[0].performer?.[1].reference)).name?.[0].family).toBe('Knowsalot');
  });

  it('FHIR-Converter ORU-R01-01: placer and filler specimen numbers, collection period, received time, conditions', async () => {
    const ack = await send(readFileSync(fixturePath('hl7v2', 'fhir-converter', 'ORU-R01-01.hl7')));
    expect(ack.code).toBe('AA');
    const [specimen] = await p.search<Specimen>('Specimen', { identifier: '2012999999' });
    expect(specimen).toMatchObject({
      identifier: [{ value: '2012545', type: { coding: [{ code: 'PLAC' }] } }, { value: '2012999999', type: { coding: [{ code: 'FILL' }] } }],
      accessionIdentifier: { value: '2012999999' },
      collection: { collectedPeriod: { start: '2011-01-03T14:34:28-08:00', end: '2011-11-03T14:34:28-08:00' } },
      receivedTime: '2012-03-01',
    });
    expect(specimen.type?.coding?.[0]).toMatchObject({ code: 'ASERU', display: 'Serum' });
    expect(specimen.condition?.map((c) => c.coding?.[0].code)).toEqual(['AUT', 'HEM']);
    // The OBX after the SPM are observations of that specimen; the report lists it.
    const [report] = await p.search<DiagnosticReport>('DiagnosticReport', { specimen: `Specimen/${specimen.id}` });
    expect(report).toBeDefined();
    const observations = await p.search<Observation>('Observation', { specimen: `Specimen/${specimen.id}` });
    expect(observations.length).toBeGreaterThanOrEqual(2);
  });
});
