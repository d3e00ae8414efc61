/**
 * Exact decimal arithmetic for the implicit precision of FHIR numbers: "5.4" stands for [5.35, 5.45], "100" for
 * [99.5, 100.5]. Done on BigInt digit strings, because binary floating point would turn 5.35 into 5.3499999….
 */

export interface DecimalRange {
  /** The value itself as a plain decimal string (exponents expanded). */
  value: string;
  low: string;
  high: string;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Returns undefined when `input` is not a decimal number. */
export function decimalRange(input: string): DecimalRange | undefined {
  const match = DECIMAL.exec(input.trim());
  if (!match || (match[2] === '' && (match[3] ?? '') === '')) {
    return undefined;
  }
  const [, sign, intPart, fracPart = '', exponent = '0'] = match;
  // value = mantissa × 10^-scale
  let mantissa = BigInt(intPart + fracPart);
  if (sign === '-') {
    mantissa = -mantissa;
  }
  const scale = fracPart.length - Number(exponent);
  // Half a unit of the last significant digit, one decimal place further down.
  return {
    value: formatScaled(mantissa, scale),
    low: formatScaled(mantissa * 10n - 5n, scale + 1),
    high: formatScaled(mantissa * 10n + 5n, scale + 1),
  };
}

/** Renders mantissa × 10^-scale as a plain decimal string. */
function formatScaled(mantissa: bigint, scale: number): string {
  const negative = mantissa < 0n;
  let digits = (negative ? -mantissa : mantissa).toString();
  if (scale <= 0) {
    digits = mantissa === 0n ? '0' : digits + '0'.repeat(-scale);
  } else {
    digits = digits.padStart(scale + 1, '0');
    digits = digits.slice(0, digits.length - scale) + '.' + digits.slice(digits.length - scale);
  }
  return negative ? '-' + digits : digits;
}
