/**
 * `GET Patient/[id]/$recognizable-results?code=<system>|<code>[,…]`: before an order is placed, the recognisable
 * results the resident already has at any hospital (all their linked patient records), newest first, each carrying
 * its mark as a meta.tag `recognition-mark|<scope>HR`. The caller must be able to see the Patient; results of
 * records whose Consent denies sharing with the caller's organisation are left out. Each call is recorded as a
 * look-up for the bureau's figures.
 */
import type { Bundle, Observation } from '@medplum/fhirtypes';
import { badRequest, operationParameters, type FhirOperation, type Queryable } from '../fhir-server';
import { BASE, MARK_SYSTEM } from './fhir';
import type { RecognitionFinder, Recognisable } from './finder';
import { residentPatients } from './patients';

const MAX_CODES = 20;

/** The result as shared: its mark as a tag (the stored resource is not changed). */
export function marked(r: Recognisable): Observation {
  const tags = (r.observation.meta?.tag ?? []).filter((t) => t.system !== MARK_SYSTEM);
  return { ...r.observation, meta: { ...r.observation.meta, tag: [...tags, { system: MARK_SYSTEM, code: r.mark, display: r.mark }] } };
}

function parseCodes(values: string[]): Array<{ system: string; code: string }> {
  const codes = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  if (codes.length === 0 || codes.length > MAX_CODES) {
    throw badRequest(`Parameter "code" is required: 1 to ${MAX_CODES} codes as system|code (e.g. http://loinc.org|2823-3), comma-separated or repeated`);
  }
  return codes.map((token) => {
    const bar = token.lastIndexOf('|');
    const system = bar > 0 ? token.slice(0, bar) : 'http://loinc.org';
    const code = bar >= 0 ? token.slice(bar + 1) : token;
    if (!code || code.length > 64 || system.length > 200) {
      throw badRequest(`"${token}" is not a code: give system|code (e.g. http://loinc.org|2823-3)`);
    }
    return { system, code };
  });
}

export function lookupOperation(finder: RecognitionFinder, db: Queryable, now: () => Date = () => new Date()): FhirOperation {
  return {
    name: 'recognizable-results',
    definition: `${BASE}/OperationDefinition/Patient-recognizable-results`,
    levels: ['instance'],
    resourceTypes: ['Patient'],
    affectsState: false,
    async invoke(ctx, request, target) {
      const params = operationParameters(request);
      const codes = parseCodes((params.parameter ?? []).filter((p) => p.name === 'code').map((p) => p.valueString ?? p.valueCode ?? (p.valueCoding ? `${p.valueCoding.system ?? ''}|${p.valueCoding.code ?? ''}` : '')));
      // Visible to the caller (404 otherwise, like a read).
      await ctx.repo.read('Patient', target.id as string);
      const caller = ctx.caller;
      const asker = caller?.role === 'admin' ? undefined : caller?.organization;
      const patients = await residentPatients(finder.repository, target.id as string);
      const found = await finder.find({ patients, code: { coding: codes }, asker, now: now() });
      await db.query(
        `INSERT INTO recognition_lookup (via, institution, doctor, patient, item_code, found) VALUES ('on-demand', $1, $2, $3, $4, $5)`,
        [caller?.organization ?? null, caller?.practitioner ?? null, `Patient/${target.id}`, codes.map((c) => c.code).join(',').slice(0, 500), found.filter((r) => r.institution !== caller?.organization).length],
      );
      const body: Bundle = {
        resourceType: 'Bundle',
        type: 'searchset',
        total: found.length,
        entry: found.map((r) => ({ fullUrl: `${ctx.baseUrl}/Observation/${r.observation.id}`, resource: marked(r), search: { mode: 'match' } })),
      };
      return { status: 200, body };
    },
  };
}
