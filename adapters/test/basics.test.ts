import { readAck, startHl7Platform, hl7, type Hl7TestPlatform } from './harness';
import type { Patient } from '@medplum/fhirtypes';
import { splitMessages } from '../batch';

describe('a first message', () => {
  let p: Hl7TestPlatform;
  beforeAll(async () => {
    p = await startHl7Platform();
    await p.registerFacility('HOSP-A');
  });
  afterAll(async () => p.close());

  it('ADT^A04 creates a patient', async () => {
    const c = await p.connect();
    const ack = readAck(
      await c.send(
        hl7(
          'MSH|^~\\&|HIS|HOSP-A|HUIMIN|CITY|20250101120000+0800||ADT^A04^ADT_A01|MSG1|P|2.5|||||CHN|UNICODE UTF-8',
          'EVN|A04|20250101120000',
          'PID|1||123456^^^HOSP-A^MR~110101199003074477^^^^NNCHN||张^伟||19900307|M',
          'PV1|1|O|ER^1^2||||1001^王^医生|||||||||||V100',
        ),
      ),
    );
    expect(ack.code).toBe('AA');
    const patients = await p.search<Patient>('Patient', { identifier: 'urn:oid:2.16.156.10011.1.3|110101199003074477' });
    expect(patients).toHaveLength(1);
    expect(patients[0].name?.[0].family).toBe('张');
  });
});

describe('batch files', () => {
  it('splits FHS/BHS batches into messages and drops the envelope', () => {
    const file = Buffer.from('FHS|^~\\&|CDC\rBHS|^~\\&|CDC\r\nMSH|^~\\&|A|B\nPID|1\r\rMSH|^~\\&|C|D\rPID|2\rBTS|2\rFTS|1\r');
    expect(splitMessages(file).map((m) => m.toString())).toEqual(['MSH|^~\\&|A|B\rPID|1\r', 'MSH|^~\\&|C|D\rPID|2\r']);
  });
});
