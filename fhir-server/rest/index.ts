export { route } from './router';
export { RawJson, StreamedBody, parseBody, type FhirMethod, type FhirRequest, type FhirResponse, type RequestGuard, type RouteContext } from './types';
export { OperationRegistry, operationParameters, parameterValue, type FhirOperation, type OperationLevel, type OperationTarget } from './operations';
export { storeOperations } from './store-operations';
