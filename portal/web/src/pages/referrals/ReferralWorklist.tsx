/**
 * The referral desk's worklist: incoming and outgoing referral Tasks of the coordinator's organisation, overdue first,
 * then green channel and priority; filters by department (the Task's owner) and status.
 */
import { Alert, Badge, Group, Loader, SegmentedControl, Select, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState, type ReactNode } from 'react';
import { Link } from 'react-router';
import { currentSession } from '../../auth';
import { codeText, formatDate, humanName } from '../../fhir';
import { useI18n, type Key } from '../../i18n';
import { businessStatus, loadWorklist } from './referrals';

const STATUSES = ['requested', 'received', 'accepted', 'in-progress', 'completed', 'rejected', 'cancelled', 'failed'];

export function PriorityBadge({ priority, green }: { priority?: string; green?: boolean }): ReactNode {
  const { t } = useI18n();
  if (green) return <Badge color="green.9">{t('referral.green')}</Badge>;
  const color = priority === 'stat' || priority === 'asap' ? 'red.9' : priority === 'urgent' ? 'orange.9' : 'gray.7';
  return <Badge color={color}>{t(`priority.${priority ?? 'routine'}` as Key)}</Badge>;
}

export function ReferralWorklist(): ReactNode {
  const { t } = useI18n();
  const organization = currentSession()?.user.organization;
  const [direction, setDirection] = useState<'incoming' | 'outgoing'>('incoming');
  const [status, setStatus] = useState<string | null>(null);
  const [department, setDepartment] = useState<string | null>(null);
  const list = useQuery({ queryKey: ['worklist', direction, organization], queryFn: () => loadWorklist(direction, organization) });
  const referrals = (list.data?.referrals ?? []).filter((r) => (!status || r.task.status === status) && (!department || r.task.owner?.reference === department));
  const departments = [...new Set((list.data?.referrals ?? []).map((r) => r.task.owner?.reference).filter((x): x is string => !!x))];
  return (
    <Stack>
      <Title order={2}>{t('referral.worklist')}</Title>
      <Group align="flex-end">
        <SegmentedControl
          aria-label={t('referral.direction')}
          value={direction}
          onChange={(v) => setDirection(v as 'incoming' | 'outgoing')}
          data={[
            { value: 'incoming', label: t('referral.incoming') },
            { value: 'outgoing', label: t('referral.outgoing') },
          ]}
        />
        <Select label={t('status')} placeholder={t('all')} clearable data={STATUSES.map((s) => ({ value: s, label: t(`task.${s}` as Key) }))} value={status} onChange={setStatus} w={180} />
        <Select label={t('referral.department')} placeholder={t('all')} clearable data={departments.map((d) => ({ value: d, label: list.data?.names[d] ?? d }))} value={department} onChange={setDepartment} w={240} />
      </Group>
      {list.isLoading && <Loader aria-label={t('loading')} />}
      {list.error && <Alert color="red" role="alert">{(list.error as Error).message}</Alert>}
      {list.data && referrals.length === 0 && <Text>{t('referral.none')}</Text>}
      {referrals.length > 0 && (
        <Table.ScrollContainer minWidth={800}>
          <Table striped highlightOnHover aria-label={t('referral.worklist')}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('referral.patient')}</Table.Th>
                <Table.Th>{t('referral.direction')}</Table.Th>
                <Table.Th>{t('referral.priority')}</Table.Th>
                <Table.Th>{t('referral.reason')}</Table.Th>
                <Table.Th>{direction === 'incoming' ? t('referral.from') : t('referral.to')}</Table.Th>
                <Table.Th>{t('status')}</Table.Th>
                <Table.Th>{t('referral.deadline')}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {referrals.map((r) => {
                const other = direction === 'incoming' ? r.task.requester?.reference : r.task.owner?.reference;
                return (
                  <Table.Tr key={r.task.id}>
                    <Table.Td>
                      <Link to={`/referrals/${r.task.id}`}>{r.patient ? humanName(r.patient.name) : r.task.for?.display ?? r.task.for?.reference}</Link>
                    </Table.Td>
                    <Table.Td>{r.direction ? t(`referral.${r.direction}` as Key) : '—'}</Table.Td>
                    <Table.Td>
                      <PriorityBadge priority={r.task.priority} green={r.green} />
                    </Table.Td>
                    <Table.Td>{codeText(r.request?.reasonCode?.[0])}</Table.Td>
                    <Table.Td>{other ? list.data?.names[other] ?? other : '—'}</Table.Td>
                    <Table.Td>
                      {t(`task.${r.task.status}` as Key)}
                      {businessStatus(r.task) && (
                        <Text size="xs" c="gray.7">
                          {businessStatus(r.task)}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      {r.overdue ? (
                        <Badge color="red.9" variant="filled">
                          {t('referral.overdue')} {formatDate(r.deadline, true)}
                        </Badge>
                      ) : (
                        formatDate(r.deadline, true)
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
