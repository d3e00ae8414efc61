/**
 * IHE MHD on FHIR R4 with WS/T 500 CDA documents: publish (raw CDA upload, ITI-65 provide bundle), find (ITI-67),
 * retrieve (ITI-68), replacement, the CDA header read into DocumentReference metadata, and $render.
 */
import type { Bundle, DocumentReference, Organization, Patient } from '@medplum/fhirtypes';
import request from 'supertest';
import type { TestServer } from '../../test/server';
import { DOCUMENT_TYPE_SYSTEM } from '..';
import { cdaSample, create, createRegistryServer } from './harness';

let server: TestServer;
let hospital: Organization;
let patient: Patient;
const CDA = 'application/hl7-cda+xml';

const bytes = (res: request.Response, done: (err: Error | null, body: Buffer) => void): void => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => done(null, Buffer.concat(chunks)));
};
const uploadCda = (xml: string) => request(server.app).post('/fhir/Binary').set('Content-Type', CDA).send(Buffer.from(xml));
const readDoc = async (id: string): Promise<DocumentReference> => (await request(server.app).get(`/fhir/DocumentReference/${id}`)).body as DocumentReference;
const docIdOf = (binary: { securityContext?: { reference?: string } }): string => (binary.securityContext?.reference ?? '').replace('DocumentReference/', '');
const replacing = (newId: string, oldId: string) => ({
  'extension="HM-DOC-0001"': `extension="${newId}"`,
  '<component>\n    <structuredBody>': `<relatedDocument typeCode="RPLC"><parentDocument><id root="2.16.156.10011.1.1" extension="${oldId}"/></parentDocument></relatedDocument>\n  <component>\n    <structuredBody>`,
});

beforeAll(async () => {
  server = await createRegistryServer();
  hospital = await create(server, {
    resourceType: 'Organization',
    name: '惠民市第一人民医院（虚构）',
    identifier: [{ system: 'urn:oid:2.16.156.10011.1.5', value: 'HM-HOSP-A' }],
  });
  patient = await create(server, {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: '340104198001011234' }],
    name: [{ text: '测试患者' }],
    gender: 'male',
    birthDate: '1980-01-01',
  });
});

afterAll(async () => {
  await server.close();
});

describe('a CDA uploaded as raw Binary content', () => {
  let binaryId: string;
  let docId: string;

  it('gets a DocumentReference made from its header', async () => {
    const res = await uploadCda(cdaSample());
    expect(res.status).toBe(201);
    binaryId = res.body.id;
    docId = docIdOf(res.body);
    expect(docId).not.toBe('');
    const doc = await readDoc(docId);
    expect(doc).toMatchObject({
      status: 'current',
      masterIdentifier: { system: 'urn:oid:2.16.156.10011.1.1', value: 'HM-DOC-0001' },
      subject: { reference: `Patient/${patient.id}` },
      type: { coding: [{ system: DOCUMENT_TYPE_SYSTEM, code: 'C0001', display: '病历概要' }], text: '病历概要' },
      date: '2025-03-14T09:30:00+08:00',
      author: [{ reference: `Organization/${hospital.id}`, display: '惠民市第一人民医院（虚构）' }],
      custodian: { reference: `Organization/${hospital.id}` },
      securityLabel: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'N' }] }],
      content: [{ attachment: { contentType: CDA, url: `Binary/${binaryId}`, title: '病历概要' } }],
    });
    expect(doc.content[0].attachment.size).toBe(Buffer.byteLength(cdaSample()));
  });

  it('is found by ITI-67 parameters (patient, patient.identifier, type, date, status)', async () => {
    const res = await request(server.app)
      .get('/fhir/DocumentReference')
      .query({ patient: `Patient/${patient.id}`, type: `${DOCUMENT_TYPE_SYSTEM}|C0001`, date: 'ge2025-03-01', status: 'current' });
    expect(res.status).toBe(200);
    expect((res.body as Bundle).entry?.map((e) => e.resource?.id)).toEqual([docId]);
    const byIdentifier = await request(server.app).get('/fhir/DocumentReference').query({ 'patient.identifier': 'urn:oid:2.16.156.10011.1.3|340104198001011234' });
    expect(byIdentifier.body.total ?? byIdentifier.body.entry.length).toBe(1);
    const none = await request(server.app).get('/fhir/DocumentReference').query({ patient: `Patient/${patient.id}`, date: 'lt2025-01-01' });
    expect(none.body.entry ?? []).toHaveLength(0);
  });

  it('is retrieved as the document itself (ITI-68)', async () => {
    const res = await request(server.app).get(`/fhir/Binary/${binaryId}`).set('Accept', CDA).buffer(true).parse(bytes);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(CDA);
    expect((res.body as Buffer).toString('utf8')).toBe(cdaSample());
  });

  it('renders as readable HTML, escaped', async () => {
    const res = await request(server.app).get(`/fhir/DocumentReference/${docId}/$render`).set('Accept', 'text/html');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.text).toContain('<h1>病历概要</h1>');
    expect(res.text).toContain('测试患者 · 男性 · 出生 1980-01-01');
    expect(res.text).toContain('<h2>健康问题</h2>');
    expect(res.text).toContain('<li>2 型糖尿病 &lt;控制良好&gt;</li>');
    expect(res.text).toContain('<p>收缩压：128 mmHg</p>');
    expect(res.text).not.toContain('<script');
  });

  it('replaces the document its relatedDocument RPLC names: the old one is superseded in the same transaction', async () => {
    const res = await uploadCda(cdaSample(replacing('HM-DOC-0002', 'HM-DOC-0001')));
    expect(res.status).toBe(201);
    const newDoc = await readDoc(docIdOf(res.body));
    expect(newDoc.relatesTo).toEqual([{ code: 'replaces', target: { reference: `DocumentReference/${docId}` } }]);
    expect((await readDoc(docId)).status).toBe('superseded');
    const current = await request(server.app).get('/fhir/DocumentReference').query({ patient: `Patient/${patient.id}`, status: 'current' });
    expect(current.body.entry.map((e: { resource: DocumentReference }) => e.resource.id)).toEqual([newDoc.id]);
  });

  it('refuses to replace a document that is no longer current', async () => {
    const res = await uploadCda(cdaSample(replacing('HM-DOC-0003', 'HM-DOC-0001')));
    expect(res.status).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/is superseded, not current; only a current document can be replaced/);
  });
});

describe('a resident known to several hospitals and to the master patient index', () => {
  it('files the document under the publisher\'s own record, else under the golden record', async () => {
    const id = { system: 'urn:oid:2.16.156.10011.1.3', value: '340104198505054561' };
    const other = await create(server, { resourceType: 'Organization', name: '医院 B' });
    const golden = await create<Patient>(server, { resourceType: 'Patient', identifier: [id] });
    const atA = await create<Patient>(server, { resourceType: 'Patient', identifier: [id], managingOrganization: { reference: `Organization/${hospital.id}` }, link: [{ type: 'refer', other: { reference: `Patient/${golden.id}` } }] });
    const atB = await create<Patient>(server, { resourceType: 'Patient', identifier: [id], managingOrganization: { reference: `Organization/${other.id}` }, link: [{ type: 'refer', other: { reference: `Patient/${golden.id}` } }] });
    const linked = { ...golden, link: [atA, atB].map((p) => ({ type: 'seealso' as const, other: { reference: `Patient/${p.id}` } })) };
    expect((await request(server.app).put(`/fhir/Patient/${golden.id}`).set('Content-Type', 'application/fhir+json').send(linked)).status).toBe(200);
    const fromA = await uploadCda(cdaSample({ '340104198001011234': id.value, HR340104000001: 'HR-MPI-1', 'HM-DOC-0001': 'HM-DOC-MPI1' }));
    expect((await readDoc(docIdOf(fromA.body))).subject?.reference).toBe(`Patient/${atA.id}`);
    const fromUnknown = await uploadCda(cdaSample({ '340104198001011234': id.value, HR340104000001: 'HR-MPI-1', 'HM-DOC-0001': 'HM-DOC-MPI2', 'extension="HM-HOSP-A"': 'extension="HM-HOSP-UNREGISTERED"' }));
    expect((await readDoc(docIdOf(fromUnknown.body))).subject?.reference).toBe(`Patient/${golden.id}`);
  });
});

describe('CDA documents the platform refuses, with the reason', () => {
  it('a patient nobody registered', async () => {
    const res = await uploadCda(cdaSample({ '340104198001011234': '34010419900202789X', HR340104000001: 'HR-UNKNOWN' }));
    expect(res.status).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/no registered Patient has any of the document's patient identifiers \(urn:oid:2.16.156.10011.1.2\|HR-UNKNOWN, urn:oid:2.16.156.10011.1.3\|34010419900202789X\)|no registered Patient/);
  });

  it('XML that is not well-formed, anywhere in the document', async () => {
    const res = await uploadCda(cdaSample({ '<title>生命体征</title>': '<title>生命体征</titel>' }));
    expect(res.status).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/not acceptable XML/);
  });

  it('a type code that is no WS/T 500 document type', async () => {
    const res = await uploadCda(cdaSample({ 'code="C0001"': 'code="C0099"', 'HM-DOC-0001': 'HM-DOC-0099' }));
    expect(res.status).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/"C0099" is not a WS\/T 500 shared document type/);
  });

  it('a document that is not CDA at all', async () => {
    const res = await uploadCda('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body/></html>');
    expect(res.status).toBe(422);
    expect(res.body.issue[0].diagnostics).toMatch(/not ClinicalDocument in the HL7 v3 namespace/);
  });

  it('nothing is kept of a refused upload but its content-addressed bytes', async () => {
    const docs = await request(server.app).get('/fhir/DocumentReference').query({ identifier: 'urn:oid:2.16.156.10011.1.1|HM-DOC-0099' });
    expect(docs.body.entry ?? []).toHaveLength(0);
  });
});

describe('ITI-65 provide document bundle', () => {
  const bundle = (xml: string, doc: Partial<DocumentReference>, binaryFirst = false): Bundle => {
    const entries = [
      {
        fullUrl: 'urn:uuid:1e404af3-077f-4bee-b7a6-a9be97e1ce01',
        resource: { resourceType: 'List', status: 'current', mode: 'working', code: { coding: [{ system: 'https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes', code: 'submissionset' }] }, subject: { reference: `Patient/${patient.id}` }, entry: [{ item: { reference: 'urn:uuid:1e404af3-077f-4bee-b7a6-a9be97e1ce02' } }] },
        request: { method: 'POST', url: 'List' },
      },
      {
        fullUrl: 'urn:uuid:1e404af3-077f-4bee-b7a6-a9be97e1ce02',
        resource: { resourceType: 'DocumentReference', status: 'current', content: [{ attachment: { contentType: CDA, url: 'urn:uuid:1e404af3-077f-4bee-b7a6-a9be97e1ce03' } }], ...doc },
        request: { method: 'POST', url: 'DocumentReference' },
      },
      {
        fullUrl: 'urn:uuid:1e404af3-077f-4bee-b7a6-a9be97e1ce03',
        resource: { resourceType: 'Binary', contentType: CDA, data: Buffer.from(xml).toString('base64') },
        request: { method: 'POST', url: 'Binary' },
      },
    ];
    return { resourceType: 'Bundle', type: 'transaction', meta: { profile: ['https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Minimal.ProvideBundle'] }, entry: binaryFirst ? [entries[2], entries[0], entries[1]] : entries } as Bundle;
  };
  const send = (b: Bundle) => request(server.app).post('/fhir').set('Content-Type', 'application/fhir+json').send(b);

  it('publishes a DocumentReference, its Binary and the submission set in one transaction', async () => {
    const res = await send(bundle(cdaSample({ 'HM-DOC-0001': 'HM-DOC-0101' }), { subject: { reference: `Patient/${patient.id}` } }));
    expect(res.status).toBe(200);
    const [list, doc, binary] = (res.body as Bundle).entry ?? [];
    expect(list.response?.status).toBe('201 Created');
    const docRef = doc.resource as DocumentReference;
    expect(docRef.content[0].attachment.url).toBe(`Binary/${binary.resource?.id}`);
    const retrieved = await request(server.app).get(`/fhir/${docRef.content[0].attachment.url}`).set('Accept', '*/*').buffer(true).parse(bytes);
    expect((retrieved.body as Buffer).toString('utf8')).toContain('HM-DOC-0101');
  });

  it('completes the metadata the client left out from the CDA header when the Binary comes first', async () => {
    const res = await send(bundle(cdaSample({ 'HM-DOC-0001': 'HM-DOC-0102' }), {}, true));
    expect(res.status).toBe(200);
    const doc = (res.body as Bundle).entry?.map((e) => e.resource).find((r) => r?.resourceType === 'DocumentReference') as DocumentReference;
    expect(doc.subject?.reference).toBe(`Patient/${patient.id}`);
    expect(doc.type?.coding?.[0].code).toBe('C0001');
    expect(doc.masterIdentifier?.value).toBe('HM-DOC-0102');
  });

  it('completes the metadata the same way when the DocumentReference comes before its Binary, stored and indexed', async () => {
    const res = await send(bundle(cdaSample({ 'HM-DOC-0001': 'HM-DOC-0107' }), {}));
    expect(res.status).toBe(200);
    const answered = (res.body as Bundle).entry?.map((e) => e.resource).find((r) => r?.resourceType === 'DocumentReference') as DocumentReference;
    const stored = await readDoc(answered.id as string);
    for (const doc of [answered, stored]) {
      expect(doc.subject?.reference).toBe(`Patient/${patient.id}`);
      expect(doc.type?.coding?.[0].code).toBe('C0001');
      expect(doc.masterIdentifier?.value).toBe('HM-DOC-0107');
    }
    // Indexed as completed: found by the patient and the document id the header gave.
    const found = await request(server.app).get('/fhir/DocumentReference').query({ patient: `Patient/${patient.id}`, identifier: 'urn:oid:2.16.156.10011.1.1|HM-DOC-0107' });
    expect(found.body.entry?.map((e: { resource: DocumentReference }) => e.resource.id)).toEqual([answered.id]);
  });

  it('refuses a DocumentReference whose patient is not the document\'s, whichever comes first', async () => {
    const other = await create(server, { resourceType: 'Patient', name: [{ text: '另一位' }] });
    for (const binaryFirst of [false, true]) {
      const res = await send(bundle(cdaSample({ 'HM-DOC-0001': 'HM-DOC-0103' }), { subject: { reference: `Patient/${other.id}` } }, binaryFirst));
      expect(res.status).toBe(422);
      expect(res.body.issue[0].diagnostics).toMatch(new RegExp(`subject is Patient/${other.id}, but the CDA document's patient identifiers name Patient/${patient.id}`));
    }
  });

  it('replaces with relatesTo: the old DocumentReference is superseded in the same transaction', async () => {
    const first = await send(bundle(cdaSample({ 'HM-DOC-0001': 'HM-DOC-0104' }), { subject: { reference: `Patient/${patient.id}` } }));
    const oldId = (first.body as Bundle).entry?.[1].resource?.id as string;
    const res = await send(bundle(cdaSample({ 'HM-DOC-0001': 'HM-DOC-0105' }), { subject: { reference: `Patient/${patient.id}` }, relatesTo: [{ code: 'replaces', target: { reference: `DocumentReference/${oldId}` } }] }));
    expect(res.status).toBe(200);
    expect((await readDoc(oldId)).status).toBe('superseded');
    const again = await send(bundle(cdaSample({ 'HM-DOC-0001': 'HM-DOC-0106' }), { subject: { reference: `Patient/${patient.id}` }, relatesTo: [{ code: 'replaces', target: { reference: `DocumentReference/${oldId}` } }] }));
    expect(again.status).toBe(422);
    expect(again.body.issue[0].diagnostics).toMatch(/is superseded, not current/);
  });

  it('takes documents other than CDA as they are', async () => {
    const res = await send({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:2e404af3-077f-4bee-b7a6-a9be97e1ce02', resource: { resourceType: 'DocumentReference', status: 'current', subject: { reference: `Patient/${patient.id}` }, content: [{ attachment: { contentType: 'application/pdf', url: 'urn:uuid:2e404af3-077f-4bee-b7a6-a9be97e1ce03' } }] }, request: { method: 'POST', url: 'DocumentReference' } },
        { fullUrl: 'urn:uuid:2e404af3-077f-4bee-b7a6-a9be97e1ce03', resource: { resourceType: 'Binary', contentType: 'application/pdf', data: Buffer.from('%PDF-1.4 synthetic').toString('base64') }, request: { method: 'POST', url: 'Binary' } },
      ],
    } as Bundle);
    expect(res.status).toBe(200);
    const doc = res.body.entry[0].resource as DocumentReference;
    const render = await request(server.app).get(`/fhir/DocumentReference/${doc.id}/$render`);
    expect(render.status).toBe(422);
    expect(render.body.issue[0].diagnostics).toMatch(/only CDA documents are rendered/);
  });
});
