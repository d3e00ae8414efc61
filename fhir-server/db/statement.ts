/**
 * Building parameterised SQL. `CompositeWrite` puts several set-based writes into one statement of
 * data-modifying CTEs, so that a whole write session (resources, history, index rows, outbox) costs one round
 * trip. All CTEs of a statement see the same snapshot: deleting a resource's old index rows and inserting its new
 * ones in one statement is correct, since the DELETE cannot see the rows the INSERT adds.
 */
import type { Queryable, QueryOptions } from './database';

/** Collects positional parameters while a statement is being built: `params.add(v)` returns `$n`. */
export class SqlParams {
  readonly values: unknown[] = [];

  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }

  /**
   * An array parameter for `unnest(…)` in a statement kept prepared: `(SELECT $n::type[])`. PostgreSQL plans a
   * prepared statement for its values (a custom plan) until a plan for any values (the generic one) looks no
   * dearer; a bare array parameter lets the custom plans see each array's length, so they always look cheaper and
   * the write statement was planned again on every execution (1.2-2 ms of planning against 0.3-1 ms of execution
   * for one resource). Behind a sub-select the length is unknown to both kinds of plan, so the generic plan is
   * chosen after five executions and the statement is planned once per connection, as intended.
   */
  array(values: unknown[], sqlType: string): string {
    return `(SELECT ${this.add(values)}::${sqlType}[])`;
  }
}

export class CompositeWrite {
  readonly params = new SqlParams();
  private readonly ctes: string[] = [];
  private guardName: string | undefined;

  /**
   * Makes every write of the statement conditional on `build`'s query returning a row (a version check, say):
   * it must be added first, and the writes take their rows through `rows()`.
   */
  guard(build: (params: SqlParams) => string): void {
    this.guardName = this.add(build);
  }

  /**
   * A write's row source: `source` (e.g. `unnest(…) AS u0(a, b)`, aliased) as it is, or, under a guard, a subquery
   * named `alias` that yields its rows only while the guard holds.
   */
  rows(source: string, alias: string): string {
    return this.guardName ? `(SELECT * FROM ${source} WHERE EXISTS (SELECT 1 FROM ${this.guardName})) AS ${alias}` : source;
  }

  /** Adds a CTE whose body `build` writes with `params`; returns the CTE's name for later CTEs to use. */
  add(build: (params: SqlParams) => string): string {
    const name = `w${this.ctes.length + 1}`;
    this.ctes.push(`${name} AS (${build(this.params)})`);
    return name;
  }

  /**
   * Runs the statement; one whose text never varies can ask to stay prepared. Returns false when a guard did not
   * hold (and so nothing was written).
   */
  async run(q: Queryable, options?: QueryOptions): Promise<boolean> {
    if (this.ctes.length === 0) {
      return true;
    }
    const result = this.guardName ? `EXISTS (SELECT 1 FROM ${this.guardName})` : 'true';
    const rows = await q.query<{ ok: boolean }>(`WITH ${this.ctes.join(',\n')} SELECT ${result} AS ok`, this.params.values, options);
    return rows[0].ok;
  }
}
