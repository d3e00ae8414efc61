/**
 * Request bodies: size-limited, depth-limited JSON. Parsing is ours rather than a body-parser's so that the
 * errors are FHIR OperationOutcomes with a precise message.
 */
import type { IncomingMessage } from 'node:http';
import { FhirError, badRequest, outcome, issue } from '../errors';

const JSON_TYPES = /^application\/(fhir\+json|json|json-patch\+json)\b/i;

/** Whether a Content-Type is one of the JSON bodies the API parses. */
export function isJsonContentType(contentType: string | undefined): boolean {
  return JSON_TYPES.test(contentType ?? '');
}

/** Nesting depth of a parsed JSON value, stopping as soon as `limit` is passed. */
function exceedsDepth(value: unknown, limit: number, depth = 0): boolean {
  if (depth > limit) {
    return true;
  }
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  for (const child of Array.isArray(value) ? value : Object.values(value)) {
    if (typeof child === 'object' && child !== null && exceedsDepth(child, limit, depth + 1)) {
      return true;
    }
  }
  return false;
}

/** The raw body, refused with 413 once it passes `maxBytes`. */
export async function readRawBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    throw new FhirError(413, outcome([issue('error', 'too-costly', `The request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`)]));
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      throw new FhirError(413, outcome([issue('error', 'too-costly', `The request body exceeds the limit of ${maxBytes} bytes`)]));
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function readJsonBody(req: IncomingMessage, maxBytes: number, maxDepth: number): Promise<unknown> {
  const raw = await readRawBody(req, maxBytes);
  if (raw.length === 0) {
    return undefined;
  }
  const contentType = req.headers['content-type'] ?? '';
  if (!JSON_TYPES.test(contentType)) {
    throw new FhirError(415, outcome([issue('error', 'not-supported',
      `Content-Type "${contentType || '(none)'}" is not supported; send application/fhir+json (XML is not supported yet)`)]));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw badRequest(`The request body is not valid JSON: ${(err as Error).message}`);
  }
  if (exceedsDepth(parsed, maxDepth)) {
    throw badRequest(`The request body nests deeper than ${maxDepth} levels`);
  }
  return parsed;
}
