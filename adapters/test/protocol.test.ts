/**
 * The MLLP conversation: ACK after commit, resends, out-of-order delivery, a crash between commit and ACK,
 * character sets, malformed input, oversize messages — over real sockets, reading the store afterwards.
 */
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import iconv from 'iconv-lite';
import pino from 'pino';
import type { ConceptMap, DiagnosticReport, Encounter, Observation, Patient } from '@medplum/fhirtypes';
import { fixturePath, fixturesAvailable } from '../../test/fixtures';
import { createAdapters, frame, MllpClient } from '..';
import { searchMessages } from '../store/message-store';
import { hl7, readAck, startHl7Platform, type Hl7TestPlatform } from './harness';

const MSH = (facility: string, id: string, type: string, time = '20250301100000+0800', charset = ''): string =>
  `MSH|^~\\&|HIS|${facility}|HUIMIN|CITY|${time}||${type}|${id}|P|2.5|||||CHN|${charset}`;

describe('HL7 v2 over MLLP', () => {
  let p: Hl7TestPlatform;
  let client: MllpClient;
  beforeAll(async () => {
    p = await startHl7Platform({ maxMessageBytes: 1024 * 1024 });
    await p.registerFacility('HOSP-A');
    await p.registerFacility('HOSP-B');
    await p.registerFacility('HOSP-GB', { charset: 'GB 18030-2000' });
    client = await p.connect();
  });
  afterAll(async () => p.close());

  const adt = (id: string, mrn: string, name: string, event = 'A04', time?: string): string =>
    hl7(MSH('HOSP-A', id, `ADT^${event}^ADT_A01`, time), `EVN|${event}|20250301100000`, `PID|1||${mrn}^^^HOSP-A^MR||${name}||19800101|F`, `PV1|1|O|ER^1^1||||||||||||||||V-${mrn}`);

  it('answers AA with the original MSH-10 after the resources are committed, and marks them with meta.source', async () => {
    const ack = readAck(await client.send(adt('C-1', 'M-1', 'WANG^FANG')));
    expect(ack).toMatchObject({ code: 'AA', controlId: 'C-1' });
    const [patient] = await p.search<Patient>('Patient', { identifier: 'M-1' });
    expect(patient.name?.[0]).toMatchObject({ family: 'WANG', given: ['FANG'] });
    expect(patient.meta?.source).toMatch(/^urn:huimin:hl7v2:Organization\/[^:]+:C-1#/);
    const [encounter] = await p.search<Encounter>('Encounter', { identifier: 'V-M-1' });
    expect(encounter).toMatchObject({ status: 'arrived', subject: { reference: `Patient/${patient.id}` } });
  });

  it('answers a resend AA again and creates nothing twice', async () => {
    const message = adt('C-2', 'M-2', 'LI^NA');
    expect(readAck(await client.send(message)).code).toBe('AA');
    const other = await p.connect();
    const [a, b] = await Promise.all([client.send(message), other.send(message)]);
    expect([readAck(a).code, readAck(b).code]).toEqual(['AA', 'AA']);
    expect(await p.search('Patient', { identifier: 'M-2' })).toHaveLength(1);
    expect(await p.search('Encounter', { identifier: 'V-M-2' })).toHaveLength(1);
    const records = await searchMessages(p.db, { controlId: 'C-2', limit: 10 });
    expect(records).toHaveLength(3);
    expect(records.filter((r) => !r.duplicateOf)).toHaveLength(1);
  });

  it('after a crash between commit and ACK, the resend is answered AA and nothing is duplicated', async () => {
    const message = Buffer.from(adt('C-3', 'M-3', 'ZHAO^LEI'));
    // The first process commits and dies before its ACK leaves: its answer is simply never sent.
    await p.adapters.ingest.receive(message, { address: '127.0.0.1', port: 1 });
    // A new process (fresh caches and queues) over the same database gets the sender's resend.
    const restarted = createAdapters({ repo: p.server.repository, logger: pino({ level: 'silent' }) });
    const port = await restarted.listen({ port: 0, host: '127.0.0.1', maxMessageBytes: 1 << 20, idleTimeoutMs: 10_000 });
    const c = await new MllpClient('127.0.0.1', port).connect();
    expect(readAck(await c.send(message)).code).toBe('AA');
    c.close();
    await restarted.stop();
    expect(await p.search('Patient', { identifier: 'M-3' })).toHaveLength(1);
    expect(await p.search('Encounter', { identifier: 'V-M-3' })).toHaveLength(1);
  });

  it('keeps the newer demographics when an older A04 arrives after its A08', async () => {
    const a08 = adt('C-4b', 'M-4', 'SUN^NEW', 'A08', '20250301110000+0800');
    const a04 = adt('C-4a', 'M-4', 'SUN^OLD', 'A04', '20250301100000+0800');
    expect(readAck(await client.send(a08)).code).toBe('AA');
    expect(readAck(await client.send(a04)).code).toBe('AA');
    const [patient] = await p.search<Patient>('Patient', { identifier: 'M-4' });
    expect(patient.name?.[0].given).toEqual(['NEW']);
    // In order, the later one wins.
    await client.send(adt('C-5a', 'M-5', 'QIAN^OLD', 'A04', '20250301100000+0800'));
    await client.send(adt('C-5b', 'M-5', 'QIAN^NEW', 'A08', '20250301110000+0800'));
    const [p5] = await p.search<Patient>('Patient', { identifier: 'M-5' });
    expect(p5.name?.[0].given).toEqual(['NEW']);
  });

  it('applies a patient\'s messages in arrival order while other patients proceed in parallel', async () => {
    const clients = await Promise.all([1, 2, 3, 4, 5].map(() => p.connect()));
    const answers = await Promise.all(
      clients.map(async (c, i) => {
        const codes: string[] = [];
        for (let n = 0; n < 6; n++) {
          codes.push(readAck(await c.send(adt(`PAR-${i}-${n}`, `PAR-${n % 3}`, `ZHOU^V${i}${n}`, 'A08', `2025030110${String(n).padStart(2, '0')}00+0800`))).code);
        }
        return codes;
      }),
    );
    expect(answers.flat().every((c) => c === 'AA')).toBe(true);
    for (const mrn of ['PAR-0', 'PAR-1', 'PAR-2']) expect(await p.search('Patient', { identifier: mrn })).toHaveLength(1);
  });

  it('decodes GB18030 (declared in MSH-18 or configured for the facility) and UTF-8 Chinese names intact', async () => {
    const declared = iconv.encode(hl7(MSH('HOSP-A', 'GB-1', 'ADT^A28^ADT_A05', undefined, 'GB 18030-2000'), 'PID|1||GB-1^^^HOSP-A^MR||张^伟||19800101|M'), 'gb18030');
    expect(readAck(await client.send(declared)).code).toBe('AA');
    const configured = iconv.encode(hl7(MSH('HOSP-GB', 'GB-2', 'ADT^A28^ADT_A05'), 'PID|1||GB-2^^^HOSP-GB^MR||王^䶮||19800101|M'), 'gb18030');
    expect(readAck(await client.send(configured)).code).toBe('AA');
    const utf8 = Buffer.from(hl7(MSH('HOSP-A', 'U8-1', 'ADT^A28^ADT_A05', undefined, 'UNICODE UTF-8'), 'PID|1||U8-1^^^HOSP-A^MR||李^䶮||19800101|M'), 'utf8');
    expect(readAck(await client.send(utf8)).code).toBe('AA');
    const undeclared = iconv.encode(hl7(MSH('HOSP-A', 'GB-3', 'ADT^A28^ADT_A05'), 'PID|1||GB-3^^^HOSP-A^MR||欧阳^䶮||19800101|M'), 'gb18030');
    expect(readAck(await client.send(undeclared)).code).toBe('AA');
    const names = async (mrn: string): Promise<unknown> => (await p.search<Patient>('Patient', { identifier: mrn }))[0].name?.[0];
    expect(await names('GB-1')).toMatchObject({ family: '张', given: ['伟'], text: '张伟' });
    expect(await names('GB-2')).toMatchObject({ family: '王', given: ['䶮'] });
    expect(await names('U8-1')).toMatchObject({ family: '李', given: ['䶮'] });
    expect(await names('GB-3')).toMatchObject({ family: '欧阳', given: ['䶮'] });
  });

  it('normalises national identifiers and decodes escape sequences', async () => {
    const message = hl7(
      MSH('HOSP-A', 'ID-1', 'ADT^A28^ADT_A05'),
      'PID|1||ID-1^^^HOSP-A^MR~11010519491231002X^^^^NNCHN~H123456^^^&2.16.156.10011.1.19&ISO~340104198001011234^^^&2.16.156.10011.1.3&ISO||O\\S\\BRIEN^MARY||19491231|F',
    );
    expect(readAck(await client.send(message)).code).toBe('AA');
    const [patient] = await p.search<Patient>('Patient', { identifier: 'ID-1' });
    expect(patient.identifier).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ system: 'urn:oid:2.16.156.10011.1.3', value: '11010519491231002X' }),
        expect.objectContaining({ system: 'urn:oid:2.16.156.10011.1.19', value: 'H123456' }),
        expect.objectContaining({ system: 'urn:oid:2.16.156.10011.1.3', value: '340104198001011234' }),
      ]),
    );
    expect(patient.name?.[0].family).toBe('O^BRIEN');
  });

  it('maps results with UCUM units, ranges and the LOINC code of a local code through the facility ConceptMap', async () => {
    const local = 'urn:huimin:hl7:HOSP-A:codesystem:L';
    const map: ConceptMap = {
      resourceType: 'ConceptMap',
      status: 'active',
      url: 'http://huimin.health/fhir/ConceptMap/hosp-a-lab',
      group: [{ source: local, target: 'http://loinc.org', element: [{ code: 'GLU', target: [{ code: '2345-7', display: 'Glucose', equivalence: 'equivalent' }] }] }],
    };
    await p.server.repository.write((s) => s.create(map));
    const oru = hl7(
      MSH('HOSP-A', 'ORU-1', 'ORU^R01^ORU_R01'),
      'PID|1||R-1^^^HOSP-A^MR||CHEN^JING||19700101|F',
      'OBR|1|PL-1|FL-1|CHEM^Chemistry^L|||20250301080000',
      'OBX|1|NM|GLU^血糖^L||6.1|mmol/L|3.9-6.1|N|||F',
      'OBX|2|NM|WBC^White cells^L||7.2|10\\S\\9/L|3.5-9.5|N|||F',
      'OBX|3|ST|NOTE^Comment^L||haemolysed\\.br\\sample||||||F',
    );
    expect(readAck(await client.send(oru)).code).toBe('AA');
    const [report] = await p.search<DiagnosticReport>('DiagnosticReport', { identifier: 'FL-1' });
    expect(report.result).toHaveLength(3);
    const observations = await p.search<Observation>('Observation', { subject: report.subject?.reference as string });
    const glucose = observations.find((o) => o.code.coding?.some((c) => c.code === '2345-7'));
    expect(glucose?.code.coding).toEqual([{ system: 'http://loinc.org', code: '2345-7', display: 'Glucose' }, { system: local, code: 'GLU', display: '血糖' }]);
    expect(glucose?.valueQuantity).toEqual({ value: 6.1, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' });
    expect(glucose?.referenceRange?.[0]).toMatchObject({ low: { value: 3.9 }, high: { value: 6.1 } });
    const wbc = observations.find((o) => o.code.coding?.some((c) => c.code === 'WBC'));
    expect(wbc?.valueQuantity).toMatchObject({ value: 7.2, code: '10*9/L' });
    expect(observations.find((o) => o.code.coding?.some((c) => c.code === 'NOTE'))?.valueString).toBe('haemolysed\nsample');
    // A corrected result replaces the preliminary one instead of adding another.
    expect(readAck(await client.send(oru.replace('ORU-1', 'ORU-1c').replace('|6.1|mmol/L', '|6.3|mmol/L'))).code).toBe('AA');
    expect(await p.search('DiagnosticReport', { identifier: 'FL-1' })).toHaveLength(1);
    expect((await p.search<Observation>('Observation', { code: '2345-7' }))[0].valueQuantity?.value).toBe(6.3);
  });

  it('keeps a final result when a preliminary one arrives after it, and says so in the AA', async () => {
    const oru = (id: string, status: string, value: string): string =>
      hl7(
        MSH('HOSP-A', id, 'ORU^R01^ORU_R01'),
        'PID|1||LATE-1^^^HOSP-A^MR||SUN^LI||19700101|F',
        `OBR|1||FL-LATE|CHEM^Chemistry^L|||20250301080000|||||||||||||||20250301090000||CH|${status}`,
        `OBX|1|NM|K^Potassium^L||${value}|mmol/L|3.5-5.3|N|||${status}`,
      );
    expect(readAck(await client.send(oru('LATE-f', 'F', '4.2'))).code).toBe('AA');
    const late = readAck(await client.send(oru('LATE-p', 'P', '3.9')));
    expect(late.code).toBe('AA');
    expect(late.errors).toHaveLength(1);
    expect(late.errors[0]).toContain('|W|');
    expect(late.errors[0]).toContain('Report FL-LATE is already final; this preliminary version was not applied');
    const [report] = await p.search<DiagnosticReport>('DiagnosticReport', { identifier: 'FL-LATE' });
    expect(report.status).toBe('final');
    const [potassium] = await p.search<Observation>('Observation', { subject: report.subject?.reference as string });
    expect(potassium).toMatchObject({ status: 'final', valueQuantity: { value: 4.2 } });
    // A correction still goes through.
    expect(readAck(await client.send(oru('LATE-c', 'C', '4.4'))).errors).toEqual([]);
    const [corrected] = await p.search<Observation>('Observation', { subject: report.subject?.reference as string });
    expect(corrected).toMatchObject({ status: 'corrected', valueQuantity: { value: 4.4 } });
  });

  it('answers frames pipelined without waiting for ACKs, in order', async () => {
    const c = await p.connect();
    const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => c.send(adt(`PIPE-${i}`, `PIPE-${i % 4}`, `PIPE^N${i}`))));
    expect(acks.map((a) => readAck(a).controlId)).toEqual(Array.from({ length: 20 }, (_, i) => `PIPE-${i}`));
    expect(acks.every((a) => readAck(a).code === 'AA')).toBe(true);
  });

  it('recreates a patient that was deleted after a result for it was taken in', async () => {
    const oru = (id: string): string =>
      hl7(MSH('HOSP-A', id, 'ORU^R01^ORU_R01'), 'PID|1||DIR-1^^^HOSP-A^MR||LIN^FENG||19700101|M', `OBR|1||F-${id}|CHEM^Chemistry^L`, 'OBX|1|NM|K^Potassium^L||4.1|mmol/L|3.5-5.3|N|||F');
    expect(readAck(await client.send(oru('DIR-a'))).code).toBe('AA');
    const [patient] = await p.search<Patient>('Patient', { identifier: 'DIR-1' });
    await p.server.repository.write(async (s) => s.delete('Patient', patient.id as string, { force: true }));
    expect(readAck(await client.send(oru('DIR-b'))).code).toBe('AA');
    const [again] = await p.search<Patient>('Patient', { identifier: 'DIR-1' });
    expect(again.id).not.toBe(patient.id);
  });

  it('merges patients on A40', async () => {
    await client.send(adt('MRG-a', 'OLD-1', 'HE^OLD'));
    await client.send(adt('MRG-b', 'NEW-1', 'HE^NEW'));
    const ack = readAck(await client.send(hl7(MSH('HOSP-A', 'MRG-c', 'ADT^A40^ADT_A39'), 'EVN|A40|20250301100000', 'PID|1||NEW-1^^^HOSP-A^MR||HE^NEW||19800101|F', 'MRG|OLD-1^^^HOSP-A^MR')));
    expect(ack.code).toBe('AA');
    const [survivor] = await p.search<Patient>('Patient', { identifier: 'NEW-1' });
    const [prior] = await p.search<Patient>('Patient', { identifier: 'OLD-1' });
    expect(prior.active).toBe(false);
    expect(prior.link).toEqual([{ other: { reference: `Patient/${survivor.id}` }, type: 'replaced-by' }]);
    expect(survivor.link).toEqual([{ other: { reference: `Patient/${prior.id}` }, type: 'replaces' }]);
  });

  describe('refusals', () => {
    const errOf = (ack: ReturnType<typeof readAck>): string => ack.errors.join('\n');

    it('AR for an unregistered facility, kept for review', async () => {
      const ack = readAck(await client.send(adt('UNREG-1', 'X-1', 'A^B').replace('|HOSP-A|', '|NOBODY|')));
      expect(ack.code).toBe('AR');
      expect(errOf(ack)).toMatch(/^ERR\|MSH\^1\^4.*not registered/);
      const [kept] = await searchMessages(p.db, { controlId: 'UNREG-1', limit: 1, withContent: true });
      expect(kept).toMatchObject({ outcome: 'AR', facilityId: null, sendingFacility: 'NOBODY' });
      expect(kept.content?.toString()).toContain('UNREG-1');
    });

    it('AE naming the segment and field for missing PID, bad dates and non-numeric values', async () => {
      const noPid = readAck(await client.send(hl7(MSH('HOSP-A', 'E-1', 'ADT^A01^ADT_A01'), 'EVN|A01|20250301')));
      expect(noPid.code).toBe('AE');
      expect(errOf(noPid)).toMatch(/PID.*101/);
      const badDate = readAck(await client.send(hl7(MSH('HOSP-A', 'E-2', 'ADT^A01^ADT_A01'), 'PID|1||E-2^^^HOSP-A^MR||A^B||notadate|F')));
      expect(badDate.code).toBe('AE');
      expect(errOf(badDate)).toMatch(/^ERR\|PID\^1\^7\^102.*\|PID\^1\^7\^1\^\|102\^Data type error\^HL70357\|E\|\|\|\|"notadate" is not an HL7 date/);
      const badNumber = readAck(
        await client.send(hl7(MSH('HOSP-A', 'E-3', 'ORU^R01^ORU_R01'), 'PID|1||E-3^^^HOSP-A^MR', 'OBR|1||F-E3|X^X^L', 'OBX|1|NM|Y^Y^L||high|mg/dL')),
      );
      expect(badNumber.code).toBe('AE');
      expect(errOf(badNumber)).toMatch(/OBX\^1\^5.*"high" is not a number/);
      expect(await p.search('Patient', { identifier: 'E-3' })).toHaveLength(0);
    });

    it('AR for a bad MSH, an unsupported type or version, an unknown charset', async () => {
      expect(readAck(await client.send('MSH|^~')).code).toBe('AR');
      expect(readAck(await client.send('PID|1||X')).code).toBe('AR');
      expect(errOf(readAck(await client.send(hl7(MSH('HOSP-A', 'U-1', 'ZZZ^Z01'), 'PID|1||U-1'))))).toMatch(/MSH\^1\^9\^200/);
      expect(errOf(readAck(await client.send(hl7(MSH('HOSP-A', 'U-2', 'ADT^A04').replace('|2.5|', '|3.0|'), 'PID|1||U-2'))))).toMatch(/MSH\^1\^12\^203/);
      expect(errOf(readAck(await client.send(hl7(MSH('HOSP-A', 'U-3', 'ADT^A04', undefined, 'KLINGON'), 'PID|1||U-3'))))).toMatch(/MSH\^1\^18\^103/);
    });

    it('drops a truncated frame and answers the next one on the same connection', async () => {
      const c = await p.connect();
      c.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(adt('T-1', 'T-1', 'CUT^OFF').slice(0, 40))]));
      expect(readAck(await c.send(adt('T-2', 'T-2', 'WHOLE^ONE'))).code).toBe('AA');
      expect(await searchMessages(p.db, { controlId: 'T-1', limit: 1 })).toHaveLength(0);
      // A connection that dies mid-frame leaves nothing behind and harms no one.
      const raw = net.connect(p.port, '127.0.0.1');
      await new Promise((r) => raw.once('connect', r));
      raw.end(Buffer.concat([Buffer.from([0x0b]), Buffer.from('MSH|^~\\&|HIS|HOSP-A|')]));
      expect(readAck(await client.send(adt('T-3', 'T-3', 'STILL^HERE'))).code).toBe('AA');
    });

    it('refuses a 10 MB message with AR and closes that connection while other facilities keep being served', async () => {
      const big = await p.connect();
      const other = await p.connect();
      const huge = Buffer.concat([Buffer.from(hl7(MSH('HOSP-B', 'BIG-1', 'MDM^T02^MDM_T02'), 'PID|1||BIG^^^HOSP-B^MR', 'OBX|1|TX|X^X^L||')), Buffer.alloc(10 * 1024 * 1024, 0x41)]);
      const answer = big.send(huge);
      expect(readAck(await other.send(adt('B-1', 'B-1', 'BUSY^NOT'))).code).toBe('AA');
      const ack = readAck(await answer);
      expect(ack).toMatchObject({ code: 'AR', controlId: 'BIG-1' });
      expect(ack.errors[0]).toMatch(/larger than 1048576 bytes/);
      for (let i = 0; i < 40 && !big.closed; i++) await new Promise((r) => setTimeout(r, 50));
      expect(big.closed).toBe(true);
      expect(readAck(await client.send(adt('B-2', 'B-2', 'STILL^SERVED'))).code).toBe('AA');
    });

    (fixturesAvailable('hl7v2', 'nhapi-bad-inputs') ? it : it.skip)('answers every nHapi fuzzer input with a NAK or a closed connection, never a crash or a hang', async () => {
      const files = readdirSync(fixturePath('hl7v2', 'nhapi-bad-inputs')).filter((f) => f.endsWith('.hl7'));
      expect(files.length).toBe(37);
      for (const file of files) {
        const bytes = readFileSync(fixturePath('hl7v2', 'nhapi-bad-inputs', file));
        const c = await p.connect();
        const outcome = await Promise.race([
          c.send(frame(bytes).subarray(1, -2)).then((a) => readAck(a).code, () => 'closed'),
          new Promise<string>((r) => setTimeout(() => r('silence'), 5000)),
        ]);
        expect({ file, outcome: ['AR', 'AE', 'closed'].includes(outcome) ? 'refused' : outcome }).toEqual({ file, outcome: 'refused' });
        c.close();
      }
      expect(readAck(await client.send(adt('N-1', 'N-1', 'AFTER^FUZZ'))).code).toBe('AA');
    });
  });
});
