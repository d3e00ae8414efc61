/**
 * The conformance kit: what a hospital's integration team (or CI) runs against a Huimin deployment to see that it
 * serves the regional guide and judges resources by it. Over the FHIR API only (fhir-kit-client), it checks
 *   1. the CapabilityStatement: FHIR 4.0.1, JSON, the guide named in `implementationGuide` and each profile in
 *      its type's `supportedProfile`, the profiled and conformance types readable and searchable, `$validate` offered;
 *   2. that the ImplementationGuide and every StructureDefinition, CodeSystem and ValueSet it defines are served,
 *      at the guide's version (`<type>?url=`);
 *   3. that `$validate` accepts each profile's conforming example and rejects its non-conforming one with an error
 *      at the expected `expression`.
 */
import type { Bundle, CapabilityStatement, OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import type { ImplementationGuideContent } from './guide';

export interface KitCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface KitReport {
  checks: KitCheck[];
  passed: number;
  failed: number;
}

export interface KitOptions {
  /** The deployment's FHIR base, e.g. https://huimin.example.org/fhir */
  baseUrl: string;
  /** A bearer token (the deployment requires one; an administrator's or a facility system's with read and search). */
  token?: string;
  /** Or a client's credentials: a token is asked of the token endpoint the SMART configuration names. */
  client?: { id: string; secret: string };
  guide: ImplementationGuideContent;
  /** Called with each check as it completes (the command prints them). */
  onCheck?: (check: KitCheck) => void;
}

/** The subset of fhir-kit-client's Client the kit uses. */
interface FhirClient {
  capabilityStatement(): Promise<unknown>;
  resourceSearch(params: { resourceType: string; searchParams: Record<string, string> }): Promise<unknown>;
  operation(params: { name: string; resourceType: string; method: 'POST'; input: Resource }): Promise<unknown>;
}

async function createClient(baseUrl: string, token: string | undefined): Promise<FhirClient> {
  // fhir-kit-client is published as ES modules only; a dynamic import loads it from this CommonJS module.
  const { Client } = await import('fhir-kit-client');
  return new Client({ baseUrl, ...(token ? { bearerToken: token } : {}) }) as unknown as FhirClient;
}

/**
 * A token for a registered client (client_credentials, client_secret_basic) from the token endpoint that
 * `[base]/.well-known/smart-configuration` names, as any SMART backend service gets one.
 */
export async function clientCredentialsToken(baseUrl: string, client: { id: string; secret: string }): Promise<string> {
  const configuration = await fetch(`${baseUrl}/.well-known/smart-configuration`, { headers: { accept: 'application/json' } });
  const endpoint = configuration.ok ? ((await configuration.json()) as { token_endpoint?: unknown }).token_endpoint : undefined;
  if (typeof endpoint !== 'string') {
    throw new Error(`${baseUrl}/.well-known/smart-configuration names no token_endpoint (HTTP ${configuration.status})`);
  }
  const basic = Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64');
  const answer = await fetch(endpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: 'grant_type=client_credentials',
  });
  const body = (await answer.json().catch(() => ({}))) as { access_token?: unknown; error?: unknown; error_description?: unknown };
  if (!answer.ok || typeof body.access_token !== 'string') {
    throw new Error(`token endpoint ${endpoint} answered HTTP ${answer.status}${body.error ? `: ${String(body.error)}${body.error_description ? ` (${String(body.error_description)})` : ''}` : ''}`);
  }
  return body.access_token;
}

/** fhir-kit-client rejects non-2xx answers with the response attached; say what the server said. */
function describeFailure(err: unknown): string {
  const response = (err as { response?: { status?: number; data?: unknown } }).response;
  if (response?.status) {
    const outcome = response.data as OperationOutcome | undefined;
    const text = outcome?.issue?.map((i) => i.diagnostics ?? i.details?.text).filter(Boolean).join('; ');
    return `HTTP ${response.status}${text ? `: ${text}` : ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}

const isError = (i: OperationOutcomeIssue): boolean => i.severity === 'error' || i.severity === 'fatal';

function checkCapabilities(cs: CapabilityStatement, guide: ImplementationGuideContent): string[] {
  const problems: string[] = [];
  if (cs.resourceType !== 'CapabilityStatement') {
    return [`/metadata answered a ${String((cs as Resource).resourceType)}, not a CapabilityStatement`];
  }
  if (cs.fhirVersion !== '4.0.1') {
    problems.push(`fhirVersion is ${cs.fhirVersion ?? 'missing'}, expected 4.0.1`);
  }
  if (!(cs.format ?? []).some((f) => f === 'json' || f.includes('fhir+json'))) {
    problems.push('JSON is not among the formats');
  }
  const rest = cs.rest?.find((r) => r.mode === 'server');
  if (!rest) {
    return [...problems, 'no rest entry in server mode'];
  }
  const types = new Set(['StructureDefinition', 'ImplementationGuide', 'CodeSystem', 'ValueSet']);
  for (const sd of guide.structureDefinitions) {
    if (sd.type !== 'Extension') {
      types.add(sd.type as string);
    }
  }
  for (const type of types) {
    const entry = rest.resource?.find((r) => r.type === type);
    const interactions = new Set((entry?.interaction ?? []).map((i) => i.code));
    if (!entry) {
      problems.push(`${type} is not supported`);
    } else if (!interactions.has('read') || !interactions.has('search-type')) {
      problems.push(`${type} lacks read or search-type`);
    }
  }
  if (!(cs.implementationGuide ?? []).includes(guide.implementationGuide.url as string)) {
    problems.push(`implementationGuide does not name ${guide.implementationGuide.url}`);
  }
  for (const profile of guide.structureDefinitions.filter((sd) => sd.type !== 'Extension')) {
    if (!rest.resource?.find((r) => r.type === profile.type)?.supportedProfile?.includes(profile.url as string)) {
      problems.push(`${profile.type}.supportedProfile lacks ${profile.url}`);
    }
  }
  const validate = [...(rest.operation ?? []), ...(rest.resource ?? []).flatMap((r) => r.operation ?? [])].some((o) => o.name === 'validate');
  if (!validate) {
    problems.push('$validate is not offered');
  }
  return problems;
}

export async function runConformanceKit(options: KitOptions): Promise<KitReport> {
  const { guide } = options;
  const checks: KitCheck[] = [];
  const record = (name: string, ok: boolean, detail: string): void => {
    const check = { name, ok, detail };
    checks.push(check);
    options.onCheck?.(check);
  };
  let token = options.token;
  if (!token && options.client) {
    try {
      token = await clientCredentialsToken(options.baseUrl, options.client);
      record('token (client credentials)', true, `issued to ${options.client.id}`);
    } catch (err) {
      record('token (client credentials)', false, describeFailure(err));
      return { checks, passed: 0, failed: 1 };
    }
  }
  const client = await createClient(options.baseUrl, token);
  const attempt = async (name: string, run: () => Promise<string | string[]>): Promise<void> => {
    try {
      const problems = await run();
      const list = Array.isArray(problems) ? problems : [];
      record(name, list.length === 0, list.length ? list.join('; ') : typeof problems === 'string' ? problems : 'ok');
    } catch (err) {
      record(name, false, describeFailure(err));
    }
  };

  await attempt('CapabilityStatement', async () => {
    const problems = checkCapabilities((await client.capabilityStatement()) as CapabilityStatement, guide);
    return problems.length ? problems : 'FHIR 4.0.1, JSON, the guide and its profiles declared, profiled and conformance types searchable, $validate offered';
  });

  const served = [guide.implementationGuide, ...guide.structureDefinitions, ...guide.terminology] as (Resource & { url?: string; version?: string })[];
  for (const resource of served) {
    await attempt(`served: ${resource.resourceType} ${resource.url}`, async () => {
      const bundle = (await client.resourceSearch({ resourceType: resource.resourceType, searchParams: { url: resource.url as string } })) as Bundle;
      const found = (bundle.entry ?? []).map((e) => e.resource as Resource & { version?: string }).filter((r) => r?.resourceType === resource.resourceType);
      if (found.length === 0) {
        return [`not found by ${resource.resourceType}?url=`];
      }
      if (resource.version && !found.some((r) => r.version === resource.version)) {
        return [`served at version ${found.map((r) => r.version ?? '(none)').join(', ')}, the guide has ${resource.version}`];
      }
      return `version ${resource.version ?? '(none)'}`;
    });
  }

  for (const example of options.guide.examples) {
    const { resource } = example;
    await attempt(`$validate: ${example.file} (${example.valid ? 'conforms' : 'does not conform'})`, async () => {
      const outcome = (await client.operation({ name: '$validate', resourceType: resource.resourceType, method: 'POST', input: resource })) as OperationOutcome;
      const errors = (outcome.issue ?? []).filter(isError);
      const says = errors.map((i) => `${i.expression?.[0] ?? '(no expression)'}: ${i.details?.text ?? i.diagnostics ?? ''}`).join('; ');
      if (example.valid) {
        return errors.length ? [`expected no errors, got: ${says}`] : 'no errors';
      }
      const expected = `${example.expression}${example.message ? ` (${example.message})` : ''}`;
      const matches = (i: OperationOutcomeIssue): boolean =>
        !!i.expression?.includes(example.expression as string) && (!example.message || `${i.details?.text ?? ''} ${i.diagnostics ?? ''}`.includes(example.message));
      if (!errors.some(matches)) {
        return [`expected an error at ${expected}, got: ${says || 'no errors'}`];
      }
      return `error at ${expected}`;
    });
  }
  const failed = checks.filter((c) => !c.ok).length;
  return { checks, passed: checks.length - failed, failed };
}
