/**
 * Quantity parameters: Quantity (and Age, Duration, Distance, Count, SimpleQuantity) and Money, indexed as number
 * ranges with the unit's system and code (the human unit when there is no code). Searched as `value`,
 * `value|system|code` or `value||code`.
 */
import type { Filter, TypedValue } from '@medplum/core';
import type { Money, Quantity } from '@medplum/fhirtypes';
import { decimalRange } from './decimal';
import type { IndexRows } from './index-rows';
import { splitEscaped } from './escape';
import { numberCondition, requireDecimal, requirePrefix } from './param-number';
import { prefixedValues, splitPrefix, type Prefix } from './prefix';
import { indexMatch, orValuesEscaped, type FilterContext, type SearchType } from './search-type';

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
        rows.quantity.push({ code, ...range, system, unit });
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
  const parts = [numberCondition(`${t}.value`, prefix, requireDecimal(filter, amount), ctx)];
  if (system) {
    parts.push(`${t}.system = ${ctx.params.add(system)}`);
  }
  if (unit) {
    parts.push(`${t}.unit = ${ctx.params.add(unit)}`);
  }
  return `(${parts.join(' AND ')})`;
}
