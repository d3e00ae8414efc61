/**
 * The city's institution list (a CSV from the health bureau) loaded into the institution registry.
 *
 * Columns (header row, any order; UTF-8 with or without BOM):
 *   uscc          统一社会信用代码 (required; the key: the row updates the Organization with this identifier)
 *   name          机构名称 (required)
 *   licence       医疗机构执业许可证登记号
 *   alias         别名 (several separated by ;)
 *   type          WS 218 institution type code (A1, B1, …)
 *   level_grade   医院等级 (3A, 2B, 1, …)
 *   division      GB/T 2260 administrative division code of the address
 *   address       地址 (text)
 *   phone         电话
 *   parent_uscc   the USCC of the Organization it is part of (the lead institution of its 医联体/医共体)
 *   active        true/false (default true)
 *
 * Idempotent: each row is a conditional update by USCC that leaves unchanged institutions unchanged (no new
 * version) and keeps what other modules added (HL7 facility settings, other identifiers and types). Rows whose
 * parent comes later in the file are taken again after the others. Every row gets a line in the report; a row
 * the registry refuses is reported with the registry's reasons and the rest go on.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Address, Coding, ContactPoint, Identifier, Organization } from '@medplum/fhirtypes';
import { parse } from 'csv-parse';
import { describeError, type FhirRepository } from '../fhir-server';
import { INSTITUTION_LICENCE_SYSTEM, USCC_SYSTEM } from './identifiers';
import { DIVISION_EXTENSION } from './registry-rules';

export const INSTITUTION_TYPE_SYSTEM = 'http://huimin.health/fhir/CodeSystem/ws-218-institution-type';
export const LEVEL_GRADE_SYSTEM = 'http://huimin.health/fhir/CodeSystem/hospital-level-grade';
const DIVISION_SYSTEM = 'http://huimin.health/fhir/CodeSystem/gb-t-2260';
/** Largest CSV accepted (the city's list is a few thousand rows). */
const MAX_ROWS = 100_000;

export type RowOutcome = 'created' | 'updated' | 'unchanged' | 'error';

export interface RowReport {
  /** Line in the file (the header is line 1). */
  line: number;
  uscc: string;
  name: string;
  outcome: RowOutcome;
  id?: string;
  message?: string;
}

export interface LoadReport {
  rows: RowReport[];
  counts: Record<RowOutcome, number>;
}

type Row = Record<string, string>;


/** The identifiers with the one of `system` replaced where it stands (added at the end, or removed when undefined). */
function setIdentifier(identifiers: Identifier[], value: Identifier | undefined, system = value?.system): Identifier[] {
  const at = identifiers.findIndex((i) => i.system === system);
  const others = identifiers.filter((i) => i.system !== system);
  if (!value) {
    return others;
  }
  if (at < 0) {
    return [...identifiers, value];
  }
  return [...others.slice(0, at), value, ...others.slice(at)];
}

/**
 * The row's Organization, merged into the existing one: the file's columns replace what they describe (an empty
 * cell clears it), columns the file does not have leave the existing values alone, and everything else (other
 * identifiers and types, tags, extensions other modules added) is kept.
 */
function merge(row: Row, existing: Organization | undefined, parentId: string | undefined): Organization {
  const has = (column: string): boolean => column in row;
  // In place, so that an unchanged row compares equal to what is stored.
  let identifier: Identifier[] = setIdentifier(existing?.identifier ?? [], { use: 'official', system: USCC_SYSTEM, value: row.uscc });
  if (has('licence')) {
    identifier = setIdentifier(identifier, row.licence ? { system: INSTITUTION_LICENCE_SYSTEM, value: row.licence } : undefined, INSTITUTION_LICENCE_SYSTEM);
  }
  const replacedTypeSystems = new Set([...(has('type') ? [INSTITUTION_TYPE_SYSTEM] : []), ...(has('level_grade') ? [LEVEL_GRADE_SYSTEM] : [])]);
  const keptTypes = (existing?.type ?? []).filter((t) => !(t.coding ?? []).some((c) => replacedTypeSystems.has(c.system ?? '')));
  const ownCodings: Coding[] = [
    ...(row.type ? [{ system: INSTITUTION_TYPE_SYSTEM, code: row.type }] : []),
    ...(row.level_grade ? [{ system: LEVEL_GRADE_SYSTEM, code: row.level_grade }] : []),
  ];
  const organization: Organization = {
    ...(existing ?? {}),
    resourceType: 'Organization',
    identifier,
    active: row.active ? !/^(false|0|no|否)$/i.test(row.active) : (existing?.active ?? true),
    name: row.name,
  };
  const type = [...keptTypes, ...ownCodings.map((coding) => ({ coding: [coding] }))];
  if (type.length > 0) organization.type = type;
  else delete organization.type;
  if (has('alias')) {
    const alias = (row.alias ?? '').split(';').map((a) => a.trim()).filter(Boolean);
    if (alias.length > 0) organization.alias = alias;
    else delete organization.alias;
  }
  if (has('address') || has('division')) {
    const address: Address = {
      use: 'work',
      ...(row.address ? { text: row.address } : {}),
      ...(row.division ? { extension: [{ url: DIVISION_EXTENSION, valueCoding: { system: DIVISION_SYSTEM, code: row.division } }] } : {}),
    };
    if (row.address || row.division) organization.address = [address];
    else delete organization.address;
  }
  if (has('phone')) {
    const telecom: ContactPoint[] = [...(existing?.telecom ?? []).filter((t) => t.system !== 'phone'), ...(row.phone ? [{ system: 'phone' as const, value: row.phone, use: 'work' as const }] : [])];
    if (telecom.length > 0) organization.telecom = telecom;
    else delete organization.telecom;
  }
  if (has('parent_uscc')) {
    if (parentId) organization.partOf = { reference: `Organization/${parentId}` };
    else delete organization.partOf;
  }
  return organization;
}

/** Resource content without the server's meta, for "did anything change". */
const comparable = (o: Organization): string => JSON.stringify({ ...o, meta: undefined, id: undefined });

function messageOf(err: unknown): string {
  const { outcome } = describeError(err);
  return (outcome.issue ?? []).map((i) => i.diagnostics ?? i.details?.text ?? i.code).join('; ') || String(err);
}

async function loadRow(repository: FhirRepository, row: Row, line: number): Promise<RowReport & { deferred?: boolean }> {
  const report: RowReport = { line, uscc: row.uscc ?? '', name: row.name ?? '', outcome: 'error' };
  if (!row.uscc) {
    return { ...report, message: 'the uscc column is empty: it is the key an institution is registered under' };
  }
  if (!row.name) {
    return { ...report, message: 'the name column is empty' };
  }
  try {
    return await repository.write(async (session) => {
      let parentId: string | undefined;
      if (row.parent_uscc) {
        const parents = await session.find('Organization', `identifier=${encodeURIComponent(`${USCC_SYSTEM}|${row.parent_uscc}`)}`);
        if (parents.length === 0) {
          return { ...report, deferred: true, message: `no institution with USCC ${row.parent_uscc} (parent_uscc) is registered` };
        }
        parentId = parents[0];
      }
      const ids = await session.findUnderLock('Organization', `identifier=${encodeURIComponent(`${USCC_SYSTEM}|${row.uscc}`)}`);
      if (ids.length > 1) {
        return { ...report, message: `${ids.length} Organizations hold USCC ${row.uscc}; merge them first` };
      }
      const existing = ids[0] ? await session.read<Organization>('Organization', ids[0]) : undefined;
      const organization = merge(row, existing, parentId);
      if (existing && comparable(organization) === comparable(existing)) {
        return { ...report, outcome: 'unchanged' as const, id: existing.id };
      }
      if (existing) {
        await session.update('Organization', existing.id as string, { ...organization, id: existing.id });
        return { ...report, outcome: 'updated' as const, id: existing.id };
      }
      const created = await session.create(organization);
      return { ...report, outcome: 'created' as const, id: created.id };
    });
  } catch (err) {
    return { ...report, message: messageOf(err) };
  }
}

/** Loads the CSV from a stream (see the file comment for the columns). */
export async function loadInstitutionCsv(repository: FhirRepository, input: Readable): Promise<LoadReport> {
  const parser = input.pipe(
    parse({ columns: (header: string[]) => header.map((h) => h.trim().toLowerCase()), bom: true, trim: true, skip_empty_lines: true, info: true, skip_records_with_error: true }),
  );
  const rows: RowReport[] = [];
  const deferred: Array<{ row: Row; line: number }> = [];
  // A malformed record (too many or too few columns, a quote never closed) is reported at its line; the rest go on.
  parser.on('skip', (err: Error & { lines?: number }) => {
    rows.push({ line: err.lines ?? 0, uscc: '', name: '', outcome: 'error', message: `the CSV record cannot be read: ${err.message}` });
  });
  let count = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: Row; info: { lines: number } }>) {
      if (++count > MAX_ROWS) {
        throw new Error(`the file has more than ${MAX_ROWS} rows; split it`);
      }
      const result = await loadRow(repository, record, info.lines);
      if (result.deferred) {
        deferred.push({ row: record, line: info.lines });
      } else {
        rows.push(result);
      }
    }
  } catch (err) {
    // What cannot be skipped (a header that is not CSV, too many rows): what was loaded stays; the rest is reported.
    rows.push({ line: (parser as unknown as { info?: { lines: number } }).info?.lines ?? 0, uscc: '', name: '', outcome: 'error', message: `the CSV cannot be read further: ${(err as Error).message}` });
  }
  // Parents that came later in the file are registered now; a parent still missing is the row's error.
  for (let pass = 0; pass < 5 && deferred.length > 0; pass++) {
    const waiting = deferred.splice(0, deferred.length);
    for (const { row, line } of waiting) {
      const result = await loadRow(repository, row, line);
      if (result.deferred) {
        deferred.push({ row, line });
      } else {
        rows.push(result);
      }
    }
    if (deferred.length === waiting.length) {
      break;
    }
  }
  for (const { row, line } of deferred) {
    const result = await loadRow(repository, row, line);
    rows.push({ ...result, deferred: undefined, outcome: 'error' } as RowReport);
  }
  rows.sort((a, b) => a.line - b.line);
  const counts: Record<RowOutcome, number> = { created: 0, updated: 0, unchanged: 0, error: 0 };
  for (const r of rows) {
    counts[r.outcome]++;
  }
  return { rows: rows.map(({ line, uscc, name, outcome, id, message }) => ({ line, uscc, name, outcome, ...(id ? { id } : {}), ...(message ? { message } : {}) })), counts };
}

export function loadInstitutionCsvFile(repository: FhirRepository, file: string): Promise<LoadReport> {
  return loadInstitutionCsv(repository, createReadStream(file));
}
