/** FHIR R4 Subscriptions: activation, criteria matching through the store's search, rest-hook delivery, errors. */
import type { Observation, Patient, Subscription } from '@medplum/fhirtypes';
import { api, createHarness, startReceiver, waitFor, type Harness } from './harness';
import { PAYLOAD_CONTENT_EXTENSION } from '../subscriptions';

let h: Harness;
let fhir: ReturnType<typeof api>;
let patient: Patient;

beforeAll(async () => {
  h = await createHarness({ SUBSCRIPTION_DELIVERY_ATTEMPTS: '3' });
  fhir = api(h.server);
  patient = await fhir.create<Patient>({ resourceType: 'Patient', name: [{ family: '王' }] });
});
afterAll(() => h.close());

const glucose = (value: number, code = '2345-7'): Observation => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code }] },
  subject: { reference: `Patient/${patient.id}` },
  valueQuantity: { value, unit: 'mmol/L', system: 'http://unitsofmeasure.org', code: 'mmol/L' },
});

async function subscribe(endpoint: string, criteria: string, channel: Partial<Subscription['channel']> = {}): Promise<Subscription> {
  const created = await fhir.create<Subscription>({
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'test',
    criteria,
    channel: { type: 'rest-hook', endpoint, ...channel },
  });
  return waitFor(async () => {
    const s = await fhir.read<Subscription>('Subscription', created.id as string);
    return s.status !== 'requested' ? s : undefined;
  }, 10_000, 'activation');
}

describe('subscriptions', () => {
  it('activates a valid subscription and refuses bad criteria or channels with status error', async () => {
    const ok = await subscribe('http://127.0.0.1:1/none', 'Observation?code=http://loinc.org|2345-7');
    expect(ok.status).toBe('active');
    const ended = await fhir.create<Subscription>({ resourceType: 'Subscription', status: 'requested', reason: 't', criteria: 'Patient', end: '2020-01-01T00:00:00Z', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:1/none' } });
    await waitFor(async () => (await fhir.read<Subscription>('Subscription', ended.id as string)).status === 'off' || undefined, 10_000, 'end of an expired subscription');
    const bad = await subscribe('http://127.0.0.1:1/none', 'NotAType?x=1');
    expect(bad.status).toBe('error');
    expect(bad.error).toContain('does not start with a resource type');
    const email = await fhir.create<Subscription>({ resourceType: 'Subscription', status: 'requested', reason: 't', criteria: 'Patient', channel: { type: 'email', endpoint: 'mailto:a@b.c' } });
    const refused = await waitFor(async () => {
      const s = await fhir.read<Subscription>('Subscription', email.id as string);
      return s.status === 'error' ? s : undefined;
    });
    expect(refused.error).toContain('Only the rest-hook channel');
    // Switch them off so that they do not see the other tests' events.
    for (const s of [ok, bad, refused]) {
      await fhir.update({ ...(await fhir.read<Subscription>('Subscription', s.id as string)), status: 'off' });
    }
  });

  it('notifies matching changes only, with the channel headers, in order, and as full resources on request', async () => {
    const ping = await startReceiver();
    const full = await startReceiver();
    try {
      const a = await subscribe(ping.url, 'Observation?code=http://loinc.org|2345-7&value-quantity=gt7', { header: ['Authorization: Bearer abc', 'X-Region: huimin'] });
      const b = await subscribe(full.url, `Observation?subject=Patient/${patient.id}`, { payload: 'application/fhir+json' });
      expect([a.status, b.status]).toEqual(['active', 'active']);
      const high = await fhir.create(glucose(9.1));
      await fhir.create(glucose(5.0)); // below the threshold: not for a
      await fhir.create(glucose(12, '718-7')); // another code: not for a
      const second = await fhir.create(glucose(8.2));
      await fhir.update({ ...second, valueQuantity: { ...second.valueQuantity, value: 8.5 } });
      await waitFor(() => ping.received.length >= 3 && full.received.length >= 5, 15_000, 'deliveries');
      await new Promise((r) => setTimeout(r, 300));
      expect(ping.received).toHaveLength(3);
      expect(ping.received.every((r) => r.method === 'POST' && r.body === '' && r.headers.authorization === 'Bearer abc' && r.headers['x-region'] === 'huimin')).toBe(true);
      expect(full.received).toHaveLength(5);
      // Full resource: PUT [endpoint]/Observation/[id], the version that matched, in the order of the changes.
      expect(full.received[0].method).toBe('PUT');
      expect(full.received[0].url).toBe(`/hook/Observation/${high.id}`);
      const versions = full.received.map((r) => JSON.parse(r.body) as Observation);
      expect(versions.map((o) => o.valueQuantity?.value)).toEqual([9.1, 5.0, 12, 8.2, 8.5]);
      await fhir.update({ ...(await fhir.read<Subscription>('Subscription', a.id as string)), status: 'off' });
      await fhir.update({ ...(await fhir.read<Subscription>('Subscription', b.id as string)), status: 'off' });
    } finally {
      await ping.close();
      await full.close();
    }
  });

  it('sends id-only notifications as a history bundle naming the version', async () => {
    const receiver = await startReceiver();
    try {
      const s = await subscribe(receiver.url, 'Observation?code=http://loinc.org|1558-6', {
        payload: 'application/fhir+json',
        _payload: { extension: [{ url: PAYLOAD_CONTENT_EXTENSION, valueCode: 'id-only' }] },
      } as Partial<Subscription['channel']>);
      const obs = await fhir.create(glucose(6, '1558-6'));
      await waitFor(() => receiver.received.length >= 1);
      const bundle = JSON.parse(receiver.received[0].body);
      expect(receiver.received[0].method).toBe('POST');
      expect(bundle.type).toBe('history');
      expect(bundle.entry[0].fullUrl).toBe(`http://127.0.0.1:8080/fhir/Observation/${obs.id}/_history/1`);
      expect(bundle.entry[0].resource).toBeUndefined();
      await fhir.update({ ...(await fhir.read<Subscription>('Subscription', s.id as string)), status: 'off' });
    } finally {
      await receiver.close();
    }
  });

  it('retries with backoff, sets the subscription to error after the last attempt, and resumes when reactivated', async () => {
    let answer = 503;
    const receiver = await startReceiver(() => answer);
    try {
      const s = await subscribe(receiver.url, 'Observation?code=http://loinc.org|2093-3');
      await fhir.create(glucose(1, '2093-3'));
      const failed = await waitFor(async () => {
        const current = await fhir.read<Subscription>('Subscription', s.id as string);
        return current.status === 'error' ? current : undefined;
      }, 15_000, 'error status');
      expect(receiver.received).toHaveLength(3); // SUBSCRIPTION_DELIVERY_ATTEMPTS
      expect(failed.error).toContain('failed 3 times');
      expect(failed.error).toContain('answered 503');
      // Not notified while in error; the waiting notifications are delivered in order once reactivated.
      await fhir.create(glucose(2, '2093-3'));
      answer = 200;
      await fhir.update({ ...failed, status: 'active', error: undefined });
      await waitFor(() => receiver.received.filter((r) => r.method === 'POST').length >= 4, 15_000, 'resumed delivery');
      await fhir.create(glucose(3, '2093-3'));
      await waitFor(() => receiver.received.length >= 5, 15_000, 'delivery after resumption');
    } finally {
      await receiver.close();
    }
  });
});
