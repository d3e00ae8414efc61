/**
 * One referral: the request with its supporting results and documents, and what the receiving side does with it —
 * accept (choosing a slot from the receiving department's calendar, reserved referral slots marked), reject with a
 * reason, re-route to another receiver, book an appointment later; and, for a patient going back to primary care,
 * the downward referral with its care plan and discharge summary.
 */
import type { Appointment, Bundle, CarePlan, DocumentReference, HealthcareService, Observation, Organization, Resource, Schedule, Slot, Task } from '@medplum/fhirtypes';
import { Alert, Badge, Button, Card, Group, Indicator, Loader, Modal, Select, SimpleGrid, Stack, Text, Textarea, TextInput, Title } from '@mantine/core';
import { DatePicker } from '@mantine/dates';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import dayjs from 'dayjs';
import { useState, type ReactNode } from 'react';
import { Link, useParams } from 'react-router';
import { currentSession } from '../../auth';
import { call, codeText, displayNames, formatDate, humanName, operation, read, search } from '../../fhir';
import { useI18n, type Key } from '../../i18n';
import { businessStatus, DIRECTION_EXTENSION, OPEN, RESERVATION_SYSTEM, toReferral, type Referral } from './referrals';
import { PriorityBadge } from './ReferralWorklist';

async function loadReferral(id: string): Promise<{ referral: Referral; supporting: Resource[]; names: Record<string, string> }> {
  const found = await search<Task>('Task', { _id: id, _include: ['Task:focus', 'Task:patient'] });
  const task = found.resources[0];
  if (!task) throw new Error(`Task/${id}?`);
  const referral = toReferral(task, found.included);
  const supporting = (await Promise.all((referral.request?.supportingInfo ?? []).map((s) => (s.reference ? read<Resource>(s.reference).catch(() => undefined) : undefined)))).filter((r): r is Resource => !!r);
  const appointments = (task.output ?? []).map((o) => o.valueReference?.reference).filter((r): r is string => !!r?.startsWith('Appointment/'));
  const names = await displayNames([task.owner?.reference, task.requester?.reference, ...appointments]);
  return { referral, supporting, names };
}

export function ReferralDetail(): ReactNode {
  const { id = '' } = useParams();
  const { t } = useI18n();
  const client = useQueryClient();
  const detail = useQuery({ queryKey: ['referral', id], queryFn: () => loadReferral(id) });
  const [dialog, setDialog] = useState<'accept' | 'reject' | 'reroute' | 'book' | 'down'>();
  const [message, setMessage] = useState<{ ok: boolean; text: string }>();
  if (detail.isLoading) return <Loader aria-label={t('loading')} />;
  if (detail.error || !detail.data) return <Alert color="red" role="alert">{(detail.error as Error)?.message}</Alert>;
  const { referral, supporting, names } = detail.data;
  const { task, request, patient } = referral;
  const session = currentSession();
  const mine = session?.user.role === 'admin' || task.owner?.reference === session?.user.organization || task.owner?.reference?.startsWith('HealthcareService/');
  const done = (text: string): void => {
    setDialog(undefined);
    setMessage({ ok: true, text });
    void client.invalidateQueries({ queryKey: ['referral', id] });
    void client.invalidateQueries({ queryKey: ['worklist'] });
  };
  const failed = (err: unknown): void => setMessage({ ok: false, text: (err as Error).message });
  const appointment = task.output?.find((o) => o.valueReference?.reference?.startsWith('Appointment/'))?.valueReference?.reference;
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>
          {t('referral.detail')} · {patient ? humanName(patient.name) : task.for?.reference}
        </Title>
        <Link to="/referrals">{t('back')}</Link>
      </Group>
      {message && (
        <Alert color={message.ok ? 'teal' : 'red'} role={message.ok ? 'status' : 'alert'}>
          {message.text}
        </Alert>
      )}
      <Card withBorder>
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <Field label={t('status')} value={`${t(`task.${task.status}` as Key)}${businessStatus(task) ? ` · ${businessStatus(task)}` : ''}`} />
          <Field label={t('referral.priority')} value={<PriorityBadge priority={task.priority} green={referral.green} />} />
          <Field label={t('referral.direction')} value={referral.direction ? t(`referral.${referral.direction}` as Key) : '—'} />
          <Field label={t('referral.reason')} value={codeText(request?.reasonCode?.[0])} />
          <Field label={t('referral.from')} value={names[task.requester?.reference ?? ''] ?? task.requester?.reference} />
          <Field label={t('referral.to')} value={names[task.owner?.reference ?? ''] ?? task.owner?.reference} />
          <Field label={t('referral.deadline')} value={referral.overdue ? <Badge color="red.9">{t('referral.overdue')} {formatDate(referral.deadline, true)}</Badge> : formatDate(referral.deadline, true)} />
          <Field label={t('referral.appointment')} value={appointment ? <AppointmentText reference={appointment} /> : '—'} />
          {task.statusReason && <Field label={t('referral.rejectReason')} value={codeText(task.statusReason)} />}
          {patient && <Field label={t('referral.patient')} value={<Link to={`/doctor/patient/${patient.id}`}>{humanName(patient.name)}</Link>} />}
        </SimpleGrid>
        {request?.note?.map((n, i) => (
          <Text key={i} mt="sm">
            {n.text}
          </Text>
        ))}
      </Card>
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          {t('referral.supporting')}
        </Title>
        {supporting.length === 0 && <Text>{t('nothing')}</Text>}
        {supporting.map((r) => (
          <Text key={`${r.resourceType}/${r.id}`}>
            <Badge variant="light" mr="xs">
              {r.resourceType}
            </Badge>
            {describe(r)}
          </Text>
        ))}
      </Card>
      <Group>
        {mine && ['requested', 'received'].includes(task.status) && (
          <>
            <Button onClick={() => setDialog('accept')}>{t('referral.accept')}</Button>
            <Button color="red.9" variant="outline" onClick={() => setDialog('reject')}>
              {t('referral.reject')}
            </Button>
          </>
        )}
        {(['rejected', 'failed'].includes(task.status) || (referral.overdue && OPEN.includes(task.status))) && (
          <Button variant="default" onClick={() => setDialog('reroute')}>
            {t('referral.reroute')}
          </Button>
        )}
        {task.status === 'accepted' && !appointment && (
          <Button onClick={() => setDialog('book')}>{t('referral.book')}</Button>
        )}
        {referral.direction === 'up' && patient && (
          <Button variant="light" onClick={() => setDialog('down')}>
            {t('referral.down')}
          </Button>
        )}
      </Group>
      <Modal opened={dialog === 'accept' || dialog === 'book'} onClose={() => setDialog(undefined)} title={dialog === 'book' ? t('referral.book') : t('referral.accept')} size="xl">
        <SlotCalendar
          owner={task.owner?.reference ?? ''}
          confirmLabel={dialog === 'book' ? t('referral.book') : t('referral.acceptAndBook')}
          allowNoSlot={dialog === 'accept'}
          onConfirm={(slot) =>
            (dialog === 'book'
              ? bookSlot(referral, slot as Slot)
              : operation(`Task/${task.id}/$accept`, [{ name: 'actor', valueReference: { reference: task.owner?.reference } }, ...(slot ? [{ name: 'slot', valueReference: { reference: `Slot/${slot.id}` } }] : [])])
            ).then(() => done(dialog === 'book' ? t('referral.booked') : t('referral.accepted')), failed)
          }
        />
      </Modal>
      <ReasonDialog
        opened={dialog === 'reject'}
        title={t('referral.reject')}
        label={t('referral.rejectReason')}
        onClose={() => setDialog(undefined)}
        onConfirm={(reason) => operation(`Task/${task.id}/$reject`, [{ name: 'actor', valueReference: { reference: task.owner?.reference } }, { name: 'reason', valueString: reason }]).then(() => done(t('referral.rejected')), failed)}
      />
      <RerouteDialog opened={dialog === 'reroute'} onClose={() => setDialog(undefined)} onConfirm={(owner) => operation(`Task/${task.id}/$reroute`, [{ name: 'owner', valueReference: { reference: owner } }]).then(() => done(t('referral.rerouted')), failed)} />
      {dialog === 'down' && patient && <DownwardDialog referral={referral} onClose={() => setDialog(undefined)} onDone={() => done(t('referral.downSent'))} onError={failed} />}
    </Stack>
  );
}

function Field({ label, value }: { label: string; value: ReactNode }): ReactNode {
  return (
    <div>
      <Text size="xs" c="gray.7" fw={600}>
        {label}
      </Text>
      <div>{value ?? '—'}</div>
    </div>
  );
}

function AppointmentText({ reference }: { reference: string }): ReactNode {
  const appt = useQuery({ queryKey: ['appt', reference], queryFn: () => read<Appointment>(reference) });
  return <>{appt.data ? `${formatDate(appt.data.start, true)} · ${appt.data.status}` : reference}</>;
}

function describe(r: Resource): string {
  switch (r.resourceType) {
    case 'Observation': {
      const o = r as Observation;
      return `${codeText(o.code)} ${o.valueQuantity?.value ?? ''} ${o.valueQuantity?.unit ?? ''} · ${formatDate(o.effectiveDateTime)}`;
    }
    case 'DocumentReference':
      return `${(r as DocumentReference).description ?? codeText((r as DocumentReference).type)} · ${formatDate((r as DocumentReference).date)}`;
    case 'CarePlan':
      return `${(r as CarePlan).title ?? ''} (${(r as CarePlan).activity?.length ?? 0})`;
    default:
      return `${r.resourceType}/${r.id}`;
  }
}

/** The receiving department's slots: its schedules (the Task's owner, or the organisation's departments). */
async function loadSlots(owner: string): Promise<Slot[]> {
  const actors = [owner];
  if (owner.startsWith('Organization/')) {
    const services = await search<HealthcareService>('HealthcareService', { organization: owner, _count: '100' });
    actors.push(...services.resources.map((s) => `HealthcareService/${s.id}`));
  }
  const schedules = await search<Schedule>('Schedule', { actor: actors.join(','), _count: '100' });
  if (schedules.resources.length === 0) return [];
  const slots = await search<Slot>('Slot', { schedule: schedules.resources.map((s) => `Schedule/${s.id}`).join(','), start: `ge${dayjs().startOf('day').format('YYYY-MM-DD')}`, _count: '500', _sort: 'start' });
  return slots.resources;
}

export function isReserved(slot: Slot): boolean {
  return slot.meta?.tag?.some((t) => t.system === RESERVATION_SYSTEM && t.code === 'reserved') ?? false;
}

/** A referral may take a free slot or one reserved for referrals. */
function bookable(slot: Slot): boolean {
  return slot.status === 'free' || (slot.status === 'busy-unavailable' && isReserved(slot));
}

function SlotCalendar({ owner, confirmLabel, allowNoSlot, onConfirm }: { owner: string; confirmLabel: string; allowNoSlot: boolean; onConfirm: (slot: Slot | undefined) => Promise<void> }): ReactNode {
  const { t } = useI18n();
  const slots = useQuery({ queryKey: ['slots', owner], queryFn: () => loadSlots(owner) });
  const [day, setDay] = useState<string | null>(null);
  const [chosen, setChosen] = useState<Slot>();
  const [busy, setBusy] = useState(false);
  const byDay = new Map<string, Slot[]>();
  for (const s of slots.data ?? []) {
    const d = dayjs(s.start).format('YYYY-MM-DD');
    byDay.set(d, [...(byDay.get(d) ?? []), s]);
  }
  const firstDay = [...byDay.keys()].sort()[0];
  const selectedDay = day ?? firstDay ?? null;
  const confirm = (slot: Slot | undefined): void => {
    setBusy(true);
    void onConfirm(slot).finally(() => setBusy(false));
  };
  if (slots.isLoading) return <Loader aria-label={t('loading')} />;
  return (
    <Stack>
      {(slots.data ?? []).length === 0 && <Text>{t('referral.noSlots')}</Text>}
      <Group align="flex-start" gap="xl">
        <DatePicker
          value={selectedDay}
          onChange={(v) => {
            setDay(v);
            setChosen(undefined);
          }}
          defaultDate={firstDay}
          aria-label={t('referral.calendar')}
          renderDay={(date) => {
            const d = dayjs(date).format('YYYY-MM-DD');
            const free = (byDay.get(d) ?? []).filter(bookable).length;
            return (
              <Indicator size={8} color="teal.8" offset={-2} disabled={free === 0}>
                <div>{dayjs(date).date()}</div>
              </Indicator>
            );
          }}
        />
        <Stack style={{ flex: 1 }} gap="xs" aria-label={t('referral.slotsOfDay')}>
          <Text fw={600}>{selectedDay ? formatDate(selectedDay) : ''}</Text>
          <Group gap="xs">
            {(selectedDay ? byDay.get(selectedDay) ?? [] : []).map((s) => (
              <Button
                key={s.id}
                size="sm"
                variant={chosen?.id === s.id ? 'filled' : 'outline'}
                color={isReserved(s) ? 'grape.9' : 'blue.9'}
                disabled={!bookable(s)}
                onClick={() => setChosen(s)}
                aria-pressed={chosen?.id === s.id}
                rightSection={isReserved(s) ? <Badge size="xs" color="grape.9">{t('referral.reserved')}</Badge> : undefined}
              >
                {dayjs(s.start).format('HH:mm')}
              </Button>
            ))}
          </Group>
          <Text size="xs" c="gray.7">
            {t('referral.reservedHint')}
          </Text>
        </Stack>
      </Group>
      <Group justify="flex-end">
        {allowNoSlot && (
          <Button variant="default" loading={busy} onClick={() => confirm(undefined)}>
            {t('referral.acceptOnly')}
          </Button>
        )}
        <Button disabled={!chosen} loading={busy} onClick={() => confirm(chosen)}>
          {confirmLabel}
        </Button>
      </Group>
    </Stack>
  );
}

async function bookSlot(referral: Referral, slot: Slot): Promise<void> {
  const appointment: Appointment = {
    resourceType: 'Appointment',
    status: 'booked',
    slot: [{ reference: `Slot/${slot.id}` }],
    start: slot.start,
    end: slot.end,
    basedOn: referral.request ? [{ reference: `ServiceRequest/${referral.request.id}` }] : undefined,
    participant: [
      { actor: { reference: referral.task.for?.reference }, status: 'accepted' },
      { actor: { reference: referral.task.owner?.reference }, status: 'accepted' },
    ],
  };
  await operation('Appointment/$book', [{ name: 'appt-resource', resource: appointment }]);
}

function ReasonDialog({ opened, title, label, onClose, onConfirm }: { opened: boolean; title: string; label: string; onClose: () => void; onConfirm: (reason: string) => Promise<void> }): ReactNode {
  const { t } = useI18n();
  const [reason, setReason] = useState('');
  return (
    <Modal opened={opened} onClose={onClose} title={title}>
      <Stack>
        <Textarea label={label} value={reason} onChange={(e) => setReason(e.currentTarget.value)} required maxLength={500} autosize minRows={2} />
        <Button color="red.9" disabled={reason.trim().length === 0} onClick={() => void onConfirm(reason.trim())}>
          {t('confirm')}
        </Button>
      </Stack>
    </Modal>
  );
}

function useOrganizations(): { value: string; label: string }[] {
  const orgs = useQuery({ queryKey: ['organizations'], queryFn: () => search<Organization>('Organization', { active: 'true', _count: '200', _elements: 'name' }) });
  return (orgs.data?.resources ?? []).map((o) => ({ value: `Organization/${o.id}`, label: o.name ?? o.id ?? '' }));
}

function RerouteDialog({ opened, onClose, onConfirm }: { opened: boolean; onClose: () => void; onConfirm: (owner: string) => Promise<void> }): ReactNode {
  const { t } = useI18n();
  const organizations = useOrganizations();
  const [owner, setOwner] = useState<string | null>(null);
  return (
    <Modal opened={opened} onClose={onClose} title={t('referral.reroute')}>
      <Stack>
        <Select label={t('referral.newReceiver')} searchable data={organizations} value={owner} onChange={setOwner} />
        <Button disabled={!owner} onClick={() => owner && void onConfirm(owner)}>
          {t('confirm')}
        </Button>
      </Stack>
    </Modal>
  );
}

/**
 * The way back to primary care: a CarePlan (one activity per line) and a discharge summary, and the downward
 * ServiceRequest and Task that carry them, in one transaction (the workflow refuses a downward referral without both).
 */
function DownwardDialog({ referral, onClose, onDone, onError }: { referral: Referral; onClose: () => void; onDone: () => void; onError: (err: unknown) => void }): ReactNode {
  const { t } = useI18n();
  const organizations = useOrganizations();
  const [to, setTo] = useState<string | null>(referral.task.requester?.reference ?? null);
  const [title, setTitle] = useState('');
  const [activities, setActivities] = useState('');
  const [summary, setSummary] = useState('');
  const subject = { reference: referral.task.for?.reference };
  const me = currentSession()?.user.organization ?? referral.task.owner?.reference;
  const submit = async (): Promise<void> => {
    const now = new Date().toISOString();
    const carePlan = 'urn:uuid:' + crypto.randomUUID();
    const doc = 'urn:uuid:' + crypto.randomUUID();
    const sr = 'urn:uuid:' + crypto.randomUUID();
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: carePlan, request: { method: 'POST', url: 'CarePlan' }, resource: { resourceType: 'CarePlan', status: 'active', intent: 'plan', subject, title, created: now, activity: activities.split('\n').filter((l) => l.trim()).map((l) => ({ detail: { status: 'scheduled', description: l.trim() } })) } },
        { fullUrl: doc, request: { method: 'POST', url: 'DocumentReference' }, resource: { resourceType: 'DocumentReference', status: 'current', subject, date: now, type: { coding: [{ system: 'http://loinc.org', code: '18842-5', display: 'Discharge summary' }] }, description: t('referral.summary'), content: [{ attachment: { contentType: 'text/plain', data: btoa(String.fromCharCode(...new TextEncoder().encode(summary))) } }] } },
        {
          fullUrl: sr,
          request: { method: 'POST', url: 'ServiceRequest' },
          resource: {
            resourceType: 'ServiceRequest',
            status: 'active',
            intent: 'order',
            priority: 'routine',
            category: [{ coding: [{ system: 'http://snomed.info/sct', code: '3457005', display: 'Patient referral' }] }],
            extension: [{ url: DIRECTION_EXTENSION, valueCode: 'down' }],
            subject,
            requester: { reference: me },
            performer: to ? [{ reference: to }] : undefined,
            reasonCode: [{ coding: [{ system: 'http://huimin.health/fhir/CodeSystem/referral-reason', code: 'rehabilitation' }] }],
            supportingInfo: [{ reference: carePlan }, { reference: doc }],
            basedOn: referral.request ? [{ reference: `ServiceRequest/${referral.request.id}` }] : undefined,
            authoredOn: now,
          },
        },
        { request: { method: 'POST', url: 'Task' }, resource: { resourceType: 'Task', status: 'requested', intent: 'order', priority: 'routine', focus: { reference: sr }, for: subject, requester: { reference: me }, owner: { reference: to ?? undefined }, authoredOn: now } as Task },
      ],
    };
    try {
      await call('', { method: 'POST', body: bundle });
      onDone();
    } catch (err) {
      onError(err);
    }
  };
  return (
    <Modal opened onClose={onClose} title={t('referral.down')} size="lg">
      <Stack>
        <Select label={t('referral.to')} searchable data={organizations} value={to} onChange={setTo} />
        <TextInput label={t('referral.carePlanTitle')} value={title} onChange={(e) => setTitle(e.currentTarget.value)} required />
        <Textarea label={t('referral.activities')} description={t('referral.activitiesHint')} value={activities} onChange={(e) => setActivities(e.currentTarget.value)} autosize minRows={3} required />
        <Textarea label={t('referral.summary')} value={summary} onChange={(e) => setSummary(e.currentTarget.value)} autosize minRows={3} required />
        <Button disabled={!to || !title.trim() || !activities.trim() || !summary.trim()} onClick={() => void submit()}>
          {t('referral.sendDown')}
        </Button>
      </Stack>
    </Modal>
  );
}
