/**
 * The review of a finding end to end: first review → second review → the hospital's appeal → verification →
 * disposition, each a Task with a deadline owned by the bureau or the hospital; a hospital answers only the
 * findings about itself; an appeal not answered in time goes on without one.
 */
import type { Bundle, DetectedIssue, Parameters, Task } from '@medplum/fhirtypes';
import request from 'supertest';
import { createHarness, DAY, JSON_TYPE, type Harness } from './harness';
import { encounter, organization, patient, rx } from './fixtures';

let h: Harness;
const H1 = 'Organization/h1';
const H2 = 'Organization/h2';
const BUREAU = 'Organization/health-bureau';

beforeAll(async () => {
  h = await createHarness({ SUPERVISION_REVIEW_DEADLINES: 'appeal=P15D' });
  await organization(h, 'h1');
  await organization(h, 'h2');
});

afterAll(async () => {
  await h.close();
});

/** A finding about H1: an outpatient prescription of 10 days' supply. */
async function finding(): Promise<DetectedIssue> {
  const p = await patient(h, H1, 'male', '1970-01-01');
  const amb = `Encounter/${(await encounter(h, H1, p, 'AMB', Date.now())).id}`;
  const mr = await h.write(H1, rx(p, { encounter: amb, days: 10 }));
  await h.evaluated(`MedicationRequest/${mr.id}`);
  const [issue] = (await h.issues('RX-DAYS-SUPPLY')).filter((i) => i.implicated?.[0]?.reference === `MedicationRequest/${mr.id}`);
  return issue;
}

async function decide(token: string, issueId: string, decision: string, note?: string, expect = 200): Promise<Parameters> {
  const res = await request(h.server.rawApp)
    .post(`/fhir/DetectedIssue/${issueId}/$supervision-review`)
    .set('Authorization', `Bearer ${token}`)
    .set('Content-Type', JSON_TYPE)
    .send({ resourceType: 'Parameters', parameter: [{ name: 'decision', valueCode: decision }, ...(note ? [{ name: 'note', valueString: note }] : [])] });
  if (res.status !== expect) {
    throw new Error(`${decision}: expected ${expect}, got ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body as Parameters;
}

async function steps(token: string, issueId: string): Promise<Task[]> {
  const res = await request(h.server.rawApp)
    .get(`/fhir/Task?focus=DetectedIssue/${issueId}&_sort=authored-on&_count=50`)
    .set('Authorization', `Bearer ${token}`)
    .expect(200);
  return ((res.body as Bundle<Task>).entry ?? []).map((e) => e.resource as Task);
}

const stepOf = (t: Task): string | undefined => t.code?.coding?.[0]?.code;

describe('review workflow', () => {
  it('goes through both reviews, the hospital appeal, verification and disposition, with the right owner and a deadline at each step', async () => {
    const issue = await finding();
    const supervisor = await h.token('supervisor', BUREAU);
    const hospital = await h.token('facility-system', H1);
    const otherHospital = await h.token('facility-system', H2);

    let tasks = await steps(supervisor, issue.id as string);
    expect(tasks.map(stepOf)).toEqual(['first-review']);
    expect(tasks[0].owner?.reference).toBe(BUREAU);
    expect(tasks[0].restriction?.period?.end).toBeDefined();

    // The hospital cannot take the bureau's steps, nor another hospital anything.
    await decide(hospital, issue.id as string, 'proceed', undefined, 403);
    await decide(supervisor, issue.id as string, 'appeal', 'x', 400);
    await decide(supervisor, issue.id as string, 'proceed');
    await decide(supervisor, issue.id as string, 'proceed');

    tasks = await steps(supervisor, issue.id as string);
    expect(tasks.map(stepOf)).toEqual(['first-review', 'second-review', 'appeal']);
    const appeal = tasks[2];
    expect(appeal.owner?.reference).toBe(H1);
    expect(Date.parse(appeal.restriction?.period?.end as string) - Date.parse(appeal.authoredOn as string)).toBe(15 * DAY);

    await decide(otherHospital, issue.id as string, 'appeal', 'not ours', 403);
    await decide(supervisor, issue.id as string, 'proceed', undefined, 403);
    await decide(hospital, issue.id as string, 'appeal', undefined, 400);
    // The hospital sees its finding and its steps, reads the appeal Task, and appeals.
    expect((await steps(hospital, issue.id as string)).length).toBe(3);
    await request(h.server.rawApp).get(`/fhir/DetectedIssue/${issue.id}`).set('Authorization', `Bearer ${hospital}`).expect(200);
    await request(h.server.rawApp).get(`/fhir/DetectedIssue/${issue.id}`).set('Authorization', `Bearer ${otherHospital}`).expect(404);
    expect(await steps(otherHospital, issue.id as string)).toHaveLength(0);
    await decide(hospital, issue.id as string, 'appeal', 'The patient travels abroad for 10 days; the reason was recorded on paper.');

    await decide(supervisor, issue.id as string, 'proceed');
    const closed = await decide(supervisor, issue.id as string, 'corrected', 'Reason added to the electronic record');
    expect(closed.parameter?.find((p) => p.name === 'outcome')?.valueCode).toBe('corrected');

    tasks = await steps(supervisor, issue.id as string);
    expect(tasks.map(stepOf)).toEqual(['first-review', 'second-review', 'appeal', 'verification', 'disposition']);
    expect(tasks.every((t) => t.status === 'completed')).toBe(true);
    expect(tasks[2].output?.find((o) => o.type.coding?.[0]?.code === 'note')?.valueString).toContain('travels abroad');
    const after = (await request(h.server.app).get(`/fhir/DetectedIssue/${issue.id}`).expect(200)).body as DetectedIssue;
    expect(after.status).toBe('mitigated');
    expect(after.mitigation?.[0]?.action?.coding?.[0]?.code).toBe('corrected');
    await decide(supervisor, issue.id as string, 'confirmed', undefined, 409);
  });

  it('a dismissal at first review closes the finding', async () => {
    const issue = await finding();
    const supervisor = await h.token('supervisor', BUREAU);
    await decide(supervisor, issue.id as string, 'dismiss', 'Reason found in the encounter note');
    const after = (await request(h.server.app).get(`/fhir/DetectedIssue/${issue.id}`).expect(200)).body as DetectedIssue;
    expect(after.status).toBe('entered-in-error');
    expect(after.mitigation?.[0]?.action?.coding?.[0]?.code).toBe('dismissed');
  });

  it('an appeal not answered by its deadline goes on to verification; an overdue bureau step is marked', async () => {
    const issue = await finding();
    const supervisor = await h.token('supervisor', BUREAU);
    await decide(supervisor, issue.id as string, 'proceed');
    await decide(supervisor, issue.id as string, 'proceed');
    const late = await finding();
    h.clock.offset = 16 * DAY;
    try {
      await h.supervision.engine.review.expireOverdue();
    } finally {
      h.clock.offset = 0;
    }
    const tasks = await steps(supervisor, issue.id as string);
    expect(tasks.map(stepOf)).toEqual(['first-review', 'second-review', 'appeal', 'verification']);
    expect(tasks[2].output?.find((o) => o.type.coding?.[0]?.code === 'decision')?.valueCodeableConcept?.coding?.[0]?.code).toBe('no-answer');
    const [first] = await steps(supervisor, late.id as string);
    expect(first.businessStatus?.coding?.[0]?.code).toBe('overdue');
    expect(first.status).toBe('ready');
    expect(h.errors).toEqual([]);
  });
});
