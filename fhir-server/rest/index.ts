export { route } from './router';
export { RawJson, parseBody, type FhirMethod, type FhirRequest, type FhirResponse, type RequestGuard, type RouteContext, type CallerIdentity } from './types';
export { OperationRegistry, operationParameters, parameterValue, type FhirOperation, type OperationLevel, type OperationTarget } from './operations';
export { storeOperations } from './store-operations';
