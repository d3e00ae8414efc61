/**
 * The adapters of one process: the inbound pipeline over a FhirRepository, and the MLLP listener in front of it.
 */
import type { Logger } from 'pino';
import type { FhirRepository } from '../fhir-server';
import { FacilityRegistry } from './facilities';
import { Hl7Ingest } from './ingest';
import { registerNationalIdAliases } from '../mpi';
import { MllpServer, type TlsFiles } from './mllp/server';
import { ConceptMapTranslator, type CodeTranslator } from './translator';

export interface Hl7ListenerConfig {
  port: number;
  host: string;
  maxMessageBytes: number;
  idleTimeoutMs: number;
  tls?: TlsFiles;
}

export interface AdapterOptions {
  repo: FhirRepository;
  logger: Logger;
  /** Local code → LOINC; the default reads ConceptMaps from the store. */
  translator?: CodeTranslator;
  /** `oid=resident-id,oid=health-card`: more assigning authorities that mean a national identifier. */
  nationalIdAliases?: string;
}

export interface Adapters {
  ingest: Hl7Ingest;
  facilities: FacilityRegistry;
  /** Starts the MLLP listener; resolves to the port it listens on. */
  listen(config: Hl7ListenerConfig): Promise<number>;
  stop(): Promise<void>;
}

const byRepository = new WeakMap<FhirRepository, Adapters>();

export function createAdapters(options: AdapterOptions): Adapters {
  if (options.nationalIdAliases) {
    registerNationalIdAliases(options.nationalIdAliases);
  }
  const facilities = new FacilityRegistry(options.repo);
  const ingest = new Hl7Ingest({
    repo: options.repo,
    facilities,
    translator: options.translator ?? new ConceptMapTranslator(options.repo),
    logger: options.logger,
  });
  let server: MllpServer | undefined;
  const adapters: Adapters = {
    ingest,
    facilities,
    async listen(config) {
      server = new MllpServer({ ...config, logger: options.logger }, {
        onMessage: async (bytes, peer) => (await ingest.receive(bytes, peer)).ackBytes,
        onOversized: async (head, peer, limit) => (await ingest.refuseOversized(head, peer, limit)).ackBytes,
      });
      return server.listen();
    },
    async stop() {
      await server?.close();
    },
  };
  byRepository.set(options.repo, adapters);
  return adapters;
}

/** The adapters created over this repository (the operations use the listener's pipeline), or new ones. */
export function adaptersFor(repo: FhirRepository, logger: Logger): Adapters {
  return byRepository.get(repo) ?? createAdapters({ repo, logger });
}
