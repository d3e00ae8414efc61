/**
 * What a search returns and how it pages (issue 3, part B): keyset paging under concurrent writes, `_sort`,
 * `_total`, `_summary`, `_elements`, system-level search, and ignored parameters. Expected results are worked
 * out by hand from the resources seeded here.
 */
import request from 'supertest';
import type { Bundle, Observation, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { createTestServer, type TestServer } from '../../test/server';
import type { Backend } from '../../test/databases';

const FHIR_JSON = 'application/fhir+json';
const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

describe.each<Backend>(['postgres', 'pglite'])('search results on %s', (backend) => {
  let server: TestServer;
  const api = () => request(server.app);
  const local = (url: string) => url.replace(server.baseUrl, '/fhir');
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const res = await api().get(url).set(headers);
    expect(res.status).toBe(200);
    return res.body as Bundle;
  };
  const matches = (b: Bundle) => (b.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource?.id);
  const nextOf = (b: Bundle) => b.link?.find((l) => l.relation === 'next')?.url;
  const put = async (resource: Patient | Observation) => {
    const res = await api().put(`/fhir/${resource.resourceType}/${resource.id}`).set('Content-Type', FHIR_JSON).send(resource);
    expect([200, 201]).toContain(res.status);
  };
  /** Every match of a search, following next links; the pages' ids in order. */
  const allPages = async (url: string, between?: (page: number) => Promise<void>) => {
    const pages: string[][] = [];
    let next: string | undefined = url;
    while (next) {
      const bundle = await get(next);
      pages.push(matches(bundle) as string[]);
      next = nextOf(bundle) && local(nextOf(bundle) as string);
      await between?.(pages.length);
    }
    return pages;
  };

  // Patients pr-a … pr-g with chosen family names and birth dates; pr-g has neither a birth date nor a gender.
  const patients: Patient[] = [
    { resourceType: 'Patient', id: 'pr-a', name: [{ family: 'Wang' }], gender: 'female', birthDate: '1980-01-01', text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Wang</div>' } },
    { resourceType: 'Patient', id: 'pr-b', name: [{ family: 'Li' }], gender: 'male', birthDate: '1975-06-01' },
    { resourceType: 'Patient', id: 'pr-c', name: [{ family: 'Zhao' }], gender: 'female', birthDate: '1990-03-03' },
    { resourceType: 'Patient', id: 'pr-d', name: [{ family: 'Li' }], gender: 'female', birthDate: '1990-03-03' },
    { resourceType: 'Patient', id: 'pr-e', name: [{ family: 'Chen' }], gender: 'male', birthDate: '2001-12-31' },
    { resourceType: 'Patient', id: 'pr-f', name: [{ family: 'Chen' }], gender: 'male', birthDate: '1975-06-01' },
    { resourceType: 'Patient', id: 'pr-g', name: [{ family: 'Sun' }] },
  ];

  beforeAll(async () => {
    server = await createTestServer(backend);
    for (const p of patients) {
      await put(p);
    }
    await put({
      resourceType: 'Observation', id: 'ob-1', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }] },
      subject: { reference: 'Patient/pr-a' }, valueQuantity: { value: 5.1, unit: 'mmol/L' }, text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">glucose</div>' },
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('pages by keyset: every resource once, in id order, however many pages', async () => {
    const pages = await allPages('/fhir/Patient?_count=3');
    expect(pages).toEqual([['pr-a', 'pr-b', 'pr-c'], ['pr-d', 'pr-e', 'pr-f'], ['pr-g']]);
    // With filters, whose index lookups start at the cursor too (also inside NOT EXISTS).
    expect(await allPages('/fhir/Patient?gender=male&_count=1')).toEqual([['pr-b'], ['pr-e'], ['pr-f']]);
    expect(await allPages('/fhir/Patient?gender:not=female&_count=2')).toEqual([['pr-b', 'pr-e'], ['pr-f', 'pr-g']]);
    expect(await allPages('/fhir/Patient?gender:missing=false&family=li,chen&_count=2')).toEqual([['pr-b', 'pr-d'], ['pr-e', 'pr-f']]);
  });

  it('loses and repeats nothing when resources are created and deleted between pages', async () => {
    // After page 1 (pr-a, pr-b, pr-c): pr-b (already seen) is deleted and pr-0 (sorts before the cursor) is created;
    // with offsets the next page would skip pr-d, and a re-sent pr-c would follow. After page 2: pr-h appears ahead.
    const pages = await allPages('/fhir/Patient?_count=3', async (page) => {
      if (page === 1) {
        await api().delete('/fhir/Patient/pr-b');
        await put({ resourceType: 'Patient', id: 'pr-0', name: [{ family: 'Zero' }] });
      }
      if (page === 2) {
        await put({ resourceType: 'Patient', id: 'pr-h', name: [{ family: 'Hou' }] });
      }
    });
    expect(pages).toEqual([['pr-a', 'pr-b', 'pr-c'], ['pr-d', 'pr-e', 'pr-f'], ['pr-g', 'pr-h']]);
    await put(patients[1]);
    await api().delete('/fhir/Patient/pr-0');
    await api().delete('/fhir/Patient/pr-h');
  });

  it('sorts by several keys, descending with -, missing values last, and pages through the sort', async () => {
    // birthdate descending: 2001 (e), 1990 (c, d: tie broken by id), 1980 (a), 1975 (b, f), none (g).
    expect((await allPages('/fhir/Patient?_sort=-birthdate&_count=2')).flat()).toEqual(['pr-e', 'pr-c', 'pr-d', 'pr-a', 'pr-b', 'pr-f', 'pr-g']);
    // gender ascending (female < male, g has none), then family descending, then id.
    expect((await allPages('/fhir/Patient?_sort=gender,-family&_count=2')).flat()).toEqual(['pr-c', 'pr-a', 'pr-d', 'pr-b', 'pr-e', 'pr-f', 'pr-g']);
    // family ascending: Chen (e, f), Li (b, d), Sun (g), Wang (a), Zhao (c); ties by id descending.
    expect((await allPages('/fhir/Patient?_sort=family,-_id&_count=3')).flat()).toEqual(['pr-f', 'pr-e', 'pr-d', 'pr-b', 'pr-g', 'pr-a', 'pr-c']);
    expect((await allPages('/fhir/Patient?_sort=-_id&_count=4')).flat()).toEqual(['pr-g', 'pr-f', 'pr-e', 'pr-d', 'pr-c', 'pr-b', 'pr-a']);
  });

  it('refuses a cursor that was tampered with or belongs to another sort', async () => {
    const first = await get('/fhir/Patient?_sort=birthdate&_count=2');
    const cursor = new URL(nextOf(first) as string).searchParams.get('_cursor') as string;
    expect((await api().get(`/fhir/Patient?_sort=family&_count=2&_cursor=${cursor}`)).status).toBe(400);
    const forged = Buffer.from(JSON.stringify({ s: 'birthdate|Patient', v: ["1980'; DROP TABLE resource; --", 'pr-a'] })).toString('base64url');
    const res = await api().get(`/fhir/Patient?_sort=birthdate&_count=2&_cursor=${forged}`);
    expect(res.status).toBe(400);
    expect((res.body as OperationOutcome).issue?.[0].diagnostics).toContain('_cursor');
    expect((await api().get('/fhir/Patient?_cursor=%%%')).status).toBe(400);
  });

  it('answers _total none, estimate and accurate', async () => {
    expect((await get('/fhir/Patient?gender=male&_count=1&_total=accurate')).total).toBe(3);
    expect((await get('/fhir/Patient?gender=male&_count=1&_total=none')).total).toBeUndefined();
    expect((await get('/fhir/Patient?gender=male&_count=1')).total).toBeUndefined();
    // Without _count the whole result fits one page, and its size is the total.
    expect((await get('/fhir/Patient?gender=male')).total).toBe(3);
    const estimate = (await get('/fhir/Patient?gender=male&_count=1&_total=estimate')).total;
    expect(typeof estimate).toBe('number');
    expect(estimate).toBeGreaterThanOrEqual(0);
    const none = await get('/fhir/Patient?family=li&_count=0');
    expect(none.total).toBe(2);
    expect(none.entry ?? []).toHaveLength(0);
    const count = await get('/fhir/Patient?family=li&_summary=count');
    expect(count.total).toBe(2);
    expect(count.entry ?? []).toHaveLength(0);
  });

  it('reduces resources with _summary and _elements, tagged SUBSETTED, in searches and reads', async () => {
    const summary = (await get('/fhir/Patient?_id=pr-a&_summary=true')).entry?.[0].resource as Patient;
    // Patient's summary elements include name, gender, birthDate; text is not one.
    expect(summary).toMatchObject({ id: 'pr-a', name: [{ family: 'Wang' }], gender: 'female', birthDate: '1980-01-01' });
    expect(summary.text).toBeUndefined();
    expect(summary.meta?.tag).toContainEqual(expect.objectContaining(SUBSETTED));

    const text = (await get('/fhir/Patient?_id=pr-a&_summary=text')).entry?.[0].resource as Patient;
    expect(Object.keys(text).sort()).toEqual(['id', 'meta', 'resourceType', 'text']);

    const data = (await get('/fhir/Observation?_id=ob-1&_summary=data')).entry?.[0].resource as Observation;
    expect(data.text).toBeUndefined();
    expect(data.valueQuantity?.value).toBe(5.1);
    expect(data.meta?.tag).toContainEqual(expect.objectContaining(SUBSETTED));

    // Observation.status and code are mandatory (min 1): kept beside the asked-for subject.
    const elements = (await get('/fhir/Observation?_id=ob-1&_elements=subject')).entry?.[0].resource as Observation;
    expect(Object.keys(elements).sort()).toEqual(['code', 'id', 'meta', 'resourceType', 'status', 'subject']);
    expect(elements.meta?.tag).toContainEqual(expect.objectContaining(SUBSETTED));
    const value = (await get('/fhir/Observation?_id=ob-1&_elements=value')).entry?.[0].resource as Observation;
    expect(value.valueQuantity?.value).toBe(5.1);

    const full = (await get('/fhir/Patient?_id=pr-a&_summary=false')).entry?.[0].resource as Patient;
    expect(full.text?.status).toBe('generated');
    expect(full.meta?.tag).toBeUndefined();

    const read = await api().get('/fhir/Patient/pr-a?_elements=gender');
    expect(read.status).toBe(200);
    expect(Object.keys(read.body).sort()).toEqual(['gender', 'id', 'meta', 'resourceType']);
    expect(read.body.meta.tag).toContainEqual(expect.objectContaining(SUBSETTED));
    expect((await api().get('/fhir/Patient/pr-a?_summary=maybe')).status).toBe(400);
  });

  it('searches across types at system level, by GET and by POST _search', async () => {
    const both = await get('/fhir?_type=Patient,Observation&_lastUpdated=gt2000-01-01&_count=100');
    expect(both.entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort()).toEqual([
      'Observation/ob-1', 'Patient/pr-a', 'Patient/pr-b', 'Patient/pr-c', 'Patient/pr-d', 'Patient/pr-e', 'Patient/pr-f', 'Patient/pr-g',
    ]);
    expect(both.entry?.find((e) => e.resource?.id === 'ob-1')?.fullUrl).toBe(`${server.baseUrl}/Observation/ob-1`);
    const byId = await get('/fhir?_id=ob-1,pr-c');
    expect(byId.entry?.map((e) => e.resource?.id).sort()).toEqual(['ob-1', 'pr-c']);
    // Without _type every type is searched, with the parameters every resource has.
    await put({ ...patients[4], meta: { tag: [{ system: 'http://huimin/tags', code: 'vip' }] } });
    await put({ resourceType: 'Observation', id: 'ob-2', status: 'final', code: { text: 'note' }, meta: { tag: [{ system: 'http://huimin/tags', code: 'vip' }] } });
    const tagged = await get(`/fhir?_tag=${encodeURIComponent('http://huimin/tags|vip')}`);
    expect(tagged.entry?.map((e) => `${e.resource?.resourceType}/${e.resource?.id}`).sort()).toEqual(['Observation/ob-2', 'Patient/pr-e']);
    await api().delete('/fhir/Observation/ob-2');
    // Paged across types: 8 resources by 3, each once.
    const pages = await allPages('/fhir?_type=Patient,Observation&_count=3');
    expect(pages.map((p) => p.length)).toEqual([3, 3, 2]);
    expect(new Set(pages.flat()).size).toBe(8);
    const posted = await api().post('/fhir/_search').type('form').send('_type=Observation,Patient&_id=ob-1');
    expect(posted.status).toBe(200);
    expect(matches(posted.body as Bundle)).toEqual(['ob-1']);
    // A parameter that not every listed type has is ignored and reported (or a 400 when strict).
    const family = await get('/fhir?_type=Patient,Observation&family=li&_id=pr-b');
    expect(matches(family)).toEqual(['pr-b']);
    expect(family.entry?.find((e) => e.search?.mode === 'outcome')).toBeDefined();
    expect((await api().get('/fhir?_type=Patient,Observation&family=li').set('Prefer', 'handling=strict')).status).toBe(400);
    expect((await api().get('/fhir?_type=Nothing')).status).toBe(404);
  });

  it('ignores unknown and unsupported parameters, reporting them in an outcome entry; strict handling refuses them', async () => {
    const lenient = await get('/fhir/Patient?family=li&foo=bar&_contained=true');
    expect(matches(lenient).sort()).toEqual(['pr-b', 'pr-d']);
    const outcome = lenient.entry?.find((e) => e.search?.mode === 'outcome')?.resource as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue?.map((i) => i.expression?.[0]).sort()).toEqual(['_contained', 'foo']);
    expect(outcome.issue?.every((i) => i.severity === 'warning')).toBe(true);

    const strict = await api().get('/fhir/Patient?family=li&foo=bar').set('Prefer', 'handling=strict');
    expect(strict.status).toBe(400);
    expect((strict.body as OperationOutcome).issue?.[0].diagnostics).toContain('foo');
    expect((await api().get('/fhir/Patient?family=li').set('Prefer', 'handling=strict')).status).toBe(200);

    // POST [type]/_search with a form body: the same parameters, paging and reporting.
    const posted = await api().post('/fhir/Patient/_search').type('form').send('family=li&foo=bar&_count=1&_sort=-_id');
    expect(posted.status).toBe(200);
    expect(matches(posted.body as Bundle)).toEqual(['pr-d']);
    expect((posted.body as Bundle).entry?.some((e) => e.search?.mode === 'outcome')).toBe(true);
    const next = nextOf(posted.body as Bundle) as string;
    expect(matches(await get(local(next)))).toEqual(['pr-b']);
    const strictPost = await api().post('/fhir/Patient/_search').type('form').set('Prefer', 'handling=strict').send('foo=bar');
    expect(strictPost.status).toBe(400);
  });
});
