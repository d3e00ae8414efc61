/** User administration (admin only): accounts with a role, an organisation and, for clinicians, a Practitioner. */
import { Alert, Badge, Button, Group, Loader, Modal, PasswordInput, Select, Stack, Switch, Table, TextInput, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type ReactNode } from 'react';
import { call } from '../../fhir';
import { useI18n, type Key } from '../../i18n';

interface UserRow {
  id: string;
  username: string;
  display_name: string;
  role: string;
  organization?: string;
  practitioner?: string;
  disabled: boolean;
  updated_at: string;
}

const ROLES = ['clinician', 'referral-coordinator', 'supervisor', 'admin'];

export function UsersPage(): ReactNode {
  const { t } = useI18n();
  const client = useQueryClient();
  const users = useQuery({ queryKey: ['users'], queryFn: () => call<{ users: UserRow[] }>('/auth/users') });
  const [editing, setEditing] = useState<Partial<UserRow> & { password?: string }>();
  const [error, setError] = useState<string>();
  const save = async (): Promise<void> => {
    if (!editing) return;
    setError(undefined);
    const body = { username: editing.username, display_name: editing.display_name, role: editing.role, organization: editing.organization || undefined, practitioner: editing.role === 'clinician' ? editing.practitioner || undefined : undefined, disabled: editing.disabled, ...(editing.password ? { password: editing.password } : {}) };
    try {
      if (editing.id) await call(`/auth/users/${editing.id}`, { method: 'PUT', body: { ...body, username: undefined } });
      else await call('/auth/users', { method: 'POST', body });
      setEditing(undefined);
      void client.invalidateQueries({ queryKey: ['users'] });
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{t('nav.users')}</Title>
        <Button onClick={() => setEditing({ role: 'clinician', disabled: false })}>{t('admin.newUser')}</Button>
      </Group>
      {users.isLoading && <Loader aria-label={t('loading')} />}
      {users.error && <Alert color="red" role="alert">{(users.error as Error).message}</Alert>}
      {users.data && (
        <Table.ScrollContainer minWidth={720}>
          <Table striped aria-label={t('nav.users')}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t('admin.username')}</Table.Th>
                <Table.Th>{t('name')}</Table.Th>
                <Table.Th>{t('admin.role')}</Table.Th>
                <Table.Th>{t('admin.organization')}</Table.Th>
                <Table.Th>{t('admin.practitioner')}</Table.Th>
                <Table.Th>{t('status')}</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {users.data.users.map((u) => (
                <Table.Tr key={u.id}>
                  <Table.Td>{u.username}</Table.Td>
                  <Table.Td>{u.display_name}</Table.Td>
                  <Table.Td>{t(`role.${u.role}` as Key)}</Table.Td>
                  <Table.Td>{u.organization ?? '—'}</Table.Td>
                  <Table.Td>{u.practitioner ?? '—'}</Table.Td>
                  <Table.Td>{u.disabled ? <Badge color="gray.8">{t('admin.disabled')}</Badge> : <Badge color="teal.9">{t('admin.active')}</Badge>}</Table.Td>
                  <Table.Td>
                    <Button size="xs" variant="light" onClick={() => setEditing({ ...u })} aria-label={`${t('edit')} ${u.username}`}>
                      {t('edit')}
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Modal opened={!!editing} onClose={() => setEditing(undefined)} title={editing?.id ? t('edit') : t('admin.newUser')}>
        {editing && (
          <Stack>
            {error && <Alert color="red" role="alert">{error}</Alert>}
            <TextInput label={t('admin.username')} value={editing.username ?? ''} disabled={!!editing.id} onChange={(e) => setEditing({ ...editing, username: e.currentTarget.value })} required />
            <TextInput label={t('name')} value={editing.display_name ?? ''} onChange={(e) => setEditing({ ...editing, display_name: e.currentTarget.value })} required />
            <Select label={t('admin.role')} data={ROLES.map((r) => ({ value: r, label: t(`role.${r}` as Key) }))} value={editing.role ?? null} onChange={(v) => setEditing({ ...editing, role: v ?? undefined })} allowDeselect={false} />
            <TextInput label={t('admin.organization')} placeholder="Organization/123" value={editing.organization ?? ''} onChange={(e) => setEditing({ ...editing, organization: e.currentTarget.value })} />
            {editing.role === 'clinician' && <TextInput label={t('admin.practitioner')} placeholder="Practitioner/123" value={editing.practitioner ?? ''} onChange={(e) => setEditing({ ...editing, practitioner: e.currentTarget.value })} />}
            <PasswordInput label={editing.id ? t('admin.newPassword') : t('admin.password')} description={t('admin.passwordHint')} value={editing.password ?? ''} onChange={(e) => setEditing({ ...editing, password: e.currentTarget.value })} required={!editing.id} />
            {editing.id && <Switch label={t('admin.disabled')} checked={!!editing.disabled} onChange={(e) => setEditing({ ...editing, disabled: e.currentTarget.checked })} />}
            <Group justify="flex-end">
              <Button onClick={() => void save()}>{t('save')}</Button>
            </Group>
          </Stack>
        )}
      </Modal>
    </Stack>
  );
}
