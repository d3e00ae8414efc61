export { route } from './router';
export { declareImplementationGuide } from './capability';
export { RawJson, parseBody, type FhirMethod, type FhirRequest, type FhirResponse, type RequestGuard, type RouteContext, type StreamedBody } from './types';
export { OperationRegistry, operationParameters, parameterValue, type FhirOperation, type OperationLevel, type OperationTarget } from './operations';
export { storeOperations } from './store-operations';
export { contentTooLarge, wantsRawContent, type BinaryContentStore, type StoredContent } from './binary';
export { subsetResource, SUBSETTED, type Subset } from './subset';
