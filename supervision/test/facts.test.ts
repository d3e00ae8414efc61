/**
 * The read model under change: facts derived from an Encounter, Condition or Patient follow later changes of them,
 * findings whose facts no longer hold get a note (and stay for review), events handled twice or out of order leave
 * the right facts, and a batch of events is recorded with one read per type.
 */
import type { Condition, DetectedIssue, Encounter, Extension, Patient, Resource } from '@medplum/fhirtypes';
import request from 'supertest';
import type { ResourceChangeJob } from '../../fhir-server';
import { createTerminologyService, type TerminologyService } from '../../terminology';
import { supervisionCodes } from '..';
import { createHarness, DAY, iso, JSON_TYPE, type Harness } from './harness';
import { encounter, organization, patient, rx } from './fixtures';

let h: Harness;
const H1 = 'Organization/h1';
const H2 = 'Organization/h2';
let terminology: TerminologyService | undefined;

beforeAll(async () => {
  // The terminology module's $translate over this store (created once the store exists).
  h = await createHarness({}, { terminology: { translate: (request) => (terminology as TerminologyService).translate(request) } });
  terminology = createTerminologyService(h.db, h.server.repository);
  await organization(h, 'h1');
  await organization(h, 'h2');
});

afterAll(async () => {
  await h.close();
});

/** Updates a resource as the hospital and waits until that version has been evaluated. */
async function update<T extends Resource>(resource: T): Promise<T> {
  const res = await request(h.server.rawApp)
    .put(`/fhir/${resource.resourceType}/${resource.id}`)
    .set('Authorization', `Bearer ${await h.token('facility-system', H1)}`)
    .set('Content-Type', JSON_TYPE)
    .send(resource);
  if (res.status !== 200) throw new Error(`update failed: ${res.status} ${JSON.stringify(res.body)}`);
  const stored = res.body as T;
  await h.evaluated(`${stored.resourceType}/${stored.id}/${stored.meta?.versionId}`);
  return stored;
}

async function read<T extends Resource>(ref: string): Promise<T> {
  return (await request(h.server.app).get(`/fhir/${ref}`).expect(200)).body as T;
}

function factsChanged(issue: DetectedIssue): Extension[] {
  return (issue.extension ?? []).filter((e) => e.url === supervisionCodes.FACTS_CHANGED_EXTENSION);
}

async function readmissionsOf(ref: string): Promise<DetectedIssue[]> {
  return (await h.issues('READMISSION-31')).filter((i) => i.implicated?.some((r) => r.reference === ref));
}

const base = Date.now() - 120 * DAY;

describe('facts follow the records they were derived from', () => {
  it('a discharge moved later makes a readmission appear; moved back, the finding stays with a note and is not withdrawn', async () => {
    const p = await patient(h, H1, 'male', '1950-01-01');
    const first = await encounter(h, H1, p, 'IMP', base, base + 5 * DAY, 'I21.0');
    const again = await encounter(h, H1, p, 'IMP', base + 45 * DAY, base + 48 * DAY, 'I21.0');
    await h.evaluated(`Encounter/${first.id}`, `Encounter/${again.id}`);
    expect(await readmissionsOf(`Encounter/${again.id}`)).toHaveLength(0);

    // The discharge was entered wrongly: the first stay ended on day 20, 25 days before the re-admission.
    const corrected = await update<Encounter>({ ...first, period: { start: iso(base), end: iso(base + 20 * DAY) } });
    const [issue] = await readmissionsOf(`Encounter/${again.id}`);
    expect(issue.detail).toContain('25 days');
    expect(factsChanged(issue)).toHaveLength(0);

    // Corrected back: the suspicion no longer holds. The finding stays open (preliminary) with a note for its review.
    await update<Encounter>({ ...corrected, period: { start: iso(base), end: iso(base + 5 * DAY) } });
    const after = await read<DetectedIssue>(`DetectedIssue/${issue.id}`);
    expect(after.status).toBe('preliminary');
    const [note] = factsChanged(after);
    expect(note.extension?.find((e) => e.url === 'holds')?.valueBoolean).toBe(false);
    expect(note.extension?.find((e) => e.url === 'note')?.valueString).toContain(`Encounter/${first.id}`);
    const [row] = await h.db.query<{ facts_changed_at: Date | null; closed_at: Date | null }>('SELECT facts_changed_at, closed_at FROM sv_finding WHERE issue_id = $1', [issue.id]);
    expect(row.facts_changed_at).not.toBeNull();
    expect(row.closed_at).toBeNull();
  });

  it("a corrected diagnosis (the Condition) changes the encounter's principal diagnosis, and the readmission it made", async () => {
    const p = await patient(h, H1, 'male', '1951-01-01');
    await encounter(h, H1, p, 'IMP', base, base + 5 * DAY, 'I21.0');
    const again = await encounter(h, H1, p, 'IMP', base + 20 * DAY, base + 24 * DAY, 'J18.9');
    await h.evaluated(`Encounter/${again.id}`);
    expect(await readmissionsOf(`Encounter/${again.id}`)).toHaveLength(0);
    const conditionRef = again.diagnosis?.[0].condition?.reference as string;
    const condition = await read<Condition>(conditionRef);
    await update<Condition>({ ...condition, code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'I21.0' }] } });
    await h.evaluated(`Encounter/${again.id}`);
    const [fact] = await h.db.query<{ principal_dx: string }>('SELECT principal_dx FROM sv_encounter WHERE id = $1', [again.id]);
    expect(fact.principal_dx).toBe('I210');
    expect(await readmissionsOf(`Encounter/${again.id}`)).toHaveLength(1);
  });

  it("a patient's corrected sex reaches the prescriptions already recorded, and a restricted drug fires", async () => {
    const p = await patient(h, H1, 'female', '1990-01-01');
    const mr = await h.write(H1, rx(p, { atc: 'G03AA07', days: 3 }));
    await h.evaluated(`MedicationRequest/${mr.id}`);
    expect((await h.issues('DRUG-SEX-AGE')).filter((i) => i.implicated?.[0]?.reference === `MedicationRequest/${mr.id}`)).toHaveLength(0);
    const stored = await read<Patient>(p);
    await update<Patient>({ ...stored, gender: 'male' });
    const [fact] = await h.db.query<{ patient_gender: string }>('SELECT patient_gender FROM sv_prescription WHERE id = $1', [mr.id]);
    expect(fact.patient_gender).toBe('male');
    expect((await h.issues('DRUG-SEX-AGE')).filter((i) => i.implicated?.[0]?.reference === `MedicationRequest/${mr.id}`)).toHaveLength(1);
  });

  it("an encounter's corrected class (outpatient → emergency) reaches its prescriptions, and the emergency limit fires", async () => {
    const p = await patient(h, H1, 'male', '1960-01-01');
    const enc = await encounter(h, H1, p, 'AMB', Date.now() - DAY, Date.now() - DAY + 3600_000);
    const mr = await h.write(H1, rx(p, { days: 5, encounter: `Encounter/${enc.id}` }));
    await h.evaluated(`MedicationRequest/${mr.id}`);
    const ofMr = async (): Promise<DetectedIssue[]> => (await h.issues('RX-DAYS-SUPPLY')).filter((i) => i.implicated?.[0]?.reference === `MedicationRequest/${mr.id}`);
    expect(await ofMr()).toHaveLength(0);
    await update<Encounter>({ ...enc, class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EMER' } });
    expect((await h.db.query<{ setting: string }>('SELECT setting FROM sv_prescription WHERE id = $1', [mr.id]))[0].setting).toBe('emergency');
    expect(await ofMr()).toHaveLength(1);
  });
});

describe('events in batches', () => {
  function event(resourceType: string, id: string, versionId: number, interaction: ResourceChangeJob['interaction'] = 'create'): ResourceChangeJob {
    return { resourceType, id, versionId, interaction, occurredAt: new Date().toISOString(), eventId: `${resourceType}/${id}/_history/${versionId}`, seq: 0 };
  }

  it('a batch delivered twice, or an old version after a deletion, leaves the same facts and no second finding', async () => {
    const p = await patient(h, H1, 'male', '1970-01-01');
    const amb = `Encounter/${(await encounter(h, H1, p, 'AMB', Date.now() - DAY, Date.now() - DAY + 3600_000)).id}`;
    const over = await h.write(H1, rx(p, { days: 10, encounter: amb }));
    const other = await h.write(H1, rx(p, { days: 3 }));
    await h.evaluated(`MedicationRequest/${over.id}`, `MedicationRequest/${other.id}`);
    const batch = [event('MedicationRequest', over.id as string, 1), event('MedicationRequest', other.id as string, 1), event('MedicationRequest', over.id as string, 1)];
    await h.supervision.engine.onEvents(batch);
    await h.supervision.engine.onEvents(batch);
    expect((await h.issues('RX-DAYS-SUPPLY')).filter((i) => i.implicated?.[0]?.reference === `MedicationRequest/${over.id}`)).toHaveLength(1);
    await request(h.server.rawApp).delete(`/fhir/MedicationRequest/${other.id}`).set('Authorization', `Bearer ${await h.token('facility-system', H1)}`);
    await h.evaluated(`MedicationRequest/${other.id}/2`);
    // The creation's event handled late (a retry, another process): the deleted prescription does not come back.
    await h.supervision.engine.onEvents([event('MedicationRequest', other.id as string, 1)]);
    expect(await h.db.query('SELECT 1 FROM sv_prescription WHERE id = $1', [other.id])).toHaveLength(0);
    expect(await h.db.query('SELECT version FROM sv_tombstone WHERE res_type = $1 AND id = $2', ['MedicationRequest', other.id])).toEqual([{ version: 2 }]);
    expect(h.errors).toEqual([]);
  });
});

describe('$supervision-status', () => {
  it("reports every worker process's lag, not only the answering one's; a reset reaches them all", async () => {
    await h.db.query(`INSERT INTO sv_worker (worker, lag, updated_at) VALUES ('other-host:42:abc', $1, now())`, [JSON.stringify({ count: 7, p50: 120, p99: 900, max: 950 })]);
    await h.db.query(`INSERT INTO sv_worker (worker, lag, updated_at) VALUES ('gone-host:1:def', $1, now() - interval '1 hour')`, [JSON.stringify({ count: 1 })]);
    const status = async (body?: object): Promise<Array<Record<string, unknown>>> => {
      const res = body ? await request(h.server.app).post('/fhir/$supervision-status').set('Content-Type', JSON_TYPE).send(body) : await request(h.server.app).get('/fhir/$supervision-status');
      expect(res.status).toBe(200);
      const params = (res.body as { parameter: Array<{ name: string; part?: Array<{ name: string; valueString?: string; valueInteger?: number; valueDecimal?: number }> }> }).parameter;
      return params.filter((p) => p.name === 'worker').map((p) => Object.fromEntries((p.part ?? []).map((x) => [x.name, x.valueString ?? x.valueInteger ?? x.valueDecimal])));
    };
    const workers = await status();
    expect(workers.map((w) => w.name)).toEqual([h.supervision.engine.workerName, 'other-host:42:abc']);
    expect(workers[1]).toMatchObject({ count: 7, p99: 900 });
    await status({ resourceType: 'Parameters', parameter: [{ name: 'resetLag', valueBoolean: true }] });
    expect((await status()).map((w) => w.name)).toEqual([h.supervision.engine.workerName]);
  });
});

describe('drugs coded only locally', () => {
  it("get their ATC ingredient from the hospital's ConceptMap, and a duplicate across hospitals is found", async () => {
    const LOCAL = 'urn:huimin:h2:drug';
    await request(h.server.app)
      .post('/fhir/ConceptMap')
      .set('Content-Type', JSON_TYPE)
      .send({
        resourceType: 'ConceptMap',
        url: 'https://huimin.health/fhir/ConceptMap/h2-drugs-atc',
        status: 'active',
        group: [{ source: LOCAL, target: 'http://www.whocc.no/atc', element: [{ code: 'AMOX-500', target: [{ code: 'J01CA04', equivalence: 'equivalent' }] }] }],
      })
      .expect(201);
    const p = await patient(h, H1, 'female', '1975-01-01');
    const first = await h.write(H1, rx(p, { atc: 'J01CA04', days: 7, authored: Date.now() - 2 * DAY }));
    await h.evaluated(`MedicationRequest/${first.id}`);
    const local = rx(p, { days: 5 });
    local.medicationCodeableConcept = { coding: [{ system: LOCAL, code: 'AMOX-500', display: 'Amoxicillin 500 mg' }] };
    const second = await h.write(H2, local);
    await h.evaluated(`MedicationRequest/${second.id}`);
    const [fact] = await h.db.query<{ ingredient: string; drug_code: string }>('SELECT ingredient, drug_code FROM sv_prescription WHERE id = $1', [second.id]);
    expect(fact).toEqual({ ingredient: 'J01CA04', drug_code: 'AMOX-500' });
    const duplicates = (await h.issues('RX-DUPLICATE-DRUG')).filter((i) => i.implicated?.[0]?.reference === `MedicationRequest/${second.id}`);
    expect(duplicates).toHaveLength(1);
  });
});
