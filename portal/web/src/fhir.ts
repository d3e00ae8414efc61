/**
 * The pages' FHIR client: plain fetch against /fhir with the signed-in user's token (every call is audited by the
 * platform under the user's name), and small helpers for what the pages show.
 */
import type { Bundle, CapabilityStatement, OperationOutcome, Reference, Resource } from '@medplum/fhirtypes';
import { accessToken, FHIR_BASE } from './auth';

export class FhirError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Called when the session is over (401 after a refresh): the app shows the sign-in page. */
let onSignedOut: () => void = () => undefined;
export function setSignedOutHandler(handler: () => void): void {
  onSignedOut = handler;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT';
  body?: unknown;
  /** Break-the-glass reason for this request (X-Break-The-Glass). */
  breakGlass?: string;
  headers?: Record<string, string>;
}

/** A request to the platform (FHIR under /fhir, or /auth for user administration). */
export async function call<T>(url: string, options: RequestOptions = {}, retried = false): Promise<T> {
  const token = await accessToken(retried);
  if (!token) {
    onSignedOut();
    throw new FhirError(401, 'signed out');
  }
  const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: 'application/fhir+json, application/json', ...options.headers };
  if (options.body !== undefined) headers['Content-Type'] = url.startsWith('/auth') ? 'application/json' : 'application/fhir+json';
  // Header values are Latin-1; the platform decodes the percent-encoded UTF-8 of a reason written in Chinese.
  if (options.breakGlass) headers['X-Break-The-Glass'] = encodeURIComponent(options.breakGlass);
  const res = await fetch(url.startsWith('/') ? url : `${FHIR_BASE}/${url}`, { method: options.method ?? 'GET', headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  if (res.status === 401 && !retried) return call<T>(url, options, true);
  if (res.status === 401) onSignedOut();
  const text = await res.text();
  const body = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    const outcome = body as OperationOutcome & { error_description?: string };
    const message = outcome?.issue?.map((i) => i.diagnostics ?? i.details?.text ?? i.code).join('; ') ?? outcome?.error_description ?? `HTTP ${res.status}`;
    throw new FhirError(res.status, message);
  }
  return body as T;
}

/** The resources of a search (matches and includes), by type. */
export async function search<T extends Resource = Resource>(type: string, params: Record<string, string | string[] | undefined>, options: RequestOptions = {}): Promise<{ resources: T[]; included: Resource[]; total?: number }> {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) for (const v of [value ?? []].flat()) if (v !== '') query.append(name, v);
  const bundle = await call<Bundle>(`${type}?${query.toString()}`, options);
  const entries = bundle.entry ?? [];
  return {
    // Not the includes, nor an OperationOutcome the server adds (search.mode outcome: a warning about the search).
    resources: entries.filter((e) => e.search?.mode !== 'include' && e.search?.mode !== 'outcome').map((e) => e.resource as T),
    included: entries.filter((e) => e.search?.mode === 'include').map((e) => e.resource as Resource),
    total: bundle.total,
  };
}

export function read<T extends Resource>(reference: string, options: RequestOptions = {}): Promise<T> {
  return call<T>(reference, options);
}

export function operation<T = unknown>(path: string, parameters: { name: string; [value: string]: unknown }[]): Promise<T> {
  return call<T>(path, { method: 'POST', body: { resourceType: 'Parameters', parameter: parameters } });
}

let capabilities: Promise<CapabilityStatement> | undefined;

/** Whether the platform offers an operation (by name, at any level): pages show what is not there as unavailable. */
export async function hasOperation(name: string): Promise<boolean> {
  capabilities ??= call<CapabilityStatement>('metadata');
  const cs = await capabilities;
  const rest = cs.rest?.[0];
  return [...(rest?.operation ?? []), ...(rest?.resource ?? []).flatMap((r) => r.operation ?? [])].some((o) => o.name === name);
}

export const OWNER_TAG_SYSTEM = 'https://huimin.health/fhir/CodeSystem/owner-organization';

/** The organisation a resource came from: the platform's owner tag, else meta.source when it names one. */
export function sourceOrganization(resource: Resource): string | undefined {
  const tag = resource.meta?.security?.find((s) => s.system === OWNER_TAG_SYSTEM)?.code;
  if (tag) return tag;
  const source = resource.meta?.source;
  return source && /^Organization\//.test(source) ? source : undefined;
}

/** The "<scope>HR" recognition mark of a result (meta.tag of the recognition-mark system), if it has one. */
export function recognitionMark(resource: Resource): string | undefined {
  return resource.meta?.tag?.find((t) => t.system?.endsWith('/recognition-mark') || /HR$/.test(t.code ?? ''))?.code;
}

export function refId(ref: Reference | undefined): string | undefined {
  return ref?.reference?.split('/')[1];
}

/** Names of the organisations (and other resources) behind references, fetched once per page in one search per type. */
export async function displayNames(references: (string | undefined)[]): Promise<Record<string, string>> {
  const byType = new Map<string, Set<string>>();
  for (const ref of references) {
    const [type, id] = (ref ?? '').split('/');
    if (!type || !id) continue;
    if (!byType.has(type)) byType.set(type, new Set());
    byType.get(type)?.add(id);
  }
  const names: Record<string, string> = {};
  await Promise.all(
    [...byType.entries()].map(async ([type, ids]) => {
      const found = await search<Resource & { name?: unknown }>(type, { _id: [...ids].slice(0, 100).join(','), _count: '100', _elements: 'name,title' }).catch(() => ({ resources: [] }));
      for (const r of found.resources) names[`${type}/${r.id}`] = nameOf(r);
    }),
  );
  return names;
}

function nameOf(r: Resource & { name?: unknown; title?: string }): string {
  if (typeof r.name === 'string') return r.name;
  if (Array.isArray(r.name)) return humanName(r.name as { text?: string; family?: string; given?: string[] }[]);
  return r.title ?? `${r.resourceType}/${r.id}`;
}

export function humanName(names: { text?: string; family?: string; given?: string[]; use?: string }[] | undefined): string {
  const n = names?.[0];
  if (!n) return '—';
  if (n.text) return n.text;
  const family = n.family ?? '';
  const given = (n.given ?? []).join('');
  // Chinese names are written family name first without a space; others given name first.
  return /[\u4e00-\u9fff]/.test(family + given) ? `${family}${given}` : `${(n.given ?? []).join(' ')} ${family}`.trim();
}

export function codeText(concept: { text?: string; coding?: { display?: string; code?: string }[] } | undefined): string {
  return concept?.text ?? concept?.coding?.find((c) => c.display)?.display ?? concept?.coding?.[0]?.code ?? '—';
}

export function formatDate(value: string | undefined, withTime = false): string {
  if (!value) return '—';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return value;
  const pad = (n: number): string => String(n).padStart(2, '0');
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return withTime && value.length > 10 ? `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}` : date;
}
