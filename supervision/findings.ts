/**
 * Findings (疑点) as FHIR DetectedIssues, each with its first review step as a Task.
 *
 * A finding is written in one store transaction together with its `sv_finding` row (through the write session's
 * own transaction), so a suspicion is raised exactly once per rule and key, however often its facts are
 * re-evaluated, and never half (an issue without its review, or a row without its issue).
 *
 * Findings and their review Tasks are owned by the bureau and labelled as restricted to the bureau and the
 * institution they are about (security's RESTRICTED_TO_SYSTEM): a hospital sees the findings about itself and no
 * others; supervisors and administrators see all.
 */
import { randomUUID } from 'node:crypto';
import type { Coding, DetectedIssue, Extension, Reference, Task } from '@medplum/fhirtypes';
import { OWNER_TAG_SYSTEM, RESTRICTED_TO_SYSTEM, type FhirRepository, type WriteSession } from '../fhir-server';
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
    status: 'requested',
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

  /** Raises the finding unless this rule already raised one with this key; returns it when new. */
  async raise(rule: Rule, c: Candidate): Promise<RaisedFinding | undefined> {
    const issueId = randomUUID();
    const now = this.now();
    return this.repo.write(async (session) => {
      const claimed = await session.tx.query(
        `INSERT INTO sv_finding (rule_id, key, issue_id, rule_version, institution, department, practitioner, occurred_at, detected_at, step, step_due, implicated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'first-review', $10, $11)
         ON CONFLICT (rule_id, key) DO NOTHING RETURNING issue_id`,
        [rule.id, c.key, issueId, rule.version, c.institution ?? null, c.department ?? null, c.practitioner ?? null, c.occurredAt,
          new Date(now).toISOString(), new Date(now + this.config.reviewDeadlines['first-review']).toISOString(), c.implicated],
      );
      if (claimed.length === 0) {
        return undefined;
      }
      await session.create(await this.issue(session, rule, c, issueId, now), issueId);
      const task = await session.create(stepTask(this.config, issueId, c.institution, 'first-review', now));
      await session.tx.query('UPDATE sv_finding SET step_task = $1 WHERE issue_id = $2', [task.id, issueId]);
      return { issueId, ruleId: rule.id, key: c.key };
    });
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

  private async issue(session: WriteSession, rule: Rule, c: Candidate, issueId: string, now: number): Promise<DetectedIssue> {
    // Records that no longer exist (deleted since) are named, not referenced, so the finding can still be written.
    const implicated: Reference[] = [];
    for (const ref of c.implicated.slice(0, 100)) {
      const [type, id] = ref.split('/');
      implicated.push((await session.read(type, id)) ? { reference: ref } : { display: `${ref} (no longer in the store)` });
    }
    const patientExists = c.patient ? !!(await session.read('Patient', c.patient.split('/')[1])) : false;
    const institutionExists = c.institution ? !!(await session.read('Organization', c.institution.split('/')[1])) : false;
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
