/**
 * One resident, every hospital: the shared record as a timeline across hospitals (each entry says where it came
 * from), results with their "<scope>HR" recognition mark, trend charts with reference ranges, documents, and the
 * recognition advisories. A clinician without a care relationship is refused by the platform; the page then offers
 * break-the-glass with a stated reason, which the platform audits and flags for review.
 */
import type { DetectedIssue, DocumentReference, Observation, Parameters, Patient } from '@medplum/fhirtypes';
import { Alert, Badge, Button, Card, Chip, Group, Loader, Modal, Select, Stack, Table, Tabs, Text, Textarea, Timeline, Title } from '@mantine/core';
import { LineChart } from '@mantine/charts';
import { useQuery } from '@tanstack/react-query';
import { useMemo, useState, type ReactNode } from 'react';
import { useParams } from 'react-router';
import { call, codeText, FhirError, formatDate, hasOperation, humanName, operation, read, sourceOrganization } from '../../fhir';
import { useI18n, type Key } from '../../i18n';
import { loadRecord, recordIds, trends, valueText, KINDS, type Entry, type SharedRecord } from './record';

const PAGE = 60;

export function PatientRecord(): ReactNode {
  const { id = '' } = useParams();
  const { t } = useI18n();
  const storageKey = `huimin.btg.${id}`;
  const [breakGlass, setBreakGlass] = useState<string | undefined>(() => sessionStorage.getItem(storageKey) ?? undefined);
  const options = { breakGlass };
  const patient = useQuery({ queryKey: ['patient', id, breakGlass], queryFn: () => read<Patient>(`Patient/${id}`, options), retry: false });
  // The record is fetched at once with the resident's id, beside the Patient; a golden record's linked records
  // (known once the Patient is read) are added then.
  const ids = patient.data ? recordIds(patient.data) : [id];
  const record = useQuery({ queryKey: ['record', ids.join(','), breakGlass], queryFn: () => loadRecord(ids, options), enabled: !patient.error });
  // Whether the resident's consent withholds part of the record from us: said, where the platform offers it, so that
  // nobody takes an incomplete record for a whole one (the platform never says what is withheld).
  const withheld = useQuery({
    queryKey: ['consent-notice', id, breakGlass],
    queryFn: async () => {
      if (!(await hasOperation('consent-notice'))) return undefined;
      const notice = await call<Parameters>(`Patient/${id}/$consent-notice`, options);
      const extent = notice.parameter?.find((p) => p.name === 'extent')?.valueCode;
      return extent === 'whole' || extent === 'part' ? extent : undefined;
    },
    enabled: !!patient.data,
  });

  if (patient.isLoading) return <Loader aria-label={t('loading')} />;
  if (patient.error) {
    const status = (patient.error as FhirError).status;
    if ((status === 404 || status === 403) && !breakGlass) {
      return (
        <BreakGlass
          onConfirm={(reason) => {
            sessionStorage.setItem(storageKey, reason);
            setBreakGlass(reason);
          }}
        />
      );
    }
    return <Alert color="red" role="alert">{(patient.error as Error).message}</Alert>;
  }
  const p = patient.data as Patient;
  return (
    <Stack>
      <Card withBorder>
        <Group justify="space-between" align="flex-start">
          <div>
            <Title order={2}>{humanName(p.name)}</Title>
            <Text>
              {p.gender ? t(`gender.${p.gender}` as Key) : ''} · {formatDate(p.birthDate)} · {(p.identifier ?? []).slice(0, 3).map((i) => i.value).join(' · ')}
            </Text>
          </div>
          {breakGlass && (
            <Badge color="red.9" size="lg" variant="filled">
              {t('doctor.btgActive')}
            </Badge>
          )}
        </Group>
        {record.data && <Sources record={record.data} />}
      </Card>
      {withheld.data && (
        <Alert color="yellow" role="note">
          {t(withheld.data === 'whole' ? 'doctor.withheldWhole' : 'doctor.withheldPart')}
        </Alert>
      )}
      {record.isLoading && <Loader aria-label={t('loading')} />}
      {record.error && <Alert color="red" role="alert">{(record.error as Error).message}</Alert>}
      {record.data && (
        <Tabs defaultValue="timeline" keepMounted={false}>
          <Tabs.List>
            <Tabs.Tab value="timeline">{t('doctor.timeline')}</Tabs.Tab>
            <Tabs.Tab value="results">{t('doctor.results')}</Tabs.Tab>
            <Tabs.Tab value="trends">{t('doctor.trends')}</Tabs.Tab>
            <Tabs.Tab value="documents">{t('doctor.documents')}</Tabs.Tab>
            <Tabs.Tab value="advisories">
              {t('doctor.advisories')} {record.data.advisories.length > 0 && <Badge size="xs" color="orange.9">{record.data.advisories.length}</Badge>}
            </Tabs.Tab>
          </Tabs.List>
          <Tabs.Panel value="timeline" pt="md">
            <RecordTimeline record={record.data} />
          </Tabs.Panel>
          <Tabs.Panel value="results" pt="md">
            <Results observations={record.data.observations} names={record.data.names} />
          </Tabs.Panel>
          <Tabs.Panel value="trends" pt="md">
            <Trends record={record.data} />
          </Tabs.Panel>
          <Tabs.Panel value="documents" pt="md">
            <Documents documents={record.data.documents} names={record.data.names} breakGlass={breakGlass} />
          </Tabs.Panel>
          <Tabs.Panel value="advisories" pt="md">
            <Advisories advisories={record.data.advisories} patientId={id} />
          </Tabs.Panel>
        </Tabs>
      )}
    </Stack>
  );
}

function BreakGlass({ onConfirm }: { onConfirm: (reason: string) => void }): ReactNode {
  const { t } = useI18n();
  const [reason, setReason] = useState('');
  const valid = reason.trim().length >= 4;
  return (
    <Card withBorder maw={640}>
      <Stack>
        <Title order={2}>{t('doctor.noAccess')}</Title>
        <Text>{t('doctor.noAccessText')}</Text>
        <Textarea label={t('doctor.btgReason')} description={t('doctor.btgHint')} value={reason} onChange={(e) => setReason(e.currentTarget.value)} maxLength={500} required autosize minRows={2} />
        <Group>
          <Button color="red.9" disabled={!valid} onClick={() => onConfirm(reason.trim())}>
            {t('doctor.btgConfirm')}
          </Button>
        </Group>
      </Stack>
    </Card>
  );
}

function Sources({ record }: { record: SharedRecord }): ReactNode {
  const { t } = useI18n();
  const counts = new Map<string, number>();
  for (const e of record.entries) if (e.organization) counts.set(e.organization, (counts.get(e.organization) ?? 0) + 1);
  return (
    <Group mt="sm" gap="xs" aria-label={t('doctor.sources')}>
      <Text size="sm" fw={600}>
        {t('doctor.sourcesCount', { n: counts.size })}
      </Text>
      {[...counts.entries()].map(([org, n]) => (
        <Badge key={org} variant="outline" color="blue.9">
          {record.names[org] ?? org} · {n}
        </Badge>
      ))}
    </Group>
  );
}

function Hospital({ entry, names }: { entry: { organization?: string }; names: Record<string, string> }): ReactNode {
  const { t } = useI18n();
  return entry.organization ? (
    <Badge variant="light" color="blue.9" size="sm">
      {names[entry.organization] ?? entry.organization}
    </Badge>
  ) : (
    <Badge variant="light" color="gray.8" size="sm">
      {t('doctor.unknownSource')}
    </Badge>
  );
}

function Mark({ mark }: { mark?: string }): ReactNode {
  return mark ? (
    <Badge color="teal.9" size="sm" variant="filled" title="互认 / mutual recognition">
      {mark}
    </Badge>
  ) : null;
}

function RecordTimeline({ record }: { record: SharedRecord }): ReactNode {
  const { t } = useI18n();
  const present = KINDS.filter((k) => record.entries.some((e) => e.kind === k));
  const [kinds, setKinds] = useState<string[]>(present.filter((k) => k !== 'observation'));
  const [hospital, setHospital] = useState<string | null>(null);
  const [shown, setShown] = useState(PAGE);
  const hospitals = [...new Set(record.entries.map((e) => e.organization).filter((x): x is string => !!x))];
  const entries = record.entries.filter((e) => kinds.includes(e.kind) && (!hospital || e.organization === hospital));
  return (
    <Stack>
      <Group align="flex-end">
        <Chip.Group multiple value={kinds} onChange={setKinds}>
          <Group gap="xs" role="group" aria-label={t('doctor.kinds')}>
            {present.map((k) => (
              <Chip key={k} value={k} size="sm">
                {t(`kind.${k}` as Key)}
              </Chip>
            ))}
          </Group>
        </Chip.Group>
        <Select
          label={t('hospital')}
          placeholder={t('all')}
          clearable
          data={hospitals.map((h) => ({ value: h, label: record.names[h] ?? h }))}
          value={hospital}
          onChange={setHospital}
          w={220}
        />
      </Group>
      {entries.length === 0 && <Text>{t('nothing')}</Text>}
      <Timeline bulletSize={14} lineWidth={2}>
        {entries.slice(0, shown).map((e) => (
          <Timeline.Item key={e.key} title={<TimelineTitle entry={e} names={record.names} />}>
            <Text size="sm" c="gray.8">
              {formatDate(e.date, true)} · {t(`kind.${e.kind}` as Key)}
              {e.detail ? ` · ${e.detail}` : ''}
            </Text>
          </Timeline.Item>
        ))}
      </Timeline>
      {entries.length > shown && (
        <Button variant="default" onClick={() => setShown(shown + PAGE)}>
          {t('more', { n: entries.length - shown })}
        </Button>
      )}
    </Stack>
  );
}

function TimelineTitle({ entry, names }: { entry: Entry; names: Record<string, string> }): ReactNode {
  return (
    <Group gap="xs">
      <Text fw={600} size="sm">
        {entry.title}
      </Text>
      <Hospital entry={entry} names={names} />
      <Mark mark={entry.mark} />
    </Group>
  );
}

function Results({ observations, names }: { observations: Observation[]; names: Record<string, string> }): ReactNode {
  const { t } = useI18n();
  const [shown, setShown] = useState(PAGE);
  return (
    <Stack>
      <Table.ScrollContainer minWidth={720}>
        <Table striped aria-label={t('doctor.results')}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>{t('date')}</Table.Th>
              <Table.Th>{t('doctor.item')}</Table.Th>
              <Table.Th>{t('doctor.value')}</Table.Th>
              <Table.Th>{t('doctor.range')}</Table.Th>
              <Table.Th>{t('hospital')}</Table.Th>
              <Table.Th>{t('doctor.mark')}</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {observations.slice(0, shown).map((o) => {
              const range = o.referenceRange?.[0];
              const flag = o.interpretation?.[0]?.coding?.[0]?.code;
              const org = sourceOrganization(o);
              return (
                <Table.Tr key={o.id}>
                  <Table.Td>{formatDate(o.effectiveDateTime ?? o.issued, true)}</Table.Td>
                  <Table.Td>{codeText(o.code)}</Table.Td>
                  <Table.Td>
                    {valueText(o)} {flag && flag !== 'N' && <Badge color={flag.startsWith('H') ? 'red.9' : 'orange.9'} size="xs">{flag}</Badge>}
                  </Table.Td>
                  <Table.Td>{range ? range.text ?? `${range.low?.value ?? ''}–${range.high?.value ?? ''} ${range.high?.unit ?? range.low?.unit ?? ''}` : '—'}</Table.Td>
                  <Table.Td>{org ? names[org] ?? org : '—'}</Table.Td>
                  <Table.Td>
                    <Mark mark={o.meta?.tag?.find((x) => x.system?.endsWith('/recognition-mark'))?.code} />
                  </Table.Td>
                </Table.Tr>
              );
            })}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {observations.length > shown && (
        <Button variant="default" onClick={() => setShown(shown + PAGE)}>
          {t('more', { n: observations.length - shown })}
        </Button>
      )}
    </Stack>
  );
}

const COLORS = ['blue.8', 'red.8', 'teal.8', 'grape.8'];

function Trends({ record }: { record: SharedRecord }): ReactNode {
  const { t } = useI18n();
  const all = useMemo(() => trends(record.observations, record.names, t('hospital')), [record, t]);
  const [selected, setSelected] = useState<string | null>(null);
  if (all.length === 0) return <Text>{t('doctor.noTrends')}</Text>;
  const trend = all.find((x) => x.key === selected) ?? all[0];
  return (
    <Stack>
      <Select label={t('doctor.trendItem')} data={all.map((x) => ({ value: x.key, label: `${x.label} (${x.points.length})` }))} value={trend.key} onChange={setSelected} maw={420} allowDeselect={false} />
      <Card withBorder>
        <Title order={3} size="h5" mb="sm">
          {trend.label} {trend.unit && `(${trend.unit})`}
        </Title>
        <LineChart
          h={300}
          data={trend.points}
          dataKey="date"
          series={trend.series.map((name, i) => ({ name, color: COLORS[i % COLORS.length] }))}
          curveType="linear"
          withLegend
          unit={trend.unit ? ` ${trend.unit}` : undefined}
          referenceLines={[
            ...(trend.low !== undefined ? [{ y: trend.low, label: `${t('doctor.low')} ${trend.low}`, color: 'orange.8' }] : []),
            ...(trend.high !== undefined ? [{ y: trend.high, label: `${t('doctor.high')} ${trend.high}`, color: 'red.8' }] : []),
          ]}
        />
        <Text size="xs" c="gray.7" mt="xs">
          {trend.low !== undefined || trend.high !== undefined ? t('doctor.rangeShown') : t('doctor.noRange')}
        </Text>
      </Card>
    </Stack>
  );
}

/** The attachment's bytes, from inline data or the platform (Binary or any URL of this origin), with the user's token. */
async function attachmentBlob(doc: DocumentReference, breakGlass?: string): Promise<Blob> {
  const a = doc.content?.[0]?.attachment;
  const type = a?.contentType ?? 'application/octet-stream';
  if (a?.data) return new Blob([Uint8Array.from(atob(a.data), (c) => c.charCodeAt(0))], { type });
  if (a?.url) {
    const binary = await call<{ data?: string; contentType?: string }>(a.url.replace(/^.*\/fhir\//, ''), { breakGlass, headers: { Accept: 'application/fhir+json' } });
    return new Blob([Uint8Array.from(atob(binary.data ?? ''), (c) => c.charCodeAt(0))], { type: binary.contentType ?? type });
  }
  throw new Error('no content');
}

/** A CDA document as readable sections (titles and text only; nothing of it is run or styled). */
function cdaSections(xml: string): { title: string; text: string }[] {
  const doc = new DOMParser().parseFromString(xml, 'application/xml');
  const sections = [...doc.getElementsByTagNameNS('*', 'section')].map((s) => ({
    title: [...s.children].find((c) => c.localName === 'title')?.textContent ?? '',
    text: [...s.children].find((c) => c.localName === 'text')?.textContent?.trim() ?? '',
  }));
  const title = doc.getElementsByTagNameNS('*', 'title')[0]?.textContent ?? '';
  return sections.length ? sections : [{ title, text: doc.documentElement?.textContent?.trim() ?? '' }];
}

function Documents({ documents, names, breakGlass }: { documents: DocumentReference[]; names: Record<string, string>; breakGlass?: string }): ReactNode {
  const { t } = useI18n();
  const [open, setOpen] = useState<{ title: string; url?: string; sections?: { title: string; text: string }[]; text?: string }>();
  const [error, setError] = useState<string>();
  const show = async (d: DocumentReference): Promise<void> => {
    setError(undefined);
    try {
      const blob = await attachmentBlob(d, breakGlass);
      const title = d.description ?? codeText(d.type);
      if (blob.type === 'application/pdf') setOpen({ title, url: URL.createObjectURL(blob) });
      else if (/xml/.test(blob.type)) setOpen({ title, sections: cdaSections(await blob.text()) });
      else setOpen({ title, text: await blob.text() });
    } catch (err) {
      setError((err as Error).message);
    }
  };
  if (documents.length === 0) return <Text>{t('nothing')}</Text>;
  return (
    <Stack>
      {error && <Alert color="red" role="alert">{error}</Alert>}
      <Table aria-label={t('doctor.documents')}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>{t('date')}</Table.Th>
            <Table.Th>{t('doctor.document')}</Table.Th>
            <Table.Th>{t('hospital')}</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {documents.map((d) => {
            const org = sourceOrganization(d);
            return (
              <Table.Tr key={d.id}>
                <Table.Td>{formatDate(d.date)}</Table.Td>
                <Table.Td>{d.description ?? codeText(d.type)}</Table.Td>
                <Table.Td>{org ? names[org] ?? org : '—'}</Table.Td>
                <Table.Td>
                  <Button size="xs" variant="light" onClick={() => void show(d)} disabled={!d.content?.[0]?.attachment?.data && !d.content?.[0]?.attachment?.url}>
                    {t('open')}
                  </Button>
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
      <Modal opened={!!open} onClose={() => setOpen(undefined)} title={open?.title} size="xl">
        {open?.url && <object data={open.url} type="application/pdf" width="100%" height="600" aria-label={open.title} />}
        {open?.sections?.map((s, i) => (
          <div key={i}>
            <Title order={4}>{s.title}</Title>
            <Text style={{ whiteSpace: 'pre-wrap' }}>{s.text}</Text>
          </div>
        ))}
        {open?.text !== undefined && <Text style={{ whiteSpace: 'pre-wrap' }}>{open.text}</Text>}
      </Modal>
    </Stack>
  );
}

function Advisories({ advisories, patientId }: { advisories: DetectedIssue[]; patientId: string }): ReactNode {
  const { t } = useI18n();
  const ops = useQuery({
    queryKey: ['recognition-ops'],
    queryFn: async () => ({ accept: await hasOperation('recognition-accept'), override: await hasOperation('recognition-override'), lookup: await hasOperation('recognizable-results') }),
  });
  const reasons = useQuery({
    queryKey: ['exception-reasons'],
    queryFn: () => call<{ entry?: { resource: { concept?: { code: string; display?: string }[] } }[] }>('CodeSystem?url=http://huimin.health/fhir/CodeSystem/recognition-exception-reason'),
    enabled: !!ops.data?.override,
  });
  const [message, setMessage] = useState<{ ok: boolean; text: string }>();
  const [overriding, setOverriding] = useState<DetectedIssue>();
  const [reason, setReason] = useState<string | null>(null);
  const decide = async (issue: DetectedIssue, op: 'recognition-accept' | 'recognition-override'): Promise<void> => {
    try {
      await operation(`DetectedIssue/${issue.id}/$${op}`, op === 'recognition-override' ? [{ name: 'reason', valueCode: reason ?? '' }] : []);
      setMessage({ ok: true, text: t('done') });
      setOverriding(undefined);
    } catch (err) {
      setMessage({ ok: false, text: (err as Error).message });
    }
  };
  const unavailable = t('unavailableOperation');
  return (
    <Stack>
      <RecognizableCheck patientId={patientId} available={!!ops.data?.lookup} />
      {message && <Alert color={message.ok ? 'teal' : 'red'} role="status">{message.text}</Alert>}
      {advisories.length === 0 && <Text>{t('doctor.noAdvisories')}</Text>}
      {advisories.map((a) => (
        <Card key={a.id} withBorder>
          <Group justify="space-between">
            <div>
              <Text fw={600}>{codeText(a.code)}</Text>
              <Text size="sm">{a.detail}</Text>
              <Text size="xs" c="gray.7">
                {formatDate(a.identifiedDateTime, true)} · {a.severity ?? ''} · {a.status}
              </Text>
              {a.mitigation?.map((m, i) => (
                <Badge key={i} color="gray.8" variant="light">
                  {codeText(m.action)}
                </Badge>
              ))}
            </div>
            <Group>
              <Button size="xs" disabled={!ops.data?.accept || !!a.mitigation?.length} title={ops.data?.accept ? undefined : unavailable} onClick={() => void decide(a, 'recognition-accept')}>
                {t('doctor.acceptPrior')}
              </Button>
              <Button size="xs" variant="default" disabled={!ops.data?.override || !!a.mitigation?.length} title={ops.data?.override ? undefined : unavailable} onClick={() => setOverriding(a)}>
                {t('doctor.orderAnyway')}
              </Button>
            </Group>
          </Group>
        </Card>
      ))}
      {ops.data && (!ops.data.accept || !ops.data.override) && <Text size="sm" c="gray.7">{unavailable}</Text>}
      <Modal opened={!!overriding} onClose={() => setOverriding(undefined)} title={t('doctor.orderAnyway')}>
        <Stack>
          <Select
            label={t('doctor.exceptionReason')}
            data={(reasons.data?.entry?.[0]?.resource.concept ?? []).map((c) => ({ value: c.code, label: c.display ?? c.code }))}
            value={reason}
            onChange={setReason}
          />
          <Button disabled={!reason} onClick={() => overriding && void decide(overriding, 'recognition-override')}>
            {t('confirm')}
          </Button>
        </Stack>
      </Modal>
    </Stack>
  );
}

/** Before ordering: which of the resident's results of this item are recognisable now (the recognition module's operation). */
function RecognizableCheck({ patientId, available }: { patientId: string; available: boolean }): ReactNode {
  const { t } = useI18n();
  const [code, setCode] = useState('http://loinc.org|4548-4');
  const [answer, setAnswer] = useState<string>();
  const check = async (): Promise<void> => {
    try {
      const bundle = await call<{ entry?: { resource: Observation }[] }>(`Patient/${patientId}/$recognizable-results?code=${encodeURIComponent(code)}`);
      const found = bundle.entry ?? [];
      setAnswer(found.length ? found.map((e) => `${codeText(e.resource.code)} ${valueText(e.resource)} ${formatDate(e.resource.effectiveDateTime)} ${e.resource.meta?.tag?.find((x) => x.system?.endsWith('/recognition-mark'))?.code ?? ''}`).join('; ') : t('doctor.noneRecognizable'));
    } catch (err) {
      setAnswer((err as Error).message);
    }
  };
  return (
    <Card withBorder>
      <Group align="flex-end">
        <Select
          label={t('doctor.beforeOrdering')}
          data={[
            { value: 'http://loinc.org|4548-4', label: 'HbA1c (4548-4)' },
            { value: 'http://loinc.org|2345-7', label: 'Glucose (2345-7)' },
            { value: 'http://loinc.org|2093-3', label: 'Cholesterol (2093-3)' },
            { value: 'http://loinc.org|2823-3', label: 'Potassium (2823-3)' },
          ]}
          value={code}
          onChange={(v) => v && setCode(v)}
          allowDeselect={false}
          w={260}
        />
        <Button onClick={() => void check()} disabled={!available} title={available ? undefined : t('unavailableOperation')}>
          {t('doctor.check')}
        </Button>
      </Group>
      {!available && (
        <Text size="sm" c="gray.7" mt="xs">
          {t('unavailableOperation')}
        </Text>
      )}
      {answer && (
        <Text mt="xs" role="status">
          {answer}
        </Text>
      )}
    </Card>
  );
}

