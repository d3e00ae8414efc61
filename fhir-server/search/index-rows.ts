/**
 * The contract between search-parameter extraction (write time) and search compilation (read time): the rows a
 * resource contributes to each `search_*` table (see db/migrations.ts).
 */

/**
 * Rows extracted from the same repeating element (one Observation.component for a composite parameter, one
 * Identifier for `:of-type`) carry the same group number, unique within the resource; other rows have none.
 */
interface Grouped {
  group?: number;
}

export interface TokenRow extends Grouped {
  code: string;
  system?: string;
  value?: string;
  /**
   * Coding.display, CodeableConcept.text or Identifier.type.text, for the `:text` modifier: normalised as
   * StringRow.valueNorm is (lower case, accents removed), since nothing else reads it.
   */
  display?: string;
}

export interface StringRow extends Grouped {
  code: string;
  value: string;
  /** Lower-cased, accents removed: what default and `:contains` searches compare against. */
  valueNorm: string;
}

/** Every date is indexed as the instant range it covers (a date "2020" covers the whole year). */
export interface DateRow extends Grouped {
  code: string;
  /** ISO 8601 instants. */
  low: string;
  high: string;
}

/** Numbers keep their precision as a range: 5.4 covers [5.35, 5.45). Decimal strings, to keep exactness. */
export interface NumberRow extends Grouped {
  code: string;
  value: string;
  low: string;
  high: string;
}

export interface QuantityRow extends NumberRow {
  system?: string;
  unit?: string;
  /** For UCUM units UCUM can convert: the value in base units, and those units (see ucum.ts). */
  canonicalValue?: string;
  canonicalUnit?: string;
}

export interface ReferenceRow extends Grouped {
  code: string;
  /** Set for references to this server (relative `Type/id`). */
  targetType?: string;
  targetId?: string;
  /** Absolute or canonical URLs, and anything not resolvable to a local resource. */
  targetUrl?: string;
}

export interface UriRow extends Grouped {
  code: string;
  value: string;
}

export interface IndexRows {
  token: TokenRow[];
  string: StringRow[];
  date: DateRow[];
  number: NumberRow[];
  quantity: QuantityRow[];
  reference: ReferenceRow[];
  uri: UriRow[];
}

export function emptyIndexRows(): IndexRows {
  return { token: [], string: [], date: [], number: [], quantity: [], reference: [], uri: [] };
}

/** How many groups each resource's rows have numbered so far; kept aside so that IndexRows stays just the tables. */
const groupCounts = new WeakMap<IndexRows, number>();

/** A new group number for the rows of one repeating element, unique among the resource's rows. */
export function newGroup(rows: IndexRows): number {
  const group = (groupCounts.get(rows) ?? 0) + 1;
  groupCounts.set(rows, group);
  return group;
}

export { SqlParams } from '../db/statement';
