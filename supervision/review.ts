/**
 * The review of a finding: first review → second review → the hospital's appeal → verification → disposition.
 * Each step is a Task with a deadline, owned by the bureau or (for the appeal) by the hospital; a decision completes
 * the step's Task and opens the next one, or closes the finding with its outcome (confirmed, dismissed, corrected),
 * recorded on the DetectedIssue (status, mitigation, review extension).
 *
 * Who decides is checked here, from the caller security established: bureau steps are for supervisors (and
 * administrators), the appeal for the hospital the finding is about (its facility-system or clinician clients).
 * An appeal not answered by its deadline goes on to verification without one (the periodic tick), and a bureau
 * step past its deadline is marked overdue on its Task.
 */
import type { DetectedIssue, Parameters, Task } from '@medplum/fhirtypes';
import { badRequest, conflict, FhirError, issue, notFound, outcome, type CallerIdentity, type FhirRepository } from '../fhir-server';
import { REVIEW_STEPS, type ReviewStep, type SupervisionConfig } from './config';
import { BUSINESS_STATUS_SYSTEM, REVIEW_DECISION_SYSTEM, REVIEW_EXTENSION, REVIEW_OUTCOME_SYSTEM, TASK_IO_SYSTEM } from './fhir';
import { reviewExtension, stepTask } from './findings';

export type ReviewOutcome = 'confirmed' | 'dismissed' | 'corrected';

/** The decisions each step takes. `no-answer` is the platform's own, when an appeal's deadline passes. */
export const DECISIONS: Record<ReviewStep, readonly string[]> = {
  'first-review': ['proceed', 'dismiss'],
  'second-review': ['proceed', 'dismiss'],
  appeal: ['appeal', 'accept'],
  verification: ['proceed', 'dismiss'],
  disposition: ['confirmed', 'dismissed', 'corrected'],
};

const HOSPITAL_ROLES = ['facility-system', 'clinician'];
const BUREAU_ROLES = ['supervisor'];

const forbidden = (diagnostics: string): FhirError => new FhirError(403, outcome([issue('error', 'forbidden', diagnostics)]));

interface FindingRow {
  issue_id: string;
  rule_id: string;
  institution: string | null;
  step: ReviewStep;
  step_task: string | null;
  closed_at: Date | null;
  outcome: string | null;
}

export interface Decision {
  decision: string;
  note?: string;
}

export interface DecisionResult {
  issueId: string;
  step: ReviewStep | 'closed';
  outcome?: ReviewOutcome;
  taskId?: string;
}

/** Who acted, for the record: the client and its organisation, or the platform itself. */
function actorText(actor: CallerIdentity | 'system'): string {
  return actor === 'system' ? 'Huimin supervision (deadline passed)' : [actor.clientId, actor.organization, actor.practitioner].filter(Boolean).join(' / ');
}

function authorise(actor: CallerIdentity | 'system', step: ReviewStep, institution: string | null): void {
  if (actor === 'system' || actor.role === 'admin') {
    return;
  }
  if (step === 'appeal') {
    if (!HOSPITAL_ROLES.includes(actor.role) || !institution || actor.organization !== institution) {
      throw forbidden(`This finding waits for the appeal of ${institution ?? 'its institution'}; only that hospital's clients answer it (this client: ${actor.role} of ${actor.organization ?? 'no organisation'})`);
    }
    return;
  }
  if (!BUREAU_ROLES.includes(actor.role)) {
    throw forbidden(`The ${step} of a finding is the bureau's: supervisors decide it (this client's role is ${actor.role})`);
  }
}

/**
 * DetectedIssue.status as R4 binds it (preliminary, final, mitigated, entered-in-error): a confirmed suspicion is
 * final, a corrected one mitigated, a dismissed one withdrawn (entered-in-error); the outcome itself is coded in the
 * review extension and the mitigation.
 */
const STATUS_OF: Record<ReviewOutcome, DetectedIssue['status']> = { confirmed: 'final', dismissed: 'entered-in-error', corrected: 'mitigated' };

export class ReviewService {
  constructor(
    private readonly repo: FhirRepository,
    private readonly config: SupervisionConfig,
    private readonly now: () => number,
  ) {}

  async decide(issueId: string, input: Decision, actor: CallerIdentity | 'system'): Promise<DecisionResult> {
    const now = this.now();
    return this.repo.write(async (session) => {
      const rows = await session.tx.query<FindingRow>('SELECT * FROM sv_finding WHERE issue_id = $1 FOR UPDATE', [issueId]);
      const row = rows[0];
      if (!row) {
        throw notFound(`DetectedIssue/${issueId} is not a supervision finding`);
      }
      if (row.closed_at) {
        throw conflict(`Finding DetectedIssue/${issueId} is closed (outcome ${row.outcome}); nothing is left to decide`);
      }
      const step = row.step;
      authorise(actor, step, row.institution);
      const allowed = actor === 'system' ? ['no-answer'] : DECISIONS[step];
      if (!allowed.includes(input.decision)) {
        throw badRequest(`The ${step} of a finding takes decision ${allowed.join(', ')}; got "${input.decision}"`);
      }
      if (input.note && input.note.length > 10_000) {
        throw badRequest('A review note is limited to 10 000 characters');
      }
      if (step === 'appeal' && input.decision === 'appeal' && !input.note?.trim()) {
        throw badRequest("An appeal states the hospital's case in `note`");
      }
      // Complete the current step's Task with the decision.
      if (row.step_task) {
        const task = await session.read<Task>('Task', row.step_task);
        if (task) {
          await session.update('Task', task.id as string, {
            ...task,
            status: 'completed',
            businessStatus: undefined,
            lastModified: new Date(now).toISOString(),
            output: [
              { type: { coding: [{ system: TASK_IO_SYSTEM, code: 'decision' }] }, valueCodeableConcept: { coding: [{ system: REVIEW_DECISION_SYSTEM, code: input.decision }] } },
              ...(input.note ? [{ type: { coding: [{ system: TASK_IO_SYSTEM, code: 'note' }] }, valueString: input.note }] : []),
              { type: { coding: [{ system: TASK_IO_SYSTEM, code: 'actor' }] }, valueString: actorText(actor) },
            ],
          });
        }
      }
      const closing: ReviewOutcome | undefined =
        input.decision === 'dismiss' ? 'dismissed' : step === 'disposition' ? (input.decision as ReviewOutcome) : undefined;
      const issueResource = await session.read<DetectedIssue>('DetectedIssue', issueId);
      if (!issueResource) {
        throw notFound(`DetectedIssue/${issueId} is not in the store`);
      }
      const extension = (issueResource.extension ?? []).filter((e) => e.url !== REVIEW_EXTENSION);
      if (closing) {
        await session.tx.query('UPDATE sv_finding SET step = $2, outcome = $3, closed_at = $4, step_task = NULL, step_due = NULL, overdue = false WHERE issue_id = $1', [
          issueId,
          step,
          closing,
          new Date(now).toISOString(),
        ]);
        await session.update('DetectedIssue', issueId, {
          ...issueResource,
          status: STATUS_OF[closing],
          extension: [...extension, reviewExtension('closed', closing)],
          mitigation: [
            ...(issueResource.mitigation ?? []),
            {
              action: { coding: [{ system: REVIEW_OUTCOME_SYSTEM, code: closing }], text: `Review closed at the ${step}: ${closing}${input.note ? ` (${input.note})` : ''}` },
              date: new Date(now).toISOString(),
            },
          ],
        });
        return { issueId, step: 'closed', outcome: closing };
      }
      const next = REVIEW_STEPS[REVIEW_STEPS.indexOf(step) + 1];
      const task = await session.create(stepTask(this.config, issueId, row.institution ?? undefined, next, now, row.step_task ? `Task/${row.step_task}` : undefined));
      await session.tx.query('UPDATE sv_finding SET step = $2, step_task = $3, step_due = $4, overdue = false WHERE issue_id = $1', [
        issueId,
        next,
        task.id,
        new Date(now + this.config.reviewDeadlines[next]).toISOString(),
      ]);
      await session.update('DetectedIssue', issueId, { ...issueResource, extension: [...extension, reviewExtension(next)] });
      return { issueId, step: next, taskId: task.id };
    });
  }

  /** Steps past their deadline: an appeal goes on without one; a bureau step is marked overdue on its Task. */
  async expireOverdue(): Promise<number> {
    const now = new Date(this.now()).toISOString();
    const due = await this.repo.db.query<{ issue_id: string; step: ReviewStep; step_task: string | null }>(
      'SELECT issue_id, step, step_task FROM sv_finding WHERE closed_at IS NULL AND NOT overdue AND step_due < $1 ORDER BY step_due LIMIT 500',
      [now],
    );
    for (const row of due) {
      if (row.step === 'appeal') {
        await this.decide(row.issue_id, { decision: 'no-answer', note: 'No appeal was received by the deadline' }, 'system');
        continue;
      }
      await this.repo.write(async (session) => {
        const task = row.step_task ? await session.read<Task>('Task', row.step_task) : undefined;
        if (task && task.status === 'ready') {
          await session.update('Task', task.id as string, {
            ...task,
            businessStatus: { coding: [{ system: BUSINESS_STATUS_SYSTEM, code: 'overdue', display: 'Past its deadline' }], text: 'Past its deadline' },
          });
        }
        await session.tx.query('UPDATE sv_finding SET overdue = true WHERE issue_id = $1', [row.issue_id]);
      });
    }
    return due.length;
  }
}

/** A Parameters answer describing where a finding's review stands. */
export function decisionParameters(result: DecisionResult): Parameters {
  return {
    resourceType: 'Parameters',
    parameter: [
      { name: 'finding', valueReference: { reference: `DetectedIssue/${result.issueId}` } },
      { name: 'step', valueCode: result.step },
      ...(result.outcome ? [{ name: 'outcome', valueCode: result.outcome }] : []),
      ...(result.taskId ? [{ name: 'task', valueReference: { reference: `Task/${result.taskId}` } }] : []),
    ],
  };
}
