/**
 * The platform's consent check (main.ts wires securityConsent): a patient's active patient-privacy Consent that
 * denies their record to a hospital stops a referral to it; a denial of labelled data only does not.
 */
import type { Consent, Task } from '@medplum/fhirtypes';
import { codes, securityConsent } from '..';
import { ConsentDecisions } from '../../fhir-server';
import { api, createHarness, waitFor, type Harness } from './harness';
import { buildCity, submitReferral, type City } from './fixtures';

let h: Harness;
let fhir: ReturnType<typeof api>;
let city: City;

beforeAll(async () => {
  h = await createHarness({}, (server) => ({ consent: securityConsent(new ConsentDecisions(server.db), server.repository) }));
  fhir = api(h.server);
  city = await buildCity(fhir);
});
afterAll(() => h.close());

const consent = (organization: string, label?: string): Consent => ({
  resourceType: 'Consent',
  status: 'active',
  scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
  category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
  patient: { reference: `Patient/${city.patient.id}` },
  policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
  provision: {
    type: 'deny',
    actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] }, reference: { reference: organization } }],
    ...(label ? { securityLabel: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: label }] } : {}),
  },
});

const settled = (taskId: string): Promise<Task> =>
  waitFor(async () => {
    const t = await fhir.read<Task>('Task', taskId);
    return t.status === 'failed' || t.status === 'received' ? t : undefined;
  }, 10_000, 'validation');

it('refuses a referral to a hospital the patient denies the whole record to, naming the Consent', async () => {
  const denial = await fhir.create(consent(`Organization/${city.hospital2.id}`));
  const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital2, direction: 'up' });
  const task = await settled(taskId);
  expect(task.status).toBe('failed');
  expect(codes.businessStatusOf(task)).toBe('consent-refused');
  expect(task.statusReason?.text).toContain(`Consent/${denial.id}`);
});

it('routes a referral when the Consent denies only labelled data (mental health) to the receiver', async () => {
  await fhir.create(consent(`Organization/${city.hospital.id}`, 'PSY'));
  const { taskId } = await submitReferral(fhir, city, { from: city.clinic, to: city.hospital, direction: 'up' });
  expect((await settled(taskId)).status).toBe('received');
});
