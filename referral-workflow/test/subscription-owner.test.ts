/**
 * A Subscription is matched and delivered with the rights of the client that created it: a hospital that a
 * patient's Consent denies is not notified of the patient's records, neither with the resource nor by an id-only
 * notification; the owner is recorded by the server and cannot be claimed by a client.
 */
import type { Consent, DocumentReference, Patient, Subscription } from '@medplum/fhirtypes';
import request from 'supertest';
import { OWNER_TAG_SYSTEM } from '../../fhir-server';
import { PAYLOAD_CONTENT_EXTENSION } from '../subscriptions';
import { SUBSCRIPTION_OWNER_EXTENSION, subscriptionOwner } from '../subscription-owner';
import { createHarness, startReceiver, waitFor, type Harness } from './harness';

const FHIR_JSON = 'application/fhir+json';
let h: Harness;
const tokens: Record<string, { token: string; clientId: string }> = {};
const receivers: Array<Awaited<ReturnType<typeof startReceiver>>> = [];

const as = (who: string) => ({
  post: (path: string, body: object) => request(h.server.rawApp).post(`/fhir/${path}`).set('Authorization', `Bearer ${tokens[who].token}`).set('Content-Type', FHIR_JSON).send(body),
  get: (path: string) => request(h.server.rawApp).get(`/fhir/${path}`).set('Authorization', `Bearer ${tokens[who].token}`),
});

async function receiver(): Promise<Awaited<ReturnType<typeof startReceiver>>> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

async function subscribe(who: string, criteria: string, endpoint: string, payload?: 'full' | 'id-only', extra: Partial<Subscription> = {}): Promise<Subscription> {
  const channel: Subscription['channel'] = { type: 'rest-hook', endpoint };
  if (payload) {
    channel.payload = FHIR_JSON;
  }
  if (payload === 'id-only') {
    (channel as { _payload?: object })._payload = { extension: [{ url: PAYLOAD_CONTENT_EXTENSION, valueCode: 'id-only' }] };
  }
  const created = await as(who).post('Subscription', { resourceType: 'Subscription', status: 'requested', reason: 'documents of our patient', criteria, channel, ...extra });
  expect(created.status).toBe(201);
  return waitFor(async () => {
    const s = (await as(who).get(`Subscription/${created.body.id}`)).body as Subscription;
    return s.status !== 'requested' ? s : undefined;
  }, 10_000, 'activation');
}

function document(patient: string, title: string): DocumentReference {
  return { resourceType: 'DocumentReference', status: 'current', subject: { reference: patient }, description: title, content: [{ attachment: { contentType: 'text/plain', data: Buffer.from(title).toString('base64') } }] };
}

beforeAll(async () => {
  h = await createHarness();
  for (const id of ['hosp-a', 'hosp-b', 'hosp-c']) {
    await request(h.server.app).put(`/fhir/Organization/${id}`).set('Content-Type', FHIR_JSON).send({ resourceType: 'Organization', id, name: id }).expect((r) => expect(r.status).toBeLessThan(300));
  }
  for (const who of ['a', 'b', 'c']) {
    const { token, client } = await h.server.tokenFor({ role: 'facility-system', organization: `Organization/hosp-${who}` });
    tokens[who] = { token, clientId: client.clientId };
  }
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await h.close();
});

it('notifies only the hospital the patient’s consent allows, with full-resource and id-only payloads alike', async () => {
  const patient = (await as('c').post('Patient', { resourceType: 'Patient', name: [{ family: '李' }] })).body as Patient;
  const other = (await as('c').post('Patient', { resourceType: 'Patient', name: [{ family: '赵' }] })).body as Patient;
  const consent: Consent = {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: `Patient/${patient.id}` },
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: {
      type: 'permit',
      provision: [
        {
          type: 'deny',
          actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: 'Organization/hosp-b' } }],
        },
      ],
    },
  };
  expect((await as('c').post('Consent', consent)).status).toBe(201);

  const criteria = `DocumentReference?patient=Patient/${patient.id}`;
  const aFull = await receiver();
  const aIds = await receiver();
  const bFull = await receiver();
  const bIds = await receiver();
  const bAll = await receiver();
  const subscriptions = [
    await subscribe('a', criteria, aFull.url, 'full'),
    await subscribe('a', criteria, aIds.url, 'id-only'),
    await subscribe('b', criteria, bFull.url, 'full'),
    await subscribe('b', criteria, bIds.url, 'id-only'),
    await subscribe('b', 'DocumentReference', bAll.url),
  ];
  expect(subscriptions.map((s) => s.status)).toEqual(['active', 'active', 'active', 'active', 'active']);
  // Each is its creator's: the client is recorded by the server.
  expect(subscriptions.map((s) => subscriptionOwner(s)?.clientId)).toEqual([tokens.a.clientId, tokens.a.clientId, tokens.b.clientId, tokens.b.clientId, tokens.b.clientId]);

  const denied = (await as('c').post('DocumentReference', document(`Patient/${patient.id}`, 'discharge summary'))).body as DocumentReference;
  const allowed = (await as('c').post('DocumentReference', document(`Patient/${other.id}`, 'lab report'))).body as DocumentReference;

  await waitFor(() => aFull.received.length >= 1 && aIds.received.length >= 1, 15_000, 'hospital A’s notifications');
  // B's catch-all subscription is told of the other patient's document, after the denied one would have been.
  await waitFor(() => bAll.received.length >= 1, 15_000, 'hospital B’s notification of the other patient');
  await new Promise((r) => setTimeout(r, 500));
  expect(aFull.received).toHaveLength(1);
  expect(JSON.parse(aFull.received[0].body)).toMatchObject({ resourceType: 'DocumentReference', id: denied.id });
  expect(aIds.received[0].body).toContain(`DocumentReference/${denied.id}/_history/1`);
  expect(bFull.received).toHaveLength(0);
  expect(bIds.received).toHaveLength(0);
  expect(bAll.received).toHaveLength(1);
  expect(allowed.id).toBeDefined();
});

it('records the creating client as owner, whatever owner the client claims, and keeps it', async () => {
  const hook = await receiver();
  const forged = {
    extension: [{ url: SUBSCRIPTION_OWNER_EXTENSION, extension: [{ url: 'client', valueString: tokens.a.clientId }] }],
  };
  const s = await subscribe('b', 'Observation', hook.url, undefined, forged);
  expect(subscriptionOwner(s)?.clientId).toBe(tokens.b.clientId);
  expect(s.extension?.filter((e) => e.url === SUBSCRIPTION_OWNER_EXTENSION)).toHaveLength(1);
  // B changes its subscription, claiming A again: the recorded owner stays B's client.
  const { meta: _meta, ...rest } = s;
  const updated = await request(h.server.rawApp)
    .put(`/fhir/Subscription/${s.id}`)
    .set('Authorization', `Bearer ${tokens.b.token}`)
    .set('Content-Type', FHIR_JSON)
    .send({ ...rest, status: 'off', ...forged });
  expect(updated.status).toBe(200);
  expect(subscriptionOwner(updated.body as Subscription)?.clientId).toBe(tokens.b.clientId);
});

it('records a clinician’s practitioner as text, so that one not stored here does not refuse the subscription', async () => {
  const { token, client } = await h.server.tokenFor({ role: 'clinician', organization: 'Organization/hosp-a', practitioner: 'Practitioner/not-stored' });
  tokens.clinician = { token, clientId: client.clientId };
  const s = await subscribe('clinician', 'Observation', (await receiver()).url);
  expect(s.status).toBe('active');
  expect(subscriptionOwner(s)).toMatchObject({ clientId: client.clientId, practitioner: 'Practitioner/not-stored' });
});

it('sends nothing once the owning client is disabled', async () => {
  const { token, client } = await h.server.tokenFor({ role: 'facility-system', organization: 'Organization/hosp-a' });
  tokens.d = { token, clientId: client.clientId };
  const hook = await receiver();
  const patient = (await as('c').post('Patient', { resourceType: 'Patient', name: [{ family: '孙' }] })).body as Patient;
  await subscribe('d', `DocumentReference?patient=Patient/${patient.id}`, hook.url, 'full');
  await h.server.security.clients.update(client.clientId, { disabled: true });
  const control = await receiver();
  await subscribe('a', `DocumentReference?patient=Patient/${patient.id}`, control.url);
  await as('c').post('DocumentReference', document(`Patient/${patient.id}`, 'x-ray report'));
  await waitFor(() => control.received.length >= 1, 15_000, 'the control subscription’s notification');
  await new Promise((r) => setTimeout(r, 500));
  expect(hook.received).toHaveLength(0);
});

it('sets a subscription written before owners were recorded to error, until its owner’s client writes it again', async () => {
  const hook = await receiver();
  // As such a subscription is stored: the owner's organisation in its tag, no recorded client.
  const legacy = (await h.server.repository.write((s) =>
    s.create({
      resourceType: 'Subscription',
      meta: { security: [{ system: OWNER_TAG_SYSTEM, code: 'Organization/hosp-b' }] },
      status: 'requested',
      reason: 'written by an earlier version',
      criteria: 'Observation',
      channel: { type: 'rest-hook', endpoint: hook.url },
    }),
  )) as Subscription;
  const refused = await waitFor(async () => {
    const s = (await as('b').get(`Subscription/${legacy.id}`)).body as Subscription;
    return s.status !== 'requested' ? s : undefined;
  }, 10_000, 'the legacy subscription’s status');
  expect(refused.status).toBe('error');
  expect(refused.error).toContain('recorded the client that owns them');
  const { meta: _meta, error: _error, ...rest } = refused;
  const rewritten = await request(h.server.rawApp)
    .put(`/fhir/Subscription/${legacy.id}`)
    .set('Authorization', `Bearer ${tokens.b.token}`)
    .set('Content-Type', FHIR_JSON)
    .send({ ...rest, status: 'requested' });
  expect(rewritten.status).toBe(200);
  expect(subscriptionOwner(rewritten.body as Subscription)?.clientId).toBe(tokens.b.clientId);
  const active = await waitFor(async () => {
    const s = (await as('b').get(`Subscription/${legacy.id}`)).body as Subscription;
    return s.status === 'active' ? s : undefined;
  }, 10_000, 'activation once the owner is recorded');
  expect(active.status).toBe('active');
  await request(h.server.rawApp).put(`/fhir/Subscription/${legacy.id}`).set('Authorization', `Bearer ${tokens.b.token}`).set('Content-Type', FHIR_JSON).send({ ...rest, status: 'off' });
});
