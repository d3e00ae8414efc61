/** The document type code systems of China's shared documents, read from registry/content. */
import type { CodeSystem } from '@medplum/fhirtypes';
import documentTypes from '../content/wst-500-document-type.json';

export const DOCUMENT_TYPE_SYSTEM = (documentTypes as CodeSystem).url as string;
/** The OID WS/T 500 documents give their type codes (卫生信息共享文档编码体系). */
export const DOCUMENT_TYPE_OID = '2.16.156.10011.2.4';

const displays = new Map(((documentTypes as CodeSystem).concept ?? []).map((c) => [c.code, c.display ?? c.code]));

/** The display of a WS/T 500 document type code, undefined when the code is not one. */
export function documentTypeDisplay(code: string): string | undefined {
  return displays.get(code);
}
