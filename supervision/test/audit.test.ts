/**
 * Audit review: clinicians reading many records without a care relationship, every break-the-glass access, and a
 * client reading far more than its usual volume become findings, read from the audit log through fhir-server's
 * reader.
 */
import request from 'supertest';
import { createHarness, JSON_TYPE, type Harness } from './harness';
import { encounter, organization, patient } from './fixtures';

let h: Harness;
const H1 = 'Organization/h1';
const H2 = 'Organization/h2';

beforeAll(async () => {
  h = await createHarness();
  await organization(h, 'h1');
  await organization(h, 'h2');
  const supervisor = await h.token('supervisor', 'Organization/health-bureau');
  // Thresholds lowered at runtime for a small test: more than 2 patients a day, more than 5 reads.
  for (const [id, name, value] of [
    ['AUDIT-NO-CARE', 'maxPatientsPerDay', 2],
    ['AUDIT-READ-VOLUME', 'minReads', 5],
  ] as const) {
    await request(h.server.rawApp)
      .post('/fhir/$supervision-rule-update')
      .set('Authorization', `Bearer ${supervisor}`)
      .set('Content-Type', JSON_TYPE)
      .send({ resourceType: 'Parameters', parameter: [{ name: 'id', valueCode: id }, { name: 'parameter', part: [{ name: 'name', valueString: name }, { name: 'value', valueInteger: value }] }] })
      .expect(200);
  }
});

afterAll(async () => {
  await h.close();
});

async function read(token: string, ref: string, breakGlass?: string): Promise<void> {
  const req = request(h.server.rawApp).get(`/fhir/${ref}`).set('Authorization', `Bearer ${token}`);
  if (breakGlass) req.set('X-Break-The-Glass', breakGlass);
  await req.expect(200);
}

async function reviewAudit(): Promise<void> {
  await h.server.audit.flushed();
  await h.supervision.engine.tick();
}

describe('audit review', () => {
  it('break-the-glass reads are each a finding; a clinician touching 3 patients without care is one, 2 patients is not; care relationships count', async () => {
    const cared = await patient(h, H2, 'male', '1970-01-01');
    const enc = await encounter(h, H1, cared, 'AMB', Date.now());
    await h.evaluated(`Encounter/${enc.id}`);
    const strangers = [await patient(h, H2, 'female', '1971-01-01'), await patient(h, H2, 'female', '1972-01-01'), await patient(h, H2, 'male', '1973-01-01')];
    const curious = await h.token('clinician', H1, 'Practitioner/curious');
    const careful = await h.token('clinician', H1, 'Practitioner/careful');
    await read(careful, cared);
    await read(careful, strangers[0], 'unconscious patient in the emergency room');
    await read(careful, strangers[1], 'unconscious patient in the emergency room');
    for (const p of strangers) {
      await read(curious, p, 'looking around');
    }
    await reviewAudit();
    const breakGlass = await h.issues('AUDIT-BREAK-GLASS');
    expect(breakGlass).toHaveLength(5);
    expect(breakGlass.map((i) => i.detail).join(' ')).toContain('looking around');
    const noCare = await h.issues('AUDIT-NO-CARE');
    expect(noCare).toHaveLength(1);
    expect(noCare[0].detail).toContain('Practitioner/curious');
    expect(noCare[0].detail).toContain('3 patients');
  });

  it('a client reading more than 5 times its usual daily volume is a finding; one within its usual volume is not', async () => {
    const burst = await h.token('facility-system', H2);
    const steady = await h.token('facility-system', H1);
    const clients = await h.db.query<{ client_id: string; organization: string }>('SELECT client_id, organization FROM sv_audit_day');
    expect(clients.length).toBeGreaterThan(0);
    const p = await patient(h, H2, 'male', '1980-01-01');
    for (let i = 0; i < 6; i++) {
      await read(burst, p);
      await read(steady, p);
    }
    await h.server.audit.flushed();
    // Their usual volume over the week before: 1 read a day for the one, 10 for the other.
    await h.supervision.engine.audit.ingest();
    const ids = await h.db.query<{ client_id: string; organization: string }>('SELECT DISTINCT client_id, organization FROM sv_audit_day WHERE reads >= 6');
    for (const { client_id: id, organization } of ids) {
      const perDay = organization === H2 ? 1 : 10;
      await h.db.query(
        `INSERT INTO sv_audit_day (client_id, day, role, organization, reads)
         SELECT $1, current_date - d, 'facility-system', $2, $3 FROM generate_series(1, 7) d`,
        [id, organization, perDay],
      );
    }
    // The days are evaluated again when the next reads arrive.
    await read(burst, p);
    await reviewAudit();
    const volume = await h.issues('AUDIT-READ-VOLUME');
    expect(volume).toHaveLength(1);
    expect(volume[0].detail).toContain('usual 1 a day');
    expect(h.errors).toEqual([]);
  });
});
