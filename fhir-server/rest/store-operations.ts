/** The store's own operations, registered like any other module's (`$reindex` is in fhir-server/reindex). */
import { everything } from './everything';
import type { FhirOperation } from './operations';
import { validateOperation } from './validate';

export const storeOperations: readonly FhirOperation[] = [
  {
    name: 'validate',
    definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
    levels: ['type', 'instance'],
    affectsState: false,
    invoke: (ctx, request, target) => validateOperation(ctx, request, target.type as string, target.id),
  },
  {
    name: 'everything',
    definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything',
    levels: ['instance'],
    resourceTypes: ['Patient'],
    affectsState: false,
    invoke: (ctx, request, target) => everything(ctx, request, target.id as string),
  },
];
