/** The same SQL on embedded PGlite (npm start without a database server): loaders, concept tables, operations. */
import path from 'node:path';
import type { Parameters } from '@medplum/fhirtypes';
import request from 'supertest';
import { loadConceptMapCsv, loadLoinc, loadSnomed } from '..';
import { createTerminologyTestServer, type TerminologyTestServer } from './helpers';

const FIXTURES = path.join(__dirname, 'fixtures');
let server: TerminologyTestServer;
beforeAll(async () => {
  server = await createTerminologyTestServer('pglite');
});
afterAll(() => server.close());

it('loads releases and answers operations on PGlite', async () => {
  await loadSnomed(server.repository, server.terminology, { dir: path.join(FIXTURES, 'snomed'), version: 'http://snomed.info/sct/900000000000207008/version/20240101' });
  await loadLoinc(server.repository, server.terminology, { file: path.join(FIXTURES, 'loinc/Loinc.csv'), version: '2.77' });
  const report = await loadConceptMapCsv(server.repository, server.terminology, { file: path.join(FIXTURES, 'conceptmap/h1-lab.csv'), hospital: 'h1' });
  expect(report.mapped).toBe(4);
  const res = await request(server.app).get('/fhir/CodeSystem/$subsumes?system=http://snomed.info/sct&codeA=64572001&codeB=44054006').expect(200);
  expect((res.body as Parameters).parameter?.[0].valueCode).toBe('subsumes');
  const lookup = await request(server.app).get('/fhir/CodeSystem/$lookup?system=http://loinc.org&code=718-7').expect(200);
  expect((lookup.body as Parameters).parameter?.find((p) => p.name === 'display')?.valueString).toBe('Hemoglobin [Mass/volume] in Blood');
  expect((await server.terminology.unmappedCodes()).map((u) => u.code)).toEqual(['XGLU']);
});
