/**
 * The parameters each kind of rule takes, and their checks: a supervisor's change that would break an evaluator (a
 * threshold that is not a number, a list that is not a list) is refused with a precise message instead of failing
 * later in a worker.
 */
import { badRequest } from '../../fhir-server';
import type { RuleKind, RuleParams } from './catalogue';

type ParamType = 'number' | 'boolean' | 'string[]' | 'object[]' | 'object';

export const PARAM_TYPES: Record<RuleKind, Record<string, ParamType>> = {
  'prescription-days-supply': { outpatientMaxDays: 'number', emergencyMaxDays: 'number' },
  'prescription-drug-count': { maxDrugs: 'number' },
  'long-term-prescription': {
    maxWeeks: 'number',
    stableChronicMaxWeeks: 'number',
    excludedClasses: 'object',
    tuberculosisAtc: 'string[]',
    tuberculosisDiagnoses: 'string[]',
  },
  'prescription-validity': { maxValidityDays: 'number' },
  'duplicate-drug': { statuses: 'string[]' },
  'duplicate-test': { windows: 'object[]', defaultDays: 'number' },
  'drug-restriction': { restrictions: 'object[]' },
  'procedure-restriction': { restrictions: 'object[]' },
  readmission: { days: 'number', diagnosisChars: 'number', excludePlanned: 'boolean', excludedDiagnoses: 'string[]' },
  'length-of-stay': { maxDays: 'number' },
  'antimicrobial-indicators': {
    outpatientRateMax: 'number',
    inpatientRateMax: 'number',
    dddPer100BedDaysMax: 'number',
    antimicrobialAtc: 'string[]',
    ddd: 'object',
  },
  'referral-deadline': { graceMinutes: 'number' },
  'silent-feed': { silentHours: 'number' },
  'audit-reading-without-care': { maxPatientsPerDay: 'number' },
  'audit-break-glass': {},
  'audit-read-volume': { factor: 'number', minReads: 'number', baselineDays: 'number' },
};

function fits(value: unknown, type: ParamType): boolean {
  switch (type) {
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) && value >= 0;
    case 'boolean':
      return typeof value === 'boolean';
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string' && v.length > 0 && v.length <= 200);
    case 'object[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

/** Throws a 400 naming the first parameter that the kind does not take or whose value has the wrong type. */
export function checkParams(kind: RuleKind, params: RuleParams): void {
  const types = PARAM_TYPES[kind];
  if (JSON.stringify(params).length > 100_000) {
    throw badRequest('A rule\'s parameters are limited to 100 000 characters of JSON');
  }
  for (const [name, value] of Object.entries(params)) {
    const type = types[name];
    if (!type) {
      throw badRequest(`Rules of kind ${kind} take no parameter "${name}" (they take: ${Object.keys(types).join(', ') || 'none'})`);
    }
    if (!fits(value, type)) {
      throw badRequest(`Parameter "${name}" of a ${kind} rule must be ${type === 'number' ? 'a non-negative number' : `a ${type}`}, got ${JSON.stringify(value).slice(0, 100)}`);
    }
  }
  for (const name of Object.keys(types)) {
    if (!(name in params)) {
      throw badRequest(`Rules of kind ${kind} need parameter "${name}"`);
    }
  }
}
