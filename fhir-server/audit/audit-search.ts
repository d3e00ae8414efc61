/**
 * AuditEvent read and search, answered from the audit log itself (the store holds no AuditEvents). The search
 * parameters an access log needs are supported: entity, patient, agent, date, outcome, action, _tag, _id, _count
 * and _offset; newest first. Any other parameter is refused with a 400 that says so.
 */
import { SqlParams, type Queryable } from '../db';
import { badRequest, notFound } from '../errors';
import { pageLinks, searchsetBundle } from '../rest/bundles';
import { pageOf } from '../rest/paging';
import { RawJson, type FhirRequest, type FhirResponse, type RouteContext } from '../rest/types';
import { AUDIT_FLAG_SYSTEM, renderAuditEvent } from './audit-event';

const REF = /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/;
const DATE = /^(eq|ge|gt|le|lt)?(\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?)$/;
const SUPPORTED = new Set(['entity', 'patient', 'agent', 'date', 'outcome', 'action', '_tag', '_id', '_count', '_offset', '_total', '_sort']);

function reference(value: string, name: string, defaultType?: string): string {
  const ref = defaultType && !value.includes('/') ? `${defaultType}/${value}` : value;
  if (!REF.test(ref) || (defaultType && !ref.startsWith(`${defaultType}/`))) {
    throw badRequest(`${name} must be a reference such as ${defaultType ?? 'Patient'}/123, got "${value}"`);
  }
  return ref;
}

/** The bounds of a date parameter's value: `2026-11` covers the whole month. */
function dateCondition(value: string, params: SqlParams): string {
  const match = DATE.exec(value);
  if (!match) {
    throw badRequest(`date must be a FHIR date or dateTime with an optional prefix eq, ge, gt, le, lt, got "${value}"`);
  }
  const prefix = match[1] ?? 'eq';
  const text = match[2];
  const padded = text.length === 4 ? `${text}-01-01` : text.length === 7 ? `${text}-01` : text;
  const low = new Date(text.length <= 10 ? `${padded}T00:00:00Z` : /Z|[+-]\d{2}:\d{2}$/.test(padded) ? padded : `${padded}Z`);
  if (Number.isNaN(low.getTime())) {
    throw badRequest(`date "${value}" is not a valid date`);
  }
  const high = new Date(low);
  if (text.length === 4) high.setUTCFullYear(high.getUTCFullYear() + 1);
  else if (text.length === 7) high.setUTCMonth(high.getUTCMonth() + 1);
  else if (text.length === 10) high.setUTCDate(high.getUTCDate() + 1);
  else high.setTime(high.getTime() + 1000);
  const lo = params.add(low.toISOString());
  const hi = params.add(high.toISOString());
  switch (prefix) {
    case 'ge':
      return `a.recorded >= ${lo}::timestamptz`;
    case 'gt':
      return `a.recorded >= ${hi}::timestamptz`;
    case 'le':
      return `a.recorded < ${hi}::timestamptz`;
    case 'lt':
      return `a.recorded < ${lo}::timestamptz`;
    default:
      return `a.recorded >= ${lo}::timestamptz AND a.recorded < ${hi}::timestamptz`;
  }
}

/** Any of the keys (the parameter's comma-separated values are alternatives), through the GIN index. */
function anyKey(params: SqlParams, keys: string[]): string {
  return `a.keys && ${params.add(keys)}::text[]`;
}

function conditions(query: URLSearchParams, params: SqlParams): string[] {
  const where: string[] = [];
  for (const [rawName, value] of query) {
    const name = rawName.split(':')[0];
    if (!SUPPORTED.has(name) || rawName.includes(':')) {
      throw badRequest(`AuditEvent search supports entity, patient, agent, date, outcome, action, _tag, _id, _count and _offset; "${rawName}" is not supported`);
    }
    const values = value.split(',');
    switch (name) {
      case 'entity':
        where.push(anyKey(params, values.map((v) => `entity:${reference(v, 'entity')}`)));
        break;
      case 'patient':
        where.push(anyKey(params, values.map((v) => `entity:${reference(v, 'patient', 'Patient')}`)));
        break;
      case 'agent':
        where.push(anyKey(params, values.map((v) => `agent:${v}`)));
        break;
      case 'date':
        where.push(dateCondition(value, params));
        break;
      case 'outcome':
        where.push(anyKey(params, values.map((v) => `outcome:${v}`)));
        break;
      case 'action':
        where.push(anyKey(params, values.map((v) => `action:${v}`)));
        break;
      case '_id':
        where.push(anyKey(params, values.map((v) => `id:${v}`)));
        break;
      case '_tag':
        where.push(anyKey(params, values.map((v) => `flag:${v.startsWith(`${AUDIT_FLAG_SYSTEM}|`) ? v.slice(AUDIT_FLAG_SYSTEM.length + 1) : v}`)));
        break;
      case '_sort':
        if (value !== '-date') {
          throw badRequest('AuditEvent search is sorted newest first; _sort=-date is the only sort');
        }
        break;
    }
  }
  return where;
}

export async function searchAuditEvents(q: Queryable, ctx: RouteContext, request: FhirRequest): Promise<FhirResponse> {
  const { count, offset } = pageOf(request.query, ctx);
  const params = new SqlParams();
  const where = conditions(request.query, params);
  const rows = await q.query<{ id: string; content: string }>(
    `SELECT a.id, a.content FROM audit_event a ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY a.seq DESC LIMIT ${params.add(count + 1)} OFFSET ${params.add(offset)}`,
    params.values,
  );
  const hasMore = rows.length > count;
  const page = rows.slice(0, count);
  const selfUrl = new URL(`${ctx.baseUrl}/AuditEvent?${request.query}`);
  const total = offset === 0 && !hasMore ? page.length : undefined;
  const entries = page.map((r) => ({ fullUrl: `${ctx.baseUrl}/AuditEvent/${r.id}`, json: JSON.stringify(renderAuditEvent(r.content, ctx.baseUrl)), mode: 'match' as const }));
  return { status: 200, body: searchsetBundle(entries, pageLinks({ selfUrl, offset, count, hasMore }), total) };
}

export async function readAuditEvent(q: Queryable, ctx: RouteContext, id: string): Promise<FhirResponse> {
  const rows = await q.query<{ content: string }>('SELECT content FROM audit_event WHERE keys @> ARRAY[$1::text]', [`id:${id}`]);
  if (rows.length === 0) {
    throw notFound(`AuditEvent/${id} is not known`);
  }
  return { status: 200, body: new RawJson(JSON.stringify(renderAuditEvent(rows[0].content, ctx.baseUrl))) };
}
