/**
 * `Patient/[id]/$consent-notice`: whether the patient's consents withhold part of the record from the caller's
 * organisation, so that a viewer can say "part of this record is not shown" instead of letting a doctor take an
 * incomplete record for a whole one. It says only how much (the whole of a linked hospital record, or part), never
 * which Consent or what: a label such as mental health would itself disclose what the patient chose to keep private.
 * Deployments whose rules forbid even that much leave it off (`CONSENT_NOTICE=off`), and the operation is not offered.
 */
import type { Parameters, Patient } from '@medplum/fhirtypes';
import type { Queryable } from '../db';
import type { FhirOperation, FhirRequest, FhirResponse, OperationTarget, RouteContext } from '../rest';
import { ConsentDecisions } from './consent-decisions';
import { isRole, rulesOf } from './roles';

export const CONSENT_NOTICE_DEFINITION = 'http://huimin.health/fhir/OperationDefinition/Patient-consent-notice';

export function consentNoticeOperation(db: Queryable): FhirOperation {
  const decisions = new ConsentDecisions(db);
  return {
    name: 'consent-notice',
    definition: CONSENT_NOTICE_DEFINITION,
    levels: ['instance'],
    resourceTypes: ['Patient'],
    affectsState: false,
    async invoke(ctx: RouteContext, _request: FhirRequest, target: OperationTarget): Promise<FhirResponse> {
      // Read as the caller: a patient it may not see is a 404 here too.
      const patient = JSON.parse((await ctx.repo.read('Patient', target.id as string, ctx.session?.tx)).json) as Patient;
      // A golden record's own consents, and those of each hospital record it links (their records show under it).
      const patients = [`Patient/${patient.id}`, ...(patient.link ?? []).map((l) => l.other.reference).filter((r): r is string => !!r?.startsWith('Patient/'))];
      const caller = ctx.caller;
      const withheld = !caller?.organization || !isRole(caller.role) || rulesOf(caller.role).unrestricted ? 'none' : await decisions.withholding(patients, caller.organization);
      const body: Parameters = {
        resourceType: 'Parameters',
        parameter: [
          { name: 'withheld', valueBoolean: withheld !== 'none' },
          ...(withheld !== 'none' ? [{ name: 'extent', valueCode: withheld }] : []),
        ],
      };
      return { status: 200, body };
    },
  };
}
