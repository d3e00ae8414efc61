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
}

export class CompositeWrite {
  readonly params = new SqlParams();
  private readonly ctes: string[] = [];

  /** Adds a CTE whose body `build` writes with `params`; returns the CTE's name for later CTEs to use. */
  add(build: (params: SqlParams) => string): string {
    const name = `w${this.ctes.length + 1}`;
    this.ctes.push(`${name} AS (${build(this.params)})`);
    return name;
  }

  /** Runs the statement; one whose text never varies can ask to stay prepared. */
  async run(q: Queryable, options?: QueryOptions): Promise<void> {
    if (this.ctes.length > 0) {
      await q.query(`WITH ${this.ctes.join(',\n')} SELECT 1`, this.params.values, options);
    }
  }
}
