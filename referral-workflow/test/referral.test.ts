/** Two-way referral end to end over HTTP: routed, notified, accepted and booked; rejected and re-routed; overdue; downward; consent. */
import request from 'supertest';
import type { Appointment, Bundle, Communication, Flag, MeasureReport, ServiceRequest, Slot, Task } from '@medplum/fhirtypes';
import { OWNER_TAG_SYSTEM } from '../../fhir-server';
import { codes, taskStatusFrom0283, taskStatusTo0283, type ConsentChecker, type ReferralMessageSender } from '..';
import { api, createHarness, waitFor, type Harness } from './harness';
import { addSlots, buildCity, dischargeDocuments, referralBundle, submitReferral, type City } from './fixtures';

let h: Harness;
let fhir: ReturnType<typeof api>;
let city: City;
const sent: Array<{ taskId: string; controlId: string }> = [];
const hl7: ReferralMessageSender = { sendReferral: async ({ task, controlId }) => void sent.push({ taskId: task.id as string, controlId }) };
/** Security's consent service stands in here: this patient refuses sharing with hospital 2 when `refuseHospital2` is set. */
let refuseHospital2 = false;
const consent: ConsentChecker = {
  allowsSharing: async ({ recipient }) =>
    refuseHospital2 && recipient.reference === `Organization/${city.hospital2.id}` ? { allowed: false, reason: 'patient opted out of sharing with this hospital' } : { allowed: true },
};

const MINUTE = 60_000;

beforeAll(async () => {
  h = await createHarness({}, { hl7, consent });
  fhir = api(h.server);
  city = await buildCity(fhir);
  await addSlots(fhir, city.schedule, 6, Date.now() + 24 * 3600_000);
});
afterAll(() => h.close());

const readTask = (id: string): Promise<Task> => fhir.read<Task>('Task', id);

async function waitForTask(id: string, what: string, check: (t: Task) => boolean): Promise<Task> {
  return waitFor(async () => {
    const t = await readTask(id);
    return check(t) ? t : undefined;
  }, 10_000, what);
}

async function communicationsAbout(taskId: string): Promise<Communication[]> {
  const bundle = await fhir.search(`Communication?based-on=Task/${taskId}&_count=50`);
  return (bundle.entry ?? []).map((e) => e.resource as Communication);
}

const param = (name: string, reference: string) => ({ name, valueReference: { reference } });

describe('upward referral', () => {
  it('is validated, routed with a deadline by priority, notified (Communication and HL7), accepted and booked', async () => {
    const before = h.clock.now();
    const { taskId, srId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up', priority: 'urgent' });
    const routed = await waitForTask(taskId, 'routing', (t) => t.status === 'received');
    expect(Date.parse(routed.restriction?.period?.end as string) - before).toBe(12 * 60 * MINUTE);
    expect(codes.businessStatusOf(routed)).toBe('routed');
    const [notice] = await waitFor(async () => {
      const found = await communicationsAbout(taskId);
      return found.length > 0 ? found : undefined;
    }, 10_000, 'notification');
    expect(notice.recipient?.[0].reference).toBe(`Organization/${city.hospital.id}`);
    await waitFor(() => sent.some((m) => m.taskId === taskId), 10_000, 'HL7 message');
    expect(taskStatusTo0283(routed)).toBe('P');

    // The worklist is plain FHIR search.
    const worklist = await fhir.search(`Task?owner=Organization/${city.hospital.id}&status=received&_include=Task:focus&_include=Task:patient`);
    expect(worklist.entry?.map((e) => e.resource?.resourceType).sort()).toEqual(['Patient', 'ServiceRequest', 'Task']);

    const accepted = await fhir.post(`Task/${taskId}/$accept`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.hospital.id}`)] }).expect(200);
    expect(accepted.body.status).toBe('accepted');
    const booked = await waitForTask(taskId, 'booking', (t) => Boolean(t.output?.length));
    expect(codes.businessStatusOf(booked)).toBe('booked');
    expect(taskStatusTo0283(booked)).toBe('A');
    const appointment = await fhir.read<Appointment>('Appointment', (booked.output?.[0].valueReference?.reference as string).split('/')[1]);
    expect(appointment.status).toBe('booked');
    expect(appointment.basedOn?.[0].reference).toBe(`ServiceRequest/${srId}`);
    const slot = await fhir.read<Slot>('Slot', (appointment.slot?.[0].reference as string).split('/')[1]);
    expect(slot.status).toBe('busy');
    // The coordinator hears of it; one notification per reason, however often the steps run.
    await waitFor(async () => (await communicationsAbout(taskId)).length === 2 || undefined, 10_000, 'coordinator notice');
  });

  it('refuses invalid transitions and someone else accepting, with an OperationOutcome', async () => {
    const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' });
    await waitForTask(taskId, 'routing', (t) => t.status === 'received');
    const stranger = await fhir.post(`Task/${taskId}/$accept`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.hospital2.id}`)] }).expect(403);
    expect(stranger.body.issue[0].diagnostics).toContain(`it is addressed to Organization/${city.hospital.id}`);
    const noReason = await fhir.post(`Task/${taskId}/$reject`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.hospital.id}`)] }).expect(400);
    expect(noReason.body.issue[0].diagnostics).toContain('"reason" is required');
    await fhir.post(`Task/${taskId}/$reject`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.hospital.id}`), { name: 'reason', valueString: '床位已满' }] }).expect(200);
    const rejected = await readTask(taskId);
    const complete = await fhir.update({ ...rejected, status: 'completed' }, 422);
    expect(complete.body.issue[0].diagnostics).toBe('A Task cannot go from rejected to completed: rejected is a final state');
    const accept = await fhir.post(`Task/${taskId}/$accept`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.hospital.id}`)] }).expect(422);
    expect(accept.body.issue[0].code).toBe('business-rule');
  });

  it('takes the deciding hospital from its token: the receiver accepts, another hospital and the sender cannot', async () => {
    const as = async (organization: string) => (await h.server.tokenFor({ role: 'facility-system', organization })).token;
    const call = (token: string, path: string, body: unknown) =>
      request(h.server.rawApp).post(`/fhir/${path}`).set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/fhir+json').send(body as object);
    const empty = { resourceType: 'Parameters' };
    // The clinic sends the referral with its own token: the Task is the clinic's record.
    const sender = await as(`Organization/${city.clinic.id}`);
    const asSender = { ...fhir, post: (path: string, body: unknown) => call(sender, path, body) };
    const { taskId } = await submitReferral(asSender, city, { from: city.clinic, to: city.hospital, direction: 'up' });
    const routed = await waitForTask(taskId, 'routing', (t) => t.status === 'received');

    const stranger = await call(await as(`Organization/${city.hospital2.id}`), `Task/${taskId}/$accept`, empty).expect(403);
    expect(stranger.body.issue[0].diagnostics).toBe(`Organization/${city.hospital2.id} cannot accept Task/${taskId}: it is addressed to Organization/${city.hospital.id}`);
    // The sender owns the Task's record, but a plain write cannot take the receiver's decision for it.
    const put = await request(h.server.rawApp).put(`/fhir/Task/${taskId}`).set('Authorization', `Bearer ${sender}`).set('Content-Type', 'application/fhir+json').send({ ...routed, status: 'accepted' });
    expect([403, 412]).toContain(put.status);
    expect((await readTask(taskId)).status).toBe('received');
    // Naming someone else as actor does not help either.
    const receiver = await as(`Organization/${city.hospital.id}`);
    await call(receiver, `Task/${taskId}/$accept`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.clinic.id}`)] }).expect(403);

    const accepted = (await call(receiver, `Task/${taskId}/$accept`, empty).expect(200)).body as Task;
    expect(accepted.status).toBe('accepted');
    // Worked by the receiver, the Task stays the sender's record: the sender can still withdraw it.
    expect(accepted.meta?.security?.find((c) => c.system === OWNER_TAG_SYSTEM)?.code).toBe(`Organization/${city.clinic.id}`);
    const withdrawn = await request(h.server.rawApp).put(`/fhir/Task/${taskId}`).set('Authorization', `Bearer ${sender}`).set('Content-Type', 'application/fhir+json').send({ ...accepted, status: 'cancelled' });
    expect(withdrawn.status).toBe(200);
  });

  it('tells the coordinator of a rejection and re-routes, keeping the chain', async () => {
    const { taskId, srId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' });
    await waitForTask(taskId, 'routing', (t) => t.status === 'received');
    await fhir.post(`Task/${taskId}/$reject`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.hospital.id}`), { name: 'reason', valueCodeableConcept: { text: '专科不对口' } }] }).expect(200);
    const told = await waitFor(async () => (await communicationsAbout(taskId)).find((c) => c.recipient?.[0].reference === `Organization/${city.clinic.id}`), 10_000, 'coordinator notice');
    expect(told.payload?.[0].contentString).toContain('专科不对口');
    const rerouted = await fhir.post(`Task/${taskId}/$reroute`, { resourceType: 'Parameters', parameter: [param('owner', `Organization/${city.hospital2.id}`)] }).expect(201);
    const next = rerouted.body as Task;
    expect(next.partOf?.[0].reference).toBe(`Task/${taskId}`);
    expect(next.basedOn?.[0].reference).toBe(`ServiceRequest/${srId}`);
    expect((await fhir.read<ServiceRequest>('ServiceRequest', srId)).performer?.[0].reference).toBe(`Organization/${city.hospital2.id}`);
    await waitForTask(next.id as string, 'routing of the new Task', (t) => t.status === 'received');
    // Once re-routed, the old Task cannot be re-routed a second time from its final state... but the new one can be answered.
    const chain = await fhir.search(`Task?part-of=Task/${taskId}`);
    expect(chain.entry).toHaveLength(1);
  });

  it('escalates when the deadline passes: overdue, a Flag on the worklist, the coordinator told', async () => {
    const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up', priority: 'stat' });
    const routed = await waitForTask(taskId, 'routing', (t) => t.status === 'received');
    const deadline = Date.parse(routed.restriction?.period?.end as string);
    expect(deadline - h.clock.now()).toBeLessThanOrEqual(30 * MINUTE);
    // The deadline timer is set once the receiver has been notified; before the deadline nothing is due.
    await waitFor(async () => (await communicationsAbout(taskId)).length > 0 || undefined, 10_000, 'notification');
    expect(await h.workflow.engine.promoteDueTimers()).toBe(0);
    h.clock.set(deadline + 1);
    const overdue = await waitFor(async () => {
      await h.workflow.engine.promoteDueTimers();
      const t = await readTask(taskId);
      return codes.businessStatusOf(t) === 'overdue' ? t : undefined;
    }, 10_000, 'overdue');
    expect(taskStatusTo0283(overdue)).toBe('E');
    const worklist = await fhir.search(`Task?business-status=${encodeURIComponent(`${codes.BUSINESS_STATUS}|overdue`)}&_include=Task:focus`);
    expect(worklist.entry?.some((e) => e.resource?.id === taskId)).toBe(true);
    const flags = await waitFor(async () => {
      const b = await fhir.search(`Flag?patient=Patient/${city.patient.id}&identifier=${encodeURIComponent(`${codes.FLAG_ID}|${taskId}-overdue`)}`);
      return b.entry?.length ? b : undefined;
    }, 10_000, 'flag');
    expect((flags.entry?.[0].resource as Flag).author?.reference).toBe(`Organization/${city.clinic.id}`);
    // An overdue referral can be re-routed.
    await fhir.post(`Task/${taskId}/$reroute`, { resourceType: 'Parameters', parameter: [param('owner', `Organization/${city.hospital2.id}`)] }).expect(201);
    expect((await readTask(taskId)).status).toBe('cancelled');
  });

  it('gives the green channel its own, shorter deadline', async () => {
    const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up', priority: 'stat', green: true });
    const routed = await waitForTask(taskId, 'routing', (t) => t.status === 'received');
    expect(Date.parse(routed.restriction?.period?.end as string) - h.clock.now()).toBeLessThanOrEqual(15 * MINUTE);
  });

  it('refuses the referral when the patient does not consent to sharing with the receiver', async () => {
    refuseHospital2 = true;
    try {
      const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital2, direction: 'up' });
      const failed = await waitForTask(taskId, 'refusal', (t) => t.status === 'failed');
      expect(codes.businessStatusOf(failed)).toBe('consent-refused');
      expect(failed.statusReason?.text).toContain('patient opted out');
      expect(sent.some((m) => m.taskId === taskId)).toBe(false);
    } finally {
      refuseHospital2 = false;
    }
  });

  it('proposes the downward referral back to the clinic when the upward one is completed with a CarePlan', async () => {
    const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' });
    await waitForTask(taskId, 'routing', (t) => t.status === 'received');
    await fhir.post(`Task/${taskId}/$accept`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.hospital.id}`)] }).expect(200);
    const booked = await waitForTask(taskId, 'booking', (t) => Boolean(t.output?.length));
    const { carePlan, summary } = await dischargeDocuments(fhir, city);
    await fhir.update({
      ...booked,
      status: 'completed',
      output: [...(booked.output ?? []), { type: { text: 'care plan' }, valueReference: { reference: `CarePlan/${carePlan.id}` } }, { type: { text: 'discharge summary' }, valueReference: { reference: `DocumentReference/${summary.id}` } }],
    });
    const proposal = await waitFor(async () => {
      const b = await fhir.search(`Task?part-of=Task/${taskId}&status=draft&_include=Task:focus`);
      return b.entry?.length ? b : undefined;
    }, 10_000, 'downward proposal');
    const sr = proposal.entry?.find((e) => e.resource?.resourceType === 'ServiceRequest')?.resource as ServiceRequest;
    expect(codes.directionOf(sr)).toBe('down');
    expect(sr.performer?.[0].reference).toBe(`Organization/${city.clinic.id}`);
    expect(sr.supportingInfo?.map((r) => r.reference)).toEqual(expect.arrayContaining([`CarePlan/${carePlan.id}`, `DocumentReference/${summary.id}`]));
  });
});

describe('downward referral', () => {
  it('cannot be submitted without a CarePlan and a discharge summary', async () => {
    const res = await fhir.post('', referralBundle(city, { from: city.hospital, to: city.clinic, direction: 'down' })).expect(422);
    expect(JSON.stringify(res.body)).toContain('A downward referral needs a rehabilitation/follow-up CarePlan and a discharge summary');
  });

  it('with them, is routed, and on completion creates the CarePlan follow-up Tasks at the clinic', async () => {
    const { carePlan, summary } = await dischargeDocuments(fhir, city, 3);
    const { taskId } = await submitReferral(fhir, city, { from: city.hospital, to: city.clinic, direction: 'down', supportingInfo: [`CarePlan/${carePlan.id}`, `DocumentReference/${summary.id}`] });
    await waitForTask(taskId, 'routing', (t) => t.status === 'received');
    // The clinic has no schedule: accepted, no slot to book (the clinic arranges the visit).
    await fhir.post(`Task/${taskId}/$accept`, { resourceType: 'Parameters', parameter: [param('actor', `Organization/${city.clinic.id}`)] }).expect(200);
    const accepted = await waitForTask(taskId, 'booking attempt', (t) => codes.businessStatusOf(t) === 'no-slot');
    await fhir.update({ ...accepted, status: 'completed' });
    const followUps = await waitFor(async () => {
      const b = await fhir.search(`Task?part-of=Task/${taskId}&based-on=CarePlan/${carePlan.id}`);
      return (b.entry?.length ?? 0) === 3 ? b : undefined;
    }, 10_000, 'follow-up tasks');
    expect(followUps.entry?.every((e) => (e.resource as Task).owner?.reference === `Organization/${city.clinic.id}`)).toBe(true);
  });
});

describe('HL7 table 0283 and figures', () => {
  it('maps the referral status both ways', () => {
    for (const code of ['A', 'P', 'R', 'E'] as const) {
      expect(taskStatusTo0283(taskStatusFrom0283(code))).toBe(code);
    }
    expect(taskStatusTo0283({ status: 'completed' })).toBe('A');
    expect(taskStatusTo0283({ status: 'cancelled' })).toBe('R');
    expect(() => taskStatusFrom0283('X')).toThrow('not an HL7 table 0283');
  });

  it('computes the health bureau figures as MeasureReports', async () => {
    const month = new Date().toISOString().slice(0, 7);
    const res = await fhir.search(`$referral-report?period-start=${month}`);
    const reports = ((res as Bundle).entry ?? []).map((e) => e.resource as MeasureReport);
    const group = (r: MeasureReport | undefined, code: string) => r?.group?.find((g) => g.code?.coding?.[0].code === code);
    const clinic = reports.find((r) => r.reporter?.reference === `Organization/${city.clinic.id}`);
    const hospital = reports.find((r) => r.reporter?.reference === `Organization/${city.hospital.id}`);
    expect(group(clinic, 'up-sent')?.population?.[0].count).toBeGreaterThanOrEqual(6);
    expect(group(clinic, 'up-sent-outpatient')?.population?.[0].count).toBe(group(clinic, 'up-sent')?.population?.[0].count);
    expect(group(hospital, 'down-sent')?.population?.[0].count).toBe(1);
    // Accepted above: the booked referral, the token test's and the one completed with a CarePlan.
    expect(group(hospital, 'accepted')?.population?.[0].count).toBe(3);
    expect(group(hospital, 'rejected')?.population?.[0].count).toBe(2);
    expect(group(hospital, 'acceptance-rate')?.measureScore?.value).toBe(60);
    expect(group(hospital, 'overdue')?.population?.[0].count).toBe(1);
    expect(group(hospital, 'time-to-accept-p90')?.measureScore?.value).toBeGreaterThanOrEqual(0);
  });
});
