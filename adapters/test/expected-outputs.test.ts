/**
 * The stored resources compared with FHIR-Converter's published outputs (`*.expected.json`, a guide rather than the
 * official mapping) for the fields that matter: identifiers, names, dates, codes, values, units, references.
 * Each sample is compared right after it was sent (later samples update the same patients).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { describeWithFixtures, fixturePath } from '../../test/fixtures';
import { searchMessages } from '../store/message-store';
import { readAck, startHl7Platform, type Hl7TestPlatform } from './harness';
import { sampleMessages, sendingFacility } from './samples';

type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const codes = (cc: Any | undefined): string[] => (cc?.coding ?? []).map((c: Any) => c.code).filter(Boolean);
const values = (ids: Any[] | undefined): string[] => (ids ?? []).map((i) => i.value).filter(Boolean);

/** What must agree, per resource type: [label, expected value, stored value]. */
function compare(expected: Any, stored: Any[], message: string): string[] {
  const problems: string[] = [];
  const type = expected.resourceType;
  const same = stored.filter((s) => s.resourceType === type);
  if (type === 'Patient') {
    const p = same.find((s) => values(expected.identifier).some((v) => values(s.identifier).includes(v)));
    if (!p) return [`Patient with identifier ${values(expected.identifier).join(',')} not stored`];
    // The converter also gathers identifiers from IN1, GT1… onto the patient; those from PID must be here.
    // Only ADT updates a known patient; other messages refer to it as it is (their extra identifiers are not added).
    const pid = message.split(/[\r\n]/).find((l) => l.startsWith('PID')) ?? '';
    const adt = /^MSH.[^\r\n]*\|ADT\^/.test(message.replace(/^\uFEFF/, ''));
    for (const v of values(expected.identifier)) if (adt && pid.includes(v) && !values(p.identifier).includes(v)) problems.push(`Patient identifier ${v} missing`);
    const en = expected.name?.[0];
    const sn = p.name?.[0];
    if (en?.family && en.family !== sn?.family) problems.push(`Patient family ${en.family} != ${sn?.family}`);
    if (en?.given?.[0] && en.given[0] !== sn?.given?.[0]) problems.push(`Patient given ${en.given[0]} != ${sn?.given?.[0]}`);
    if (expected.birthDate && expected.birthDate !== p.birthDate) problems.push(`Patient birthDate ${expected.birthDate} != ${p.birthDate}`);
    if (expected.gender && expected.gender !== p.gender) problems.push(`Patient gender ${expected.gender} != ${p.gender}`);
  }
  if (type === 'Observation' && codes(expected.code).length) {
    const o = same.find((s) => codes(s.code).includes(codes(expected.code)[0]) && (expected.valueQuantity === undefined || s.valueQuantity?.value === expected.valueQuantity.value));
    if (!o) return [`Observation ${codes(expected.code)[0]} ${expected.valueQuantity?.value ?? ''} not stored`];
    if (expected.valueQuantity?.unit && expected.valueQuantity.unit !== o.valueQuantity?.unit) problems.push(`Observation ${codes(expected.code)[0]} unit ${expected.valueQuantity.unit} != ${o.valueQuantity?.unit}`);
    if (expected.valueString && !String(o.valueString ?? '').includes(expected.valueString.split('\n')[0].trim())) problems.push(`Observation ${codes(expected.code)[0]} valueString differs`);
    for (const code of codes(expected.valueCodeableConcept)) if (!codes(o.valueCodeableConcept).includes(code)) problems.push(`Observation ${codes(expected.code)[0]} value code ${code} missing`);
    const er = expected.referenceRange?.[0];
    if (er?.low?.value !== undefined && er.low.value !== o.referenceRange?.[0]?.low?.value) problems.push(`Observation ${codes(expected.code)[0]} range low ${er.low.value} != ${o.referenceRange?.[0]?.low?.value}`);
    if (er?.high?.value !== undefined && er.high.value !== o.referenceRange?.[0]?.high?.value) problems.push(`Observation ${codes(expected.code)[0]} range high ${er.high.value} != ${o.referenceRange?.[0]?.high?.value}`);
    if (!o.subject?.reference?.startsWith('Patient/')) problems.push(`Observation ${codes(expected.code)[0]} has no patient`);
  }
  if (type === 'DiagnosticReport') {
    // The converter also makes reports of OBX outside any OBR; reports are made per OBR here.
    const obrs = message.split(/[\r\n]/).filter((l) => l.startsWith('OBR')).join('\n');
    if (!codes(expected.code).some((c) => obrs.includes(c))) return [];
    const r = same.find((s) => codes(s.code).some((c) => codes(expected.code).includes(c)));
    if (!r) return [`DiagnosticReport ${codes(expected.code)[0]} not stored`];
    if ((expected.result?.length ?? 0) > (r.result?.length ?? 0)) problems.push(`DiagnosticReport ${codes(expected.code)[0]} has ${r.result?.length ?? 0} results, expected ${expected.result.length}`);
  }
  if (type === 'Specimen' && codes(expected.type).length) {
    // The converter also makes Specimens of OBR order numbers (no type) and of OBR-15 beside SPM; OBR-15 is read
    // here only when the message has no SPM (it is the v2.3/2.4 place of the specimen).
    const lines = message.split(/[\r\n]/);
    const spm = lines.filter((l) => l.startsWith('SPM'));
    const from = (spm.length ? spm : lines.filter((l) => l.startsWith('OBR'))).join('\n');
    if (from.includes(codes(expected.type)[0]) && !same.some((s) => codes(s.type).includes(codes(expected.type)[0]))) problems.push(`Specimen of type ${codes(expected.type)[0]} not stored`);
  }
  if (type === 'Immunization') {
    const i =
      same.find((s) => codes(s.vaccineCode).some((c) => codes(expected.vaccineCode).includes(c)) && s.occurrenceDateTime?.slice(0, 10) === expected.occurrenceDateTime?.slice(0, 10)) ??
      same.find((s) => codes(s.vaccineCode).some((c) => codes(expected.vaccineCode).includes(c)));
    if (!i) return [`Immunization ${codes(expected.vaccineCode)[0]} not stored`];
    if (expected.occurrenceDateTime && expected.occurrenceDateTime.slice(0, 10) !== i.occurrenceDateTime?.slice(0, 10)) problems.push(`Immunization date ${expected.occurrenceDateTime} != ${i.occurrenceDateTime}`);
    if (expected.lotNumber && expected.lotNumber !== i.lotNumber) problems.push(`Immunization lot ${expected.lotNumber} != ${i.lotNumber}`);
  }
  if (type === 'ServiceRequest' || type === 'Appointment' || type === 'DocumentReference') {
    if (same.length === 0) problems.push(`no ${type} stored`);
  }
  // A referral is one ServiceRequest, for the service of its first OBR; orders have one per OBR.
  const obrLines = message.split(/[\r\n]/).filter((l) => l.startsWith('OBR'));
  const obrCodes = (/\|REF\^/.test(message) ? obrLines.slice(0, 1) : obrLines).join('\n');
  if (type === 'ServiceRequest' && same.length && codes(expected.code).some((c) => obrCodes.includes(c)) && !same.some((s) => codes(s.code).some((c) => codes(expected.code).includes(c)))) {
    problems.push(`ServiceRequest code ${codes(expected.code)[0]} not stored`);
  }
  return problems;
}

/** The resource types this platform's mappings write for each message type (others in the expected bundles are not mapped). */
const COMPARED: Record<string, string[]> = {
  ADT: ['Patient'],
  ORU: ['Patient', 'Observation', 'DiagnosticReport', 'Specimen'],
  ORM: ['Patient', 'ServiceRequest'],
  OML: ['Patient', 'ServiceRequest'],
  SIU: ['Patient', 'Appointment'],
  REF: ['Patient', 'ServiceRequest'],
  MDM: ['Patient', 'DocumentReference'],
  VXU: ['Patient', 'Immunization'],
};

describeWithFixtures('hl7v2', 'stored resources against FHIR-Converter expected outputs', () => {
  let p: Hl7TestPlatform;
  const report: Array<{ file: string; compared: number; problems: string[] }> = [];

  beforeAll(async () => {
    p = await startHl7Platform();
    const samples = sampleMessages().filter((s) => s.file.startsWith('fhir-converter/'));
    for (const f of new Set(samples.map((s) => sendingFacility(s.bytes)).filter(Boolean))) await p.registerFacility(f);
    const client = await p.connect();
    for (const s of samples) {
      const expectedFile = fixturePath('hl7v2', s.file.replace(/\.hl7$/, '.expected.json'));
      const ack = readAck(await client.send(s.bytes));
      if (ack.code !== 'AA' || !existsSync(expectedFile)) continue;
      const [record] = await searchMessages(p.db, { controlId: ack.controlId, outcome: 'AA', limit: 1 });
      const stored: Any[] = [];
      const refs = new Set(record.resources);
      for (const ref of record.resources) {
        const [type, id] = ref.split('/');
        const resource = JSON.parse((await p.server.repository.read(type, id)).json) as Any;
        stored.push(resource);
        // The patient a result or order is about may have come with an earlier message.
        for (const r of [resource.subject, resource.patient, resource.for, ...(resource.participant ?? []).map((x: Any) => x.actor)]) {
          if (r?.reference?.startsWith('Patient/') && !refs.has(r.reference)) refs.add(r.reference) && stored.push(JSON.parse((await p.server.repository.read('Patient', r.reference.slice(8))).json));
        }
      }
      const messageType = s.bytes.toString('utf8').split(/[\r\n]/)[0].split('|')[8].split('^')[0];
      const bundle = JSON.parse(readFileSync(expectedFile, 'utf8').replace(/^\uFEFF/, '')) as Bundle;
      const expected = (bundle.entry ?? []).map((e) => e.resource as Resource).filter((r) => COMPARED[messageType]?.includes(r.resourceType));
      report.push({ file: s.file, compared: expected.length, problems: expected.flatMap((e) => compare(e as Any, stored, s.bytes.toString('utf8'))) });
    }
  }, 180_000);
  afterAll(async () => p.close());

  it('compares a meaningful number of samples', () => {
    expect(report.length).toBeGreaterThanOrEqual(60);
    expect(report.reduce((n, r) => n + r.compared, 0)).toBeGreaterThan(120);
  });

  it('stores the identifiers, names, dates, codes, values and units the converter produces', () => {
    const problems = report.flatMap((r) => r.problems.map((p) => `${r.file}: ${p}`));
    if (process.env.HL7_SAMPLES_REPORT) console.log(problems.join('\n'), report.length, report.reduce((n, r) => n + r.compared, 0));
    expect(problems).toEqual([]);
  });
});
