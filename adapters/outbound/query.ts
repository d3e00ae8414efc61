/**
 * QBP^Q22 (IHE PDQ): asks a facility's system for a patient's demographics by identifier, when the platform needs to
 * pull. The RSP^K22 answer's PID segments are mapped like inbound ones; nothing is stored (the caller decides).
 */
import type { Patient } from '@medplum/fhirtypes';
import type { FhirRepository } from '../../fhir-server';
import type { Facility } from '../facilities';
import { parseHl7 } from '../hl7/message';
import { patientFromPid } from '../mapping/patient';
import { qbpQ22 } from './messages';
import { facilityEndpoint, SendError, sendMessage } from './sender';

export async function queryDemographics(repo: FhirRepository, facility: Facility, identifier: { system?: string; value: string }, sendingFacility = 'HUIMIN'): Promise<Patient[]> {
  const endpoint = await facilityEndpoint(repo, facility.id);
  const answer = parseHl7(await sendMessage(endpoint, qbpQ22({ sendingFacility, receivingFacility: facility.key }, identifier)));
  const qak = answer.segment('QAK');
  if (answer.messageType !== 'RSP' || !qak) {
    throw new SendError(`${facility.key} answered ${answer.messageType}^${answer.triggerEvent}, not RSP^K22`);
  }
  // QAK-2: OK (found), NF (not found), AE/AR (errors).
  const status = qak.get(2).toUpperCase();
  if (status === 'NF') return [];
  if (status !== 'OK') throw new SendError(`${facility.key} answered the query with QAK-2 ${status}`);
  return answer.all('PID').map((pid) => patientFromPid(pid, facility).patient);
}
