/**
 * FHIR operations (`$name`) as a registry, so that modules outside the store (terminology's `$lookup`, `$expand`,
 * `$translate`; the MPI's `$match`; …) plug into the same router, batch processing and CapabilityStatement as the
 * store's own `$validate` and `$everything`, without reaching into the store.
 */
import type { Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { badRequest } from '../errors';
import type { FhirMethod, FhirRequest, FhirResponse, RouteContext } from './types';

export type OperationLevel = 'system' | 'type' | 'instance';

export interface OperationTarget {
  level: OperationLevel;
  /** Set at type and instance level. */
  type?: string;
  /** Set at instance level. */
  id?: string;
}

export interface FhirOperation {
  /** The code, without `$`: `lookup`. */
  name: string;
  /** Canonical URL of the OperationDefinition, listed in the CapabilityStatement. */
  definition: string;
  levels: readonly OperationLevel[];
  /** The resource types it is defined on at type and instance level; undefined means every type. */
  resourceTypes?: readonly string[];
  /** An operation that changes nothing may also be invoked with GET (FHIR operations.html). */
  affectsState: boolean;
  /**
   * The caller roles (security's `admin`, `supervisor`, …) that may invoke it; undefined: any caller whose scopes
   * allow it. For operations whose answers cross organisations, e.g. the HL7 raw message store.
   */
  roles?: readonly string[];
  /**
   * The HTTP methods it answers, when not the usual POST (and GET/HEAD when it changes nothing): e.g. DELETE on
   * the status of an asynchronous request, which cancels it.
   */
  methods?: readonly FhirMethod[];
  /**
   * Set when the operation decides itself who may use it, so that the token's scopes are not checked against it:
   * the status and files of an asynchronous request belong to the client that started it, whatever it is.
   */
  authorizesCaller?: boolean;
  /** False for an operation that is a URL of another one's answer (a status or file URL): not listed on its own. */
  advertised?: boolean;
  invoke(ctx: RouteContext, request: FhirRequest, target: OperationTarget): Promise<FhirResponse>;
}

/** The operations a server answers, looked up by name, level and type. */
export class OperationRegistry {
  private readonly byName = new Map<string, FhirOperation[]>();

  constructor(operations: readonly FhirOperation[] = []) {
    operations.forEach((op) => this.register(op));
  }

  register(operation: FhirOperation): void {
    const list = this.byName.get(operation.name) ?? [];
    list.push(operation);
    this.byName.set(operation.name, list);
  }

  find(name: string, target: OperationTarget): FhirOperation | undefined {
    return this.byName
      .get(name)
      ?.find((op) => op.levels.includes(target.level) && (target.level === 'system' || !op.resourceTypes || op.resourceTypes.includes(target.type as string)));
  }

  /** Every registered operation, for the CapabilityStatement. */
  all(): FhirOperation[] {
    return [...this.byName.values()].flat();
  }
}

/**
 * The operation's input as a Parameters resource: the POST body when it is one, or the URL's parameters as
 * string values for GET (the operation's own reader gives them their types).
 */
export function operationParameters(request: FhirRequest): Parameters {
  const body = request.body as Resource | undefined;
  const fromQuery: ParametersParameter[] = [];
  request.query.forEach((value, name) => fromQuery.push({ name, valueString: value }));
  if (body === undefined) {
    return { resourceType: 'Parameters', parameter: fromQuery };
  }
  if (body.resourceType !== 'Parameters') {
    throw badRequest(`The operation's body must be a Parameters resource, got ${String(body.resourceType)}`);
  }
  return { ...(body as Parameters), parameter: [...((body as Parameters).parameter ?? []), ...fromQuery] };
}

/** The first primitive value of a parameter, as text (valueCode, valueUri, valueString, valueBoolean, …). */
export function parameterValue(params: Parameters, name: string): string | undefined {
  const p = params.parameter?.find((x) => x.name === name);
  if (!p) {
    return undefined;
  }
  for (const [key, value] of Object.entries(p)) {
    if (key.startsWith('value') && (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')) {
      return String(value);
    }
  }
  return undefined;
}
