/**
 * The supervisor's dashboard: indicators by month and institution (MeasureReports, plus the referral figures the
 * referral workflow computes on demand), the findings worklist (DetectedIssue with their review Tasks), the
 * facility-connection board (the adapters' $hl7-facilities) and the audit log ("who looked at this resident's record").
 */
import { Tabs, Title, Stack } from '@mantine/core';
import type { ReactNode } from 'react';
import { useI18n } from '../../i18n';
import { AuditSearch } from './AuditSearch';
import { FacilityBoard } from './FacilityBoard';
import { Findings } from './Findings';
import { Indicators } from './Indicators';

export function SupervisorDashboard(): ReactNode {
  const { t } = useI18n();
  return (
    <Stack>
      <Title order={2}>{t('nav.supervisor')}</Title>
      <Tabs defaultValue="indicators" keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="indicators">{t('sup.indicators')}</Tabs.Tab>
          <Tabs.Tab value="findings">{t('sup.findings')}</Tabs.Tab>
          <Tabs.Tab value="facilities">{t('sup.facilities')}</Tabs.Tab>
          <Tabs.Tab value="audit">{t('sup.audit')}</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="indicators" pt="md">
          <Indicators />
        </Tabs.Panel>
        <Tabs.Panel value="findings" pt="md">
          <Findings />
        </Tabs.Panel>
        <Tabs.Panel value="facilities" pt="md">
          <FacilityBoard />
        </Tabs.Panel>
        <Tabs.Panel value="audit" pt="md">
          <AuditSearch />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
