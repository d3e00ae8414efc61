/**
 * ADT feeds from three hospitals for the same residents, through the HL7 adapters over MLLP: each resident ends in
 * one golden record, whatever identifiers each hospital sends (an 18-character ID number, a 15-digit one in
 * PID-19, none at all), and an ADT^A40 merge of a duplicate registration keeps one golden record. Results sent
 * by two hospitals are found through the golden record's $everything.
 */
import { randomBytes } from 'node:crypto';
import type { Bundle, Patient } from '@medplum/fhirtypes';
import request from 'supertest';
import { hl7, readAck, startHl7Platform, type Hl7TestPlatform } from '../../adapters/test/harness';
import { deleteKeysWithPrefix } from '../../test/redis-keys';
import { isGolden, loadMpiConfig, MasterPatientIndex, mpiMigrations, residentIdCheckCharacter } from '..';
import { eventually, REDIS_URL } from './platform';

const rid = (first17: string): string => first17 + residentIdCheckCharacter(first17);
const ZHANG = rid('34010419800101123'); // 张伟, male, 1980-01-01
const ZHANG_15 = '340104800101123';
const LI = rid('34010219851111002'); // 李强

let p: Hl7TestPlatform;
let mpi: MasterPatientIndex;
let redisPrefix: string;

const MSH = (facility: string, control: string, type: string): string =>
  `MSH|^~\\&|HIS|${facility}|HUIMIN|CITY|20250301120000+0800||${type}|${control}|P|2.5|||||CHN|UNICODE UTF-8`;

beforeAll(async () => {
  mpi = new MasterPatientIndex(loadMpiConfig({}));
  redisPrefix = `${process.env.TEST_REDIS_PREFIX ?? 'huimin-test'}-${randomBytes(4).toString('hex')}`;
  p = await startHl7Platform({ migrations: mpiMigrations, server: { ...mpi.storeExtensions(), redisPrefix } });
  await mpi.start({ repository: p.server.repository, redisUrl: REDIS_URL, redisPrefix, onError: (err) => console.error('mpi worker failed', err) });
  for (const h of ['HOSP-1', 'HOSP-2', 'HOSP-3']) await p.registerFacility(h);
});
afterAll(async () => {
  await mpi?.stop();
  await p?.close();
  await deleteKeysWithPrefix(REDIS_URL, redisPrefix);
});

async function send(...segments: string[]): Promise<void> {
  const client = await p.connect();
  const ack = readAck(await client.send(hl7(...segments)));
  expect([ack.code, ack.errors]).toEqual(['AA', []]);
}

/** The golden records the index filed the patients with this MRN system under, once every one is linked. */
async function goldensOf(mrns: Array<[string, string]>): Promise<string[]> {
  return eventually(async () => {
    const goldens: string[] = [];
    for (const [facility, mrn] of mrns) {
      const [patient] = await p.search<Patient>('Patient', { identifier: `urn:huimin:hl7:${facility}:mrn|${mrn}` });
      const golden = patient && (await mpi.patientIndex.goldenOfSource(patient.id as string));
      if (!golden || !patient.link?.some((l) => l.type === 'refer' && l.other.reference === `Patient/${golden}`)) return undefined;
      goldens.push(golden);
    }
    return goldens;
  });
}

it('files each resident fed by three hospitals under one golden record', async () => {
  // 张伟: an 18-character ID in PID-3 at HOSP-1, at HOSP-2 with the NHC OID, the 15-digit number in PID-19 at HOSP-3.
  await send(MSH('HOSP-1', 'Z1', 'ADT^A04^ADT_A01'), 'EVN|A04', `PID|1||Z-100^^^HOSP-1^MR~${ZHANG}^^^^NNCHN||张^伟||19800101|M|||芜湖路100号^^合肥市^安徽省||13800000001`, 'PV1|1|O');
  await send(MSH('HOSP-2', 'Z2', 'ADT^A01^ADT_A01'), 'EVN|A01', `PID|1||88001^^^HOSP-2^MR~${ZHANG}^^^&2.16.156.10011.1.3&ISO||ZHANG^WEI||19800101|M`, 'PV1|1|I');
  await send(MSH('HOSP-3', 'Z3', 'ADT^A04^ADT_A01'), 'EVN|A04', `PID|1||C3-9^^^HOSP-3^MR||张^伟||19800101|M|||||||||||${ZHANG_15}`, 'PV1|1|O');
  // 王芳: no ID anywhere; a homophone (芳/方) at HOSP-2; the same birth date, sex and mobile phone.
  await send(MSH('HOSP-1', 'W1', 'ADT^A04^ADT_A01'), 'EVN|A04', 'PID|1||W-7^^^HOSP-1^MR||王^芳||19660606|F|||||13900000002', 'PV1|1|O');
  await send(MSH('HOSP-2', 'W2', 'ADT^A04^ADT_A01'), 'EVN|A04', 'PID|1||88002^^^HOSP-2^MR||王^方||19660606|F|||||139-0000-0002', 'PV1|1|O');
  await send(MSH('HOSP-3', 'W3', 'ADT^A04^ADT_A01'), 'EVN|A04', 'PID|1||C3-10^^^HOSP-3^MR||王^芳||19660606|F|||||13900000002', 'PV1|1|O');
  // 李强: the ID at HOSP-1 and HOSP-2; none at HOSP-3, where his name, birth date, sex and address agree.
  await send(MSH('HOSP-1', 'L1', 'ADT^A04^ADT_A01'), 'EVN|A04', `PID|1||L-1^^^HOSP-1^MR~${LI}^^^^NNCHN||李^强||19851111|M|||中山路8号^^芜湖市^安徽省`, 'PV1|1|O');
  await send(MSH('HOSP-2', 'L2', 'ADT^A04^ADT_A01'), 'EVN|A04', `PID|1||88003^^^HOSP-2^MR~${LI}^^^^NNCHN||李^强||19851111|M`, 'PV1|1|O');
  await send(MSH('HOSP-3', 'L3', 'ADT^A04^ADT_A01'), 'EVN|A04', 'PID|1||C3-11^^^HOSP-3^MR||李^强||19851111|M|||中山路8号^^芜湖市^安徽省', 'PV1|1|O');

  const zhang = await goldensOf([['HOSP-1', 'Z-100'], ['HOSP-2', '88001'], ['HOSP-3', 'C3-9']]);
  const wang = await goldensOf([['HOSP-1', 'W-7'], ['HOSP-2', '88002'], ['HOSP-3', 'C3-10']]);
  const li = await goldensOf([['HOSP-1', 'L-1'], ['HOSP-2', '88003'], ['HOSP-3', 'C3-11']]);
  for (const goldens of [zhang, wang, li]) expect(new Set(goldens).size).toBe(1);
  expect(new Set([zhang[0], wang[0], li[0]]).size).toBe(3);
  const goldenRecords = (await p.search<Patient>('Patient', { _count: '100' })).filter(isGolden);
  expect(goldenRecords).toHaveLength(3);
  expect(goldenRecords.find((g) => g.id === zhang[0])?.link?.filter((l) => l.type === 'seealso')).toHaveLength(3);

  // A duplicate registration at HOSP-2 (a new MRN for 王芳), then merged by ADT^A40: still one golden record.
  await send(MSH('HOSP-2', 'W4', 'ADT^A04^ADT_A01'), 'EVN|A04', 'PID|1||88099^^^HOSP-2^MR||王^芳||19660606|F|||||13900000002', 'PV1|1|O');
  await send(MSH('HOSP-2', 'W5', 'ADT^A40^ADT_A39'), 'EVN|A40', 'PID|1||88002^^^HOSP-2^MR||王^方||19660606|F', 'MRG|88099^^^HOSP-2^MR');
  const prior = await eventually(async () => {
    const [found] = await p.search<Patient>('Patient', { identifier: 'urn:huimin:hl7:HOSP-2:mrn|88099' });
    const decisions = await mpi.patientIndex.decisions(found.id as string);
    return found.active === false && decisions.some((d) => d.action === 'merge') ? found : undefined;
  });
  const afterMerge = await goldensOf([['HOSP-1', 'W-7'], ['HOSP-2', '88002'], ['HOSP-2', '88099'], ['HOSP-3', 'C3-10']]);
  expect(new Set(afterMerge)).toEqual(new Set([wang[0]]));
  expect(prior.link).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'replaced-by' }), { other: { reference: `Patient/${wang[0]}` }, type: 'refer' }]));

  // Results from two hospitals, one resident: the golden record's $everything holds both.
  await send(MSH('HOSP-1', 'R1', 'ORU^R01^ORU_R01'), 'PID|1||Z-100^^^HOSP-1^MR||张^伟||19800101|M', 'OBR|1|PL-1|FL-1|CHEM^Chemistry^L|||20250301080000', 'OBX|1|NM|GLU^血糖^L||6.1|mmol/L|3.9-6.1|N|||F');
  await send(MSH('HOSP-3', 'R3', 'ORU^R01^ORU_R01'), 'PID|1||C3-9^^^HOSP-3^MR||张^伟||19800101|M', 'OBR|1|PL-3|FL-3|CBC^Blood count^L|||20250302080000', 'OBX|1|NM|WBC^White cells^L||7.2|10\\S\\9/L|3.5-9.5|N|||F');
  const everything = await request(p.server.app).get(`/fhir/Patient/${zhang[0]}/$everything?_count=100`);
  expect(everything.status).toBe(200);
  const reports = ((everything.body as Bundle).entry ?? []).filter((e) => e.resource?.resourceType === 'DiagnosticReport');
  expect(reports).toHaveLength(2);
  const observations = await request(p.server.app).get(`/fhir/Observation?patient=${zhang[0]}`);
  expect((observations.body as Bundle).entry).toHaveLength(2);
});

it('answers AE when a hospital sends a resident ID number with a wrong check character', async () => {
  const wrong = ZHANG.slice(0, 17) + (ZHANG[17] === '1' ? '2' : '1');
  const client = await p.connect();
  const ack = readAck(await client.send(hl7(MSH('HOSP-1', 'BAD1', 'ADT^A04^ADT_A01'), 'EVN|A04', `PID|1||Z-999^^^HOSP-1^MR~${wrong}^^^&2.16.156.10011.1.3&ISO||张^伟||19800101|M`, 'PV1|1|O')));
  expect(ack.code).toBe('AE');
  expect(ack.text).toContain('check character');
  expect(await p.search<Patient>('Patient', { identifier: 'urn:huimin:hl7:HOSP-1:mrn|Z-999' })).toEqual([]);
});
