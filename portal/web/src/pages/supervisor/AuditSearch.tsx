/** "Who looked at this resident's record": the audit log's events naming the resident, newest first. */
import type { AuditEvent } from '@medplum/fhirtypes';
import { Alert, Badge, Button, Group, Loader, Select, Stack, Switch, Table, Text, TextInput } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState, type FormEvent, type ReactNode } from 'react';
import { displayNames, formatDate, humanName, search } from '../../fhir';
import { useI18n } from '../../i18n';
import { findResidents } from '../doctor/PatientSearch';

function who(e: AuditEvent, names: Record<string, string>): { name: string; detail: string } {
  const user = e.agent?.find((a) => a.who?.identifier?.system === 'urn:huimin:user');
  const client = e.agent?.find((a) => a.who?.identifier?.system === 'urn:huimin:client-id');
  const practitioner = e.agent?.find((a) => a.who?.reference?.startsWith('Practitioner/'));
  const org = e.agent?.find((a) => a.who?.reference?.startsWith('Organization/'));
  return {
    name: user?.who?.display ?? practitioner?.who?.reference ?? client?.who?.display ?? client?.who?.identifier?.value ?? '—',
    detail: [user?.who?.identifier?.value, client?.role?.[0]?.text, names[org?.who?.reference ?? ''] ?? org?.who?.reference, client?.network?.address].filter(Boolean).join(' · '),
  };
}

export function AuditSearch(): ReactNode {
  const { t } = useI18n();
  const [text, setText] = useState('');
  const [query, setQuery] = useState('');
  const [patient, setPatient] = useState<string | null>(null);
  const [btgOnly, setBtgOnly] = useState(false);
  const candidates = useQuery({
    queryKey: ['audit-patients', query],
    enabled: query.length > 0,
    queryFn: async () => (await findResidents(query)).patients,
  });
  const events = useQuery({
    queryKey: ['audit', patient, btgOnly],
    enabled: !!patient,
    queryFn: async () => {
      // A resident's record is its golden record and every hospital's record linked to it: who looked at any of them.
      const chosen = candidates.data?.find((p) => p.id === patient);
      const records = [`Patient/${patient}`, ...(chosen?.link ?? []).filter((l) => l.type === 'seealso').map((l) => l.other.reference as string)];
      const tag = btgOnly ? 'https://huimin.health/fhir/CodeSystem/audit-flag|break-the-glass' : undefined;
      const pages = await Promise.all(records.map((entity) => search<AuditEvent>('AuditEvent', { entity, _count: '200', _tag: tag })));
      const unique = new Map(pages.flatMap((page) => page.resources).map((e) => [e.id, e]));
      const resources = [...unique.values()];
      const names = await displayNames(resources.flatMap((e) => (e.agent ?? []).map((a) => a.who?.reference)).filter((r) => r?.startsWith('Organization/')));
      return { resources, names };
    },
  });
  const submit = (e: FormEvent): void => {
    e.preventDefault();
    setQuery(text.trim());
    setPatient(null);
  };
  const list = [...(events.data?.resources ?? [])].sort((a, b) => (b.recorded ?? '').localeCompare(a.recorded ?? ''));
  return (
    <Stack>
      <form onSubmit={submit} role="search">
        <Group align="flex-end">
          <TextInput label={t('sup.auditResident')} description={t('doctor.searchHint')} value={text} onChange={(e) => setText(e.currentTarget.value)} w={320} />
          <Button type="submit">{t('search')}</Button>
        </Group>
      </form>
      {candidates.data && (
        <Select
          label={t('sup.chooseResident')}
          data={candidates.data.map((p) => ({ value: p.id as string, label: `${humanName(p.name)} · ${p.birthDate ?? ''} · ${p.identifier?.[0]?.value ?? p.id}` }))}
          value={patient}
          onChange={setPatient}
          w={420}
          nothingFoundMessage={t('doctor.noResident')}
        />
      )}
      {patient && <Switch label={t('sup.btgOnly')} checked={btgOnly} onChange={(e) => setBtgOnly(e.currentTarget.checked)} />}
      {events.isLoading && <Loader aria-label={t('loading')} />}
      {events.error && <Alert color="red" role="alert">{(events.error as Error).message}</Alert>}
      {events.data && list.length === 0 && <Text>{t('nothing')}</Text>}
      {list.length > 0 && (
        <Table.ScrollContainer minWidth={800}>
          <Table striped aria-label={t('sup.audit')}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('sup.when')}</Table.Th>
                <Table.Th>{t('sup.who')}</Table.Th>
                <Table.Th>{t('sup.what')}</Table.Th>
                <Table.Th>{t('sup.outcome')}</Table.Th>
                <Table.Th>{t('sup.purpose')}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.map((e) => {
                const w = who(e, events.data?.names ?? {});
                const purpose = e.purposeOfEvent?.[0]?.coding?.[0]?.code;
                return (
                  <Table.Tr key={e.id}>
                    <Table.Td>{formatDate(e.recorded, true)}</Table.Td>
                    <Table.Td>
                      <Text size="sm" fw={600}>
                        {w.name}
                      </Text>
                      <Text size="xs" c="gray.7">
                        {w.detail}
                      </Text>
                    </Table.Td>
                    <Table.Td>{e.subtype?.[0]?.code}</Table.Td>
                    <Table.Td>{e.outcome === '0' ? t('sup.success') : <Badge color="red.9">{e.outcome}</Badge>}</Table.Td>
                    <Table.Td>
                      {purpose === 'BTG' ? <Badge color="red.9">{t('sup.btg')}</Badge> : purpose}
                      {e.outcomeDesc && (
                        <Text size="xs" c="gray.7">
                          {e.outcomeDesc}
                        </Text>
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}
