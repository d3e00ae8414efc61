/**
 * The read model: facts extracted from each changed resource into supervision's tables, so that rules and
 * indicators are SQL over compact rows instead of searches over the store.
 *
 * Each change event is read at its own version (vread), so events handled out of order still leave the newest
 * version's facts: every upsert keeps the row with the higher version. Facts are denormalised at extraction (the
 * prescription's setting from its Encounter, the patient's sex and birth date), reading the referenced resources
 * through the repository; a later change of those is not propagated (documented in README.md).
 */
import type {
  Condition,
  DiagnosticReport,
  Encounter,
  MedicationRequest,
  Observation,
  Organization,
  Patient,
  Procedure,
  Resource,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { FhirError, type Database, type FhirRepository, type Queryable, type ResourceChangeJob } from '../fhir-server';
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

/** What a change touched, for the rules to look at. */
export interface FactChange {
  resourceType: string;
  id: string;
  /** Whether facts of this resource exist after the change (false for deletions and irrelevant resources). */
  recorded: boolean;
}

async function readJson<T extends Resource>(repo: FhirRepository, ref: string | undefined): Promise<T | undefined> {
  if (!ref) {
    return undefined;
  }
  try {
    return JSON.parse((await repo.read(ref.split('/')[0], idOf(ref))).json) as T;
  } catch (err) {
    if (err instanceof FhirError && (err.status === 404 || err.status === 410)) {
      return undefined;
    }
    throw err;
  }
}

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

export class FactRecorder {
  constructor(
    private readonly db: Database,
    private readonly repo: FhirRepository,
    /** Owners whose writes are not an institution's data feed (the bureau's own findings and reviews). */
    private readonly notFeeds: readonly string[] = [],
  ) {}

  /** Records the facts of one change event; returns what the rules should look at. */
  async record(event: ResourceChangeJob): Promise<FactChange> {
    const { resourceType, id } = event;
    if (event.interaction === 'delete') {
      await this.forget(resourceType, id);
      return { resourceType, id, recorded: false };
    }
    let resource: Resource;
    try {
      resource = JSON.parse((await this.repo.vread(resourceType, id, event.versionId)).json) as Resource;
    } catch (err) {
      if (err instanceof FhirError && (err.status === 404 || err.status === 410)) {
        return { resourceType, id, recorded: false };
      }
      throw err;
    }
    const institution = ownerOf(resource.meta);
    if (institution && !this.notFeeds.includes(institution)) {
      await this.db.query(
        `INSERT INTO sv_feed (institution, day, resources, last_at) VALUES ($1, ($2::timestamptz AT TIME ZONE 'UTC')::date, 1, $2)
         ON CONFLICT (institution, day) DO UPDATE SET resources = sv_feed.resources + 1, last_at = GREATEST(sv_feed.last_at, EXCLUDED.last_at)`,
        [institution, event.occurredAt],
      );
    }
    const version = event.versionId;
    const recorded = await this.extract(resource, version, institution, event.occurredAt);
    return { resourceType, id, recorded };
  }

  private async extract(resource: Resource, version: number, institution: string | undefined, occurredAt: string): Promise<boolean> {
    switch (resource.resourceType) {
      case 'MedicationRequest':
        await this.prescription(resource, version, institution);
        return true;
      case 'Encounter':
        await this.encounter(resource, version, institution);
        return true;
      case 'ServiceRequest':
        if (referralCodes.isReferral(resource)) {
          await this.care(localRef(resource.subject, 'Patient'), [institution, ...(resource.performer ?? []).map((p) => localRef(p, 'Organization'))]);
          return false;
        }
        await this.order(resource, version, institution, 'order');
        return true;
      case 'Procedure':
        await this.order(resource, version, institution, 'procedure');
        return true;
      case 'Observation':
      case 'DiagnosticReport':
        await this.order(resource, version, institution, 'result');
        return true;
      case 'Task':
        return this.referral(resource, version, occurredAt);
      case 'Organization':
        await this.organization(resource, version);
        return false;
      case 'Appointment':
        await this.care(
          resource.participant?.map((p) => localRef(p.actor, 'Patient')).find(Boolean),
          [institution, ...(resource.participant ?? []).map((p) => localRef(p.actor, 'Organization'))],
        );
        return false;
      default:
        return false;
    }
  }

  private async forget(resourceType: string, id: string): Promise<void> {
    const table: Record<string, string> = {
      MedicationRequest: 'DELETE FROM sv_prescription WHERE id = $1',
      Encounter: 'DELETE FROM sv_encounter WHERE id = $1',
      Task: 'DELETE FROM sv_referral WHERE task_id = $1',
      Organization: 'DELETE FROM sv_organization WHERE id = $1',
    };
    if (table[resourceType]) {
      await this.db.query(table[resourceType], [resourceType === 'Organization' ? `Organization/${id}` : id]);
    } else if (['ServiceRequest', 'Procedure', 'Observation', 'DiagnosticReport'].includes(resourceType)) {
      await this.db.query('DELETE FROM sv_order WHERE res_type = $1 AND id = $2', [resourceType, id]);
    }
  }

  private async care(patient: string | undefined, organizations: Array<string | undefined>, q: Queryable = this.db): Promise<void> {
    const orgs = [...new Set(organizations.filter((o): o is string => !!o))];
    if (!patient || orgs.length === 0) {
      return;
    }
    await q.query(
      'INSERT INTO sv_care (patient, organization) SELECT $1, o FROM unnest($2::text[]) o ON CONFLICT DO NOTHING',
      [patient, orgs],
    );
  }

  private async patientFacts(ref: string | undefined): Promise<{ gender: string | null; birth: string | null }> {
    const patient = await readJson<Patient>(this.repo, ref);
    return { gender: patient?.gender ?? null, birth: patient?.birthDate && /^\d{4}-\d{2}-\d{2}$/.test(patient.birthDate) ? patient.birthDate : null };
  }

  private async prescription(mr: MedicationRequest, version: number, institution: string | undefined): Promise<void> {
    const patient = localRef(mr.subject, 'Patient');
    const encounterRef = localRef(mr.encounter, 'Encounter');
    const encounter = await readJson<Encounter>(this.repo, encounterRef);
    const setting =
      settingOfEncounter(encounter) ??
      (hasCode(mr.category, 'outpatient') || hasCode(mr.category, 'community') ? 'outpatient' : hasCode(mr.category, 'inpatient') ? 'inpatient' : 'other');
    const drug = firstCoding(mr.medicationCodeableConcept, ATC);
    const atc = mr.medicationCodeableConcept?.coding?.find((c) => c.system === ATC)?.code;
    const days = durationDays(mr.dispenseRequest?.expectedSupplyDuration);
    const validity = mr.dispenseRequest?.validityPeriod;
    const validityDays =
      validity?.start && validity.end ? (Date.parse(validity.end) - Date.parse(validity.start)) / 86_400_000 : null;
    const reason = extensionValue(mr.dispenseRequest, SUPPLY_REASON_EXTENSION) ?? extensionValue(mr, SUPPLY_REASON_EXTENSION);
    const reasonText = typeof reason === 'string' ? reason : reason && typeof reason === 'object' ? JSON.stringify(reason) : null;
    const { gender, birth } = await this.patientFacts(patient);
    const group = mr.groupIdentifier?.value ? `${mr.groupIdentifier.system ?? ''}|${mr.groupIdentifier.value}` : `MedicationRequest/${mr.id}`;
    await this.db.query(
      `INSERT INTO sv_prescription (id, version, institution, department, practitioner, patient, encounter, group_id, authored, status,
         setting, drug_system, drug_code, ingredient, days_supply, validity_days, long_term, stable_chronic, extension_reason, reason_codes,
         amount_g, patient_gender, patient_birth)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23)
       ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, institution = EXCLUDED.institution, department = EXCLUDED.department,
         practitioner = EXCLUDED.practitioner, patient = EXCLUDED.patient, encounter = EXCLUDED.encounter, group_id = EXCLUDED.group_id,
         authored = EXCLUDED.authored, status = EXCLUDED.status, setting = EXCLUDED.setting, drug_system = EXCLUDED.drug_system,
         drug_code = EXCLUDED.drug_code, ingredient = EXCLUDED.ingredient, days_supply = EXCLUDED.days_supply,
         validity_days = EXCLUDED.validity_days, long_term = EXCLUDED.long_term, stable_chronic = EXCLUDED.stable_chronic,
         extension_reason = EXCLUDED.extension_reason, reason_codes = EXCLUDED.reason_codes, amount_g = EXCLUDED.amount_g,
         patient_gender = EXCLUDED.patient_gender, patient_birth = EXCLUDED.patient_birth
       WHERE sv_prescription.version < EXCLUDED.version`,
      [
        mr.id,
        version,
        institution ?? null,
        departmentOf(institution, localRef(encounter?.serviceProvider, 'Organization')),
        localRef(mr.requester, 'Practitioner') ?? null,
        patient ?? null,
        encounterRef ? idOf(encounterRef) : null,
        group,
        iso(mr.authoredOn) ?? new Date(mr.meta?.lastUpdated ?? Date.now()).toISOString(),
        mr.status,
        setting,
        drug?.system ?? null,
        drug?.code ?? null,
        atc ?? null,
        days ?? null,
        validityDays,
        hasCode(mr.courseOfTherapyType, 'continuous'),
        extensionValue(mr, STABLE_CHRONIC_EXTENSION) === true,
        reasonText,
        (mr.reasonCode ?? []).flatMap((c) => (c.coding ?? []).map((x) => normaliseIcd(x.code) as string)).filter(Boolean),
        amountGrams(mr, days),
        gender,
        birth,
      ],
    );
  }

  /** The principal diagnosis: the Condition ranked first (or the first listed), else the first reason code. */
  private async principalDiagnosis(enc: Encounter): Promise<string | undefined> {
    const diagnoses = [...(enc.diagnosis ?? [])].sort((a, b) => (a.rank ?? 99) - (b.rank ?? 99));
    for (const d of diagnoses) {
      const condition = await readJson<Condition>(this.repo, localRef(d.condition, 'Condition'));
      const coding = condition?.code?.coding?.find((c) => c.system && ICD10_SYSTEMS.includes(c.system)) ?? condition?.code?.coding?.[0];
      if (coding?.code) {
        return normaliseIcd(coding.code);
      }
    }
    const reason = enc.reasonCode?.flatMap((c) => c.coding ?? []).find((c) => c.code);
    return normaliseIcd(reason?.code);
  }

  private async encounter(enc: Encounter, version: number, institution: string | undefined): Promise<void> {
    const patient = localRef(enc.subject, 'Patient');
    const serviceProvider = localRef(enc.serviceProvider, 'Organization');
    const planned =
      extensionValue(enc.hospitalization, PLANNED_READMISSION_EXTENSION) === true ||
      extensionValue(enc, PLANNED_READMISSION_EXTENSION) === true ||
      hasCode(enc.priority, 'EL');
    await this.db.query(
      `INSERT INTO sv_encounter (id, version, institution, department, practitioner, patient, class, status, start_at, end_at, principal_dx, planned)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
       ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, institution = EXCLUDED.institution, department = EXCLUDED.department,
         practitioner = EXCLUDED.practitioner, patient = EXCLUDED.patient, class = EXCLUDED.class, status = EXCLUDED.status,
         start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at, principal_dx = EXCLUDED.principal_dx, planned = EXCLUDED.planned
       WHERE sv_encounter.version < EXCLUDED.version`,
      [
        enc.id,
        version,
        institution ?? null,
        departmentOf(institution, serviceProvider),
        enc.participant?.map((p) => localRef(p.individual, 'Practitioner')).find(Boolean) ?? null,
        patient ?? null,
        settingOfEncounter(enc) ?? null,
        enc.status,
        iso(enc.period?.start),
        iso(enc.period?.end),
        (await this.principalDiagnosis(enc)) ?? null,
        planned,
      ],
    );
    await this.care(patient, [institution, serviceProvider]);
  }

  private async order(
    resource: ServiceRequest | Procedure | Observation | DiagnosticReport,
    version: number,
    institution: string | undefined,
    kind: 'order' | 'procedure' | 'result',
  ): Promise<void> {
    const patient = localRef(resource.subject, 'Patient');
    const code = firstCoding(resource.code);
    let at: string | null;
    let practitioner: string | undefined;
    let encounterRef: string | undefined = localRef(resource.encounter, 'Encounter');
    switch (resource.resourceType) {
      case 'ServiceRequest':
        at = iso(resource.authoredOn) ?? iso(resource.occurrenceDateTime);
        practitioner = localRef(resource.requester, 'Practitioner');
        break;
      case 'Procedure':
        at = iso(resource.performedDateTime) ?? iso(resource.performedPeriod?.start);
        practitioner = resource.performer?.map((p) => localRef(p.actor, 'Practitioner')).find(Boolean);
        break;
      case 'Observation':
        at = iso(resource.effectiveDateTime) ?? iso(resource.effectivePeriod?.start) ?? iso(resource.issued);
        practitioner = resource.performer?.map((p) => localRef(p, 'Practitioner')).find(Boolean);
        break;
      default:
        at = iso(resource.effectiveDateTime) ?? iso(resource.effectivePeriod?.start) ?? iso(resource.issued);
        practitioner = resource.performer?.map((p) => localRef(p, 'Practitioner')).find(Boolean);
        encounterRef = localRef(resource.encounter, 'Encounter');
    }
    const encounter = await readJson<Encounter>(this.repo, encounterRef);
    const reason = extensionValue(resource, REPEAT_TEST_REASON_EXTENSION);
    const { gender, birth } = kind === 'result' ? { gender: null, birth: null } : await this.patientFacts(patient);
    await this.db.query(
      `INSERT INTO sv_order (res_type, id, version, kind, institution, department, practitioner, patient, code_system, code, at, status,
         repeat_reason, patient_gender, patient_birth)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)
       ON CONFLICT (res_type, id) DO UPDATE SET version = EXCLUDED.version, institution = EXCLUDED.institution,
         department = EXCLUDED.department, practitioner = EXCLUDED.practitioner, patient = EXCLUDED.patient,
         code_system = EXCLUDED.code_system, code = EXCLUDED.code, at = EXCLUDED.at, status = EXCLUDED.status,
         repeat_reason = EXCLUDED.repeat_reason, patient_gender = EXCLUDED.patient_gender, patient_birth = EXCLUDED.patient_birth
       WHERE sv_order.version < EXCLUDED.version`,
      [
        resource.resourceType,
        resource.id,
        version,
        kind,
        institution ?? null,
        departmentOf(institution, localRef(encounter?.serviceProvider, 'Organization')),
        practitioner ?? null,
        patient ?? null,
        code?.system ?? null,
        code?.code ?? null,
        at,
        resource.status,
        typeof reason === 'string' ? reason : reason ? JSON.stringify(reason) : null,
        gender,
        birth,
      ],
    );
    if (kind !== 'result') {
      await this.care(patient, [institution]);
    }
  }

  private async referral(task: Task, version: number, occurredAt: string): Promise<boolean> {
    const srRef = localRef(task.focus, 'ServiceRequest');
    const sr = await readJson<ServiceRequest>(this.repo, srRef);
    if (!sr || !referralCodes.isReferral(sr)) {
      return false;
    }
    const accepted = ACCEPTED.includes(task.status) ? occurredAt : null;
    const responded = ANSWERED.includes(task.status) ? occurredAt : null;
    await this.db.query(
      `INSERT INTO sv_referral (task_id, version, service_request, referrer, receiver, practitioner, encounter, direction, status, authored,
         deadline, accepted_at, responded_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
       ON CONFLICT (task_id) DO UPDATE SET
         accepted_at = LEAST(sv_referral.accepted_at, EXCLUDED.accepted_at),
         responded_at = LEAST(sv_referral.responded_at, EXCLUDED.responded_at),
         version = GREATEST(sv_referral.version, EXCLUDED.version),
         service_request = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.service_request ELSE sv_referral.service_request END,
         referrer = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.referrer ELSE sv_referral.referrer END,
         receiver = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.receiver ELSE sv_referral.receiver END,
         practitioner = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.practitioner ELSE sv_referral.practitioner END,
         encounter = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.encounter ELSE sv_referral.encounter END,
         direction = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.direction ELSE sv_referral.direction END,
         status = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.status ELSE sv_referral.status END,
         authored = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.authored ELSE sv_referral.authored END,
         deadline = CASE WHEN sv_referral.version < EXCLUDED.version THEN EXCLUDED.deadline ELSE sv_referral.deadline END`,
      [
        task.id,
        version,
        srRef ? idOf(srRef) : null,
        localRef(task.requester, 'Organization') ?? localRef(sr.requester, 'Organization') ?? ownerOf(sr.meta) ?? null,
        localRef(task.owner, 'Organization') ?? null,
        localRef(sr.requester, 'Practitioner') ?? null,
        localRef(sr.encounter, 'Encounter') ? idOf(localRef(sr.encounter, 'Encounter') as string) : null,
        referralCodes.directionOf(sr) ?? null,
        task.status,
        iso(task.authoredOn) ?? iso(sr.authoredOn),
        iso(task.restriction?.period?.end),
        accepted,
        responded,
      ],
    );
    return true;
  }

  private async organization(org: Organization, version: number): Promise<void> {
    const provider = (org.type ?? []).some((t) => t.coding?.some((c) => c.code === 'prov'));
    await this.db.query(
      `INSERT INTO sv_organization (id, version, name, part_of, active, provider) VALUES ($1,$2,$3,$4,$5,$6)
       ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, name = EXCLUDED.name, part_of = EXCLUDED.part_of,
         active = EXCLUDED.active, provider = EXCLUDED.provider
       WHERE sv_organization.version < EXCLUDED.version`,
      [`Organization/${org.id}`, version, org.name ?? null, localRef(org.partOf, 'Organization') ?? null, org.active !== false, provider],
    );
  }
}
