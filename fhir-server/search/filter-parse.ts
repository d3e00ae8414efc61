/**
 * Turning one `name[:modifier]=value` pair of a search into a Filter. @medplum/core's parser drops a reference's
 * `:Type` modifier, takes an unknown modifier for plain equality, rejects OR'ed dates ("lt2020,gt2024") and throws
 * on composite parameters, so the store parses the filters on its own search parameters itself; the result
 * keeps medplum's Filter shape (code, operator, value) that the rest of the search code reads:
 *
 * - a chained (`subject:Patient.name`) or reverse-chained (`_has:…`) key stays whole in `code`, resolved at compile
 *   time (chain.ts, reverse-chain.ts), because what follows a link depends on the type it leads to;
 * - `:missing` becomes Operator.MISSING; any other modifier is kept verbatim as the operator (`exact`, `not`,
 *   `of-type`, a resource type for `:Type`), and the parameter's type decides whether it is supported;
 * - on ordered types (number, date, quantity) the first value's prefix becomes the operator, as medplum does; the
 *   further OR'ed values keep theirs (see prefix.ts).
 */
import { Operator, type Filter } from '@medplum/core';
import { findSearchParameter } from './indexed-params';
import { isPrefix } from './prefix';

const ORDERED_TYPES: ReadonlySet<string> = new Set(['number', 'date', 'quantity']);

export function isChainKey(key: string): boolean {
  return key.startsWith('_has:') || key.includes('.');
}

/** The parameter code of a key: "name" for "name:exact". */
export function keyCode(key: string): string {
  const colon = key.indexOf(':');
  return colon < 0 ? key : key.slice(0, colon);
}

/** Whether the store parses this key itself: chains, `_has`, and every search parameter the type has (R4 or stored). */
export function isFilterKey(resourceType: string, key: string): boolean {
  return isChainKey(key) || findSearchParameter(resourceType, keyCode(key)) !== undefined;
}

export function parseFilter(resourceType: string, key: string, value: string): Filter {
  if (isChainKey(key)) {
    return { code: key, operator: Operator.EQUALS, value };
  }
  const code = keyCode(key);
  const modifier = key.length > code.length ? key.slice(code.length + 1) : '';
  if (modifier === 'missing') {
    return { code, operator: Operator.MISSING, value };
  }
  if (modifier) {
    return { code, operator: modifier as Operator, value };
  }
  const type = findSearchParameter(resourceType, code)?.type;
  const prefix = value.slice(0, 2);
  if (type && ORDERED_TYPES.has(type) && isPrefix(prefix)) {
    return { code, operator: prefix, value: value.slice(2) };
  }
  return { code, operator: Operator.EQUALS, value };
}
