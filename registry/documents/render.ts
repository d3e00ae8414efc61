/**
 * `DocumentReference/{id}/$render`: a human-readable HTML view of the CDA document a DocumentReference points to,
 * streamed as the document is read. Reading goes through the caller's own access (consent, scopes): a document the
 * caller may not see cannot be rendered either.
 */
import type { Binary, DocumentReference } from '@medplum/fhirtypes';
import { unprocessable, type FhirOperation } from '../../fhir-server';
import { contentRefOf, type ChunkedContentStore } from '../content-store';
import { CDA_CONTENT_TYPE, renderCdaHtml } from './cda';

export const RENDER_DEFINITION = 'http://huimin.health/fhir/OperationDefinition/DocumentReference-render';

export function renderOperation(store: ChunkedContentStore): FhirOperation {
  return {
    name: 'render',
    definition: RENDER_DEFINITION,
    levels: ['instance'],
    resourceTypes: ['DocumentReference'],
    affectsState: false,
    async invoke(ctx, _request, target) {
      const stored = await ctx.repo.read('DocumentReference', target.id as string, ctx.session?.tx);
      const doc = JSON.parse(stored.json) as DocumentReference;
      const attachment = doc.content?.map((c) => c.attachment).find((a) => (a?.contentType ?? '').startsWith(CDA_CONTENT_TYPE));
      const binaryId = attachment?.url ? /(?:^|\/)Binary\/([A-Za-z0-9\-.]{1,64})$/.exec(attachment.url)?.[1] : undefined;
      if (!binaryId) {
        throw unprocessable([{ severity: 'error', code: 'not-supported', diagnostics: `DocumentReference/${target.id} has no CDA attachment (${CDA_CONTENT_TYPE}) stored on this server: only CDA documents are rendered` }]);
      }
      const binary = JSON.parse((await ctx.repo.read('Binary', binaryId, ctx.session?.tx)).json) as Binary;
      const ref = contentRefOf(binary);
      const chunks = ref ? () => store.chunks(ref.hash) : async function* () { yield Buffer.from(binary.data ?? '', 'base64'); };
      return {
        status: 200,
        stream: {
          contentType: 'text/html; charset=utf-8',
          chunks: async function* () {
            for await (const html of renderCdaHtml(chunks())) {
              yield Buffer.from(html);
            }
          },
        },
      };
    },
  };
}
