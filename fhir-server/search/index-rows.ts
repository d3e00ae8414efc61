/**
 * The contract between search-parameter extraction (write time) and search compilation (read time): the rows a
 * resource contributes to each `search_*` table (see db/migrations.ts).
 */

export interface TokenRow {
  code: string;
  system?: string;
  value?: string;
  /** Coding.display or CodeableConcept.text, for the `:text` modifier. */
  display?: string;
}

export interface StringRow {
  code: string;
  value: string;
  /** Lower-cased, accents removed: what default and `:contains` searches compare against. */
  valueNorm: string;
}

/** Every date is indexed as the instant range it covers (a date "2020" covers the whole year). */
export interface DateRow {
  code: string;
  /** ISO 8601 instants. */
  low: string;
  high: string;
}

/** Numbers keep their precision as a range: 5.4 covers [5.35, 5.45). Decimal strings, to keep exactness. */
export interface NumberRow {
  code: string;
  value: string;
  low: string;
  high: string;
}

export interface QuantityRow extends NumberRow {
  system?: string;
  unit?: string;
}

export interface ReferenceRow {
  code: string;
  /** Set for references to this server (relative `Type/id`). */
  targetType?: string;
  targetId?: string;
  /** Absolute or canonical URLs, and anything not resolvable to a local resource. */
  targetUrl?: string;
}

export interface UriRow {
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

export { SqlParams } from '../db/statement';
