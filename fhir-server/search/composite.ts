/**
 * Composite parameters (`Observation?code-value-quantity=http://loinc.org|8480-6$gt100`): a value per component,
 * and every component's value must come from the same element (the same Observation.component, say).
 *
 * At write time each element the parameter's expression yields gets a new group number (index-rows.ts), and each
 * component's values are indexed through its own parameter type, under the code `{code}${i}`, in that group.
 * A search joins the component rows of one resource on the group: one EXISTS per OR'ed value, each component's
 * condition being its type's plain-equality meaning (`valueCondition`).
 */
import { evalFhirPathTyped, getSearchParameters, Operator, parseFhirPath, type Filter, type FhirPathAtom, type TypedValue } from '@medplum/core';
import type { SearchParameter } from '@medplum/fhirtypes';
import { splitUnescaped } from './escape';
import { emptyIndexRows, newGroup, type IndexRows } from './index-rows';
import { runtimeParams, SEARCH_TYPES } from './indexed-params';
import { INDEX_TABLES, indexMatch, invalidValue, orValuesEscaped, unsupportedModifier, type FilterContext, type IndexKind, type SearchType } from './search-type';

export interface CompositeParam {
  readonly code: string;
  /** Set for a composite stored at runtime: its expressions may use what the evaluator lacks. */
  readonly runtime?: boolean;
  /**
   * The full expression, not the one cut down to the type as indexed-params.ts does: `combo-code-value-*` is
   * `Observation | Observation.component`, and the cut-down form loses its bare `Observation` branch.
   */
  readonly expression: FhirPathAtom;
  readonly components: ReadonlyArray<{ readonly expression: FhirPathAtom; readonly type: SearchType }>;
}

const cache = new Map<string, CompositeParam[]>();

/**
 * The composite parameters of `resourceType` whose components all have an indexed type: the R4 ones, then those
 * stored at runtime (runtime-params.ts).
 */
export function compositeParams(resourceType: string): readonly CompositeParam[] {
  const runtime = runtimeParams.compositesFor(resourceType);
  return runtime.length === 0 ? r4Composites(resourceType) : [...r4Composites(resourceType), ...runtime];
}

function r4Composites(resourceType: string): CompositeParam[] {
  let list = cache.get(resourceType);
  if (!list) {
    list = [];
    const params = Object.values(getSearchParameters(resourceType) ?? {});
    for (const param of params) {
      if (param.type !== 'composite' || !param.expression || !param.component?.length) {
        continue;
      }
      const definitions = param.component.map((c) => params.find((p) => p.url === c.definition));
      const components = param.component.map((c, i) => {
        const definition = componentDefinition(c.expression, definitions[i], definitions);
        const type = definition && SEARCH_TYPES[definition.type];
        return type && c.expression ? { expression: parseFhirPath(c.expression), type } : undefined;
      });
      if (components.every((c) => c !== undefined)) {
        list.push({ code: param.code, expression: parseFhirPath(param.expression), components });
      }
    }
    cache.set(resourceType, list);
  }
  return list;
}

/**
 * The parameter that gives a component its type. R4 swaps the definitions of DocumentReference's `relationship`
 * (its `code` component points at the reference parameter `relatesto`, its `target` at the token `relation`), so a
 * definition whose own expression does not end with the component's path gives way to one of the composite's other
 * definitions that does.
 */
function componentDefinition(
  expression: string | undefined,
  own: SearchParameter | undefined,
  all: Array<SearchParameter | undefined>,
): SearchParameter | undefined {
  const endsWithPath = (p: SearchParameter | undefined) => expression !== undefined && (p?.expression?.endsWith(`.${expression}`) ?? false);
  return endsWithPath(own) ? own : (all.find(endsWithPath) ?? own);
}

export function findCompositeParam(resourceType: string, code: string): CompositeParam | undefined {
  return compositeParams(resourceType).find((p) => p.code === code);
}

/** Whether `code` is a composite parameter of `resourceType` that this server searches (for the CapabilityStatement). */
export function isSearchableComposite(resourceType: string, code: string): boolean {
  return findCompositeParam(resourceType, code) !== undefined;
}

const componentCode = (code: string, i: number) => `${code}$${i}`;

/** Adds the grouped component rows of every composite parameter of the resource's type. */
export function extractComposites(resourceType: string, input: TypedValue[], rows: IndexRows): void {
  // Some component expressions read the resource itself (MolecularSequence: %resource.referenceSeq.chromosome).
  const variables = { '%resource': input[0] };
  for (const param of compositeParams(resourceType)) {
    let elements: TypedValue[];
    try {
      elements = evalFhirPathTyped(param.expression, input, variables);
    } catch (err) {
      if (!param.runtime) {
        throw err;
      }
      continue; // as extract.ts: a stored parameter the evaluator cannot run indexes nothing
    }
    for (const element of elements) {
      const scratch = emptyIndexRows();
      try {
        param.components.forEach(({ expression, type }, i) => {
          type.extract(componentCode(param.code, i), evalFhirPathTyped(expression, [element], variables), scratch);
        });
      } catch (err) {
        if (!param.runtime) {
          throw err;
        }
        continue;
      }
      // An element without a value for some component can never match: it gets no rows.
      const present = param.components.every((c, i) => scratch[c.type.kind].some((row) => row.code === componentCode(param.code, i)));
      if (present) {
        copyGrouped(scratch, rows, newGroup(rows));
      }
    }
  }
}

function copyGrouped(from: IndexRows, to: IndexRows, group: number): void {
  for (const kind of Object.keys(INDEX_TABLES) as IndexKind[]) {
    for (const row of from[kind]) {
      (to[kind] as Array<typeof row>).push({ ...row, group });
    }
  }
}

/** Whether the resource has any value for the composite (for `:missing`). */
export function compositePresent(param: CompositeParam, ctx: FilterContext): string {
  return indexMatch(ctx, param.components[0].type.kind, componentCode(param.code, 0), undefined, 'grouped');
}

export function compileComposite(param: CompositeParam, filter: Filter, ctx: FilterContext): string {
  if (filter.operator !== Operator.EQUALS) {
    throw unsupportedModifier(filter, 'composite');
  }
  const conditions = orValuesEscaped(filter).map((value) => {
    const parts = splitUnescaped(value, '$');
    if (parts.length !== param.components.length) {
      throw invalidValue(filter, `a ${param.code} value has ${param.components.length} components separated by '$'`);
    }
    const [first, ...others] = param.components;
    return indexMatch(ctx, first.type.kind, componentCode(param.code, 0), (a0) => {
      const joined = others.map(({ type }, j) => {
        const a = ctx.nextAlias();
        const i = j + 1;
        return (
          `EXISTS (SELECT 1 FROM ${INDEX_TABLES[type.kind]} ${a} WHERE ${a}.res_type = ${a0}.res_type AND ${a}.res_id = ${a0}.res_id` +
          ` AND ${a}.grp = ${a0}.grp AND ${a}.code = ${ctx.params.add(componentCode(param.code, i))} AND (${type.valueCondition(parts[i], a, ctx, filter)}))`
        );
      });
      return [`(${first.type.valueCondition(parts[0], a0, ctx, filter)})`, ...joined].join(' AND ');
    }, 'grouped');
  });
  return `(${conditions.join(' OR ')})`;
}
