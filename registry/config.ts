/** The registry and document-sharing settings, from the environment (see README.md). */

export interface RegistryConfig {
  /** Largest document (Binary content) accepted, in bytes: DOCUMENT_MAX_BYTES, default 100 MiB. */
  documentMaxBytes: number;
}

export function loadRegistryConfig(env: NodeJS.ProcessEnv = process.env): RegistryConfig {
  const raw = env.DOCUMENT_MAX_BYTES;
  const documentMaxBytes = raw === undefined || raw === '' ? 100 * 1024 * 1024 : Number(raw);
  if (!Number.isInteger(documentMaxBytes) || documentMaxBytes < 1) {
    throw new Error(`Configuration error: DOCUMENT_MAX_BYTES must be a positive integer, got "${raw}"`);
  }
  return { documentMaxBytes };
}
