/**
 * Finding a resident: by name (Chinese characters or pinyin), resident ID card number, health card or MRN. One box:
 * the name and identifier searches run together and their answers are merged; the master patient index's golden
 * record (a Patient whose `link`s of type seealso name each hospital's record) comes first when there is one.
 */
import type { Patient } from '@medplum/fhirtypes';
import { Alert, Badge, Button, Card, Group, Loader, Stack, Table, Text, Textarea, TextInput, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState, type FormEvent, type ReactNode } from 'react';
import { Link, useSearchParams } from 'react-router';
import { displayNames, formatDate, humanName, search, sourceOrganization } from '../../fhir';
import { useI18n } from '../../i18n';

const ID_CARD = /^\d{17}[\dXx]$/;

const CJK_NAME = /^[\u4e00-\u9fff]{2,5}$/;

/**
 * Residents matching one search box: identifiers (ID card, health card, MRN) and names. A Chinese full name is
 * stored as family + given, which a name search (matching each part) would miss as a whole: it is also searched
 * as family = first character, given = the rest.
 */
export async function findResidents(query: string, breakGlass?: string): Promise<{ patients: Patient[]; names: Record<string, string> }> {
  const q = query.trim();
  const wanted = { _count: '50' };
  const searches = [search<Patient>('Patient', { ...wanted, identifier: q }, { breakGlass })];
  if (!ID_CARD.test(q)) searches.push(search<Patient>('Patient', { ...wanted, name: q }, { breakGlass }));
  if (CJK_NAME.test(q)) searches.push(search<Patient>('Patient', { ...wanted, family: q[0], given: q.slice(1) }, { breakGlass }));
  const found = new Map<string, Patient>();
  for (const result of await Promise.all(searches)) for (const p of result.resources) found.set(p.id as string, p);
  // One resident, not a golden record and its hospital copies: a hospital's record whose golden record was found
  // too is shown through it.
  const shownByGolden = new Set([...found.values()].filter(isGolden).flatMap((g) => (g.link ?? []).filter((l) => l.type === 'seealso').map((l) => l.other.reference)));
  const patients = [...found.values()].filter((p) => !shownByGolden.has(`Patient/${p.id}`)).sort((a, b) => Number(isGolden(b)) - Number(isGolden(a)));
  const names = await displayNames(patients.flatMap((p) => [sourceOrganization(p), p.managingOrganization?.reference]));
  return { patients, names };
}

export function isGolden(p: Patient): boolean {
  return (p.link ?? []).some((l) => l.type === 'seealso');
}

export function PatientSearch(): ReactNode {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const query = params.get('q') ?? '';
  const [text, setText] = useState(query);
  const [reason, setReason] = useState('');
  const [breakGlass, setBreakGlass] = useState<string>();
  const result = useQuery({ queryKey: ['residents', query, breakGlass], queryFn: () => findResidents(query, breakGlass), enabled: query.trim().length > 0 });
  const submit = (e: FormEvent): void => {
    e.preventDefault();
    setBreakGlass(undefined);
    setParams(text.trim() ? { q: text.trim() } : {});
  };
  // A record opened from a break-the-glass search keeps the stated reason for its own requests.
  const remember = (id: string | undefined): void => {
    if (breakGlass && id) sessionStorage.setItem(`huimin.btg.${id}`, breakGlass);
  };
  return (
    <Stack>
      <Title order={2}>{t('doctor.searchTitle')}</Title>
      <form onSubmit={submit} role="search">
        <Group align="flex-end">
          <TextInput
            label={t('doctor.searchLabel')}
            description={t('doctor.searchHint')}
            value={text}
            onChange={(e) => setText(e.currentTarget.value)}
            style={{ flex: 1, minWidth: 240 }}
            autoFocus
            name="q"
          />
          <Button type="submit">{t('search')}</Button>
        </Group>
      </form>
      {result.isFetching && <Loader aria-label={t('loading')} />}
      {result.error && <Alert color="red" role="alert">{(result.error as Error).message}</Alert>}
      {result.data && result.data.patients.length === 0 && (
        <Card withBorder maw={640}>
          <Stack>
            <Text>{t('doctor.noResident')}</Text>
            {!breakGlass && (
              <>
                <Text size="sm">{t('doctor.btgSearchText')}</Text>
                <Textarea label={t('doctor.btgReason')} description={t('doctor.btgHint')} value={reason} onChange={(e) => setReason(e.currentTarget.value)} maxLength={500} autosize minRows={2} />
                <Group>
                  <Button color="red.9" disabled={reason.trim().length < 4} onClick={() => setBreakGlass(reason.trim())}>
                    {t('doctor.btgSearch')}
                  </Button>
                </Group>
              </>
            )}
          </Stack>
        </Card>
      )}
      {breakGlass && (
        <Alert color="red" role="status">
          {t('doctor.btgActive')}
        </Alert>
      )}
      {result.data && result.data.patients.length > 0 && (
        <Table.ScrollContainer minWidth={640}>
          <Table striped highlightOnHover aria-label={t('doctor.results')}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('name')}</Table.Th>
                <Table.Th>{t('gender')}</Table.Th>
                <Table.Th>{t('birthDate')}</Table.Th>
                <Table.Th>{t('identifiers')}</Table.Th>
                <Table.Th>{t('doctor.sources')}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {result.data.patients.map((p) => {
                const org = sourceOrganization(p) ?? p.managingOrganization?.reference;
                return (
                  <Table.Tr key={p.id}>
                    <Table.Td>
                      <Link to={`/doctor/patient/${p.id}`} onClick={() => remember(p.id)}>
                        {humanName(p.name)}
                      </Link>
                      {p.name && p.name.length > 1 && (
                        <Text size="xs" c="gray.7">
                          {p.name.slice(1).map((n) => humanName([n])).join(' / ')}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>{p.gender ? t(`gender.${p.gender}`) : '—'}</Table.Td>
                    <Table.Td>{formatDate(p.birthDate)}</Table.Td>
                    <Table.Td>
                      {(p.identifier ?? []).slice(0, 3).map((i) => (
                        <Text key={`${i.system}|${i.value}`} size="xs">
                          {i.type?.text ?? i.type?.coding?.[0]?.code ?? ''} {i.value}
                        </Text>
                      ))}
                    </Table.Td>
                    <Table.Td>
                      {isGolden(p) ? (
                        <Badge color="teal.9" variant="light">
                          {t('doctor.golden', { n: (p.link ?? []).filter((l) => l.type === 'seealso').length })}
                        </Badge>
                      ) : (
                        <Text size="sm">{org ? (result.data.names[org] ?? org) : '—'}</Text>
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
