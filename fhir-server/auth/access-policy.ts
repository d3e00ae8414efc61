/**
 * One caller's rights, applied at the two places every request passes:
 *  - the router (`before`, as RouteContext.guard): which interactions the token's scopes and the client's role
 *    allow, on which resource types — for HTTP requests and for every entry of a batch or transaction alike;
 *  - the repository (as RepositoryAccess): which rows the caller may see (scope types, patient consent, care
 *    relationship) as SQL conditions, and which resources it may change (only its organisation's), with the owner
 *    stamped on everything it writes.
 */
import type { Meta, Resource } from '@medplum/fhirtypes';
import type { SqlParams } from '../db';
import { FhirError, forbidden, issue, outcome } from '../errors';
import type { CallerIdentity, RepositoryAccess, ResourceReader } from '../repository';
import type { FhirRequest, FhirResponse, RequestGuard, RouteContext } from '../rest';
import { OWNER_TAG_SYSTEM, RESTRICTED_TO_SYSTEM } from './migrations';
import { partyOfOrganization } from './organization-party';
import { rulesOf, type RoleRules } from './roles';
import type { ScopeLetter } from './scopes';
import type { Caller } from './tokens';

/** What a request does, as far as authorisation is concerned. */
export interface Interaction {
  /** FHIR restful-interaction code (read, search-type, create, …) or `operation`, `batch`, `capabilities`. */
  name: string;
  /** The scope letter it needs (none for capabilities and bundles, whose entries are checked one by one). */
  letter?: ScopeLetter;
  /** The resource type it acts on; undefined for system-level interactions. */
  type?: string;
  id?: string;
  operation?: string;
}

const WRITE_LETTERS: ReadonlySet<ScopeLetter> = new Set(['c', 'u', 'd']);

/** Maps a request to its interaction the way the router does (see rest/router.ts). */
export function classify(request: FhirRequest, operationAffectsState: (name: string, type?: string) => boolean): Interaction {
  const segments = request.path.split('/').filter((s) => s !== '');
  const { method } = request;
  const get = method === 'GET' || method === 'HEAD';
  const [first, second, third] = segments;
  const op = (name: string, type?: string, id?: string): Interaction => ({
    name: 'operation',
    operation: name.slice(1),
    type,
    id,
    letter: operationAffectsState(name.slice(1), type) ? 'u' : name === '$everything' ? 'r' : type ? 'r' : 's',
  });
  if (segments.length === 0) {
    return { name: method === 'POST' ? 'batch' : 'search-system' };
  }
  if (first === 'metadata') {
    return { name: 'capabilities' };
  }
  if (first.startsWith('$')) {
    return op(first);
  }
  if (first === '_history') {
    return { name: 'history-system', letter: 's' };
  }
  const type = first;
  switch (segments.length) {
    case 1:
      if (get) return { name: 'search-type', letter: 's', type };
      if (method === 'POST') return { name: 'create', letter: 'c', type };
      if (method === 'DELETE') return { name: 'delete', letter: 'd', type };
      return { name: method === 'PUT' ? 'update' : 'patch', letter: 'u', type };
    case 2:
      if (second === '_history') return { name: 'history-type', letter: 's', type };
      if (second === '_search') return { name: 'search-type', letter: 's', type };
      if (second.startsWith('$')) return op(second, type);
      if (get) return { name: 'read', letter: 'r', type, id: second };
      if (method === 'DELETE') return { name: 'delete', letter: 'd', type, id: second };
      return { name: method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch' : 'create', letter: method === 'POST' ? 'c' : 'u', type, id: second };
    case 3:
      if (third === '_history') return { name: 'history-instance', letter: 'r', type, id: second };
      if (third.startsWith('$')) return op(third, type, second);
      // Patient/{id}/{type}: a search of one patient's compartment.
      return { name: 'search-type', letter: 's', type: third, id: undefined };
    default:
      return { name: 'vread', letter: 'r', type, id: second };
  }
}

export interface AccessPolicyOptions {
  /** The reason a clinician gave for breaking the glass (X-Break-The-Glass header). */
  breakGlassReason?: string;
  /** Answers AuditEvent reads and searches (the audit log is not in the store). */
  auditReader: (ctx: RouteContext, request: FhirRequest, interaction: Interaction) => Promise<FhirResponse>;
}

/** The first owner tag of a resource's meta.security, if any. */
export function ownerOf(meta: Meta | undefined): string | undefined {
  return meta?.security?.find((c) => c.system === OWNER_TAG_SYSTEM)?.code;
}

/** The part of a caller that operations and write rules may decide by (never its token or permissions). */
export function identityOf(caller: Caller): CallerIdentity {
  return {
    clientId: caller.clientId,
    role: caller.role,
    organization: caller.organization,
    practitioner: caller.practitioner,
    scope: caller.scope,
    ...(caller.user ? { user: caller.user.id } : {}),
  };
}

export class AccessPolicy implements RequestGuard {
  readonly rules: RoleRules;
  /** The interactions `before` saw (the request's own, then a bundle's entries): for the audit. */
  readonly seen: Interaction[] = [];

  constructor(
    readonly caller: Caller,
    private readonly options: AccessPolicyOptions,
  ) {
    this.rules = rulesOf(caller.role);
  }

  /**
   * The repository's hooks for this caller, only those that apply: an administrator with `system/*.*` gets none,
   * so its requests cost exactly what they did before security existed.
   */
  repositoryAccess(): RepositoryAccess | undefined {
    const filterNeeded = !this.rules.unrestricted || !this.caller.permissions.allowsAll('r');
    if (!filterNeeded && this.rules.unrestricted) {
      return undefined;
    }
    return {
      readFilter: filterNeeded ? (alias, params, types) => this.readFilter(alias, params, types) : undefined,
      checkChange: this.rules.unrestricted ? undefined : (type, id, content, read) => this.checkChange(type, id, content, read),
      stamp: this.rules.unrestricted ? undefined : (resource, current) => this.stamp(resource, current),
      mayReadAllHistory: this.rules.unrestricted,
      actor: this.rules.unrestricted ? undefined : identityOf(this.caller),
    };
  }

  get breakGlassReason(): string | undefined {
    return this.rules.needsCareRelationship ? this.options.breakGlassReason : undefined;
  }

  before(ctx: RouteContext, request: FhirRequest): Promise<FhirResponse | undefined> | undefined {
    const interaction = classify(request, (name, type) => {
      const targets = type ? [{ level: 'instance' as const, type }, { level: 'type' as const, type }] : [{ level: 'system' as const }];
      return targets.some((target) => ctx.operations.find(name, target)?.affectsState);
    });
    if (this.seen.length < 1000) {
      this.seen.push(interaction);
    }
    const { caller } = this;
    const { type, letter } = interaction;
    if (type === 'AuditEvent') {
      if (letter && WRITE_LETTERS.has(letter)) {
        throw new FhirError(405, outcome([issue('error', 'not-supported', 'The audit log is append-only: AuditEvents are written by the server alone and cannot be created, changed or deleted over the API')]));
      }
      if (!this.rules.mayReadAudit) {
        throw forbidden(`The audit log is open to supervisors and administrators; this client's role is ${caller.role}`);
      }
      return this.options.auditReader(ctx, request, interaction);
    }
    if (interaction.operation && this.assertOperationRole(ctx, interaction.operation, type, interaction.id)) {
      return undefined;
    }
    if (!letter) {
      return undefined;
    }
    const where = type ?? 'every resource type';
    const allowed = type ? caller.permissions.allows(type, letter) : caller.permissions.allowsAll(letter);
    if (!allowed) {
      throw forbidden(`The token's scopes (${caller.scope || 'none'}) do not allow ${interaction.name}${interaction.operation ? ` $${interaction.operation}` : ''} on ${where} (needs system/${type ?? '*'}.${letter})`);
    }
    if (WRITE_LETTERS.has(letter) && !this.rules.mayWrite(type ?? '*')) {
      throw forbidden(`A ${caller.role} client may not ${interaction.name} ${where}${caller.role === 'referral-coordinator' ? ': coordinators manage Task, ServiceRequest, Appointment and AppointmentResponse' : ''}`);
    }
    if (letter === 'u' && interaction.name === 'patch' && !this.rules.unrestricted) {
      assertPatchLeavesMetaAlone(request);
    }
    return undefined;
  }

  /**
   * Operations restricted to some roles (see FhirOperation.roles) refuse every other caller. True when the
   * operation authorises its callers itself (FhirOperation.authorizesCaller), so that scopes are not checked here.
   */
  private assertOperationRole(ctx: RouteContext, name: string, type: string | undefined, id: string | undefined): boolean {
    const target = type ? { level: id ? ('instance' as const) : ('type' as const), type, id } : { level: 'system' as const };
    const operation = ctx.operations.find(name, target);
    const roles = operation?.roles;
    if (roles && !roles.includes(this.caller.role)) {
      throw forbidden(`$${name} is open to ${roles.join(', ')} callers; this client's role is ${this.caller.role}`);
    }
    return operation?.authorizesCaller === true;
  }

  /**
   * Rows this caller may see: the token's resource types, patient consent, restricted labels, for clinicians a care
   * relationship, and for a Binary the same of the resource that governs it (its securityContext).
   */
  readFilter(alias: string, params: SqlParams, types?: readonly string[]): string {
    return this.rowFilter(alias, params, types, true);
  }

  /** `types`: the only resource types the rows can have, when known: conditions that cannot apply are left out of the SQL. */
  private rowFilter(alias: string, params: SqlParams, types: readonly string[] | undefined, withBinaryContext: boolean): string {
    const { caller } = this;
    const conditions: string[] = [];
    if (!caller.permissions.allowsAll('r')) {
      const types = [...new Set([...caller.permissions.typesAllowing('r'), ...caller.permissions.typesAllowing('s')])];
      conditions.push(`${alias}.res_type = ANY(${params.add(types)}::text[])`);
    }
    if (!this.rules.unrestricted) {
      const org = params.add(caller.organization ?? '');
      // What the caller's organisation owns is always its own to see, whatever the consents say about sharing.
      const owned = `EXISTS (SELECT 1 FROM search_token so WHERE so.res_type = ${alias}.res_type AND so.res_id = ${alias}.id
        AND so.code = '_security' AND so.system = '${OWNER_TAG_SYSTEM}' AND so.value = ${org})`;
      // Whose consents govern the row: the patients of its compartments, but a Patient only its own: Patient.link
      // puts a golden record in the compartments of the hospital copies it links (and a copy in its golden
      // record's), and a denial of one hospital's copy is not a denial of the resident's golden record.
      const governed =
        types && !types.includes('Patient')
          ? `${alias}.compartments`
          : types?.length === 1
            ? `ARRAY['Patient/' || ${alias}.id]`
            : `(CASE WHEN ${alias}.res_type = 'Patient' THEN ARRAY['Patient/' || ${alias}.id] ELSE ${alias}.compartments END)`;
      const deniedByConsent = `EXISTS (SELECT 1 FROM consent_rule cr WHERE cr.patient_ref = ANY(${governed})
        AND (cr.organization IS NULL OR cr.organization = ${org})
        AND (cr.resource_type IS NULL OR cr.resource_type = ${alias}.res_type)
        AND (cr.period_start IS NULL OR cr.period_start <= now()) AND (cr.period_end IS NULL OR cr.period_end > now())
        AND (cr.code_value IS NULL OR EXISTS (SELECT 1 FROM search_token sk WHERE sk.res_type = ${alias}.res_type AND sk.res_id = ${alias}.id
          AND sk.code NOT LIKE '\\_%' AND sk.value = cr.code_value AND (cr.code_system IS NULL OR sk.system = cr.code_system)))
        AND (cr.label_code IS NULL OR EXISTS (SELECT 1 FROM search_token sl WHERE sl.res_type = ${alias}.res_type AND sl.res_id = ${alias}.id
          AND sl.code = '_security' AND sl.value = cr.label_code AND (cr.label_system IS NULL OR sl.system = cr.label_system))))`;
      conditions.push(`(NOT ${deniedByConsent} OR ${owned})`);
      if (!this.rules.seesRestricted) {
        // Restricted to named organisations: visible to those and the owner only (probes the partial index 1003).
        const restricted = (extra: string): string => `EXISTS (SELECT 1 FROM search_token sv WHERE sv.res_type = ${alias}.res_type
          AND sv.res_id = ${alias}.id AND sv.code = '_security' AND sv.system = '${RESTRICTED_TO_SYSTEM}'${extra})`;
        conditions.push(`(NOT ${restricted('')} OR ${restricted(` AND sv.value = ${org}`)} OR ${owned})`);
      }
      if (this.rules.needsCareRelationship && !this.breakGlassReason) {
        // A care relationship with a patient counts for the patients it is linked with (Patient.link: a golden
        // record and the hospital copies it links, a merged record and its survivor): the same resident, one hop.
        const linkedCare = `EXISTS (SELECT 1 FROM search_reference pl JOIN care_relationship cr3 ON cr3.patient_ref = 'Patient/' || pl.target_id
          WHERE pl.res_type = 'Patient' AND pl.code = 'link' AND pl.target_type = 'Patient' AND cr3.organization = ${org}
            AND pl.res_id = ANY(ARRAY(SELECT substr(c, 9) FROM unnest(${alias}.compartments) c WHERE c LIKE 'Patient/%')))`;
        conditions.push(`(cardinality(${alias}.compartments) = 0 OR ${owned} OR EXISTS (SELECT 1 FROM care_relationship cr2
          WHERE cr2.patient_ref = ANY(${alias}.compartments) AND cr2.organization = ${org}) OR ${linkedCare})`);
      }
    }
    if (withBinaryContext && conditions.length > 0 && (!types || types.includes('Binary'))) {
      // A Binary is seen only by callers who may see the resource that governs it (binary_security_context,
      // migration 1006): in searches, history and _include as in reads. A governing resource that does not exist
      // hides it (a restricted caller cannot tell it from one hidden from it); one that was deleted no longer governs.
      const g = `${alias}_ctx`;
      conditions.push(`(${alias}.res_type <> 'Binary' OR NOT EXISTS (SELECT 1 FROM binary_security_context bc WHERE bc.binary_id = ${alias}.id
        AND NOT EXISTS (SELECT 1 FROM resource ${g} WHERE ${g}.res_type = bc.context_type AND ${g}.id = bc.context_id
          AND (${g}.deleted OR ${this.rowFilter(g, params, undefined, false)}))))`);
    }
    return conditions.length ? `(${conditions.join(' AND ')})` : 'true';
  }

  /**
   * Only the owning organisation changes or deletes a resource; one without an owner, only an administrator. A Task
   * is also the business of the organisation it is addressed to (Task.owner: the Organization, or one of its
   * HealthcareServices or PractitionerRoles, read in the write's transaction): a referral written by the referring
   * clinic is accepted, rejected and worked by the receiving hospital.
   */
  async checkChange(resourceType: string, id: string, currentContent: string | null, read: ResourceReader): Promise<void> {
    const current = currentContent ? (JSON.parse(currentContent) as Resource) : undefined;
    const owner = current ? ownerOf(current.meta) : undefined;
    const org = this.caller.organization;
    if (owner !== undefined && owner === org) {
      return;
    }
    if (current?.resourceType === 'Task' && org && (await partyOfOrganization(current.owner, org, read))) {
      return;
    }
    throw forbidden(
      owner
        ? `${resourceType}/${id} is owned by ${owner}; only its owner may change or delete it`
        : `${resourceType}/${id} has no owning organisation; only an administrator may change or delete it`,
    );
  }

  /**
   * Names the caller's organisation as owner: in meta.source and as a security tag (any other owner tag removed).
   * A Task the organisation it is addressed to works on stays its sender's record (`current`'s owner), so that the
   * sender can still cancel it.
   */
  stamp(resource: Resource, current?: Resource): Resource {
    const org = this.caller.organization;
    if (!org) {
      throw forbidden('This client has no owning organisation, so it cannot write');
    }
    const owner = (current?.resourceType === 'Task' ? ownerOf(current.meta) : undefined) ?? org;
    const security = (resource.meta?.security ?? []).filter((c) => c.system !== OWNER_TAG_SYSTEM);
    security.push({ system: OWNER_TAG_SYSTEM, code: owner, display: 'owning organization' });
    return { ...resource, meta: { ...resource.meta, source: org, security } } as Resource;
  }
}

/** A patch may not touch meta (the owner tag and source are the server's to set). */
function assertPatchLeavesMetaAlone(request: FhirRequest): void {
  const body = request.body as unknown;
  const paths: string[] = [];
  if (Array.isArray(body)) {
    for (const op of body as Array<{ path?: unknown; from?: unknown }>) {
      paths.push(String(op?.path ?? ''), String(op?.from ?? ''));
    }
  } else if (body && typeof body === 'object') {
    for (const p of (body as { parameter?: Array<{ part?: Array<{ name?: string; valueString?: string }> }> }).parameter ?? []) {
      for (const part of p.part ?? []) {
        if (part.name === 'path' || part.name === 'name') {
          paths.push(String(part.valueString ?? ''));
        }
      }
    }
  }
  if (paths.some((p) => /(^|[/.])meta([/.[]|$)/.test(p))) {
    throw forbidden('A patch may not change meta: the owning organisation and source are set by the server');
  }
}
