/**
 * The registries' identifier systems and the checks each one's values get. A check returns undefined when the
 * value is good, otherwise why it is not (said so that a registration clerk knows what to fix).
 */

/** 统一社会信用代码 (GB 32100-2015): every legal entity, hospitals included. */
export const USCC_SYSTEM = 'http://huimin.health/fhir/sid/uscc';
/** 医疗机构执业许可证登记号: a medical institution's practice licence. */
export const INSTITUTION_LICENCE_SYSTEM = 'http://huimin.health/fhir/sid/medical-institution-licence';
/** 医师执业证书编码: a physician's practice certificate (15 digits). */
export const PHYSICIAN_LICENCE_SYSTEM = 'http://huimin.health/fhir/sid/physician-practice-certificate';
/** 护士执业证书编号: a nurse's practice certificate. */
export const NURSE_LICENCE_SYSTEM = 'http://huimin.health/fhir/sid/nurse-practice-certificate';
/** 居民身份证号码 (GB 11643), NHC OID. */
export const RESIDENT_ID_SYSTEM = 'urn:oid:2.16.156.10011.1.3';

/** GB 32100's 31 characters (no I, O, S, V, Z): a character's value is its position. */
const USCC_CHARS = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
/** Registration authorities (登记管理部门) of GB 32100, first character. */
const USCC_AUTHORITIES: Record<string, string> = {
  '1': '机构编制',
  '2': '外交',
  '3': '司法行政',
  '4': '文化',
  '5': '民政',
  '6': '旅游',
  '7': '宗教',
  '8': '工会',
  '9': '市场监督管理',
  A: '中央军委改革和编制办公室',
  N: '农业',
  Y: '其他',
};
/** Province-level prefixes of GB/T 2260 administrative division codes. */
const PROVINCES = new Set(['11', '12', '13', '14', '15', '21', '22', '23', '31', '32', '33', '34', '35', '36', '37', '41', '42', '43', '44', '45', '46', '50', '51', '52', '53', '54', '61', '62', '63', '64', '65', '71', '81', '82']);

/** The GB 32100 check character of the first 17 characters. */
export function usccCheckCharacter(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    sum += USCC_CHARS.indexOf(first17[i]) * USCC_WEIGHTS[i];
  }
  const check = 31 - (sum % 31);
  return USCC_CHARS[check === 31 ? 0 : check];
}

export function checkUscc(value: string): string | undefined {
  if (!/^[0-9A-HJ-NPQRTUWXY]{18}$/.test(value)) {
    return `"${value}" is not a unified social credit code: 18 characters of digits and the capital letters GB 32100 uses (no I, O, S, V, Z)`;
  }
  if (!USCC_AUTHORITIES[value[0]]) {
    return `"${value}" starts with "${value[0]}", which is no registration authority of GB 32100 (1–9, A, N, Y)`;
  }
  if (!/^[0-9]{6}$/.test(value.slice(2, 8)) || !PROVINCES.has(value.slice(2, 4))) {
    return `"${value}": characters 3–8 (${value.slice(2, 8)}) must be an administrative division code (GB/T 2260)`;
  }
  const expected = usccCheckCharacter(value.slice(0, 17));
  if (value[17] !== expected) {
    return `"${value}" fails the GB 32100 check: its last character is "${value[17]}" but the first 17 give "${expected}" (a mistyped character?)`;
  }
  return undefined;
}

/** GB 11643 check (ISO 7064 MOD 11-2) of an 18-character resident ID number. */
export function checkResidentId(value: string): string | undefined {
  if (!/^[0-9]{17}[0-9X]$/.test(value)) {
    return `"${value}" is not an 18-character resident ID number (17 digits and a digit or X)`;
  }
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = weights.reduce((s, w, i) => s + w * Number(value[i]), 0);
  const expected = '10X98765432'[sum % 11];
  return value[17] === expected ? undefined : `"${value}" fails the GB 11643 check: its last character is "${value[17]}" but should be "${expected}"`;
}

/**
 * The checks per identifier system. Practice licence numbers have no published check character: their shape is
 * checked (characters and length), which catches pasted spaces and truncations.
 */
export const IDENTIFIER_CHECKS: Record<string, (value: string) => string | undefined> = {
  [USCC_SYSTEM]: checkUscc,
  [INSTITUTION_LICENCE_SYSTEM]: (v) => (/^[0-9A-Z]{8,30}$/.test(v) ? undefined : `"${v}" is not a practice licence registration number: 8–30 digits and capital letters, no spaces or punctuation`),
  [PHYSICIAN_LICENCE_SYSTEM]: (v) => (/^[0-9]{15}$/.test(v) ? undefined : `"${v}" is not a physician practice certificate number: 15 digits`),
  [NURSE_LICENCE_SYSTEM]: (v) => (/^[0-9A-Z]{6,20}$/.test(v) ? undefined : `"${v}" is not a nurse practice certificate number: 6–20 digits and capital letters`),
  [RESIDENT_ID_SYSTEM]: checkResidentId,
};

/** Identifier systems whose values name one registry entry only (two Organizations with one USCC are one mistake). */
export const UNIQUE_SYSTEMS: Record<string, readonly string[]> = {
  Organization: [USCC_SYSTEM, INSTITUTION_LICENCE_SYSTEM],
  Practitioner: [PHYSICIAN_LICENCE_SYSTEM, NURSE_LICENCE_SYSTEM, RESIDENT_ID_SYSTEM],
};

/** A GB/T 2260 administrative division code: six digits of a known province. */
export function checkDivisionCode(code: string): string | undefined {
  return /^[0-9]{6}$/.test(code) && PROVINCES.has(code.slice(0, 2)) ? undefined : `"${code}" is not an administrative division code (GB/T 2260: six digits, starting with a province code)`;
}
