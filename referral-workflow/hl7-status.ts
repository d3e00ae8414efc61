/**
 * HL7 v2 table 0283 (referral status: A accepted, P pending, R rejected, E expired) against FHIR Task status, both
 * ways, for the adapters' REF^I12/RRI^I12 messages. "Expired" is the engine's overdue referral: still `received`,
 * with businessStatus overdue, so that the mapping round-trips.
 */
import type { Task } from '@medplum/fhirtypes';
import { businessStatus, businessStatusOf } from './fhir';

export type ReferralStatus0283 = 'A' | 'P' | 'R' | 'E';

/** The 0283 code of a Task. */
export function taskStatusTo0283(task: Pick<Task, 'status' | 'businessStatus'>): ReferralStatus0283 {
  switch (task.status) {
    case 'accepted':
    case 'ready':
    case 'in-progress':
    case 'on-hold':
    case 'completed':
      return 'A';
    case 'rejected':
    case 'cancelled':
    case 'failed':
    case 'entered-in-error':
      return 'R';
    default:
      return businessStatusOf(task as Task) === 'overdue' ? 'E' : 'P';
  }
}

/** The Task status (and businessStatus, for E) that a 0283 code stands for. */
export function taskStatusFrom0283(code: string): Pick<Task, 'status' | 'businessStatus'> {
  switch (code.toUpperCase()) {
    case 'A':
      return { status: 'accepted' };
    case 'P':
      return { status: 'requested' };
    case 'R':
      return { status: 'rejected' };
    case 'E':
      return { status: 'received', businessStatus: businessStatus('overdue', 'No answer by the deadline') };
    default:
      throw new Error(`"${code}" is not an HL7 table 0283 referral status (A, P, R or E)`);
  }
}
