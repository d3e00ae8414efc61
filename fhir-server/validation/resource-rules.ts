/**
 * Rules on whole resources that the reference Java validator enforces and that neither the JSON schema nor
 * @medplum/core's validator check: Bundle entry URLs, search-set results and links, references inside documents,
 * SearchParameter consistency with the parameter it derives from, CapabilityStatement search parameter types,
 * narrative links. Called for the written resource and every nested resource.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue } from './issues';
import { checkDocumentReferences } from './bundle-references';
import { checkNarrativeLinks } from './narrative';
import { getCoreSearchParameter } from './search-parameters';

const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** `http(s)://server/base/Type/id` (optionally `/_history/n`): a RESTful URL that names a resource. */
const RESTFUL_URL = /^https?:\/\/.+\/([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/[A-Za-z0-9\-.]{1,64})?$/;
/** Link relations that describe the page itself: each may appear once. */
const SINGLE_LINK_RELATIONS = new Set(['self', 'first', 'previous', 'next', 'last']);

function asObjects(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isPlainObject) : [];
}

function checkEntryUrl(entry: Record<string, unknown>, path: string, issues: OperationOutcomeIssue[]): void {
  const fullUrl = entry.fullUrl;
  if (typeof fullUrl !== 'string') {
    return;
  }
  if (!ABSOLUTE_URI.test(fullUrl)) {
    issues.push(
      makeIssue('error', 'value', `${path}.fullUrl must be an absolute URL, not "${fullUrl}"`, `${path}.fullUrl`)
    );
    return;
  }
  const resource = isPlainObject(entry.resource) ? entry.resource : undefined;
  const match = RESTFUL_URL.exec(fullUrl);
  if (match && resource && typeof resource.id === 'string' && typeof resource.resourceType === 'string') {
    const [, type, id] = match;
    if (type !== resource.resourceType || id !== resource.id) {
      issues.push(
        makeIssue(
          'error',
          'value',
          `${path}.fullUrl "${fullUrl}" is a RESTful URL, so it must end with ${resource.resourceType}/${resource.id}`,
          `${path}.fullUrl`
        )
      );
    }
  }
}

function checkBundle(bundle: Record<string, unknown>, path: string, issues: OperationOutcomeIssue[]): void {
  const entries = asObjects(bundle.entry);
  entries.forEach((entry, i) => {
    const entryPath = `${path}.entry[${i}]`;
    checkEntryUrl(entry, entryPath, issues);
    const search = isPlainObject(entry.search) ? entry.search : undefined;
    const resource = isPlainObject(entry.resource) ? entry.resource : undefined;
    // Clients follow search results by id; an OperationOutcome about the search itself needs none.
    const isOutcome = resource?.resourceType === 'OperationOutcome' && search?.mode !== 'match';
    if (bundle.type === 'searchset' && resource && !isOutcome && typeof resource.id !== 'string') {
      issues.push(
        makeIssue('error', 'required', `${entryPath}.resource: search results must have an id`, `${entryPath}.resource`)
      );
    }
    if (search?.mode === 'outcome' && resource && resource.resourceType !== 'OperationOutcome') {
      issues.push(
        makeIssue(
          'error',
          'invalid',
          `${entryPath}: an entry with search.mode "outcome" must be an OperationOutcome`,
          `${entryPath}.resource`
        )
      );
    }
  });
  if (bundle.type === 'document') {
    checkDocumentReferences(entries, path, issues);
  }
  const seen = new Set<string>();
  asObjects(bundle.link).forEach((link, i) => {
    const relation = link.relation;
    if (typeof relation === 'string' && SINGLE_LINK_RELATIONS.has(relation)) {
      if (seen.has(relation)) {
        const linkPath = `${path}.link[${i}]`;
        issues.push(
          makeIssue('error', 'invalid', `${linkPath}: the link relation "${relation}" may occur only once`, linkPath)
        );
      }
      seen.add(relation);
    }
  });
}

function checkSearchParameter(param: Record<string, unknown>, path: string, issues: OperationOutcomeIssue[]): void {
  if (param.type === 'composite' && asObjects(param.component).length < 2) {
    issues.push(
      makeIssue(
        'error',
        'required',
        `${path}: a composite search parameter must define two or more components`,
        `${path}.component`
      )
    );
  }
  if (typeof param.derivedFrom !== 'string') {
    return;
  }
  const parent = getCoreSearchParameter(param.derivedFrom.split('|')[0]);
  if (!parent) {
    return;
  }
  if (parent.type !== param.type) {
    issues.push(
      makeIssue(
        'error',
        'invalid',
        `${path}.type "${String(param.type)}" differs from type "${parent.type}" of ${parent.url} it derives from`,
        `${path}.type`
      )
    );
  }
  for (const base of Array.isArray(param.base) ? param.base : []) {
    if (!parent.base.includes(base)) {
      issues.push(
        makeIssue(
          'error',
          'invalid',
          `${path}.base "${String(base)}" is not a base of ${parent.url} it derives from`,
          `${path}.base`
        )
      );
    }
  }
}

/** A CapabilityStatement's search parameters must have the type of the definition they point to. */
function checkCapabilityStatement(
  statement: Record<string, unknown>,
  path: string,
  issues: OperationOutcomeIssue[]
): void {
  asObjects(statement.rest).forEach((rest, r) => {
    asObjects(rest.resource).forEach((resource, i) => {
      asObjects(resource.searchParam).forEach((param, p) => {
        const definition =
          typeof param.definition === 'string' ? getCoreSearchParameter(param.definition.split('|')[0]) : undefined;
        if (definition && typeof param.type === 'string' && definition.type !== param.type) {
          const at = `${path}.rest[${r}].resource[${i}].searchParam[${p}].type`;
          issues.push(
            makeIssue(
              'error',
              'invalid',
              `${at} is "${param.type}" but ${definition.url} is of type "${definition.type}"`,
              at
            )
          );
        }
      });
    });
  });
}

export function checkResource(
  resourceType: string,
  resource: Record<string, unknown>,
  path: string,
  issues: OperationOutcomeIssue[]
) {
  checkNarrativeLinks(resource, path, issues);
  if (resourceType === 'Bundle') {
    checkBundle(resource, path, issues);
  } else if (resourceType === 'SearchParameter') {
    checkSearchParameter(resource, path, issues);
  } else if (resourceType === 'CapabilityStatement') {
    checkCapabilityStatement(resource, path, issues);
  }
}
