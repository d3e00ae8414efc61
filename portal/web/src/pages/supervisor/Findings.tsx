/**
 * The findings worklist: supervision's DetectedIssues (suspicions, not verdicts) with their review Tasks, newest
 * first (the periodic rules raise many). The
 * review decisions are the supervision module's operation; while the platform does not offer it, the page says so.
 */
import type { CapabilityStatement, DetectedIssue, Task } from '@medplum/fhirtypes';
import { Alert, Badge, Button, Group, Loader, Modal, Select, Stack, Table, Text, Textarea } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type ReactNode } from 'react';
import { call, codeText, displayNames, formatDate, operation, search } from '../../fhir';
import { useI18n } from '../../i18n';

/**
 * The decisions each review step takes (supervision's review workflow, as its operation documents them); the
 * operation refuses any other, so the dialog offers only these.
 */
const STEP_DECISIONS: Record<string, string[]> = {
  'first-review': ['proceed', 'dismiss'],
  'second-review': ['proceed', 'dismiss'],
  appeal: ['appeal', 'accept'],
  verification: ['proceed', 'dismiss'],
  disposition: ['confirmed', 'dismissed', 'corrected'],
};

async function loadFindings(): Promise<{ findings: DetectedIssue[]; tasks: Task[]; names: Record<string, string>; review?: string }> {
  const found = await search<DetectedIssue>('DetectedIssue', { _count: '100', _sort: '-_lastUpdated', _revinclude: 'Task:focus' });
  const tasks = found.included.filter((r): r is Task => r.resourceType === 'Task');
  const names = await displayNames([...tasks.map((t) => t.owner?.reference), ...found.resources.flatMap((f) => f.implicated?.map((i) => i.reference) ?? []).filter((r) => r?.startsWith('Organization/'))]);
  const cs = await call<CapabilityStatement>('metadata');
  const review = cs.rest?.[0]?.resource?.find((r) => r.type === 'DetectedIssue')?.operation?.find((o) => /review|decide/.test(o.name))?.name;
  return { findings: found.resources, tasks, names, review };
}

export function Findings(): ReactNode {
  const { t } = useI18n();
  const client = useQueryClient();
  const data = useQuery({ queryKey: ['findings'], queryFn: loadFindings });
  const [deciding, setDeciding] = useState<{ issue: DetectedIssue; step?: string }>();
  const [decision, setDecision] = useState<string | null>(null);
  const [note, setNote] = useState('');
  const [message, setMessage] = useState<{ ok: boolean; text: string }>();
  if (data.isLoading) return <Loader aria-label={t('loading')} />;
  if (data.error) return <Alert color="red" role="alert">{(data.error as Error).message}</Alert>;
  const { findings = [], tasks = [], names = {}, review } = data.data ?? {};
  const decide = async (): Promise<void> => {
    try {
      await operation(`DetectedIssue/${deciding?.issue.id}/$${review}`, [{ name: 'decision', valueCode: decision }, ...(note ? [{ name: 'note', valueString: note }] : [])]);
      setMessage({ ok: true, text: t('done') });
      setDeciding(undefined);
      void client.invalidateQueries({ queryKey: ['findings'] });
    } catch (err) {
      setMessage({ ok: false, text: (err as Error).message });
    }
  };
  return (
    <Stack>
      {!review && <Text size="sm" c="gray.7">{t('sup.reviewUnavailable')}</Text>}
      {message && <Alert color={message.ok ? 'teal' : 'red'}>{message.text}</Alert>}
      {findings.length === 0 && <Text>{t('sup.noFindings')}</Text>}
      {findings.length > 0 && (
        <Table.ScrollContainer minWidth={800}>
          <Table striped aria-label={t('sup.findings')}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('date')}</Table.Th>
                <Table.Th>{t('sup.finding')}</Table.Th>
                <Table.Th>{t('sup.severity')}</Table.Th>
                <Table.Th>{t('status')}</Table.Th>
                <Table.Th>{t('sup.reviewStep')}</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {findings.map((f) => {
                const open = tasks.filter((x) => x.focus?.reference === `DetectedIssue/${f.id}` && !['completed', 'cancelled', 'rejected'].includes(x.status));
                const step = open[0];
                const overdue = step?.restriction?.period?.end && new Date(step.restriction.period.end).getTime() < Date.now();
                return (
                  <Table.Tr key={f.id}>
                    <Table.Td>{formatDate(f.identifiedDateTime, true)}</Table.Td>
                    <Table.Td>
                      <Text size="sm" fw={600}>
                        {codeText(f.code)}
                      </Text>
                      <Text size="xs">{f.detail}</Text>
                    </Table.Td>
                    <Table.Td>{f.severity ?? '—'}</Table.Td>
                    <Table.Td>{f.status}</Table.Td>
                    <Table.Td>
                      {step ? (
                        <>
                          {codeText(step.code)} · {names[step.owner?.reference ?? ''] ?? step.owner?.reference}
                          {overdue && <Badge color="red.9" ml="xs">{t('referral.overdue')}</Badge>}
                        </>
                      ) : (
                        '—'
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Button size="xs" disabled={!review || !step} title={review ? undefined : t('unavailableOperation')} onClick={() => { setDecision(null); setDeciding({ issue: f, step: step?.code?.coding?.[0]?.code }); }}>
                        {t('sup.review')}
                      </Button>
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Modal opened={!!deciding} onClose={() => setDeciding(undefined)} title={t('sup.review')}>
        <Stack>
          <Select
            label={t('sup.decision')}
            data={(STEP_DECISIONS[deciding?.step ?? ''] ?? []).map((d) => ({ value: d, label: d }))}
            value={decision}
            onChange={setDecision}
          />
          <Textarea label={t('sup.note')} value={note} onChange={(e) => setNote(e.currentTarget.value)} />
          <Group justify="flex-end">
            <Button disabled={!decision} onClick={() => void decide()}>
              {t('confirm')}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
