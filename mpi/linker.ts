/**
 * The index's decisions: which golden record each source Patient is filed under.
 *
 * Every change runs in one store transaction under one advisory lock (decisions about one resident depend on the
 * records of others, and two simultaneous feeds of the same person must not each create a golden record): the
 * source is read, its demographics and blocking keys are stored, the decision is taken and recorded with its
 * evidence, and the golden records and the source's `refer` link are written through the same WriteSession. A
 * change that alters nothing the decision rests on (the index's own link writes, a repeated event) is a no-op, so
 * the index's writes never feed back into more writes.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Patient } from '@medplum/fhirtypes';
import { badRequest, FhirError, notFound, type FhirRepository, type Queryable, type WriteSession } from '../fhir-server';
import { blockingKeys, demographicsOf, type Demographics } from './demographics';
import { buildGolden, goldenOf, isGolden, referTo, replacedBy, sameContent } from './golden';
import { compareRecords, decisionOf, DEFAULT_THRESHOLDS, type FieldEvidence, type MatchResult, type MatchThresholds } from './scoring';

/** Arbitrary constant naming "master patient index decisions" among advisory locks. */
const MPI_LOCK_KEY = 7_000_202_611;

export interface IndexSettings {
  thresholds: MatchThresholds;
  /** Most candidates scored for one record (the blocking keys keep it far below this). */
  maxCandidates: number;
}

export const DEFAULT_INDEX_SETTINGS: IndexSettings = { thresholds: DEFAULT_THRESHOLDS, maxCandidates: 500 };

interface Entry {
  id: string;
  golden_id: string;
  demographics: Demographics;
  fingerprint: string;
  pinned: boolean;
}

export interface Candidate {
  sourceId: string;
  goldenId: string;
  result: MatchResult;
}

export interface Decision {
  id: number;
  sourceId: string;
  goldenId: string;
  action: string;
  method: string;
  weight: number | null;
  evidence: unknown;
  decidedBy: string;
  decidedAt: string;
  undoneBy: number | null;
}

export interface ReviewItem {
  id: number;
  sourceId: string;
  goldenId: string;
  weight: number;
  evidence: FieldEvidence[];
  status: string;
  createdAt: string;
  decidedBy?: string;
}

/** What one decision changed (tests, the worker's log). */
export interface ReconcileOutcome {
  sourceId: string;
  goldenId?: string;
  action: 'unchanged' | 'linked' | 'moved' | 'new-golden' | 'removed' | 'ignored';
}

/** The writes of one transaction, done once each at its end (a resource may not be written twice in one). */
class Pending {
  readonly goldens = new Map<string, string | undefined>();
  readonly sources = new Map<string, Patient>();
  touchGolden(id: string, replacedById?: string): void {
    this.goldens.set(id, replacedById ?? this.goldens.get(id));
  }
}

/** What decisions and the golden record rest on: the demographics, the merge, and the fields copied to the golden record. */
const fingerprintOf = (d: Demographics, mergedInto: string | undefined, p: Patient): string =>
  createHash('sha256')
    .update(JSON.stringify([d, mergedInto ?? null, p.name, p.gender, p.birthDate, p.telecom, p.address, p.deceasedBoolean, p.deceasedDateTime, p.active]))
    .digest('base64url');

export class PatientIndex {
  constructor(
    private readonly repo: FhirRepository,
    readonly settings: IndexSettings = DEFAULT_INDEX_SETTINGS,
  ) {}

  /** Brings the index up to date with one Patient (a change event, or after a merge): idempotent. */
  async reconcile(patientId: string, by = 'mpi'): Promise<ReconcileOutcome> {
    return this.locked(async (s, pending) => this.reconcileIn(s, pending, patientId, by, 0));
  }

  /**
   * Runs `fn` under the index's lock and writes what it touched. A hospital may update a source Patient between
   * the index's read and its write (the lock is the index's, not the hospital's): the source is written with
   * If-Match on the version read, and on a 412 the whole decision is taken again from the new version.
   */
  private async locked<T>(fn: (s: WriteSession, pending: Pending) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.repo.write(async (s) => {
          await s.tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [MPI_LOCK_KEY]);
          const pending = new Pending();
          const result = await fn(s, pending);
          await this.flush(s, pending);
          return result;
        });
      } catch (err) {
        if (!(err instanceof FhirError && err.status === 412) || attempt >= 5) throw err;
      }
    }
  }

  private async reconcileIn(s: WriteSession, pending: Pending, patientId: string, by: string, depth: number): Promise<ReconcileOutcome> {
    const patient = await s.read<Patient>('Patient', patientId);
    const entry = await this.entry(s.tx, patientId);
    if (!patient) {
      if (entry) {
        await s.tx.query('DELETE FROM mpi_key WHERE patient_id = $1', [patientId]);
        await s.tx.query('DELETE FROM mpi_patient WHERE id = $1', [patientId]);
        await this.record(s.tx, { sourceId: patientId, goldenId: entry.golden_id, action: 'unlink', method: 'deleted', evidence: [], by });
        pending.touchGolden(entry.golden_id);
        return { sourceId: patientId, goldenId: entry.golden_id, action: 'removed' };
      }
      return { sourceId: patientId, action: 'ignored' };
    }
    if (isGolden(patient)) {
      return { sourceId: patientId, action: 'ignored' };
    }
    const demographics = demographicsOf(patient);
    const mergedInto = replacedBy(patient);
    const fingerprint = fingerprintOf(demographics, mergedInto, patient);
    if (entry && entry.fingerprint === fingerprint) {
      // Nothing the decision rests on changed (the index's own write of the link, a repeated event).
      if (goldenOf(patient) !== entry.golden_id) pending.sources.set(patientId, patient);
      return { sourceId: patientId, goldenId: entry.golden_id, action: 'unchanged' };
    }
    let target: { goldenId: string; method: string; weight: number | null; evidence: unknown; pinned: boolean };
    if (mergedInto && mergedInto !== patientId && depth < 3) {
      // A merge (ADT^A40, $merge): filed under the survivor's golden record, as a person decided.
      const survivor = (await this.entry(s.tx, mergedInto)) ? undefined : await this.reconcileIn(s, pending, mergedInto, by, depth + 1);
      const survivorGolden = survivor?.goldenId ?? (await this.entry(s.tx, mergedInto))?.golden_id;
      if (!survivorGolden) throw notFound(`Patient/${patientId} was merged into Patient/${mergedInto}, which does not exist`);
      target = { goldenId: survivorGolden, method: 'merge', weight: null, evidence: [{ field: 'merge', outcome: `replaced by Patient/${mergedInto}` }], pinned: true };
    } else if (entry?.pinned) {
      target = { goldenId: entry.golden_id, method: 'manual', weight: null, evidence: [], pinned: true };
    } else {
      target = { ...(await this.decide(s, patientId, demographics, entry)), pinned: false };
    }
    await s.tx.query(
      `INSERT INTO mpi_patient (id, golden_id, demographics, fingerprint, pinned, updated_at) VALUES ($1, $2, $3, $4, $5, now())
       ON CONFLICT (id) DO UPDATE SET golden_id = excluded.golden_id, demographics = excluded.demographics,
         fingerprint = excluded.fingerprint, pinned = excluded.pinned, updated_at = now()`,
      [patientId, target.goldenId, JSON.stringify(demographics), fingerprint, target.pinned],
    );
    await s.tx.query('DELETE FROM mpi_key WHERE patient_id = $1', [patientId]);
    const keys = blockingKeys(demographics);
    if (keys.length) {
      await s.tx.query('INSERT INTO mpi_key (key, patient_id) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING', [keys, patientId]);
    }
    pending.touchGolden(target.goldenId);
    pending.sources.set(patientId, patient);
    const previous = entry?.golden_id;
    // A merge is recorded even when the records were already together: from now on it is a person's decision.
    const newlyMerged = target.method === 'merge' && !entry?.pinned;
    if (previous === target.goldenId && !newlyMerged) {
      return { sourceId: patientId, goldenId: target.goldenId, action: 'unchanged' };
    }
    if (previous && previous !== target.goldenId) pending.touchGolden(previous, target.goldenId);
    const isNew = !(await s.read<Patient>('Patient', target.goldenId));
    await this.record(s.tx, {
      sourceId: patientId,
      goldenId: target.goldenId,
      action: target.method === 'merge' ? 'merge' : 'link',
      method: target.method,
      weight: target.weight,
      evidence: target.evidence,
      by,
    });
    await s.tx.query(`UPDATE mpi_review SET status = 'obsolete', decided_at = now() WHERE source_id = $1 AND golden_id = $2 AND status = 'open'`, [patientId, target.goldenId]);
    return { sourceId: patientId, goldenId: target.goldenId, action: previous === target.goldenId ? 'unchanged' : previous ? 'moved' : isNew ? 'new-golden' : 'linked' };
  }

  /** The automatic decision: national identifiers first, then the scores against candidates of the blocking keys. */
  private async decide(
    s: WriteSession,
    patientId: string,
    demographics: Demographics,
    entry: Entry | undefined,
  ): Promise<{ goldenId: string; method: string; weight: number | null; evidence: unknown }> {
    const excluded = new Set(
      (await s.tx.query<{ golden_id: string }>('SELECT golden_id FROM mpi_exclusion WHERE source_id = $1', [patientId])).map((r) => r.golden_id),
    );
    const candidates = (await this.candidates(demographics, patientId, s.tx)).filter((c) => !excluded.has(c.goldenId));
    const ownGolden = async (): Promise<string> => {
      // Its present golden record if it is alone there; a new one otherwise.
      if (entry && !excluded.has(entry.golden_id)) {
        const others = await s.tx.query('SELECT 1 FROM mpi_patient WHERE golden_id = $1 AND id <> $2 LIMIT 1', [entry.golden_id, patientId]);
        if (others.length === 0) return entry.golden_id;
      }
      return randomUUID();
    };
    const certain = candidates.filter((c) => c.result.grade === 'certain');
    if (certain.length) {
      const goldens = [...new Set(certain.map((c) => c.goldenId))];
      const chosen = entry && goldens.includes(entry.golden_id) ? entry.golden_id : goldens[0];
      // The same number filed under two golden records (one was split by hand): a person decides about the other.
      for (const other of certain.filter((c) => c.goldenId !== chosen)) {
        await this.openReview(s.tx, patientId, other.goldenId, other.result);
      }
      const best = certain.find((c) => c.goldenId === chosen) as Candidate;
      return { goldenId: chosen, method: 'identifier', weight: null, evidence: [...best.result.evidence, { field: 'candidate', outcome: `Patient/${best.sourceId}` }] };
    }
    const best = candidates.find((c) => c.result.weight !== -Infinity);
    if (best && decisionOf(best.result, this.settings.thresholds) === 'link') {
      return { goldenId: best.goldenId, method: 'score', weight: best.result.weight, evidence: [...best.result.evidence, { field: 'candidate', outcome: `Patient/${best.sourceId}` }] };
    }
    // Hysteresis: a record already filed under a golden record stays there while the new data still put it in
    // review range (an ADT^A40 whose PID lacks the phone must not split a resident); only contrary evidence moves it.
    const current = entry && !excluded.has(entry.golden_id) ? candidates.find((c) => c.goldenId === entry.golden_id) : undefined;
    if (current && decisionOf(current.result, this.settings.thresholds) === 'review') {
      return {
        goldenId: current.goldenId,
        method: 'score',
        weight: current.result.weight,
        evidence: [...current.result.evidence, { field: 'kept', outcome: 'already filed here; the changed record does not contradict it' }],
      };
    }
    const goldenId = await ownGolden();
    for (const c of candidates) {
      if (c.goldenId !== goldenId && decisionOf(c.result, this.settings.thresholds) === 'review') {
        await this.openReview(s.tx, patientId, c.goldenId, c.result);
      }
    }
    return {
      goldenId,
      method: 'new',
      weight: best ? best.result.weight : null,
      evidence: best ? [{ field: 'best-candidate', outcome: `Patient/${best.sourceId} (weight ${best.result.weight}, below auto-link)` }] : [],
    };
  }

  /**
   * The indexed records sharing a blocking key with these demographics, scored, best first, one per golden record
   * (its best-scoring source). An index range per key; never a scan.
   */
  async candidates(demographics: Demographics, exceptId?: string, q: Queryable = this.repo.db): Promise<Candidate[]> {
    const keys = blockingKeys(demographics);
    if (keys.length === 0) return [];
    const rows = await q.query<{ id: string; golden_id: string; demographics: Demographics | string }>(
      `SELECT p.id, p.golden_id, p.demographics FROM mpi_patient p
        WHERE p.id IN (SELECT k.patient_id FROM mpi_key k WHERE k.key = ANY($1::text[]) LIMIT $2)
          AND p.id IS DISTINCT FROM $3`,
      [keys, this.settings.maxCandidates, exceptId ?? null],
    );
    const byGolden = new Map<string, Candidate>();
    for (const row of rows) {
      const other = typeof row.demographics === 'string' ? (JSON.parse(row.demographics) as Demographics) : row.demographics;
      const result = compareRecords(demographics, other, this.settings.thresholds);
      const known = byGolden.get(row.golden_id);
      // A golden record is as close as its closest source; a source with a different resident ID rules it out.
      if (!known || (known.result.weight !== -Infinity && (result.weight > known.result.weight || result.weight === -Infinity))) {
        byGolden.set(row.golden_id, { sourceId: row.id, goldenId: row.golden_id, result });
      }
    }
    return [...byGolden.values()].sort((a, b) => b.result.weight - a.result.weight);
  }

  private async openReview(q: Queryable, sourceId: string, goldenId: string, result: MatchResult): Promise<void> {
    await q.query(
      `INSERT INTO mpi_review (source_id, golden_id, weight, evidence) VALUES ($1, $2, $3, $4)
       ON CONFLICT (source_id, golden_id) DO UPDATE SET weight = excluded.weight, evidence = excluded.evidence,
         status = CASE WHEN mpi_review.status = 'rejected' THEN 'rejected' ELSE 'open' END`,
      [sourceId, goldenId, Number.isFinite(result.weight) ? result.weight : 99, JSON.stringify(result.evidence)],
    );
  }

  private async entry(q: Queryable, id: string): Promise<Entry | undefined> {
    const rows = await q.query<Entry>('SELECT id, golden_id, demographics, fingerprint, pinned FROM mpi_patient WHERE id = $1', [id]);
    const row = rows[0];
    if (row && typeof row.demographics === 'string') row.demographics = JSON.parse(row.demographics) as Demographics;
    return row;
  }

  private async record(
    q: Queryable,
    d: { sourceId: string; goldenId: string; action: string; method: string; weight?: number | null; evidence: unknown; by: string },
  ): Promise<number> {
    const rows = await q.query<{ id: string }>(
      `INSERT INTO mpi_decision (source_id, golden_id, action, method, weight, evidence, decided_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
      [d.sourceId, d.goldenId, d.action, d.method, d.weight ?? null, JSON.stringify(d.evidence), d.by],
    );
    return Number(rows[0].id);
  }

  /** Writes each touched golden record and source once: only what changed. */
  private async flush(s: WriteSession, pending: Pending): Promise<void> {
    for (const [goldenId, replacedById] of pending.goldens) {
      const ids = (await s.tx.query<{ id: string }>('SELECT id FROM mpi_patient WHERE golden_id = $1 ORDER BY updated_at DESC, id', [goldenId])).map((r) => r.id);
      const sources: Patient[] = [];
      for (const id of ids) {
        const p = pending.sources.get(id) ?? (await s.read<Patient>('Patient', id));
        if (p) sources.push(p);
      }
      const existing = await s.read<Patient>('Patient', goldenId);
      if (!existing && sources.length === 0) continue;
      const golden = buildGolden(goldenId, sources, existing, replacedById);
      if (!sameContent(existing, golden)) {
        await s.update('Patient', goldenId, golden);
      }
    }
    for (const [id, source] of pending.sources) {
      const goldenId = (await this.entry(s.tx, id))?.golden_id;
      if (goldenId && goldenOf(source) !== goldenId) {
        await s.update('Patient', id, referTo(source, goldenId), Number(source.meta?.versionId));
      }
    }
  }

  // ---- decisions by people (operations) ----

  /** Undoes a source's present link: it gets a golden record of its own, and is never linked back automatically. */
  async unlink(sourceId: string, by: string): Promise<{ goldenId: string; previous: string }> {
    return this.locked(async (s, pending) => {
      const entry = await this.entry(s.tx, sourceId);
      if (!entry) throw notFound(`Patient/${sourceId} is not in the master patient index (a golden record, or not a patient)`);
      const last = await s.tx.query<{ id: string }>(
        `SELECT id FROM mpi_decision WHERE source_id = $1 AND golden_id = $2 AND action IN ('link', 'merge') AND undone_by IS NULL ORDER BY id DESC LIMIT 1`,
        [sourceId, entry.golden_id],
      );
      const goldenId = randomUUID();
      const decision = await this.record(s.tx, { sourceId, goldenId, action: 'unlink', method: 'manual', evidence: [{ field: 'undone', outcome: `no longer filed under Patient/${entry.golden_id}` }], by });
      if (last[0]) await s.tx.query('UPDATE mpi_decision SET undone_by = $1 WHERE id = $2', [decision, last[0].id]);
      await s.tx.query('INSERT INTO mpi_exclusion (source_id, golden_id, decision_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [sourceId, entry.golden_id, decision]);
      await s.tx.query('UPDATE mpi_patient SET golden_id = $2, pinned = true, updated_at = now() WHERE id = $1', [sourceId, goldenId]);
      pending.touchGolden(entry.golden_id);
      pending.touchGolden(goldenId);
      const patient = await s.read<Patient>('Patient', sourceId);
      if (patient) pending.sources.set(sourceId, patient);
      return { goldenId, previous: entry.golden_id };
    });
  }

  /** Files a source under a golden record, as a person decided (a review, a manual link). */
  async link(sourceId: string, goldenId: string, by: string, reviewId?: number): Promise<void> {
    await this.locked(async (s, pending) => {
      const entry = await this.entry(s.tx, sourceId);
      if (!entry) throw notFound(`Patient/${sourceId} is not in the master patient index`);
      const golden = await s.read<Patient>('Patient', goldenId);
      if (!golden || !isGolden(golden)) throw badRequest(`Patient/${goldenId} is not a golden record of the master patient index`);
      if (entry.golden_id === goldenId) return;
      await s.tx.query('DELETE FROM mpi_exclusion WHERE source_id = $1 AND golden_id = $2', [sourceId, goldenId]);
      await this.record(s.tx, { sourceId, goldenId, action: 'link', method: 'manual', evidence: reviewId ? [{ field: 'review', outcome: `review ${reviewId}` }] : [], by });
      await s.tx.query('UPDATE mpi_patient SET golden_id = $2, pinned = true, updated_at = now() WHERE id = $1', [sourceId, goldenId]);
      pending.touchGolden(entry.golden_id, goldenId);
      pending.touchGolden(goldenId);
      const patient = await s.read<Patient>('Patient', sourceId);
      if (patient) pending.sources.set(sourceId, patient);
    });
  }

  /** Decides a review item: `link` files the source under the golden record, `no-link` keeps them apart for good. */
  async decideReview(reviewId: number, decision: 'link' | 'no-link', by: string): Promise<ReviewItem> {
    const item = (await this.reviews({ id: reviewId }))[0];
    if (!item) throw notFound(`Review item ${reviewId} does not exist`);
    if (item.status !== 'open') throw badRequest(`Review item ${reviewId} is ${item.status}, not open`);
    if (decision === 'link') {
      await this.link(item.sourceId, item.goldenId, by, reviewId);
    } else {
      await this.locked(async (s) => {
        const id = await this.record(s.tx, { sourceId: item.sourceId, goldenId: item.goldenId, action: 'reject', method: 'manual', weight: item.weight, evidence: item.evidence, by });
        await s.tx.query('INSERT INTO mpi_exclusion (source_id, golden_id, decision_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [item.sourceId, item.goldenId, id]);
      });
    }
    await this.repo.db.query(`UPDATE mpi_review SET status = $2, decided_at = now(), decided_by = $3 WHERE id = $1`, [reviewId, decision === 'link' ? 'linked' : 'rejected', by]);
    return (await this.reviews({ id: reviewId }))[0];
  }

  async reviews(filter: { id?: number; status?: string; patient?: string; count?: number }): Promise<ReviewItem[]> {
    const rows = await this.repo.db.query<Record<string, unknown>>(
      `SELECT id, source_id, golden_id, weight, evidence, status, created_at, decided_by FROM mpi_review
        WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR source_id = $3 OR golden_id = $3)
        ORDER BY id LIMIT $4`,
      [filter.id ?? null, filter.status ?? null, filter.patient ?? null, filter.count ?? 100],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      sourceId: r.source_id as string,
      goldenId: r.golden_id as string,
      weight: Number(r.weight),
      evidence: (typeof r.evidence === 'string' ? JSON.parse(r.evidence) : r.evidence) as FieldEvidence[],
      status: r.status as string,
      createdAt: new Date(r.created_at as string).toISOString(),
      ...(r.decided_by ? { decidedBy: r.decided_by as string } : {}),
    }));
  }

  /** The decisions about a source or a golden record, oldest first. */
  async decisions(patientId: string): Promise<Decision[]> {
    const rows = await this.repo.db.query<Record<string, unknown>>(
      `SELECT * FROM mpi_decision WHERE source_id = $1 OR golden_id = $1 ORDER BY id LIMIT 1000`,
      [patientId],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      sourceId: r.source_id as string,
      goldenId: r.golden_id as string,
      action: r.action as string,
      method: r.method as string,
      weight: r.weight === null ? null : Number(r.weight),
      evidence: typeof r.evidence === 'string' ? JSON.parse(r.evidence) : r.evidence,
      decidedBy: r.decided_by as string,
      decidedAt: new Date(r.decided_at as string).toISOString(),
      undoneBy: r.undone_by === null ? null : Number(r.undone_by),
    }));
  }

  /** The source records filed under a golden record, and the golden record of a source. */
  async goldenOfSource(sourceId: string): Promise<string | undefined> {
    return (await this.entry(this.repo.db, sourceId))?.golden_id;
  }

  async sourcesOf(goldenId: string): Promise<string[]> {
    return (await this.repo.db.query<{ id: string }>('SELECT id FROM mpi_patient WHERE golden_id = $1 ORDER BY id', [goldenId])).map((r) => r.id);
  }

  /** The indexed sources holding this national identifier (`kind|value`). */
  async sourcesWithId(kindValue: string): Promise<string[]> {
    return (await this.repo.db.query<{ patient_id: string }>('SELECT patient_id FROM mpi_key WHERE key = $1', [`id:${kindValue}`])).map((r) => r.patient_id);
  }
}
