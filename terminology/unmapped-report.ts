/**
 * ConceptMap/$unmapped: the report of local codes that incoming data used and no ConceptMap translated (the HL7
 * adapters record each miss with TerminologyService.recordUnmapped), for the staff who maintain a hospital's
 * mapping CSV. Type level: every unmapped code (`conceptMap` narrows it to one map, `system` to one local code
 * system); instance level: the codes of that ConceptMap, including misses recorded against the local code systems it
 * maps from. Admins and the bureau's supervisors only, like the $hl7-* operator operations: local codes and where
 * they were seen cross hospitals.
 */
import type { ConceptMap, Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { badRequest, operationParameters, parameterValue, type FhirOperation } from '../fhir-server';
import { MAX_UNMAPPED, type TerminologyService } from './service';

const DEFAULT_COUNT = 1000;

export function unmappedReportOperation(service: TerminologyService): FhirOperation {
  return {
    name: 'unmapped',
    definition: 'http://huimin.health/fhir/OperationDefinition/ConceptMap-unmapped',
    levels: ['type', 'instance'],
    resourceTypes: ['ConceptMap'],
    roles: ['admin', 'supervisor'],
    affectsState: false,
    async invoke(ctx, request, target) {
      const p = operationParameters(request);
      const countText = parameterValue(p, '_count');
      const count = countText === undefined ? DEFAULT_COUNT : Number(countText);
      if (!Number.isInteger(count) || count < 1 || count > MAX_UNMAPPED) {
        throw badRequest(`_count must be an integer from 1 to ${MAX_UNMAPPED}, got '${countText}'`);
      }
      let conceptMap = parameterValue(p, 'conceptMap');
      let sourceSystems: string[] = [];
      if (target.level === 'instance') {
        const map = JSON.parse((await ctx.repo.read('ConceptMap', target.id as string)).json) as ConceptMap;
        if (!map.url) {
          throw badRequest(`ConceptMap/${target.id} has no url: unmapped codes are recorded by ConceptMap url`);
        }
        conceptMap = map.url;
        sourceSystems = [...new Set((map.group ?? []).map((g) => g.source).filter((s): s is string => !!s))];
      }
      const rows = await service.unmappedCodes(conceptMap, { sourceSystems, system: parameterValue(p, 'system'), limit: count });
      const parameter: ParametersParameter[] = [{ name: 'total', valueInteger: rows.length }];
      for (const r of rows) {
        parameter.push({
          name: 'unmapped',
          part: [
            ...(r.conceptMap ? [{ name: 'conceptMap', valueUri: r.conceptMap }] : []),
            { name: 'system', valueUri: r.system },
            { name: 'code', valueCode: r.code },
            ...(r.display ? [{ name: 'display', valueString: r.display }] : []),
            ...(r.source ? [{ name: 'source', valueString: r.source }] : []),
            { name: 'occurrences', valueInteger: r.occurrences },
            { name: 'firstSeen', valueInstant: r.firstSeen.toISOString() },
            { name: 'lastSeen', valueInstant: r.lastSeen.toISOString() },
          ],
        });
      }
      const body: Parameters = { resourceType: 'Parameters', parameter };
      return { status: 200, body };
    },
  };
}
