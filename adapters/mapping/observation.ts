/**
 * OBX → Observation (HL7 v2-to-FHIR IG "OBX to Observation"): numeric values with UCUM units and reference ranges,
 * structured numerics (comparators, ranges, ratios), coded, text and date values. Local codes get their LOINC
 * through the translator; the local coding is kept beside it.
 */
import type { CodeableConcept, Coding, Identifier, Observation, ObservationReferenceRange, Quantity } from '@medplum/fhirtypes';
import type { Facility } from '../facilities';
import type { FieldValue, Segment } from '../hl7/message';
import { contentError, requiredMissing } from '../hl7/problems';
import type { MappingContext, Ref } from './context';
import { codeableConcept, dateTime, isLocalSystem, LOINC, UCUM } from './datatypes';
import { writePerformingOrganization } from './organization';
import { writePractitioner } from './practitioner';

const INTERPRETATION = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const INTERPRETATION_CODES = new Set(['L', 'H', 'LL', 'HH', 'N', 'A', 'AA', '<', '>', 'I', 'R', 'S', 'MS', 'VS', 'POS', 'NEG', 'IND', 'W', 'B', 'U', 'D', 'E', 'EX', 'HU', 'LU']);

/** OBX-11 result status (HL7 table 0085) → Observation.status. */
const STATUS: Record<string, Observation['status']> = {
  F: 'final', C: 'corrected', P: 'preliminary', R: 'preliminary', S: 'preliminary', I: 'registered',
  X: 'cancelled', D: 'entered-in-error', W: 'entered-in-error', U: 'final', A: 'amended', O: 'registered',
};

/** Unit spellings Chinese and US lab systems send, as UCUM codes. */
const UCUM_ALIASES: Record<string, string> = {
  '10^9/L': '10*9/L', '10^12/L': '10*12/L', '10^6/uL': '10*6/uL', '10^3/uL': '10*3/uL', 'x10^9/L': '10*9/L', 'x10^12/L': '10*12/L',
  '10E9/L': '10*9/L', '10E12/L': '10*12/L', 'K/uL': '10*3/uL', 'M/uL': '10*6/uL', 'µmol/L': 'umol/L', 'μmol/L': 'umol/L', 'μg/L': 'ug/L', 'µg/L': 'ug/L',
  'IU/L': '[IU]/L', 'mIU/mL': 'm[IU]/mL', 'uIU/mL': 'u[IU]/mL', 'sec': 's', 'secs': 's', 'mmHg': 'mm[Hg]', 'mEq/L': 'meq/L',
};
/** Units that are valid UCUM as written (a cautious list: a unit not known here keeps its text and gets no system). */
const UCUM_AS_IS = new Set([
  '%', 'g/L', 'g/dL', 'mg/dL', 'mg/L', 'ug/L', 'ng/mL', 'pg/mL', 'ng/L', 'mmol/L', 'umol/L', 'nmol/L', 'pmol/L', 'mol/L', 'U/L', 'fL', 'pg', 'L/L',
  '10*9/L', '10*12/L', '10*3/uL', '10*6/uL', 'mm/h', 's', 'min', 'h', 'd', 'kg', 'g', 'cm', 'mm', 'm', 'kg/m2', 'mL/min', 'mL', 'L', '/uL', '/mL',
  'mm[Hg]', 'Cel', '[degF]', 'meq/L', 'mosm/kg', '[IU]/L', 'm[IU]/mL', 'u[IU]/mL', 'ratio', '{ratio}', '1', 'fmol/L', 'mg/g', 'mg/24.h', 'mL/min/{1.73_m2}',
]);

export function quantityUnit(units: FieldValue): Pick<Quantity, 'unit' | 'system' | 'code'> {
  const id = units.get(1);
  const text = units.get(2) || id;
  if (!id && !text) return {};
  if (units.get(3).toUpperCase() === 'UCUM' || units.get(3).toUpperCase() === 'ANSI+') {
    return { unit: text, system: UCUM, code: UCUM_ALIASES[id] ?? id };
  }
  const code = UCUM_ALIASES[id] ?? (UCUM_AS_IS.has(id) ? id : undefined);
  return code ? { unit: text, system: UCUM, code } : { unit: text };
}

function number(raw: string, obx: Segment, field: number): number {
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isFinite(value)) {
    throw contentError('OBX', field, `"${raw}" is not a number, as OBX-2 value type NM requires`, undefined, obx.occurrence);
  }
  return value;
}

/** "3.5-5.0", "3.5 - 5.0", "3.5 to 5.0", "<5", ">=10"; anything else stays text. */
export function referenceRange(raw: string, unit: Pick<Quantity, 'unit' | 'system' | 'code'>): ObservationReferenceRange | undefined {
  const text = raw.trim();
  if (!text) return undefined;
  const q = (v: string): Quantity => ({ value: Number(v), ...unit });
  const between = /^(-?\d+(?:\.\d+)?)\s*(?:-|–|~|to|\^)\s*(-?\d+(?:\.\d+)?)$/.exec(text);
  if (between) return { low: q(between[1]), high: q(between[2]), text };
  const upper = /^<=?\s*(-?\d+(?:\.\d+)?)$/.exec(text);
  if (upper) return { high: q(upper[1]), text };
  const lower = /^>=?\s*(-?\d+(?:\.\d+)?)$/.exec(text);
  if (lower) return { low: q(lower[1]), text };
  return { text };
}

/** The OBX value by its type (OBX-2). */
function setValue(observation: Observation, obx: Segment, facility: Facility): void {
  const type = obx.get(2).toUpperCase();
  const reps = obx.reps(5);
  if (reps.length === 0) return;
  const first = reps[0];
  const unit = quantityUnit(obx.field(6));
  switch (type) {
    case 'NM':
      observation.valueQuantity = { value: number(first.text(), obx, 5), ...unit };
      return;
    case 'SN': {
      // comparator ^ num1 ^ separator/suffix ^ num2
      const [comparator, n1, sep, n2] = [first.get(1), first.get(2), first.get(3), first.get(4)];
      if (sep === ':' || sep === '/') {
        observation.valueRatio = { numerator: { value: number(n1, obx, 5) }, denominator: { value: number(n2, obx, 5) } };
      } else if (sep === '-' && n2) {
        observation.valueRange = { low: { value: number(n1, obx, 5), ...unit }, high: { value: number(n2, obx, 5), ...unit } };
      } else {
        const q: Quantity = { value: number(n1, obx, 5), ...unit };
        if (['<', '<=', '>', '>='].includes(comparator)) q.comparator = comparator as Quantity['comparator'];
        observation.valueQuantity = q;
      }
      return;
    }
    case 'CE':
    case 'CWE':
    case 'CNE':
    case 'CF': {
      const cc = codeableConcept(first, facility);
      if (cc) observation.valueCodeableConcept = cc;
      return;
    }
    case 'DT':
    case 'TS':
    case 'DTM': {
      const dt = dateTime(first.get(1), facility, obx, 5);
      if (dt) observation.valueDateTime = dt;
      return;
    }
    case 'TM':
      observation.valueTime = first.text();
      return;
    case 'ED':
    case 'RP':
      // Encapsulated data and references belong to documents (MDM); the Observation keeps a pointer text.
      observation.valueString = `[${type} data kept in the original message]`;
      return;
    default:
      // ST, TX, FT and anything else: text, repetitions on lines of their own.
      observation.valueString = reps.map((r) => r.text()).join('\n');
  }
}

/** OBX-3 (or OBR-4) with the translator's standard codings added before the local one. */
export async function translatedCode(ctx: MappingContext, cc: CodeableConcept | undefined): Promise<CodeableConcept | undefined> {
  if (!cc?.coding?.length) return cc;
  if (cc.coding.some((c) => c.system === LOINC)) return cc;
  const added: Coding[] = [];
  for (const coding of cc.coding) {
    if (coding.system && coding.code && isLocalSystem(coding.system, ctx.facility)) {
      for (const t of await ctx.translator.translate(ctx.facility, coding.system, coding.code)) {
        if (!added.some((a) => a.system === t.system && a.code === t.code)) added.push(t);
      }
    }
  }
  return added.length ? { ...cc, coding: [...added, ...cc.coding] } : cc;
}

export interface ObservationParts {
  subject: Ref;
  encounter?: Ref;
  /** Default time (OBR-7) when OBX-14 is empty. */
  effective?: string;
  identifier: Identifier;
  notes: string[];
  basedOn?: Ref[];
  /** The Specimen the result is about (SPM, or OBR-15). */
  specimen?: Ref;
}

export async function observationFromObx(ctx: MappingContext, obx: Segment, parts: ObservationParts): Promise<Observation> {
  const code = await translatedCode(ctx, codeableConcept(obx.field(3), ctx.facility));
  if (!code) {
    throw requiredMissing('OBX', 3, 'OBX-3 (observation identifier) is empty', obx.occurrence);
  }
  const observation: Observation = {
    resourceType: 'Observation',
    identifier: [parts.identifier],
    status: STATUS[obx.get(11).toUpperCase()] ?? 'unknown',
    code,
    subject: parts.subject,
  };
  if (parts.basedOn) observation.basedOn = parts.basedOn;
  if (parts.encounter) observation.encounter = parts.encounter;
  setValue(observation, obx, ctx.facility);
  const effective = dateTime(obx.get(14), ctx.facility, obx, 14) ?? parts.effective;
  if (effective) observation.effectiveDateTime = effective;
  const unit = observation.valueQuantity ? quantityUnit(obx.field(6)) : {};
  const range = referenceRange(obx.field(7).text(), unit);
  if (range) observation.referenceRange = [range];
  const interpretation = obx
    .reps(8)
    .map((r) => r.get(1))
    .filter(Boolean)
    .map((c) => (INTERPRETATION_CODES.has(c.toUpperCase()) ? { coding: [{ system: INTERPRETATION, code: c.toUpperCase() }] } : { text: c }));
  if (interpretation.length) observation.interpretation = interpretation;
  const method = codeableConcept(obx.field(17), ctx.facility);
  if (method) observation.method = method;
  if (parts.notes.length) observation.note = parts.notes.map((text) => ({ text }));
  if (parts.specimen) observation.specimen = parts.specimen;
  // OBX-23 performing organization (its address OBX-24) and OBX-25 its medical director (v2.5+): who produced the
  // result, which decides whether a recognition grant covers it.
  const performer = [await writePerformingOrganization(ctx, obx.field(23), obx.field(24)), await writePractitioner(ctx, obx.field(25))].filter((r): r is Ref => r !== undefined);
  if (performer.length) observation.performer = performer;
  return observation;
}
