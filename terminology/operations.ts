/**
 * The terminology operations as FhirOperations for the store's registry: CodeSystem $lookup, $validate-code,
 * $subsumes; ValueSet $expand, $validate-code; ConceptMap $translate. Each reads its Parameters (POST body or GET
 * query, operationParameters), calls the TerminologyService and writes the output Parameters (or ValueSet).
 * Parameter names follow the R4 OperationDefinitions (terminology-service.html).
 */
import type {
  CodeableConcept,
  CodeSystem,
  Coding,
  ConceptMap,
  Parameters,
  ParametersParameter,
  Resource,
  ValueSet,
  ValueSetExpansionParameter,
} from '@medplum/fhirtypes';
import {
  badRequest,
  notSupported,
  operationParameters,
  parameterValue,
  type FhirOperation,
  type FhirRequest,
  type FhirResponse,
  type OperationTarget,
  type RouteContext,
} from '../fhir-server';
import { splitCanonical } from './resolver';
import { unmappedReportOperation } from './unmapped-report';
import { parseSystemVersionRules, SYSTEM_VERSION_PARAMETERS, type SystemVersionRules } from './system-versions';
import { MissingDefinition } from './valueset';
import type { LookupResult, TerminologyService, ValidateCodeResult } from './service';

const OPERATION_BASE = 'http://hl7.org/fhir/OperationDefinition';
/** Most resources a request may supply with `tx-resource`. */
const MAX_TX_RESOURCES = 100;

/** Reads typed values out of an operation's Parameters. */
/** A language list as in Accept-Language (`de`, `en-AU, en;q=0.8`, `de,*`), each tag BCP 47-shaped. */
function isLanguageList(v: string): boolean {
  return v.length <= 200 && v.split(',').every((part) => /^\s*(\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*)\s*(;\s*q\s*=\s*[01](\.\d{0,3})?\s*)?$/.test(part));
}

class Inputs {
  /** `acceptLanguage`: the request's Accept-Language header, which stands for `displayLanguage` when that is absent. */
  constructor(
    readonly params: Parameters,
    private readonly acceptLanguage?: string,
  ) {}

  private all(name: string): ParametersParameter[] {
    return (this.params.parameter ?? []).filter((p) => p.name === name);
  }

  has(name: string): boolean {
    return this.all(name).length > 0;
  }

  string(name: string): string | undefined {
    return parameterValue(this.params, name);
  }

  strings(name: string): string[] {
    return this.all(name).flatMap((p) => {
      const v = new Inputs({ resourceType: 'Parameters', parameter: [p] }).string(name);
      return v === undefined ? [] : v.split(',').map((s) => s.trim()).filter(Boolean);
    });
  }

  boolean(name: string): boolean | undefined {
    const v = this.string(name);
    if (v === undefined) {
      return undefined;
    }
    if (v !== 'true' && v !== 'false') {
      throw badRequest(`The parameter ${name} must be true or false, got '${v}'`);
    }
    return v === 'true';
  }

  integer(name: string): number | undefined {
    const v = this.string(name);
    if (v === undefined) {
      return undefined;
    }
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      throw badRequest(`The parameter ${name} must be a non-negative integer, got '${v}'`);
    }
    return n;
  }

  /** A language list as in Accept-Language (`de`, `en-AU, en;q=0.8`, `de,*`); refused when a tag is not BCP 47-shaped. */
  language(name: string): string | undefined {
    const v = this.string(name);
    if (v === undefined) {
      // The request's Accept-Language stands for displayLanguage; a header this check would refuse is ignored, not
      // answered 400 (browsers send their own).
      const header = name === 'displayLanguage' ? this.acceptLanguage : undefined;
      return header !== undefined && isLanguageList(header) ? header : undefined;
    }
    if (!isLanguageList(v)) {
      throw badRequest(`The parameter ${name} must be a language (BCP 47) or a list of them, got '${v}'`);
    }
    return v;
  }

  coding(name: string): Coding | undefined {
    return this.all(name)[0]?.valueCoding;
  }

  codeableConcept(name: string): CodeableConcept | undefined {
    return this.all(name)[0]?.valueCodeableConcept;
  }

  resource<T extends Resource>(name: string, type: string): T | undefined {
    const r = this.all(name)[0]?.resource;
    if (r && r.resourceType !== type) {
      throw badRequest(`The parameter ${name} must be a ${type}, got ${r.resourceType}`);
    }
    return r as T | undefined;
  }

  resources(name: string): Resource[] {
    const list = this.all(name).map((p) => p.resource).filter((r): r is Resource => !!r);
    if (list.length > MAX_TX_RESOURCES) {
      throw badRequest(`At most ${MAX_TX_RESOURCES} ${name} parameters are accepted`);
    }
    return list;
  }

  /** Refuses parameters this server does not implement, rather than silently ignoring them. */
  refuse(names: string[], operation: string): void {
    for (const name of names) {
      if (this.has(name)) {
        throw notSupported(400, `The parameter '${name}' of ${operation} is not supported by this server`);
      }
    }
  }
}

function ok(body: Resource): FhirResponse {
  return { status: 200, body };
}

function parameters(parameter: ParametersParameter[]): Parameters {
  return { resourceType: 'Parameters', parameter };
}

/** A `value[x]` part for a property value of the given FHIR type. */
function typedValue(type: string, value: unknown): ParametersParameter {
  const suffix = type.charAt(0).toUpperCase() + type.slice(1);
  return { name: 'value', [`value${suffix}`]: value } as ParametersParameter;
}

async function instanceResource<T extends Resource>(ctx: RouteContext, target: OperationTarget): Promise<T | undefined> {
  if (target.level !== 'instance') {
    return undefined;
  }
  const stored = await ctx.repo.read(target.type as string, target.id as string);
  return JSON.parse(stored.json) as T;
}

function lookupOutput(result: LookupResult): Parameters {
  const out: ParametersParameter[] = [{ name: 'name', valueString: result.name }];
  if (result.version) {
    out.push({ name: 'version', valueString: result.version });
  }
  if (result.display !== undefined) {
    out.push({ name: 'display', valueString: result.display });
  }
  if (result.abstract) {
    out.push({ name: 'abstract', valueBoolean: true });
  }
  for (const d of result.designations) {
    out.push({
      name: 'designation',
      part: [
        ...(d.language ? [{ name: 'language', valueCode: d.language }] : []),
        ...(d.use ? [{ name: 'use', valueCoding: d.use }] : []),
        { name: 'value', valueString: d.value },
      ],
    });
  }
  if (result.definition) {
    out.push({ name: 'property', part: [{ name: 'code', valueCode: 'definition' }, { name: 'value', valueString: result.definition }] });
  }
  for (const p of result.properties) {
    out.push({ name: 'property', part: [{ name: 'code', valueCode: p.code }, typedValue(p.type, p.value)] });
  }
  return parameters(out);
}

function validateOutput(result: ValidateCodeResult): Parameters {
  const out: ParametersParameter[] = [{ name: 'result', valueBoolean: result.result }];
  if (result.message) {
    out.push({ name: 'message', valueString: result.message });
  }
  if (result.display !== undefined) {
    out.push({ name: 'display', valueString: result.display });
  }
  if (result.code) {
    out.push({ name: 'code', valueCode: result.code });
  }
  if (result.system) {
    out.push({ name: 'system', valueUri: result.system });
  }
  if (result.version) {
    out.push({ name: 'version', valueString: result.version });
  }
  if (result.inactive) {
    out.push({ name: 'inactive', valueBoolean: true });
  }
  return parameters(out);
}

/**
 * An unknown code system while validating is an answer (result false), not a failed request; so is an unknown
 * value set that the requested one imports. Only the requested value set itself being unknown is a 404.
 */
async function unknownSystemAsResult(
  run: () => Promise<ValidateCodeResult>,
  coding?: { system?: string; code?: string },
  requestedValueSet?: string | ValueSet,
): Promise<ValidateCodeResult> {
  try {
    return await run();
  } catch (err) {
    const imported = err instanceof MissingDefinition && err.kind === 'ValueSet' && err.canonical !== requestedValueSet;
    if (err instanceof MissingDefinition && (err.kind === 'CodeSystem' || imported)) {
      return { result: false, message: err.message, ...(coding?.code ? { code: coding.code } : {}), ...(coding?.system ? { system: coding.system } : {}) };
    }
    throw err;
  }
}

function codingsOf(inputs: Inputs): Coding[] | undefined {
  const cc = inputs.codeableConcept('codeableConcept');
  if (cc) {
    if (!cc.coding?.length) {
      throw badRequest('The codeableConcept has no coding to validate');
    }
    return cc.coding;
  }
  const coding = inputs.coding('coding');
  return coding ? [coding] : undefined;
}

/** `tx-resource`, `useSupplement` and the code system version parameters: what every operation resolves before it runs. */
async function callOptions(
  service: TerminologyService,
  inputs: Inputs,
  extra: Resource[] = [],
): Promise<{ overlay: Resource[]; supplements: CodeSystem[]; systemVersions?: SystemVersionRules }> {
  const overlay = [...inputs.resources('tx-resource'), ...extra];
  const canonicals = inputs.strings('useSupplement');
  const systemVersions = parseSystemVersionRules({
    'system-version': inputs.strings('system-version'),
    'check-system-version': inputs.strings('check-system-version'),
    'force-system-version': inputs.strings('force-system-version'),
  });
  const valueSetVersions = new Map<string, string>();
  const defaults = inputs.strings('default-valueset-version');
  if (defaults.length > MAX_TX_RESOURCES) {
    throw badRequest(`At most ${MAX_TX_RESOURCES} default-valueset-version parameters are accepted`);
  }
  for (const canonical of defaults) {
    const { url, version } = splitCanonical(canonical);
    if (!version) {
      throw badRequest(`The parameter default-valueset-version must be a canonical with a version (url|version), got '${canonical}'`);
    }
    valueSetVersions.set(url, version);
  }
  return {
    overlay,
    supplements: canonicals.length > 0 ? await service.supplements(canonicals, { overlay }) : [],
    ...(systemVersions ? { systemVersions } : {}),
    ...(valueSetVersions.size > 0 ? { valueSetVersions } : {}),
  };
}

type Handler = (service: TerminologyService, ctx: RouteContext, inputs: Inputs, target: OperationTarget) => Promise<FhirResponse>;

function operation(
  service: TerminologyService,
  name: string,
  resourceType: string,
  definition: string,
  handler: Handler,
): FhirOperation {
  return {
    name,
    definition: `${OPERATION_BASE}/${definition}`,
    levels: ['type', 'instance'],
    resourceTypes: [resourceType],
    affectsState: false,
    invoke: (ctx: RouteContext, request: FhirRequest, target: OperationTarget) => handler(service, ctx, new Inputs(operationParameters(request), request.headers['accept-language']), target),
  };
}

const lookup: Handler = async (service, ctx, inputs, target) => {
  inputs.refuse(['date'], '$lookup');
  const instance = await instanceResource<CodeSystem>(ctx, target);
  const coding = inputs.coding('coding');
  const system = instance?.url ?? coding?.system ?? inputs.string('system');
  const code = coding?.code ?? inputs.string('code');
  if (!system || !code) {
    throw badRequest('$lookup needs code and system, or coding');
  }
  const result = await service.lookup({
    system,
    code,
    version: instance?.version ?? coding?.version ?? inputs.string('version'),
    displayLanguage: inputs.language('displayLanguage'),
    properties: inputs.strings('property'),
    ...(await callOptions(service, inputs)),
  });
  return ok(lookupOutput(result));
};

const codeSystemValidateCode: Handler = async (service, ctx, inputs, target) => {
  inputs.refuse(['date'], 'CodeSystem/$validate-code');
  const instance = await instanceResource<CodeSystem>(ctx, target);
  const supplied = inputs.resource<CodeSystem>('codeSystem', 'CodeSystem');
  const options = await callOptions(service, inputs, [...(supplied ? [supplied] : []), ...(instance ? [instance] : [])]);
  const url = instance?.url ?? supplied?.url ?? inputs.string('url') ?? inputs.string('system');
  const codings = codingsOf(inputs);
  const result = await unknownSystemAsResult(() =>
    service.validateCode({
      system: url,
      systemVersion: instance?.version ?? inputs.string('version'),
      code: inputs.string('code'),
      display: inputs.string('display'),
      codings: codings?.map((c) => ({ ...c, system: c.system ?? url })),
      displayLanguage: inputs.language('displayLanguage'),
      ...options,
    }),
    codings?.[0] ?? { system: url, code: inputs.string('code') },
  );
  return ok(validateOutput(result));
};

const subsumes: Handler = async (service, ctx, inputs, target) => {
  const instance = await instanceResource<CodeSystem>(ctx, target);
  const codingA = inputs.coding('codingA');
  const codingB = inputs.coding('codingB');
  const system = instance?.url ?? inputs.string('system') ?? codingA?.system;
  const codeA = codingA?.code ?? inputs.string('codeA');
  const codeB = codingB?.code ?? inputs.string('codeB');
  if (!system || !codeA || !codeB) {
    throw badRequest('$subsumes needs system with codeA and codeB, or codingA and codingB');
  }
  for (const c of [codingA, codingB]) {
    if (c?.system && c.system !== system) {
      throw badRequest(`$subsumes compares codes of one code system; ${c.system} is not ${system}`);
    }
  }
  const result = await service.subsumes({ system, version: instance?.version ?? inputs.string('version'), codeA, codeB, overlay: inputs.resources('tx-resource') });
  return ok(parameters([{ name: 'outcome', valueCode: result }]));
};

/** The value set an operation is about: the instance, the `valueSet` parameter, or `url` (+ `valueSetVersion`). */
async function targetValueSet(ctx: RouteContext, inputs: Inputs, target: OperationTarget): Promise<string | ValueSet> {
  const instance = await instanceResource<ValueSet>(ctx, target);
  if (instance) {
    // By canonical when it has one, so that the compiled value set (and its expansion) is cached across requests.
    return instance.url ? (instance.version ? `${instance.url}|${instance.version}` : instance.url) : instance;
  }
  const supplied = inputs.resource<ValueSet>('valueSet', 'ValueSet');
  if (supplied) {
    return supplied;
  }
  const url = inputs.string('url');
  if (!url) {
    throw badRequest('Say which value set: url (with valueSetVersion), a valueSet resource, or ValueSet/[id]/$operation');
  }
  const version = inputs.string('valueSetVersion');
  return version && !url.includes('|') ? `${url}|${version}` : url;
}

const expand: Handler = async (service, ctx, inputs, target) => {
  inputs.refuse(['context', 'contextDirection', 'date', 'exclude-system'], 'ValueSet/$expand');
  const valueSet = await targetValueSet(ctx, inputs, target);
  const echo: ValueSetExpansionParameter[] = [];
  for (const name of ['filter', 'count', 'offset', 'displayLanguage', 'activeOnly', 'includeDesignations', 'designation', 'includeDefinition', 'property', 'excludeNested', 'excludeNotForUI', 'excludePostCoordinated', 'default-valueset-version', ...SYSTEM_VERSION_PARAMETERS]) {
    for (const p of inputs.params.parameter?.filter((x) => x.name === name) ?? []) {
      const { name: _n, valueCanonical, ...value } = p;
      // R4's expansion.parameter has no valueCanonical: a canonical is echoed as a uri.
      echo.push({ name, ...value, ...(valueCanonical !== undefined ? { valueUri: valueCanonical } : {}) } as ValueSetExpansionParameter);
    }
  }
  const count = inputs.integer('count');
  // Checked, and then without effect: no code system here holds post-coordinated expressions (SNOMED CT is loaded
  // as concepts), so there is nothing for excludePostCoordinated to leave out.
  inputs.boolean('excludePostCoordinated');
  const result = await service.expand({
    valueSet,
    filter: inputs.string('filter'),
    count,
    offset: inputs.integer('offset'),
    displayLanguage: inputs.language('displayLanguage'),
    activeOnly: inputs.boolean('activeOnly'),
    includeDesignations: inputs.boolean('includeDesignations'),
    designations: inputs.strings('designation'),
    properties: inputs.strings('property'),
    includeDefinition: inputs.boolean('includeDefinition'),
    excludeNotForUI: inputs.boolean('excludeNotForUI'),
    nested: inputs.boolean('excludeNested') === false,
    ...(await callOptions(service, inputs)),
    echo,
  });
  return ok(result);
};

const valueSetValidateCode: Handler = async (service, ctx, inputs, target) => {
  inputs.refuse(['context', 'date'], 'ValueSet/$validate-code');
  const valueSet = await targetValueSet(ctx, inputs, target);
  const options = await callOptions(service, inputs);
  const result = await unknownSystemAsResult(() =>
    service.validateCode({
      valueSet,
      system: inputs.string('system'),
      systemVersion: inputs.string('systemVersion') ?? inputs.string('version'),
      code: inputs.string('code'),
      display: inputs.string('display'),
      codings: codingsOf(inputs),
      displayLanguage: inputs.language('displayLanguage'),
      activeOnly: inputs.boolean('activeOnly'),
      abstract: inputs.boolean('abstract'),
      lenientDisplay: inputs.boolean('lenient-display-validation'),
      requireSystem: !!codingsOf(inputs),
      inferSystem: inputs.boolean('inferSystem'),
      ...options,
    }),
    codingsOf(inputs)?.[0] ?? { system: inputs.string('system'), code: inputs.string('code') },
    valueSet,
  );
  return ok(validateOutput(result));
};

const translate: Handler = async (service, ctx, inputs, target) => {
  inputs.refuse(['dependency'], 'ConceptMap/$translate');
  const instance = await instanceResource<ConceptMap>(ctx, target);
  const supplied = inputs.resource<ConceptMap>('conceptMap', 'ConceptMap');
  const cc = inputs.codeableConcept('codeableConcept');
  const coding = inputs.coding('coding') ?? cc?.coding?.[0];
  const system = coding?.system ?? inputs.string('system');
  const code = coding?.code ?? inputs.string('code');
  if (!system || !code) {
    throw badRequest('$translate needs system and code, coding or codeableConcept');
  }
  const map = instance ?? supplied;
  const overlay = [...inputs.resources('tx-resource'), ...(map ? [map] : [])];
  const result = await service.translate({
    conceptMapUrl: map?.url ?? inputs.string('url'),
    conceptMapVersion: map ? map.version : inputs.string('conceptMapVersion'),
    system,
    code,
    version: coding?.version ?? inputs.string('version'),
    source: inputs.string('source'),
    target: inputs.string('target'),
    targetSystem: inputs.string('targetsystem') ?? inputs.string('targetSystem'),
    reverse: inputs.boolean('reverse'),
    overlay,
  });
  const out: ParametersParameter[] = [{ name: 'result', valueBoolean: result.result }];
  if (result.message) {
    out.push({ name: 'message', valueString: result.message });
  }
  for (const m of result.matches) {
    out.push({
      name: 'match',
      part: [
        { name: 'equivalence', valueCode: m.equivalence },
        ...(m.concept.code ? [{ name: 'concept', valueCoding: m.concept }] : []),
        { name: 'source', valueUri: m.source },
      ],
    });
  }
  return ok(parameters(out));
};

/** The operations to pass to createFhirServer({ operations }). */
export function terminologyOperations(service: TerminologyService): FhirOperation[] {
  return [
    operation(service, 'lookup', 'CodeSystem', 'CodeSystem-lookup', lookup),
    operation(service, 'validate-code', 'CodeSystem', 'CodeSystem-validate-code', codeSystemValidateCode),
    operation(service, 'subsumes', 'CodeSystem', 'CodeSystem-subsumes', subsumes),
    operation(service, 'expand', 'ValueSet', 'ValueSet-expand', expand),
    operation(service, 'validate-code', 'ValueSet', 'ValueSet-validate-code', valueSetValidateCode),
    operation(service, 'translate', 'ConceptMap', 'ConceptMap-translate', translate),
    unmappedReportOperation(service),
  ];
}

