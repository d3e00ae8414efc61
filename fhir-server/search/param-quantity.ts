/**
 * Quantity parameters: Quantity (and Age, Duration, Distance, Count, SimpleQuantity) and Money, indexed as number
 * ranges with the unit's system and code (the human unit when there is no code). Searched as `value`,
 * `value|system|code` or `value||code`.
 *
 * UCUM quantities are also indexed in base units (ucum.ts), and a search in a UCUM unit compares there, so that
 * 5.1 mmol/L is found by `0.0051|http://unitsofmeasure.org|mol/L` and 5400 mg by `5.4|…|g`.
 */
import type { Filter, TypedValue } from '@medplum/core';
import type { Money, Quantity } from '@medplum/fhirtypes';
import { decimalRange, type DecimalRange } from './decimal';
import type { IndexRows } from './index-rows';
import { splitEscaped } from './escape';
import { numberCondition, requireDecimal, requirePrefix } from './param-number';
import { prefixedValues, splitPrefix, type Prefix } from './prefix';
import { indexMatch, orValuesEscaped, type FilterContext, type SearchType } from './search-type';
import { canonicalQuantity, UCUM_SYSTEM } from './ucum';

/** Money's currency is an ISO 4217 code. */
const CURRENCY_SYSTEM = 'urn:iso:std:iso:4217';

export const quantityType: SearchType = {
  kind: 'quantity',

  extract(code: string, values: TypedValue[], rows: IndexRows): void {
    for (const { type, value } of values) {
      let system: string | undefined;
      let unit: string | undefined;
      let amount: number | undefined;
      if (type === 'Money') {
        const money = value as Money;
        [amount, system, unit] = [money.value, money.currency && CURRENCY_SYSTEM, money.currency];
      } else if (typeof value === 'object' && value !== null) {
        const quantity = value as Quantity;
        [amount, system, unit] = [quantity.value, quantity.system, quantity.code ?? quantity.unit];
      } else if (typeof value === 'number') {
        amount = value;
      }
      const range = amount === undefined ? undefined : decimalRange(String(amount));
      if (range) {
        const canonical = system === UCUM_SYSTEM && unit ? canonicalQuantity(range.value, unit) : undefined;
        rows.quantity.push({ code, ...range, system, unit, canonicalValue: canonical?.value, canonicalUnit: canonical?.unit });
      }
    }
  },

  compile(filter: Filter, ctx: FilterContext): string {
    const values = prefixedValues(filter, orValuesEscaped(filter)).map(({ prefix, value }) => ({ prefix: requirePrefix(filter, prefix), value }));
    return indexMatch(ctx, 'quantity', filter.code, (t) =>
      values.map(({ prefix, value }) => quantityCondition(prefix, value, t, ctx, filter)).join(' OR '),
    );
  },

  valueCondition(value: string, t: string, ctx: FilterContext, filter: Filter): string {
    const { prefix, value: rest } = splitPrefix(value);
    return quantityCondition(prefix, rest, t, ctx, filter);
  },

  sort: {
    ascending: (t) => `min(${t}.value)`,
    descending: (t) => `max(${t}.value)`,
  },
};

/** `number`, `number|system|code` or `number||code` (escapes kept in `value`) against the index alias `t`. */
function quantityCondition(prefix: Prefix, value: string, t: string, ctx: FilterContext, filter: Filter): string {
  const [amount, system = '', unit = ''] = splitEscaped(value, '|');
  const range = requireDecimal(filter, amount);
  const parts = [numberCondition(`${t}.value`, prefix, range, ctx)];
  if (system) {
    parts.push(`${t}.system = ${ctx.params.add(system)}`);
  }
  if (unit) {
    parts.push(`${t}.unit = ${ctx.params.add(unit)}`);
  }
  const asWritten = `(${parts.join(' AND ')})`;
  const canonical = system === UCUM_SYSTEM && unit ? canonicalRange(range, unit) : undefined;
  if (!canonical) {
    return asWritten;
  }
  // Rows indexed before the canonical columns existed (migration 4) still match in the unit as written.
  const inBaseUnits = `(${t}.canonical_unit = ${ctx.params.add(canonical.unit)} AND ${numberCondition(`${t}.canonical_value`, prefix, canonical.range, ctx)})`;
  return `(${inBaseUnits} OR (${t}.canonical_unit IS NULL AND ${asWritten}))`;
}

/**
 * A search value's range in base units; each end converted on its own, since some units (Cel, [degF]) are not a
 * plain factor of their base unit.
 */
function canonicalRange(range: DecimalRange, unit: string): { range: DecimalRange; unit: string } | undefined {
  const [value, low, high] = [range.value, range.low, range.high].map((v) => canonicalQuantity(v, unit));
  if (!value || !low || !high) {
    return undefined;
  }
  return { range: { value: value.value, low: low.value, high: high.value }, unit: value.unit };
}
