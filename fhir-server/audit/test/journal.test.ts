/**
 * The audit journal: an event is on disk before the request is answered, and the journal of a process that died
 * before moving its events to the database is recovered by the next start, without recording anything twice.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { auditRecord } from '../audit-event';
import { AuditLog } from '../audit-log';
import { journalKey, recoverJournals } from '../journal';
import { verifyAuditChain } from '../hash-chain';
import { securityMigrations } from '../../auth/migrations';
import type { Database } from '../../db';
import { createTestDatabase } from '../../../test/databases';

const event = (n: number) =>
  auditRecord({ agent: { clientId: `c${n}` }, interaction: 'read', action: 'R', status: 200, entities: [`Patient/p${n}`] });

describe('audit journal', () => {
  let db: Database;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase('postgres', securityMigrations);
    dir = mkdtempSync(path.join(os.tmpdir(), 'huimin-journal-test-'));
  });
  afterAll(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('journals each event at once and removes the journal once everything is in the database', async () => {
    const log = new AuditLog(db, { journalDir: dir });
    await log.append(event(1));
    expect(readdirSync(dir)).toHaveLength(1);
    await log.append(event(2));
    await log.flushed();
    await log.stop();
    expect(readdirSync(dir)).toEqual([]);
    const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE keys && ARRAY['entity:Patient/p1', 'entity:Patient/p2']`);
    expect(rows[0].n).toBe(2);
  });

  it("recovers a dead process's journal, skipping events already recorded and a half-written last line", async () => {
    const shipped = event(3);
    const lost = event(4);
    const log = new AuditLog(db, { journalDir: dir });
    await log.append(shipped);
    await log.stop();
    // A process (pid 999999, long gone) journaled two events, shipped one, and died while writing a third.
    writeFileSync(path.join(dir, `audit-${journalKey(db)}-999999-1.jsonl`), `${shipped.content}\n${lost.content}\n{"id":"half`);
    expect(await recoverJournals(db, dir)).toBe(2);
    expect(readdirSync(dir)).toEqual([]);
    const rows = await db.query<{ id: string }>(`SELECT id FROM audit_event WHERE keys && ARRAY['entity:Patient/p3', 'entity:Patient/p4']`);
    expect(rows.map((r) => r.id).sort()).toEqual([shipped.id, lost.id].sort());
    const sealer = new AuditLog(db, { journalDir: dir });
    await sealer.seal();
    expect((await verifyAuditChain(db)).ok).toBe(true);
    await sealer.stop();
  });

  it("keeps a write's intent only when the write's own record never came", async () => {
    const finishedIntent = auditRecord({ agent: { clientId: 'w' }, interaction: 'create', action: 'C', status: 0, entities: ['Patient/p5'] });
    const finished = auditRecord({ agent: { clientId: 'w' }, interaction: 'create', action: 'C', status: 201, entities: ['Patient/p5'], intent: finishedIntent.id });
    const orphanIntent = auditRecord({ agent: { clientId: 'w' }, interaction: 'update', action: 'U', status: 0, entities: ['Patient/p6'], description: 'outcome unknown' });
    writeFileSync(path.join(dir, `audit-${journalKey(db)}-999998-1.jsonl`), [finishedIntent, finished, orphanIntent].map((r) => `${r.content}\n`).join(''));
    expect(await recoverJournals(db, dir)).toBe(3);
    const rows = await db.query<{ id: string; keys: string[] }>(`SELECT id, keys FROM audit_event WHERE keys && ARRAY['entity:Patient/p5', 'entity:Patient/p6']`);
    expect(rows.map((r) => r.id).sort()).toEqual([finished.id, orphanIntent.id].sort());
    expect(rows.find((r) => r.id === orphanIntent.id)?.keys).toContain('outcome:8');
  });

  it("leaves another database's journal alone", async () => {
    const other = await createTestDatabase('postgres', securityMigrations);
    try {
      const foreign = event(7);
      const name = `audit-${journalKey(other)}-999997-1.jsonl`;
      writeFileSync(path.join(dir, name), `${foreign.content}\n`);
      expect(await recoverJournals(db, dir, { all: true })).toBe(0);
      expect(readdirSync(dir)).toEqual([name]);
      expect(await recoverJournals(other, dir, { all: true })).toBe(1);
      expect(readdirSync(dir)).toEqual([]);
      const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE keys @> ARRAY['entity:Patient/p7']`);
      expect(rows[0].n).toBe(0);
    } finally {
      await other.close();
    }
  });
});
