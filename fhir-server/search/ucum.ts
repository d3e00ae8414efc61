/**
 * UCUM canonical forms, so that quantities in commensurable units compare: 5.1 mmol/L is found by a search in
 * mol/L, 5400 mg by one in g (search.html, "quantity": a server SHOULD compare in canonical units). The
 * conversion is @lhncbc/ucum-lhc's (the NLM's UCUM library): a value in base units and the exponents of those
 * units, written here as a sorted key ("g.m-1.s-2"; "1" when dimensionless).
 *
 * Base-unit magnitudes are binary floats (5.1 mmol/L is 3.0712897169999996e+24 m-3): they are rounded to 15
 * significant digits, what a double holds exactly, so that the same quantity written two ways lands on one number.
 */
import { UcumLhcUtils } from '@lhncbc/ucum-lhc';
import { decimalRange, type DecimalRange } from './decimal';

export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

const SIGNIFICANT_DIGITS = 15;

let utils: UcumLhcUtils | undefined;

export interface CanonicalQuantity {
  /** A decimal string in base units. */
  value: string;
  /** The base units' exponents, e.g. "m-3" for both mmol/L and mol/L. */
  unit: string;
}

/** The canonical form of `value` (a decimal string) in the UCUM unit `code`, or undefined when UCUM cannot convert it. */
export function canonicalQuantity(value: string, code: string): CanonicalQuantity | undefined {
  utils ??= UcumLhcUtils.getInstance();
  const result = utils.convertToBaseUnits(code, Number(value));
  if (result.status !== 'succeeded' || result.magnitude === undefined || !Number.isFinite(result.magnitude)) {
    return undefined;
  }
  const exponents = Object.entries(result.unitToExp ?? {})
    .filter(([, exponent]) => exponent !== 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([unit, exponent]) => (exponent === 1 ? unit : `${unit}${exponent}`));
  return { value: formatNumber(result.magnitude), unit: exponents.length > 0 ? exponents.join('.') : '1' };
}

/** `n` rounded to 15 significant digits, as a plain decimal string (exponent expanded) that numeric reads exactly. */
function formatNumber(n: number): string {
  return (decimalRange(n.toPrecision(SIGNIFICANT_DIGITS)) as DecimalRange).value;
}
