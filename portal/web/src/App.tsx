/**
 * The portal's shell: sign-in, the navigation each role sees, the language switch, and the routes of the pages.
 */
import { AppShell, Burger, Button, Center, Group, Loader, MantineProvider, NavLink, SegmentedControl, Stack, Text, Title, createTheme } from '@mantine/core';
import { DatesProvider } from '@mantine/dates';
import { useDisclosure } from '@mantine/hooks';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import 'dayjs/locale/zh-cn';
import { lazy, Suspense, useEffect, useState, type ReactNode } from 'react';
import { BrowserRouter, Navigate, NavLink as RouterLink, Route, Routes, useLocation, useNavigate } from 'react-router';
import { completeSignIn, currentSession, signIn, signOut, type Role } from './auth';
import { setSignedOutHandler } from './fhir';
import { I18nProvider, useI18n, type Key } from './i18n';

// Each page is its own chunk: a person loads the code (and the charting library) of the pages they open only.
const UsersPage = lazy(() => import('./pages/admin/Users').then((m) => ({ default: m.UsersPage })));
const PatientSearch = lazy(() => import('./pages/doctor/PatientSearch').then((m) => ({ default: m.PatientSearch })));
const PatientRecord = lazy(() => import('./pages/doctor/PatientRecord').then((m) => ({ default: m.PatientRecord })));
const ReferralDetail = lazy(() => import('./pages/referrals/ReferralDetail').then((m) => ({ default: m.ReferralDetail })));
const ReferralWorklist = lazy(() => import('./pages/referrals/ReferralWorklist').then((m) => ({ default: m.ReferralWorklist })));
const SupervisorDashboard = lazy(() => import('./pages/supervisor/SupervisorDashboard').then((m) => ({ default: m.SupervisorDashboard })));

// Contrast: the default blue shade 6 on white is below 4.5:1 for small text; shade 8 is well above.
const theme = createTheme({ primaryColor: 'blue', primaryShade: 8, defaultRadius: 'sm', fontFamily: 'system-ui, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif' });
const queryClient = new QueryClient({ defaultOptions: { queries: { staleTime: 30_000, retry: 1, refetchOnWindowFocus: false } } });

interface Section {
  path: string;
  label: Key;
  roles: Role[];
}

const SECTIONS: Section[] = [
  { path: '/doctor', label: 'nav.doctor', roles: ['clinician', 'supervisor', 'admin'] },
  { path: '/referrals', label: 'nav.referrals', roles: ['referral-coordinator', 'clinician', 'admin'] },
  { path: '/supervisor', label: 'nav.supervisor', roles: ['supervisor', 'admin'] },
  { path: '/admin/users', label: 'nav.users', roles: ['admin'] },
];

function home(role: Role): string {
  return { clinician: '/doctor', 'referral-coordinator': '/referrals', supervisor: '/supervisor', admin: '/admin/users' }[role];
}

export function App(): ReactNode {
  return (
    <MantineProvider theme={theme}>
      <I18nProvider>
        <DatesProvider settings={{ locale: 'zh-cn', firstDayOfWeek: 1 }}>
          <QueryClientProvider client={queryClient}>
            <BrowserRouter basename="/app">
              <Routes>
                <Route path="/callback" element={<Callback />} />
                <Route path="*" element={<Signed />} />
              </Routes>
            </BrowserRouter>
          </QueryClientProvider>
        </DatesProvider>
      </I18nProvider>
    </MantineProvider>
  );
}

function LanguageSwitch(): ReactNode {
  const { locale, setLocale, t } = useI18n();
  return (
    <SegmentedControl
      aria-label={t('language')}
      size="xs"
      value={locale}
      onChange={(v) => setLocale(v as 'zh' | 'en')}
      data={[
        { value: 'zh', label: '中文' },
        { value: 'en', label: 'English' },
      ]}
    />
  );
}

function Callback(): ReactNode {
  const navigate = useNavigate();
  const { t } = useI18n();
  const [error, setError] = useState<string>();
  useEffect(() => {
    completeSignIn(window.location.search)
      .then((returnTo) => navigate(returnTo || '/', { replace: true }))
      .catch((err: Error) => setError(err.message));
  }, [navigate]);
  return (
    <Center h="100vh">
      {error ? (
        <Stack align="center">
          <Text c="red.9" role="alert">
            {error}
          </Text>
          <Button component="a" href="/app/">
            {t('signIn')}
          </Button>
        </Stack>
      ) : (
        <Loader aria-label={t('loading')} />
      )}
    </Center>
  );
}

function Signed(): ReactNode {
  const { t, locale } = useI18n();
  const location = useLocation();
  const [session, setSession] = useState(currentSession());
  useEffect(() => setSignedOutHandler(() => setSession(undefined)), []);
  if (!session) {
    return (
      <Center h="100vh" bg="gray.1">
        <Stack align="center" gap="lg" p="xl" bg="white" style={{ borderRadius: 8, boxShadow: '0 1px 4px rgba(0,0,0,.12)' }}>
          <Title order={1} size="h2">
            {t('app.title')}
          </Title>
          <Text c="gray.8">{t('app.subtitle')}</Text>
          <Button size="lg" onClick={() => void signIn(locale, location.pathname === '/' ? '' : location.pathname + location.search)}>
            {t('signIn')}
          </Button>
          <LanguageSwitch />
        </Stack>
      </Center>
    );
  }
  return <Shell role={session.user.role} name={session.user.name} onSignOut={() => void signOut().then(() => setSession(undefined))} />;
}

function Shell({ role, name, onSignOut }: { role: Role; name: string; onSignOut: () => void }): ReactNode {
  const { t } = useI18n();
  const [opened, { toggle, close }] = useDisclosure();
  const sections = SECTIONS.filter((s) => s.roles.includes(role));
  const allowed = (path: string): boolean => sections.some((s) => path.startsWith(s.path));
  const guard = (path: string, element: ReactNode): ReactNode => (allowed(path) ? element : <Navigate to={home(role)} replace />);
  return (
    <AppShell header={{ height: 60 }} navbar={{ width: 220, breakpoint: 'md', collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="md" size="sm" aria-label={t('menu')} />
            <Title order={1} size="h4">
              {t('app.title')}
            </Title>
          </Group>
          <Group wrap="nowrap" gap="sm">
            <LanguageSwitch />
            <Text size="sm" visibleFrom="sm">
              {name} · {t(`role.${role}` as Key)}
            </Text>
            <Button variant="default" size="xs" onClick={onSignOut}>
              {t('signOut')}
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label={t('menu')}>
        {sections.map((s) => (
          <NavLink key={s.path} component={RouterLink} to={s.path} label={t(s.label)} onClick={close} />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        <Suspense fallback={<Loader aria-label={t('loading')} />}>
        <Routes>
          <Route path="/" element={<Navigate to={home(role)} replace />} />
          <Route path="/doctor" element={guard('/doctor', <PatientSearch />)} />
          <Route path="/doctor/patient/:id" element={guard('/doctor', <PatientRecord />)} />
          <Route path="/referrals" element={guard('/referrals', <ReferralWorklist />)} />
          <Route path="/referrals/:id" element={guard('/referrals', <ReferralDetail />)} />
          <Route path="/supervisor" element={guard('/supervisor', <SupervisorDashboard />)} />
          <Route path="/admin/users" element={guard('/admin/users', <UsersPage />)} />
          <Route path="*" element={<Navigate to={home(role)} replace />} />
        </Routes>
        </Suspense>
      </AppShell.Main>
    </AppShell>
  );
}
