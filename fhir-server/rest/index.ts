export { route } from './router';
export { RawJson, parseBody, type FhirMethod, type FhirRequest, type FhirResponse, type RouteContext } from './types';
