/** Every institution that sends data (the adapters' registered HL7 facilities), when it last sent, and the 100% target. */
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { Alert, Badge, Card, Group, Loader, RingProgress, Stack, Table, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { call, formatDate, hasOperation } from '../../fhir';
import { useI18n } from '../../i18n';

function part(p: ParametersParameter, name: string): ParametersParameter | undefined {
  return p.part?.find((x) => x.name === name);
}

export function FacilityBoard(): ReactNode {
  const { t } = useI18n();
  const data = useQuery({
    queryKey: ['facilities'],
    queryFn: async () => ((await hasOperation('hl7-facilities')) ? call<Parameters>('$hl7-facilities?silent-after-hours=24') : undefined),
  });
  if (data.isLoading) return <Loader aria-label={t('loading')} />;
  if (data.error) return <Alert color="red" role="alert">{(data.error as Error).message}</Alert>;
  if (!data.data) return <Text>{t('unavailableOperation')}</Text>;
  const params = data.data.parameter ?? [];
  const registered = params.find((p) => p.name === 'registered')?.valueInteger ?? 0;
  const connected = params.find((p) => p.name === 'connected')?.valueInteger ?? 0;
  const share = registered ? Math.round((100 * connected) / registered) : 0;
  const facilities = params.filter((p) => p.name === 'facility');
  return (
    <Stack>
      <Card withBorder>
        <Group>
          <RingProgress
            size={120}
            thickness={12}
            roundCaps
            sections={[{ value: share, color: share === 100 ? 'teal.8' : 'orange.8' }]}
            label={
              <Text ta="center" fw={700} size="lg">
                {share}%
              </Text>
            }
            aria-label={t('sup.connectedShare', { n: share })}
          />
          <div>
            <Text fw={600}>{t('sup.connected', { connected, registered })}</Text>
            <Text size="sm" c="gray.7">
              {t('sup.target')}
            </Text>
          </div>
        </Group>
      </Card>
      <Table striped aria-label={t('sup.facilities')}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>{t('hospital')}</Table.Th>
            <Table.Th>{t('sup.lastMessage')}</Table.Th>
            <Table.Th>{t('sup.messages30')}</Table.Th>
            <Table.Th>{t('sup.errors')}</Table.Th>
            <Table.Th>{t('status')}</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {facilities.map((f) => {
            const org = part(f, 'organization')?.valueReference;
            const silent = part(f, 'silent')?.valueBoolean;
            return (
              <Table.Tr key={org?.reference}>
                <Table.Td>{org?.display ?? org?.reference}</Table.Td>
                <Table.Td>{formatDate(part(f, 'lastMessage')?.valueInstant, true)}</Table.Td>
                <Table.Td>{part(f, 'messages')?.valueInteger ?? 0}</Table.Td>
                <Table.Td>{part(f, 'errors')?.valueInteger ?? 0}</Table.Td>
                <Table.Td>
                  <Badge color={silent ? 'red.9' : 'teal.9'}>{silent ? t('sup.silent') : t('sup.live')}</Badge>
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </Stack>
  );
}
