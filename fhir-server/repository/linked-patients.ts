/**
 * Linked patients: a master patient index keeps one golden Patient per resident whose `seealso` links name each
 * hospital's copy, and a merge survivor's `replaces` links name the patients it replaced. A search for a
 * patient's records (`Observation?patient=<golden>`, `subject=`, `$everything`) should find the records of those
 * patients too. The store knows nothing of golden records: it is told the code of a Patient reference
 * SearchParameter (`patientLinkParameter`) whose index rows name the linked patients, and expands a Patient
 * reference to the patient and its linked patients with one lookup of those rows (index `search_reference_owner`),
 * one level deep, before compiling the search. A patient without linked patients leaves the search exactly as it
 * was, so ordinary searches keep their plans. The patient whose links are followed must be visible to the caller
 * (the read filter applies to it); the records found are filtered as always.
 */
import { Operator, type SearchRequest } from '@medplum/core';
import type { Queryable } from '../db';
import { SqlParams } from '../db/statement';
import { findSearchParameter } from '../search';
import { parseLocalReference } from '../search/param-reference';
import type { RowFilter } from './search-sql';

/** The linked patients of each of `ids` that has some (ids not in the map have none). */
export async function linkedPatients(q: Queryable, code: string, ids: readonly string[], filter?: RowFilter): Promise<Map<string, string[]>> {
  const linked = new Map<string, string[]>();
  if (ids.length === 0) return linked;
  const params = new SqlParams();
  const visible = filter
    ? ` AND EXISTS (SELECT 1 FROM resource r WHERE r.res_type = 'Patient' AND r.id = l.res_id AND NOT r.deleted AND ${filter('r', params, ['Patient'])})`
    : '';
  const rows = await q.query<{ res_id: string; target_id: string }>(
    `SELECT l.res_id, l.target_id FROM search_reference l
      WHERE l.res_type = 'Patient' AND l.res_id = ANY(${params.add(ids)}::text[]) AND l.code = ${params.add(code)}
        AND l.target_type = 'Patient'${visible}`,
    params.values,
  );
  for (const row of rows) {
    if (row.target_id !== row.res_id) linked.set(row.res_id, [...(linked.get(row.res_id) ?? []), row.target_id]);
  }
  return linked;
}

/** `Patient/<id>` or a bare id (when the parameter may point to a Patient), else undefined. */
function patientIdOf(value: string, mayBePatient: boolean, baseUrl: string): string | undefined {
  const base = baseUrl.replace(/\/+$/, '');
  const relative = value.startsWith(base + '/') ? value.slice(base.length + 1) : value;
  const local = parseLocalReference(relative);
  if (local) return local.targetType === 'Patient' ? local.targetId : undefined;
  return mayBePatient && /^[A-Za-z0-9\-.]{1,64}$/.test(value) ? value : undefined;
}

/**
 * The search with each Patient reference value followed by the patient's linked patients (OR'ed values of the
 * same filter); the request itself when nothing is linked. Searches of Patients themselves are left alone
 * (`Patient?link=` means the link, not the records).
 */
export async function expandPatientReferences(
  q: Queryable,
  request: SearchRequest,
  code: string,
  baseUrl: string,
  filter?: RowFilter,
): Promise<SearchRequest> {
  if (request.resourceType === 'Patient' || !request.filters?.length) return request;
  const wanted: Array<{ index: number; values: string[]; ids: string[] }> = [];
  request.filters.forEach((f, index) => {
    if (f.code.includes('.') || f.code.includes(':')) return;
    const param = findSearchParameter(request.resourceType, f.code);
    if (param?.type !== 'reference' || !(param.target ?? []).includes('Patient')) return;
    // `=`, or the `:Patient` modifier (kept as the operator by filter-parse.ts).
    if (f.operator !== Operator.EQUALS && (f.operator as string) !== 'Patient') return;
    const values = f.value.split(/(?<!\\),/);
    const ids = values.map((v) => patientIdOf(v, true, baseUrl)).filter((id): id is string => id !== undefined);
    if (ids.length) wanted.push({ index, values, ids });
  });
  if (wanted.length === 0) return request;
  const linked = await linkedPatients(q, code, [...new Set(wanted.flatMap((w) => w.ids))], filter);
  if (linked.size === 0) return request;
  const filters = [...request.filters];
  for (const w of wanted) {
    const extra = w.ids.flatMap((id) => linked.get(id) ?? []).map((id) => `Patient/${id}`);
    if (extra.length) filters[w.index] = { ...filters[w.index], value: [...new Set([...w.values, ...extra])].join(',') };
  }
  return { ...request, filters };
}
