/**
 * SearchParameter resources stored at runtime (issue 3): a regional ethnicity extension on Patient becomes a
 * token parameter that new writes are indexed by, `$reindex` brings older resources up to date, the
 * CapabilityStatement lists it, and changes reach every process through the database.
 */
import request from 'supertest';
import type { Bundle, CapabilityStatement, Parameters, Patient, SearchParameter } from '@medplum/fhirtypes';
import { RuntimeSearchParams, indexedParams } from '../search';
import { SEARCH_TYPES } from '../search/indexed-params';
import { createTestServer, TEST_PUBLIC_URL, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';
const ETHNICITY_URL = 'http://huimin.health/fhir/StructureDefinition/ethnicity';
const GB3304 = 'http://huimin.health/fhir/CodeSystem/gb3304';

const ethnicityParam: SearchParameter = {
  resourceType: 'SearchParameter',
  id: 'patient-ethnicity',
  url: 'http://huimin.health/fhir/SearchParameter/patient-ethnicity',
  name: 'ethnicity',
  status: 'active',
  description: 'Ethnicity (GB/T 3304) from the regional extension',
  code: 'ethnicity',
  base: ['Patient'],
  type: 'token',
  expression: `Patient.extension.where(url='${ETHNICITY_URL}').value`,
};

const patient = (id: string, code: string): Patient => ({
  resourceType: 'Patient',
  id,
  name: [{ family: id }],
  extension: [{ url: ETHNICITY_URL, valueCoding: { system: GB3304, code } }],
});

describe.each<Backend>(['postgres', 'pglite'])('SearchParameters stored at runtime on %s', (backend) => {
  let server: TestServer;
  const api = () => request(server.app);
  const put = async (resource: Patient | SearchParameter) => {
    const res = await api().put(`/fhir/${resource.resourceType}/${resource.id}`).set('Content-Type', FHIR_JSON).send(resource);
    expect([200, 201]).toContain(res.status);
  };
  const ids = async (url: string) => {
    const res = await api().get(url).set('Prefer', 'handling=strict');
    expect(res.status).toBe(200);
    return ((res.body as Bundle).entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id);
  };
  /** Kicks off an asynchronous $reindex, waits for this process's worker to run it, and returns its result. */
  const reindex = async (path: string): Promise<Parameters> => {
    const kickOff = await api().post(path).set('Content-Type', FHIR_JSON).set('Prefer', 'respond-async').send({ resourceType: 'Parameters' });
    expect(kickOff.status).toBe(202);
    const statusPath = (kickOff.headers['content-location'] as string).slice(TEST_PUBLIC_URL.length);
    await server.reindex.idle();
    const done = await api().get(statusPath);
    expect(done.status).toBe(200);
    const bundle = done.body as Bundle;
    expect(bundle.type).toBe('batch-response');
    return bundle.entry?.[0].resource as Parameters;
  };
  const patientParams = async () => {
    const statement = (await api().get('/fhir/metadata')).body as CapabilityStatement;
    return statement.rest?.[0].resource?.find((r) => r.type === 'Patient')?.searchParam ?? [];
  };

  beforeAll(async () => {
    server = await createTestServer(backend);
    // Written before the parameter exists: Han (01) and Mongol (02).
    await put(patient('eth-1', '01'));
    await put(patient('eth-2', '02'));
  });
  afterAll(async () => {
    await server.close();
  });

  it('is unknown until stored', async () => {
    expect((await api().get('/fhir/Patient?ethnicity=01').set('Prefer', 'handling=strict')).status).toBe(400);
    expect((await patientParams()).map((p) => p.name)).not.toContain('ethnicity');
  });

  it('indexes new writes once stored, is listed in the CapabilityStatement, and $reindex covers older resources', async () => {
    await put(ethnicityParam);
    expect((await patientParams()).find((p) => p.name === 'ethnicity')).toEqual({
      name: 'ethnicity', type: 'token', definition: ethnicityParam.url,
    });
    await put(patient('eth-3', '01'));
    // Only eth-3 was written since: the older two are not indexed yet.
    expect(await ids('/fhir/Patient?ethnicity=01')).toEqual(['eth-3']);

    const reindexed = await reindex('/fhir/Patient/$reindex');
    expect(reindexed.parameter?.[0]).toEqual({ name: 'resources', valueInteger: 3 });

    expect(await ids('/fhir/Patient?ethnicity=01')).toEqual(['eth-1', 'eth-3']);
    expect(await ids(`/fhir/Patient?ethnicity=${encodeURIComponent(`${GB3304}|02`)}`)).toEqual(['eth-2']);
    expect(await ids('/fhir/Patient?ethnicity:not=01')).toEqual(['eth-2']);
    expect(await ids('/fhir/Patient?_sort=-ethnicity')).toEqual(['eth-2', 'eth-1', 'eth-3']);
    // A value that looks like a prefix and a digit ("eq1") is still a token value, not a prefixed 1.
    expect(await ids('/fhir/Patient?ethnicity=eq1')).toEqual([]);
    expect((await api().get('/fhir/$reindex')).status).toBe(405);
  });

  it('answers $reindex at system level with the count per type', async () => {
    const body = await reindex('/fhir/$reindex');
    // Three Patients and the SearchParameter itself.
    expect(body.parameter?.[0]).toEqual({ name: 'resources', valueInteger: 4 });
    const perType = body.parameter?.slice(1).map((p) => [p.part?.[0].valueCode, p.part?.[1].valueInteger]);
    expect(perType).toEqual([['Patient', 3], ['SearchParameter', 1]]);
  });

  it('applies a parameter on Resource to every type, also in system-level search', async () => {
    const batchUrl = 'http://huimin.health/fhir/StructureDefinition/import-batch';
    await put({
      resourceType: 'SearchParameter', id: 'import-batch', url: 'http://huimin.health/fhir/SearchParameter/import-batch',
      name: 'import-batch', status: 'active', description: 'The import batch a resource came in', code: 'import-batch',
      // R4 allows Resource as a base; @medplum/fhirtypes lists concrete types only.
      base: ['Resource'] as unknown as SearchParameter['base'], type: 'token', expression: `meta.extension.where(url='${batchUrl}').value`,
    });
    const meta = { extension: [{ url: batchUrl, valueString: 'B1' }] };
    await put({ ...patient('eth-5', '03'), meta });
    const res = await api().put('/fhir/Observation/ib-1').set('Content-Type', FHIR_JSON).send({
      resourceType: 'Observation', id: 'ib-1', status: 'final', code: { text: 'note' }, meta,
    });
    expect(res.status).toBe(201);
    expect(await ids('/fhir/Observation?import-batch=B1')).toEqual(['ib-1']);
    expect((await ids('/fhir?import-batch=B1')).sort()).toEqual(['eth-5', 'ib-1']);
    expect((await api().delete('/fhir/Observation/ib-1')).status).toBe(200);
    expect((await api().delete('/fhir/Patient/eth-5')).status).toBe(200);
    expect((await api().delete('/fhir/SearchParameter/import-batch')).status).toBe(200);
  });

  it('takes updates and deletions into account, and other processes see them through the database', async () => {
    // Another process's view: its own registry, reading the same database.
    const other = new RuntimeSearchParams({ searchTypes: SEARCH_TYPES, isBuiltIn: () => false, r4Definition: () => undefined, allTypes: () => [] }, 0);
    await other.refresh(server.db);
    expect(other.forType('Patient').map((p) => p.code)).toEqual(['ethnicity']);

    await put({ ...ethnicityParam, code: 'minzu', name: 'minzu' });
    await other.refresh(server.db);
    expect(other.forType('Patient').map((p) => p.code)).toEqual(['minzu']);
    expect(indexedParams('Patient').some((p) => p.code === 'ethnicity')).toBe(false);
    await put(patient('eth-4', '02'));
    expect(await ids('/fhir/Patient?minzu=02')).toEqual(['eth-4']);
    expect((await api().get('/fhir/Patient?ethnicity=01').set('Prefer', 'handling=strict')).status).toBe(400);

    expect((await api().delete('/fhir/SearchParameter/patient-ethnicity')).status).toBe(200);
    await other.refresh(server.db);
    expect(other.forType('Patient')).toEqual([]);
    expect((await patientParams()).map((p) => p.name)).not.toContain('minzu');
    // Unknown again: ignored by default, reported in the bundle.
    const lenient = (await api().get('/fhir/Patient?minzu=02')).body as Bundle;
    expect(lenient.entry?.filter((e) => e.search?.mode === 'match')).toHaveLength(4);
    expect(lenient.entry?.some((e) => e.search?.mode === 'outcome')).toBe(true);
  });
});
