/**
 * The comparison prefixes of ordered types (date, number, quantity). The parser strips the prefix of a filter's
 * value into `filter.operator`; further OR'ed values ("lt5,gt10") carry their own.
 */
import { Operator, type Filter } from '@medplum/core';

export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

const PREFIXES: ReadonlySet<string> = new Set<Prefix>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

export function isPrefix(operator: string): operator is Prefix {
  return PREFIXES.has(operator);
}

/** A component value's own prefix (`gt100`), `eq` when it has none. */
export function splitPrefix(value: string): { prefix: Prefix; value: string } {
  const head = value.slice(0, 2);
  return isPrefix(head) && /^[\d.+-]/.test(value.slice(2)) ? { prefix: head, value: value.slice(2) } : { prefix: Operator.EQUALS, value };
}

/** Each OR'ed value with its prefix; undefined prefix when the filter's operator is not a comparison. */
export function prefixedValues(filter: Filter, values: string[]): Array<{ prefix: Prefix | undefined; value: string }> {
  return values.map((value, i) => {
    if (i === 0) {
      return { prefix: isPrefix(filter.operator) ? filter.operator : undefined, value };
    }
    return splitPrefix(value);
  });
}
