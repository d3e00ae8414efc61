/**
 * Local lab codes through the terminology service, as the platform wires it (main.ts): the hospital's staff load
 * their CSV ConceptMap, an ORU^R01 with local codes arrives, the stored Observations carry LOINC beside the local
 * coding, and a code without a mapping lands in the unmapped-code report.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Observation } from '@medplum/fhirtypes';
import { TerminologyTranslator } from '..';
import { createTerminologyService, HOT_PATH_MAX_AGE_MS, hospitalLabSystem, loadConceptMapCsv, terminologyMigrations, type TerminologyService } from '../../terminology';
import { hl7, readAck, startHl7Platform, type Hl7TestPlatform } from './harness';

let p: Hl7TestPlatform;
let terminology: TerminologyService;
const dir = mkdtempSync(path.join(os.tmpdir(), 'huimin-hl7-tx-'));

beforeAll(async () => {
  p = await startHl7Platform({
    migrations: terminologyMigrations,
    translator: (server) => {
      terminology = createTerminologyService(server.db, server.repository);
      return new TerminologyTranslator(terminology, HOT_PATH_MAX_AGE_MS, hospitalLabSystem);
    },
  });
  await p.registerFacility('HOSP-T', { name: 'Hospital T' });
  const csv = path.join(dir, 'hosp-t-lab.csv');
  writeFileSync(csv, '本地编码,本地名称,LOINC编码,LOINC名称,等价关系,备注\nGLU,血糖,2345-7,Glucose [Mass/volume] in Serum or Plasma,equivalent,\n');
  await loadConceptMapCsv(p.server.repository, terminology, { file: csv, hospital: 'HOSP-T' });
});
afterAll(async () => {
  await p.close();
  rmSync(dir, { recursive: true, force: true });
});

it('maps a local code through the hospital CSV ConceptMap and reports the code it cannot map', async () => {
  const client = await p.connect();
  const oru = hl7(
    'MSH|^~\\&|LIS|HOSP-T|HUIMIN|CITY|20250301100000+0800||ORU^R01^ORU_R01|T-1|P|2.5|||||CHN|UNICODE UTF-8',
    'PID|1||T-1^^^HOSP-T^MR||WANG^FANG||19800101|F',
    'OBR|1|PT-1|FT-1|CHEM^Chemistry^L|||20250301080000',
    'OBX|1|NM|GLU^血糖^L||6.1|mmol/L|3.9-6.1|N|||F',
    'OBX|2|NM|K^血钾^L||4.1|mmol/L|3.5-5.3|N|||F',
  );
  expect(readAck(await client.send(oru)).code).toBe('AA');
  const all = await p.search<Observation>('Observation', {});
  const glucose = all.find((o) => o.code.coding?.some((c) => c.code === 'GLU'));
  expect(glucose?.code.coding?.[0]).toMatchObject({ system: 'http://loinc.org', code: '2345-7' });
  expect(glucose?.code.coding?.[1]).toMatchObject({ code: 'GLU', display: '血糖' });
  const potassium = all.find((o) => o.code.coding?.some((c) => c.code === 'K'));
  expect(potassium?.code.coding?.map((c) => c.code)).toEqual(['K']);
  const unmapped = await terminology.unmappedCodes();
  expect(unmapped.map((u) => u.code)).toContain('K');
  expect(unmapped.find((u) => u.code === 'K')?.source).toMatch(/^Organization\//);
});
