/**
 * The read model: facts extracted from changed resources into supervision's tables, so that rules and indicators
 * are SQL over compact rows instead of searches over the store.
 *
 * Events are handled in batches (see engine.ts): the batch's resources are read at their current version with one
 * `_id` search per type, the resources they reference (Encounter, Patient, Condition, referral ServiceRequest) with
 * one more per type, and the facts are written with one statement per table. Reading the current version makes the
 * order of events irrelevant: a late event of an older version writes the newest facts again, every upsert keeps
 * the row of the higher version (or the same version re-derived), and a deletion leaves a tombstone so that an older
 * version's event handled after it brings nothing back.
 *
 * Facts are denormalised (the prescription's setting from its Encounter, the patient's sex and birth date, the
 * encounter's principal diagnosis from its Condition). A change or deletion of the referenced resource re-derives
 * the facts that depend on it (their ids are returned as changed, so the rules look at them again).
 */
import type {
  Condition,
  DiagnosticReport,
  Encounter,
  MedicationRequest,
  Observation,
  Patient,
  Procedure,
  Resource,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { FhirError, parseSearch, type Database, type FhirRepository, type Queryable, type ResourceChangeJob } from '../fhir-server';
import { codes as referralCodes } from '../referral-workflow';
import {
  ATC,
  durationDays,
  extensionValue,
  firstCoding,
  hasCode,
  ICD10_SYSTEMS,
  idOf,
  localRef,
  normaliseIcd,
  ownerOf,
  PLANNED_READMISSION_EXTENSION,
  REPEAT_TEST_REASON_EXTENSION,
  STABLE_CHRONIC_EXTENSION,
  SUPPLY_REASON_EXTENSION,
} from './fhir';

/** The resource types whose changes supervision reads (everything counts for the data feed). */
export const FACT_TYPES = [
  'MedicationRequest',
  'Encounter',
  'Condition',
  'ServiceRequest',
  'Procedure',
  'Observation',
  'DiagnosticReport',
  'Task',
  'Organization',
  'Appointment',
] as const;

const ACCEPTED = ['accepted', 'ready', 'in-progress', 'on-hold', 'completed'];
const ANSWERED = [...ACCEPTED, 'rejected', 'failed', 'cancelled'];

const iso = (value: string | undefined): string | null => (value && !Number.isNaN(Date.parse(value)) ? new Date(value).toISOString() : null);

function settingOfEncounter(enc: Encounter | undefined): string | undefined {
  const code = enc?.class?.code;
  if (!code) return undefined;
  if (code === 'EMER') return 'emergency';
  if (['IMP', 'ACUTE', 'NONAC', 'SS'].includes(code)) return 'inpatient';
  if (['AMB', 'VR', 'HH'].includes(code)) return 'outpatient';
  return 'other';
}

function departmentOf(institution: string | undefined, serviceProvider: string | undefined): string | null {
  return serviceProvider && serviceProvider !== institution ? serviceProvider : null;
}

/** Grams per administration of a dose in mg, g, µg (UCUM or plain units); undefined for other units. */
function doseGrams(value: number | undefined, unit: string | undefined): number | undefined {
  if (value === undefined || !unit) return undefined;
  const factor: Record<string, number> = { g: 1, mg: 0.001, ug: 0.000001, 'µg': 0.000001, mcg: 0.000001, kg: 1000 };
  return factor[unit] === undefined ? undefined : value * factor[unit];
}

/** Total grams prescribed: dose × administrations per day × days, when all three are stated. */
function amountGrams(mr: MedicationRequest, days: number | undefined): number | null {
  const dosage = mr.dosageInstruction?.[0];
  const dose = dosage?.doseAndRate?.[0]?.doseQuantity;
  const grams = doseGrams(dose?.value, dose?.code ?? dose?.unit);
  const repeat = dosage?.timing?.repeat;
  const periodDays = repeat?.period !== undefined ? durationDays({ value: repeat.period, code: repeat.periodUnit }) : undefined;
  const perDay = repeat?.frequency !== undefined && periodDays ? repeat.frequency / periodDays : undefined;
  const course = days ?? durationDays(repeat?.boundsDuration);
  return grams !== undefined && perDay !== undefined && course !== undefined ? grams * perDay * course : null;
}


/** `Type/id` */
type Ref = string;

/**
 * ConceptMap `$translate` as the terminology module offers it (its TerminologyService fits): a drug coded only
 * locally is given the ATC ingredient its hospital's ConceptMap maps it to.
 */
export interface IngredientTranslation {
  translate(request: { system: string; code: string; targetSystem?: string; maxAgeMs?: number }): Promise<{
    result?: boolean;
    ambiguous?: boolean;
    matches: Array<{ equivalence: string; concept: { system?: string; code?: string } }>;
  }>;
}

/** Mappings that make the local drug "this ingredient": the same concept, or a product of it (the ATC code wider). */
const INGREDIENT_EQUIVALENCES = new Set(['equal', 'equivalent', 'wider', 'subsumes']);
/** How long a translation is reused, ms, and how many are kept. */
const TRANSLATION_TTL_MS = 5 * 60_000;
const TRANSLATION_CACHE_SIZE = 10_000;

/** What a batch changed in the facts: ids per resource type, for the rules to look at again. */
export interface BatchChanges {
  /** Facts recorded or re-derived (their rules are evaluated over these ids). */
  recorded: Map<string, Set<string>>;
  /** Facts retracted (deleted resources): findings implicating them no longer hold. */
  retracted: Map<string, Set<string>>;
}

/** How many ids one `_id` search asks for. */
const READ_CHUNK = 500;

function add(map: Map<string, Set<string>>, type: string, id: string): void {
  let set = map.get(type);
  if (!set) {
    set = new Set();
    map.set(type, set);
  }
  set.add(id);
}

function versionOf(resource: Resource): number {
  return Number(resource.meta?.versionId ?? 0);
}

/** The rows of one batch, written with one statement per table. */
class BatchRows {
  readonly prescriptions: Record<string, unknown>[] = [];
  readonly encounters: Record<string, unknown>[] = [];
  readonly orders: Record<string, unknown>[] = [];
  readonly referrals: Record<string, unknown>[] = [];
  readonly organizations: Record<string, unknown>[] = [];
  readonly care: Array<{ patient: string; organization: string }> = [];
  readonly feed: Array<{ institution: string; at: string }> = [];

  addCare(patient: string | undefined, organizations: Array<string | undefined>): void {
    if (!patient) return;
    for (const organization of new Set(organizations.filter((o): o is string => !!o))) {
      this.care.push({ patient, organization });
    }
  }
}

export class FactRecorder {
  constructor(
    private readonly db: Database,
    private readonly repo: FhirRepository,
    /** Owners whose writes are not an institution's data feed (the bureau's own findings and reviews). */
    private readonly notFeeds: readonly string[] = [],
    /** The time zone of the data feed's days. */
    private readonly timeZone = 'UTC',
    /** Translates local drug codes to ATC ingredients (the terminology module); none: ATC codings only. */
    private readonly translator?: IngredientTranslation,
  ) {}

  private readonly translations = new Map<string, { atc: string | undefined; at: number }>();

  /** The ATC ingredients of the batch's locally coded drugs, by `system|code` (one $translate per code, cached). */
  private async ingredients(resources: Iterable<Resource>): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (!this.translator) return out;
    const now = Date.now();
    for (const r of resources) {
      if (r.resourceType !== 'MedicationRequest' || r.medicationCodeableConcept?.coding?.some((c) => c.system === ATC)) continue;
      const local = r.medicationCodeableConcept?.coding?.find((c) => c.system && c.code);
      if (!local?.system || !local.code) continue;
      const key = `${local.system}|${local.code}`;
      let cached = this.translations.get(key);
      if (!cached || now - cached.at > TRANSLATION_TTL_MS) {
        const result = await this.translator.translate({ system: local.system, code: local.code, targetSystem: ATC, maxAgeMs: TRANSLATION_TTL_MS });
        // An ambiguous mapping (two ingredients) names none: a wrong ingredient would raise wrong duplicates.
        const atcs = new Set(result.matches.filter((m) => INGREDIENT_EQUIVALENCES.has(m.equivalence) && m.concept.system === ATC && m.concept.code).map((m) => m.concept.code as string));
        cached = { atc: atcs.size === 1 ? [...atcs][0] : undefined, at: now };
        if (this.translations.size >= TRANSLATION_CACHE_SIZE) this.translations.delete(this.translations.keys().next().value as string);
        this.translations.set(key, cached);
      }
      if (cached.atc) out.set(key, cached.atc);
    }
    return out;
  }

  /**
   * Records the facts of a batch of change events; returns what changed for the rules. Idempotent: a batch handled
   * twice (a retry) leaves the same facts; only the data feed's resource counts may count a retried event twice.
   */
  async recordBatch(events: readonly ResourceChangeJob[]): Promise<BatchChanges> {
    const changes: BatchChanges = { recorded: new Map(), retracted: new Map() };
    // The latest event of each resource: its current version is what is read anyway.
    const latest = new Map<Ref, ResourceChangeJob>();
    const taskEvents: ResourceChangeJob[] = [];
    for (const e of events) {
      const ref = `${e.resourceType}/${e.id}`;
      const seen = latest.get(ref);
      if (!seen || seen.versionId < e.versionId) latest.set(ref, e);
      // Referral Tasks keep when they were accepted and answered: each version is read, not only the last.
      if (e.resourceType === 'Task' && e.interaction !== 'delete') taskEvents.push(e);
    }
    const deletions = [...latest.values()].filter((e) => e.interaction === 'delete');
    await this.forget(deletions, changes);

    // Current versions of the changed resources (Tasks: each version), one search per type.
    const live = [...latest.values()].filter((e) => e.interaction !== 'delete' && e.resourceType !== 'Task');
    const resources = await this.readMany(live.map((e) => `${e.resourceType}/${e.id}`));
    // Tasks: their current versions in one search; only those about a ServiceRequest (referrals) are read per
    // version, the others (review steps, other workflows' Tasks) have no facts.
    const currentTasks = await this.readMany(taskEvents.map((e) => `Task/${e.id}`));
    const tasks: Array<{ task: Task; occurredAt: string }> = [];
    for (const e of taskEvents) {
      const current = currentTasks.get(`Task/${e.id}`) as Task | undefined;
      if (!current || !localRef(current.focus, 'ServiceRequest')) continue;
      if (versionOf(current) === e.versionId) {
        tasks.push({ task: current, occurredAt: e.occurredAt });
        continue;
      }
      try {
        tasks.push({ task: JSON.parse((await this.repo.vread('Task', e.id, e.versionId)).json) as Task, occurredAt: e.occurredAt });
      } catch (err) {
        if (!(err instanceof FhirError && (err.status === 404 || err.status === 410))) throw err;
      }
    }

    // Facts derived from what changed (or was deleted) are derived again from the current versions.
    const dependents = (await this.dependents([...latest.keys()])).filter((ref) => !resources.has(ref) && !latest.has(ref));
    for (const [ref, r] of await this.readMany(dependents)) {
      if (r.resourceType === 'Task') {
        tasks.push({ task: r as Task, occurredAt: r.meta?.lastUpdated ?? new Date().toISOString() });
      } else {
        resources.set(ref, r);
      }
    }

    const rows = new BatchRows();
    // The data feed: every change event counts for the day of its resource's owner.
    const owners = new Map<Ref, string | undefined>([...resources].map(([ref, r]) => [ref, ownerOf(r.meta)]));
    for (const [ref, task] of currentTasks) owners.set(ref, ownerOf(task.meta));
    for (const e of events) {
      const owner = e.interaction === 'delete' ? undefined : owners.get(`${e.resourceType}/${e.id}`);
      if (owner && !this.notFeeds.includes(owner)) rows.feed.push({ institution: owner, at: e.occurredAt });
    }

    // The resources they reference, one search per type (those of the batch are reused).
    const referenced = new Set<Ref>();
    for (const r of resources.values()) for (const ref of this.referencesOf(r)) referenced.add(ref);
    for (const { task } of tasks) {
      const sr = localRef(task.focus, 'ServiceRequest');
      if (sr) referenced.add(sr);
    }
    const known = new Map<Ref, Resource>(resources);
    for (const [ref, r] of await this.readMany([...referenced].filter((ref) => !known.has(ref)))) known.set(ref, r);
    const lookup = <T extends Resource>(ref: string | undefined): T | undefined => (ref ? (known.get(ref) as T | undefined) : undefined);

    const ingredients = await this.ingredients(resources.values());
    for (const [ref, resource] of resources) {
      if (this.extract(resource, rows, lookup, ingredients)) add(changes.recorded, resource.resourceType, ref.split('/')[1]);
    }
    for (const { task, occurredAt } of tasks) {
      if (this.referral(task, occurredAt, rows, lookup)) add(changes.recorded, 'Task', task.id as string);
    }
    await this.write(rows);
    return changes;
  }

  /** `Type/id` → current resource, for those that exist; one `_id` search per type and 500 ids. */
  private async readMany(refs: readonly Ref[]): Promise<Map<Ref, Resource>> {
    const byType = new Map<string, string[]>();
    for (const ref of new Set(refs)) {
      const [type, id] = ref.split('/');
      if (!type || !id || !/^[A-Za-z0-9\-.]{1,64}$/.test(id)) continue;
      byType.set(type, [...(byType.get(type) ?? []), id]);
    }
    const found = new Map<Ref, Resource>();
    for (const [type, ids] of byType) {
      for (let i = 0; i < ids.length; i += READ_CHUNK) {
        const chunk = ids.slice(i, i + READ_CHUNK);
        const page = await this.repo.search(parseSearch(type, { _id: [chunk.join(',')] }), { count: chunk.length, offset: 0 });
        for (const row of page.rows) found.set(`${row.resourceType}/${row.id}`, JSON.parse(row.content) as Resource);
      }
    }
    return found;
  }

  /** The references whose content a resource's facts take. */
  private referencesOf(r: Resource): Ref[] {
    const refs: Array<string | undefined> = [];
    switch (r.resourceType) {
      case 'MedicationRequest':
        refs.push(localRef(r.encounter, 'Encounter'), localRef(r.subject, 'Patient'));
        break;
      case 'Encounter':
        refs.push(...(r.diagnosis ?? []).map((d) => localRef(d.condition, 'Condition')));
        break;
      case 'ServiceRequest':
      case 'Procedure':
        refs.push(localRef(r.encounter, 'Encounter'), localRef(r.subject, 'Patient'));
        break;
      case 'Observation':
      case 'DiagnosticReport':
        refs.push(localRef(r.encounter, 'Encounter'));
        break;
      default:
        break;
    }
    return refs.filter((x): x is string => !!x);
  }

  /**
   * The facts derived from these resources (their Encounter, Patient, Condition, referral ServiceRequest): the
   * prescriptions and orders of an encounter or patient, the encounters whose diagnosis a Condition gave, the
   * referral Tasks of a ServiceRequest.
   */
  private async dependents(refs: readonly Ref[]): Promise<Ref[]> {
    const ids = (type: string): string[] => refs.filter((r) => r.startsWith(`${type}/`)).map((r) => r.slice(type.length + 1));
    const encounters = ids('Encounter');
    const patients = refs.filter((r) => r.startsWith('Patient/'));
    const conditions = ids('Condition');
    const requests = ids('ServiceRequest');
    const out: Ref[] = [];
    if (encounters.length || patients.length) {
      const rows = await this.db.query<{ ref: string }>(
        `SELECT 'MedicationRequest/' || id AS ref FROM sv_prescription WHERE encounter = ANY($1::text[]) OR patient = ANY($2::text[])
         UNION SELECT res_type || '/' || id FROM sv_order WHERE encounter = ANY($1::text[])
         UNION SELECT res_type || '/' || id FROM sv_order WHERE patient = ANY($2::text[]) AND kind <> 'result'`,
        [encounters, patients],
      );
      out.push(...rows.map((r) => r.ref));
    }
    if (conditions.length) {
      const rows = await this.db.query<{ ref: string }>(`SELECT 'Encounter/' || id AS ref FROM sv_encounter WHERE conditions && $1::text[]`, [conditions]);
      out.push(...rows.map((r) => r.ref));
    }
    if (requests.length) {
      const rows = await this.db.query<{ ref: string }>(`SELECT 'Task/' || task_id AS ref FROM sv_referral WHERE service_request = ANY($1::text[])`, [requests]);
      out.push(...rows.map((r) => r.ref));
    }
    return out;
  }

  /** Deletions: a tombstone each, and the facts of older versions removed (set-based, one statement per table). */
  private async forget(deletions: readonly ResourceChangeJob[], changes: BatchChanges): Promise<void> {
    if (deletions.length === 0) return;
    const types = deletions.map((e) => e.resourceType);
    const ids = deletions.map((e) => e.id);
    const versions = deletions.map((e) => e.versionId);
    await this.db.query(
      `WITH d AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) AS d(res_type, id, version)),
       t AS (INSERT INTO sv_tombstone (res_type, id, version) SELECT res_type, id, version FROM d
             ON CONFLICT (res_type, id) DO UPDATE SET version = GREATEST(sv_tombstone.version, EXCLUDED.version)),
       p AS (DELETE FROM sv_prescription x USING d WHERE d.res_type = 'MedicationRequest' AND x.id = d.id AND x.version < d.version),
       e AS (DELETE FROM sv_encounter x USING d WHERE d.res_type = 'Encounter' AND x.id = d.id AND x.version < d.version),
       o AS (DELETE FROM sv_order x USING d WHERE x.res_type = d.res_type AND x.id = d.id AND x.version < d.version),
       r AS (DELETE FROM sv_referral x USING d WHERE d.res_type = 'Task' AND x.task_id = d.id AND x.version < d.version)
       DELETE FROM sv_organization x USING d WHERE d.res_type = 'Organization' AND x.id = 'Organization/' || d.id AND x.version < d.version`,
      [types, ids, versions],
    );
    for (const e of deletions) add(changes.retracted, e.resourceType, e.id);
  }

  /** Adds a resource's facts to the batch's rows; true when it has facts the rules look at. */
  private extract(
    resource: Resource,
    rows: BatchRows,
    lookup: <T extends Resource>(ref: string | undefined) => T | undefined,
    ingredients: ReadonlyMap<string, string>,
  ): boolean {
    const institution = ownerOf(resource.meta);
    const version = versionOf(resource);
    switch (resource.resourceType) {
      case 'MedicationRequest':
        rows.prescriptions.push(this.prescription(resource, version, institution, lookup, ingredients));
        return true;
      case 'Encounter':
        rows.encounters.push(this.encounter(resource, version, institution, lookup, rows));
        return true;
      case 'ServiceRequest':
        if (referralCodes.isReferral(resource)) {
          rows.addCare(localRef(resource.subject, 'Patient'), [institution, ...(resource.performer ?? []).map((p) => localRef(p, 'Organization'))]);
          return false;
        }
        rows.orders.push(this.order(resource, version, institution, 'order', lookup, rows));
        return true;
      case 'Procedure':
        rows.orders.push(this.order(resource, version, institution, 'procedure', lookup, rows));
        return true;
      case 'Observation':
      case 'DiagnosticReport':
        rows.orders.push(this.order(resource, version, institution, 'result', lookup, rows));
        return true;
      case 'Organization':
        rows.organizations.push({
          id: `Organization/${resource.id}`,
          version,
          name: resource.name ?? null,
          part_of: localRef(resource.partOf, 'Organization') ?? null,
          active: resource.active !== false,
          provider: (resource.type ?? []).some((t) => t.coding?.some((c) => c.code === 'prov')),
        });
        return false;
      case 'Appointment':
        rows.addCare(
          resource.participant?.map((p) => localRef(p.actor, 'Patient')).find(Boolean),
          [institution, ...(resource.participant ?? []).map((p) => localRef(p.actor, 'Organization'))],
        );
        return false;
      default:
        return false;
    }
  }

  private patientFacts(patient: Patient | undefined): { patient_gender: string | null; patient_birth: string | null } {
    return {
      patient_gender: patient?.gender ?? null,
      patient_birth: patient?.birthDate && /^\d{4}-\d{2}-\d{2}$/.test(patient.birthDate) ? patient.birthDate : null,
    };
  }

  private prescription(
    mr: MedicationRequest,
    version: number,
    institution: string | undefined,
    lookup: <T extends Resource>(ref: string | undefined) => T | undefined,
    ingredients: ReadonlyMap<string, string>,
  ): Record<string, unknown> {
    const patient = localRef(mr.subject, 'Patient');
    const encounterRef = localRef(mr.encounter, 'Encounter');
    const encounter = lookup<Encounter>(encounterRef);
    const setting =
      settingOfEncounter(encounter) ??
      (hasCode(mr.category, 'outpatient') || hasCode(mr.category, 'community') ? 'outpatient' : hasCode(mr.category, 'inpatient') ? 'inpatient' : 'other');
    const drug = firstCoding(mr.medicationCodeableConcept, ATC);
    const local = mr.medicationCodeableConcept?.coding?.find((c) => c.system && c.code);
    const atc = mr.medicationCodeableConcept?.coding?.find((c) => c.system === ATC)?.code ?? (local ? ingredients.get(`${local.system}|${local.code}`) : undefined);
    const days = durationDays(mr.dispenseRequest?.expectedSupplyDuration);
    const validity = mr.dispenseRequest?.validityPeriod;
    const validityDays = validity?.start && validity.end ? (Date.parse(validity.end) - Date.parse(validity.start)) / 86_400_000 : null;
    const reason = extensionValue(mr.dispenseRequest, SUPPLY_REASON_EXTENSION) ?? extensionValue(mr, SUPPLY_REASON_EXTENSION);
    const reasonText = typeof reason === 'string' ? reason : reason && typeof reason === 'object' ? JSON.stringify(reason) : null;
    return {
      id: mr.id,
      version,
      institution: institution ?? null,
      department: departmentOf(institution, localRef(encounter?.serviceProvider, 'Organization')),
      practitioner: localRef(mr.requester, 'Practitioner') ?? null,
      patient: patient ?? null,
      encounter: encounterRef ? idOf(encounterRef) : null,
      group_id: mr.groupIdentifier?.value ? `${mr.groupIdentifier.system ?? ''}|${mr.groupIdentifier.value}` : `MedicationRequest/${mr.id}`,
      authored: iso(mr.authoredOn) ?? new Date(mr.meta?.lastUpdated ?? Date.now()).toISOString(),
      status: mr.status,
      setting,
      drug_system: drug?.system ?? null,
      drug_code: drug?.code ?? null,
      ingredient: atc ?? null,
      days_supply: days ?? null,
      validity_days: validityDays,
      long_term: hasCode(mr.courseOfTherapyType, 'continuous'),
      stable_chronic: extensionValue(mr, STABLE_CHRONIC_EXTENSION) === true,
      extension_reason: reasonText,
      reason_codes: (mr.reasonCode ?? []).flatMap((c) => (c.coding ?? []).map((x) => normaliseIcd(x.code) as string)).filter(Boolean),
      amount_g: amountGrams(mr, days),
      ...this.patientFacts(lookup<Patient>(patient)),
    };
  }

  /** The principal diagnosis: the Condition ranked first (or the first listed), else the first reason code. */
  private principalDiagnosis(enc: Encounter, lookup: <T extends Resource>(ref: string | undefined) => T | undefined): string | undefined {
    const diagnoses = [...(enc.diagnosis ?? [])].sort((a, b) => (a.rank ?? 99) - (b.rank ?? 99));
    for (const d of diagnoses) {
      const condition = lookup<Condition>(localRef(d.condition, 'Condition'));
      const coding = condition?.code?.coding?.find((c) => c.system && ICD10_SYSTEMS.includes(c.system)) ?? condition?.code?.coding?.[0];
      if (coding?.code) {
        return normaliseIcd(coding.code);
      }
    }
    const reason = enc.reasonCode?.flatMap((c) => c.coding ?? []).find((c) => c.code);
    return normaliseIcd(reason?.code);
  }

  private encounter(
    enc: Encounter,
    version: number,
    institution: string | undefined,
    lookup: <T extends Resource>(ref: string | undefined) => T | undefined,
    rows: BatchRows,
  ): Record<string, unknown> {
    const patient = localRef(enc.subject, 'Patient');
    const serviceProvider = localRef(enc.serviceProvider, 'Organization');
    const planned =
      extensionValue(enc.hospitalization, PLANNED_READMISSION_EXTENSION) === true ||
      extensionValue(enc, PLANNED_READMISSION_EXTENSION) === true ||
      hasCode(enc.priority, 'EL');
    rows.addCare(patient, [institution, serviceProvider]);
    return {
      id: enc.id,
      version,
      institution: institution ?? null,
      department: departmentOf(institution, serviceProvider),
      practitioner: enc.participant?.map((p) => localRef(p.individual, 'Practitioner')).find(Boolean) ?? null,
      patient: patient ?? null,
      class: settingOfEncounter(enc) ?? null,
      status: enc.status,
      start_at: iso(enc.period?.start),
      end_at: iso(enc.period?.end),
      principal_dx: this.principalDiagnosis(enc, lookup) ?? null,
      planned,
      conditions: (enc.diagnosis ?? []).map((d) => localRef(d.condition, 'Condition')).filter((r): r is string => !!r).map(idOf),
    };
  }

  private order(
    resource: ServiceRequest | Procedure | Observation | DiagnosticReport,
    version: number,
    institution: string | undefined,
    kind: 'order' | 'procedure' | 'result',
    lookup: <T extends Resource>(ref: string | undefined) => T | undefined,
    rows: BatchRows,
  ): Record<string, unknown> {
    const patient = localRef(resource.subject, 'Patient');
    const code = firstCoding(resource.code);
    let at: string | null;
    let practitioner: string | undefined;
    switch (resource.resourceType) {
      case 'ServiceRequest':
        at = iso(resource.authoredOn) ?? iso(resource.occurrenceDateTime);
        practitioner = localRef(resource.requester, 'Practitioner');
        break;
      case 'Procedure':
        at = iso(resource.performedDateTime) ?? iso(resource.performedPeriod?.start);
        practitioner = resource.performer?.map((p) => localRef(p.actor, 'Practitioner')).find(Boolean);
        break;
      default:
        at = iso(resource.effectiveDateTime) ?? iso(resource.effectivePeriod?.start) ?? iso(resource.issued);
        practitioner = resource.performer?.map((p) => localRef(p, 'Practitioner')).find(Boolean);
    }
    const encounterRef = localRef(resource.encounter, 'Encounter');
    const encounter = lookup<Encounter>(encounterRef);
    const reason = extensionValue(resource, REPEAT_TEST_REASON_EXTENSION);
    if (kind !== 'result') rows.addCare(patient, [institution]);
    return {
      res_type: resource.resourceType,
      id: resource.id,
      version,
      kind,
      institution: institution ?? null,
      department: departmentOf(institution, localRef(encounter?.serviceProvider, 'Organization')),
      practitioner: practitioner ?? null,
      patient: patient ?? null,
      encounter: encounterRef ? idOf(encounterRef) : null,
      code_system: code?.system ?? null,
      code: code?.code ?? null,
      at,
      status: resource.status,
      repeat_reason: typeof reason === 'string' ? reason : reason ? JSON.stringify(reason) : null,
      ...(kind === 'result' ? { patient_gender: null, patient_birth: null } : this.patientFacts(lookup<Patient>(patient))),
    };
  }

  private referral(task: Task, occurredAt: string, rows: BatchRows, lookup: <T extends Resource>(ref: string | undefined) => T | undefined): boolean {
    const srRef = localRef(task.focus, 'ServiceRequest');
    const sr = lookup<ServiceRequest>(srRef);
    if (!sr || !referralCodes.isReferral(sr)) {
      return false;
    }
    const encounter = localRef(sr.encounter, 'Encounter');
    rows.referrals.push({
      task_id: task.id,
      version: versionOf(task),
      service_request: srRef ? idOf(srRef) : null,
      referrer: localRef(task.requester, 'Organization') ?? localRef(sr.requester, 'Organization') ?? ownerOf(sr.meta) ?? null,
      receiver: localRef(task.owner, 'Organization') ?? null,
      practitioner: localRef(sr.requester, 'Practitioner') ?? null,
      encounter: encounter ? idOf(encounter) : null,
      direction: referralCodes.directionOf(sr) ?? null,
      status: task.status,
      authored: iso(task.authoredOn) ?? iso(sr.authoredOn),
      deadline: iso(task.restriction?.period?.end),
      accepted_at: ACCEPTED.includes(task.status) ? occurredAt : null,
      responded_at: ANSWERED.includes(task.status) ? occurredAt : null,
    });
    return true;
  }

  /** The batch's rows: one statement per table, in one transaction. */
  private async write(rows: BatchRows): Promise<void> {
    await this.db.transaction(async (tx) => {
      await this.upsert(tx, 'sv_prescription', 'MedicationRequest', rows.prescriptions, PRESCRIPTION_COLUMNS, ['id']);
      await this.upsert(tx, 'sv_encounter', 'Encounter', rows.encounters, ENCOUNTER_COLUMNS, ['id']);
      await this.upsert(tx, 'sv_order', undefined, rows.orders, ORDER_COLUMNS, ['res_type', 'id']);
      await this.upsert(tx, 'sv_organization', 'Organization', rows.organizations, ORGANIZATION_COLUMNS, ['id']);
      if (rows.referrals.length) {
        await tx.query(
          `INSERT INTO sv_referral (${REFERRAL_COLUMNS.map((c) => c[0]).join(', ')})
           SELECT ${REFERRAL_COLUMNS.map((c) => (c[0] === 'accepted_at' ? 'first_accepted' : c[0] === 'responded_at' ? 'first_responded' : c[0])).join(', ')} FROM (
             SELECT DISTINCT ON (x.task_id) x.*, min(x.accepted_at) OVER (PARTITION BY x.task_id) AS first_accepted,
               min(x.responded_at) OVER (PARTITION BY x.task_id) AS first_responded
             FROM jsonb_to_recordset($1::jsonb) AS x(${REFERRAL_COLUMNS.map((c) => `${c[0]} ${c[1]}`).join(', ')})
             WHERE NOT EXISTS (SELECT 1 FROM sv_tombstone t WHERE t.res_type = 'Task' AND t.id = x.task_id AND t.version > x.version)
             ORDER BY x.task_id, x.version DESC) y
           ON CONFLICT (task_id) DO UPDATE SET
             accepted_at = LEAST(sv_referral.accepted_at, EXCLUDED.accepted_at),
             responded_at = LEAST(sv_referral.responded_at, EXCLUDED.responded_at),
             version = GREATEST(sv_referral.version, EXCLUDED.version),
             ${REFERRAL_COLUMNS.filter((c) => !['task_id', 'version', 'accepted_at', 'responded_at'].includes(c[0]))
               .map((c) => `${c[0]} = CASE WHEN sv_referral.version <= EXCLUDED.version THEN EXCLUDED.${c[0]} ELSE sv_referral.${c[0]} END`)
               .join(',\n             ')}`,
          [JSON.stringify(rows.referrals)],
        );
      }
      if (rows.care.length) {
        await tx.query(
          `INSERT INTO sv_care (patient, organization) SELECT DISTINCT p, o FROM unnest($1::text[], $2::text[]) AS c(p, o) ON CONFLICT DO NOTHING`,
          [rows.care.map((c) => c.patient), rows.care.map((c) => c.organization)],
        );
      }
      if (rows.feed.length) {
        await tx.query(
          `INSERT INTO sv_feed (institution, day, resources, last_at)
           SELECT i, (a AT TIME ZONE $3)::date, count(*), max(a) FROM unnest($1::text[], $2::timestamptz[]) AS f(i, a) GROUP BY 1, 2
           ON CONFLICT (institution, day) DO UPDATE SET resources = sv_feed.resources + EXCLUDED.resources, last_at = GREATEST(sv_feed.last_at, EXCLUDED.last_at)`,
          [rows.feed.map((f) => f.institution), rows.feed.map((f) => f.at), this.timeZone],
        );
      }
    });
  }

  /**
   * One upsert of many rows: a row replaces one of a lower or the same version (the same version re-derived after a
   * referenced resource changed), never a higher one, and never comes back after the resource's deletion.
   */
  private async upsert(
    tx: Queryable,
    table: string,
    resourceType: string | undefined,
    rows: Record<string, unknown>[],
    columns: ReadonlyArray<readonly [string, string]>,
    key: string[],
  ): Promise<void> {
    if (rows.length === 0) return;
    const names = columns.map((c) => c[0]);
    const idExpr = table === 'sv_organization' ? `substr(x.id, 14)` : 'x.id';
    const typeExpr = resourceType ? `'${resourceType}'` : 'x.res_type';
    await tx.query(
      `INSERT INTO ${table} (${names.join(', ')})
       SELECT DISTINCT ON (${key.map((k) => `x.${k}`).join(', ')}) ${names.map((n) => `x.${n}`).join(', ')}
       FROM jsonb_to_recordset($1::jsonb) AS x(${columns.map((c) => `${c[0]} ${c[1]}`).join(', ')})
       WHERE NOT EXISTS (SELECT 1 FROM sv_tombstone t WHERE t.res_type = ${typeExpr} AND t.id = ${idExpr} AND t.version > x.version)
       ORDER BY ${key.map((k) => `x.${k}`).join(', ')}, x.version DESC
       ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${names.filter((n) => !key.includes(n)).map((n) => `${n} = EXCLUDED.${n}`).join(', ')}
       WHERE ${table}.version <= EXCLUDED.version`,
      [JSON.stringify(rows)],
    );
  }
}

const PRESCRIPTION_COLUMNS = [
  ['id', 'text'], ['version', 'integer'], ['institution', 'text'], ['department', 'text'], ['practitioner', 'text'], ['patient', 'text'],
  ['encounter', 'text'], ['group_id', 'text'], ['authored', 'timestamptz'], ['status', 'text'], ['setting', 'text'], ['drug_system', 'text'],
  ['drug_code', 'text'], ['ingredient', 'text'], ['days_supply', 'numeric'], ['validity_days', 'numeric'], ['long_term', 'boolean'],
  ['stable_chronic', 'boolean'], ['extension_reason', 'text'], ['reason_codes', 'text[]'], ['amount_g', 'numeric'], ['patient_gender', 'text'],
  ['patient_birth', 'date'],
] as const;
const ENCOUNTER_COLUMNS = [
  ['id', 'text'], ['version', 'integer'], ['institution', 'text'], ['department', 'text'], ['practitioner', 'text'], ['patient', 'text'],
  ['class', 'text'], ['status', 'text'], ['start_at', 'timestamptz'], ['end_at', 'timestamptz'], ['principal_dx', 'text'], ['planned', 'boolean'],
  ['conditions', 'text[]'],
] as const;
const ORDER_COLUMNS = [
  ['res_type', 'text'], ['id', 'text'], ['version', 'integer'], ['kind', 'text'], ['institution', 'text'], ['department', 'text'],
  ['practitioner', 'text'], ['patient', 'text'], ['encounter', 'text'], ['code_system', 'text'], ['code', 'text'], ['at', 'timestamptz'],
  ['status', 'text'], ['repeat_reason', 'text'], ['patient_gender', 'text'], ['patient_birth', 'date'],
] as const;
const ORGANIZATION_COLUMNS = [['id', 'text'], ['version', 'integer'], ['name', 'text'], ['part_of', 'text'], ['active', 'boolean'], ['provider', 'boolean']] as const;
const REFERRAL_COLUMNS = [
  ['task_id', 'text'], ['version', 'integer'], ['service_request', 'text'], ['referrer', 'text'], ['receiver', 'text'], ['practitioner', 'text'],
  ['encounter', 'text'], ['direction', 'text'], ['status', 'text'], ['authored', 'timestamptz'], ['deadline', 'timestamptz'],
  ['accepted_at', 'timestamptz'], ['responded_at', 'timestamptz'],
] as const;
