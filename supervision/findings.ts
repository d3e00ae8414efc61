/**
 * Findings (疑点) as FHIR DetectedIssues, each with its first review step as a Task.
 *
 * Findings are written in one store transaction together with their `sv_finding` rows (through the write session's
 * own transaction), a hundred at a time, so a suspicion is raised exactly once per rule and key, however often its
 * facts are re-evaluated, and never half (an issue without its review, or a row without its issue).
 *
 * Findings and their review Tasks are owned by the bureau and labelled as restricted to the bureau and the
 * institution they are about (security's RESTRICTED_TO_SYSTEM): a hospital sees the findings about itself and no
 * others; supervisors and administrators see all.
 */
import { randomUUID } from 'node:crypto';
import type { Coding, DetectedIssue, Extension, Reference, Task } from '@medplum/fhirtypes';
import { OWNER_TAG_SYSTEM, parseSearch, RESTRICTED_TO_SYSTEM, type FhirRepository } from '../fhir-server';
import type { ReviewStep, SupervisionConfig } from './config';
import {
  FACTS_CHANGED_EXTENSION,
  FINDING_EXTENSION,
  FINDING_GROUP,
  FINDING_ID,
  REVIEW_EXTENSION,
  REVIEW_STEP_ID,
  REVIEW_STEP_SYSTEM,
  RULE_EXTENSION,
  RULE_SYSTEM,
} from './fhir';
import type { Rule } from './rules/catalogue';
import type { Candidate } from './rules/kinds';

export const STEP_DISPLAY: Record<ReviewStep, string> = {
  'first-review': 'First review by the bureau',
  'second-review': 'Second review by the bureau',
  appeal: "Hospital's appeal",
  verification: 'Verification by the bureau',
  disposition: 'Disposition by the bureau',
};

/** The security labels of everything belonging to a finding about `institution`. */
export function findingSecurity(bureau: string, institution: string | undefined): Coding[] {
  return [
    { system: OWNER_TAG_SYSTEM, code: bureau, display: 'owning organization' },
    { system: RESTRICTED_TO_SYSTEM, code: bureau },
    ...(institution && institution !== bureau ? [{ system: RESTRICTED_TO_SYSTEM, code: institution }] : []),
  ];
}

export function reviewExtension(step: ReviewStep | 'closed', outcome?: string): Extension {
  return {
    url: REVIEW_EXTENSION,
    extension: [{ url: 'step', valueCode: step }, ...(outcome ? [{ url: 'outcome', valueCode: outcome }] : [])],
  };
}

/** A review step's Task: owned (Task.owner) by the bureau or, for the appeal, by the hospital; due by its deadline. */
export function stepTask(config: SupervisionConfig, issueId: string, institution: string | undefined, step: ReviewStep, now: number, partOf?: string): Task {
  const owner = step === 'appeal' && institution ? institution : config.bureau;
  return {
    resourceType: 'Task',
    meta: { security: findingSecurity(config.bureau, institution) },
    identifier: [{ system: REVIEW_STEP_ID, value: `${issueId}|${step}` }],
    groupIdentifier: { system: FINDING_GROUP, value: issueId },
    // 'ready', not 'requested': a review step needs no acceptance, and FHIR's Task state machine (which the
    // referral workflow enforces on every Task write) goes from ready, not from requested, to completed.
    status: 'ready',
    intent: 'order',
    priority: 'routine',
    code: { coding: [{ system: REVIEW_STEP_SYSTEM, code: step, display: STEP_DISPLAY[step] }], text: STEP_DISPLAY[step] },
    description: `${STEP_DISPLAY[step]} of finding DetectedIssue/${issueId}`,
    focus: { reference: `DetectedIssue/${issueId}` },
    ...(institution ? { for: { reference: institution } } : {}),
    ...(partOf ? { partOf: [{ reference: partOf }] } : {}),
    authoredOn: new Date(now).toISOString(),
    lastModified: new Date(now).toISOString(),
    requester: { reference: config.bureau },
    owner: { reference: owner },
    restriction: { period: { start: new Date(now).toISOString(), end: new Date(now + config.reviewDeadlines[step]).toISOString() } },
  };
}

export interface RaisedFinding {
  issueId: string;
  ruleId: string;
  key: string;
}

export class FindingWriter {
  constructor(
    private readonly repo: FhirRepository,
    private readonly config: SupervisionConfig,
    private readonly now: () => number,
  ) {}

  /**
   * Raises many findings of one rule in one store transaction (those whose key this rule has not raised yet): one
   * claim statement for all their sv_finding rows, the DetectedIssues and first review Tasks created together (the
   * session writes them set-based), and the step Tasks recorded in one statement. Whether the implicated records,
   * patients and institutions still exist is read before, with one `_id` search per type. All or nothing: a failure
   * leaves none of them, and raising again (BullMQ's retry) raises them then.
   */
  async raiseMany(rule: Rule, candidates: readonly Candidate[]): Promise<RaisedFinding[]> {
    if (candidates.length === 0) return [];
    const now = this.now();
    const refs = new Set<string>();
    for (const c of candidates) {
      for (const r of c.implicated.slice(0, 100)) refs.add(r);
      if (c.patient) refs.add(c.patient);
      if (c.institution) refs.add(c.institution);
    }
    const existing = await this.existing([...refs]);
    return this.repo.write(async (session) => {
      const rows = candidates.map((c) => ({
        key: c.key,
        issue_id: randomUUID(),
        institution: c.institution ?? null,
        department: c.department ?? null,
        practitioner: c.practitioner ?? null,
        occurred_at: c.occurredAt,
        implicated: c.implicated,
      }));
      const claimed = await session.tx.query<{ key: string; issue_id: string }>(
        `INSERT INTO sv_finding (rule_id, key, issue_id, rule_version, institution, department, practitioner, occurred_at, detected_at, step, step_due, implicated)
         SELECT DISTINCT ON (x.key) $1, x.key, x.issue_id, $2, x.institution, x.department, x.practitioner, x.occurred_at, $3, 'first-review', $4, x.implicated
         FROM jsonb_to_recordset($5::jsonb) AS x(key text, issue_id text, institution text, department text, practitioner text, occurred_at timestamptz, implicated text[])
         ORDER BY x.key
         ON CONFLICT (rule_id, key) DO NOTHING RETURNING key, issue_id`,
        [rule.id, rule.version, new Date(now).toISOString(), new Date(now + this.config.reviewDeadlines['first-review']).toISOString(), JSON.stringify(rows)],
      );
      const byKey = new Map(candidates.map((c) => [c.key, c]));
      const raised: RaisedFinding[] = [];
      const tasks: Array<[string, string]> = [];
      for (const { key, issue_id: issueId } of claimed) {
        const c = byKey.get(key) as Candidate;
        await session.create(this.issueResource(rule, c, issueId, now, (ref) => existing.has(ref)), issueId);
        const task = await session.create(stepTask(this.config, issueId, c.institution, 'first-review', now));
        tasks.push([issueId, task.id as string]);
        raised.push({ issueId, ruleId: rule.id, key });
      }
      if (tasks.length) {
        await session.tx.query(
          `UPDATE sv_finding f SET step_task = t.task FROM unnest($1::text[], $2::text[]) AS t(issue, task) WHERE f.issue_id = t.issue`,
          [tasks.map((t) => t[0]), tasks.map((t) => t[1])],
        );
      }
      return raised;
    });
  }

  /** Which of these `Type/id` references exist now (one `_id` search per type). */
  private async existing(refs: readonly string[]): Promise<Set<string>> {
    const byType = new Map<string, string[]>();
    for (const ref of refs) {
      const [type, id] = ref.split('/');
      if (type && id && /^[A-Za-z0-9\-.]{1,64}$/.test(id)) byType.set(type, [...(byType.get(type) ?? []), id]);
    }
    const found = new Set<string>();
    for (const [type, ids] of byType) {
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        const page = await this.repo.search(parseSearch(type, { _id: [chunk.join(',')] }), { count: chunk.length, offset: 0 });
        for (const row of page.rows) found.add(`${row.resourceType}/${row.id}`);
      }
    }
    return found;
  }

  /**
   * After the facts of `changedRefs` changed (an Encounter's discharge moved, a diagnosis was corrected, a record
   * was deleted): the open findings of this rule that implicate them and are no longer among its candidates
   * (`holding`) get a note saying so, and those noted before that hold again get a note too. A finding is never
   * withdrawn here: it stays for its review, which dismisses or corrects it with the note as evidence.
   */
  async reconcile(rule: Rule, holding: ReadonlySet<string>, changedRefs: readonly string[]): Promise<number> {
    const open = await this.repo.db.query<{ issue_id: string; key: string; facts_changed_at: Date | null }>(
      `SELECT issue_id, key, facts_changed_at FROM sv_finding WHERE rule_id = $1 AND closed_at IS NULL AND implicated && $2::text[]`,
      [rule.id, changedRefs],
    );
    let noted = 0;
    for (const f of open) {
      const holds = holding.has(f.key);
      if (holds === (f.facts_changed_at === null)) continue;
      const now = this.now();
      const changed = changedRefs.filter((r) => r.includes('/'));
      await this.repo.write(async (session) => {
        const marked = await session.tx.query(
          `UPDATE sv_finding SET facts_changed_at = $2 WHERE issue_id = $1 AND (facts_changed_at IS NULL) = $3 RETURNING issue_id`,
          [f.issue_id, holds ? null : new Date(now).toISOString(), !holds],
        );
        if (marked.length === 0) return; // another worker noted it meanwhile
        const issue = await session.read<DetectedIssue>('DetectedIssue', f.issue_id);
        if (!issue) return;
        const text = holds
          ? `The records changed again and rule ${rule.id} version ${rule.version} holds once more.`
          : `The records this finding rests on changed after it was raised (${changed.slice(0, 10).join(', ')}); under rule ${rule.id} version ${rule.version} the suspicion no longer holds. It stays open for its review to dismiss or correct.`;
        await session.update('DetectedIssue', f.issue_id, {
          ...issue,
          extension: [
            ...(issue.extension ?? []),
            {
              url: FACTS_CHANGED_EXTENSION,
              extension: [
                { url: 'at', valueDateTime: new Date(now).toISOString() },
                { url: 'holds', valueBoolean: holds },
                { url: 'note', valueString: text },
              ],
            },
          ],
        });
      });
      noted++;
    }
    return noted;
  }

  private issueResource(rule: Rule, c: Candidate, issueId: string, now: number, exists: (ref: string) => boolean): DetectedIssue {
    // Records that no longer exist (deleted since) are named, not referenced, so the finding can still be written.
    const implicated: Reference[] = c.implicated.slice(0, 100).map((ref) => (exists(ref) ? { reference: ref } : { display: `${ref} (no longer in the store)` }));
    const patientExists = c.patient ? exists(c.patient) : false;
    const institutionExists = c.institution ? exists(c.institution) : false;
    const finding: Extension[] = [
      ...(c.value !== undefined ? [{ url: 'measured', valueDecimal: Math.round(c.value * 1000) / 1000 }] : []),
      ...(c.threshold !== undefined ? [{ url: 'threshold', valueDecimal: c.threshold }] : []),
      ...(c.unit ? [{ url: 'unit', valueString: c.unit }] : []),
      ...(c.institution ? [{ url: 'institution', valueReference: institutionExists ? { reference: c.institution } : { display: c.institution } }] : []),
      { url: 'occurred', valueDateTime: c.occurredAt },
      { url: 'key', valueString: c.key },
    ];
    return {
      resourceType: 'DetectedIssue',
      id: issueId,
      meta: { security: findingSecurity(this.config.bureau, c.institution) },
      extension: [
        {
          url: RULE_EXTENSION,
          extension: [
            { url: 'id', valueCode: rule.id },
            { url: 'version', valueInteger: rule.version },
            { url: 'category', valueCode: rule.category },
            { url: 'kind', valueCode: rule.kind },
            { url: 'legalBasis', valueString: rule.legalBasis },
          ],
        },
        { url: FINDING_EXTENSION, extension: finding },
        reviewExtension('first-review'),
      ],
      identifier: [{ system: FINDING_ID, value: `${rule.id}|${c.key}` }],
      status: 'preliminary',
      code: { coding: [{ system: RULE_SYSTEM, code: rule.id, display: rule.title }], text: `${rule.title} (rule ${rule.id} version ${rule.version})` },
      severity: rule.severity,
      ...(c.patient && patientExists ? { patient: { reference: c.patient } } : {}),
      identifiedDateTime: new Date(now).toISOString(),
      ...(implicated.length ? { implicated } : {}),
      detail: `${c.detail}. Rule ${rule.id} version ${rule.version} (${rule.category})${c.threshold !== undefined ? `, threshold ${c.threshold}${c.unit ? ` ${c.unit}` : ''}` : ''}.`,
    };
  }
}
