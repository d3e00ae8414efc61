/** Indicator charts by month and institution, from MeasureReports (stored ones, and $referral-report's). */
import type { Bundle, MeasureReport } from '@medplum/fhirtypes';
import { BarChart } from '@mantine/charts';
import { Alert, Card, Group, Loader, Select, Stack, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import dayjs from 'dayjs';
import { useState, type ReactNode } from 'react';
import { call, codeText, displayNames, hasOperation, search } from '../../fhir';
import { useI18n } from '../../i18n';

interface Figure {
  measure: string;
  group: string;
  label: string;
  month: string;
  institution: string;
  value: number;
}

function figuresOf(report: MeasureReport): Figure[] {
  const month = (report.period?.start ?? '').slice(0, 7);
  const institution = report.reporter?.reference ?? report.subject?.reference ?? '—';
  return (report.group ?? []).flatMap((g) => {
    const value = g.measureScore?.value ?? g.population?.[0]?.count;
    return value === undefined ? [] : [{ measure: report.measure ?? '', group: g.code?.coding?.[0]?.code ?? codeText(g.code), label: codeText(g.code), month, institution, value }];
  });
}

async function loadFigures(): Promise<{ figures: Figure[]; names: Record<string, string>; sources: string[] }> {
  const start = dayjs().subtract(5, 'month').startOf('month').format('YYYY-MM');
  const end = dayjs().add(1, 'month').startOf('month').format('YYYY-MM');
  // Stored MeasureReports and the referral figures computed on demand, asked for together.
  const [stored, live] = await Promise.all([
    search<MeasureReport>('MeasureReport', { _count: '500' }),
    hasOperation('referral-report').then((offered) => (offered ? call<Bundle<MeasureReport>>(`$referral-report?period-start=${start}&period-end=${end}`) : undefined)),
  ]);
  const reports = [...stored.resources, ...(live?.entry ?? []).map((e) => e.resource as MeasureReport)];
  const sources = [...(stored.resources.length ? ['MeasureReport'] : []), ...(live ? ['$referral-report'] : [])];
  const figures = reports.flatMap(figuresOf);
  const names = await displayNames([...new Set(figures.map((f) => f.institution))]);
  return { figures, names, sources };
}

export function Indicators(): ReactNode {
  const { t } = useI18n();
  const data = useQuery({ queryKey: ['figures'], queryFn: loadFigures });
  const [selected, setSelected] = useState<string | null>(null);
  if (data.isLoading) return <Loader aria-label={t('loading')} />;
  if (data.error) return <Alert color="red" role="alert">{(data.error as Error).message}</Alert>;
  const figures = data.data?.figures ?? [];
  const indicators = [...new Map(figures.map((f) => [`${f.measure}#${f.group}`, f.label])).entries()];
  if (indicators.length === 0) return <Text>{t('sup.noIndicators')}</Text>;
  // Opens on the first indicator with something to show (a month with no activity reports zeros for everyone).
  const key = selected ?? (indicators.find(([k]) => figures.some((f) => `${f.measure}#${f.group}` === k && f.value !== 0)) ?? indicators[0])[0];
  const chosen = figures.filter((f) => `${f.measure}#${f.group}` === key);
  const institutions = [...new Set(chosen.map((f) => f.institution))];
  const months = [...new Set(chosen.map((f) => f.month))].sort();
  const names = data.data?.names ?? {};
  const rows = months.map((month) => ({ month, ...Object.fromEntries(institutions.map((i) => [names[i] ?? i, chosen.find((f) => f.month === month && f.institution === i)?.value ?? 0])) }));
  const palette = ['blue.8', 'teal.8', 'orange.8', 'grape.8', 'red.8', 'cyan.8', 'lime.8', 'indigo.8'];
  return (
    <Stack>
      <Group align="flex-end">
        <Select label={t('sup.indicator')} data={indicators.map(([value, label]) => ({ value, label }))} value={key} onChange={setSelected} allowDeselect={false} w={360} />
        <Text size="xs" c="gray.7">
          {t('sup.sources')}: {data.data?.sources.join(', ')}
        </Text>
      </Group>
      <Card withBorder>
        <Title order={3} size="h5" mb="sm">
          {indicators.find(([v]) => v === key)?.[1]}
        </Title>
        <BarChart h={320} data={rows} dataKey="month" withLegend series={institutions.map((i, n) => ({ name: names[i] ?? i, color: palette[n % palette.length] }))} />
      </Card>
    </Stack>
  );
}
