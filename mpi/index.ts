/**
 * The master patient index's public face. Each hospital's Patient stays as the hospital sent it; the index files
 * the records of one resident under one golden Patient (links `refer`/`seealso`, merges `replaced-by`/`replaces`),
 * deterministically on national identifiers and by scores otherwise, keeps every decision with its evidence, and
 * answers $match, PIXm, PDQm, $merge and the review worklist. It talks to the store only through
 * fhir-server/index.ts: a write rule, its own event queue, operations, and its own tables (migrations 7000–7499).
 *
 * Two halves, as the store needs the rules before it exists and the index needs the store:
 *   const mpi = new MasterPatientIndex(config);
 *   createFhirServer({ ...mpi.storeExtensions(), … });      // write rule, event queue, operations, link parameter
 *   await mpi.start({ repository: server.repository, … });  // search parameters installed, linking worker started
 */
import type { EventQueueTarget, FhirOperation, FhirRepository, WriteInterceptor } from '../fhir-server';
import type { MpiConfig } from './config';
import { LINKED_RECORDS_PARAMETER, MOTHERS_MAIDEN_NAME_PARAMETER } from './golden';
import { PatientIndex, type ReconcileOutcome } from './linker';
import { mpiOperations } from './operations';
import { LinkingWorker, MPI_EVENT_CONSUMER } from './worker';
import { patientWriteRule } from './write-rule';

export * from './national-ids';
export { withLink, mergePatients } from './merge-links';
export { demographicsOf, blockingKeys, type Demographics } from './demographics';
export { compareRecords, decisionOf, DEFAULT_THRESHOLDS, MAX_WEIGHT, type MatchThresholds, type MatchResult, type FieldEvidence, type Decision } from './scoring';
export { loadMpiConfig, type MpiConfig } from './config';
export { mpiMigrations } from './migrations';
export { PatientIndex, DEFAULT_INDEX_SETTINGS, type IndexSettings, type ReconcileOutcome, type ReviewItem, type Candidate } from './linker';
export { GOLDEN_TAG, MPI_SYSTEM, MPI_TAG_SYSTEM, LINKED_RECORDS_PARAMETER, MOTHERS_MAIDEN_NAME_PARAMETER, isGolden, goldenOf } from './golden';
export { MATCH_GRADE_EXTENSION } from './operations';
export { MPI_EVENT_QUEUE, MPI_EVENT_CONSUMER } from './worker';
export { normalisePatientIdentifiers, patientWriteRule } from './write-rule';

export interface MpiStoreExtensions {
  writeInterceptors: WriteInterceptor[];
  operations: FhirOperation[];
  eventQueues: EventQueueTarget[];
  /** The store expands Patient references through this SearchParameter's rows (golden → sources). */
  patientLinkParameter: string;
}

export interface MpiStartOptions {
  repository: FhirRepository;
  redisUrl: string;
  redisPrefix: string;
  onError?: (err: Error) => void;
  onReconciled?: (outcome: ReconcileOutcome) => void;
}

export class MasterPatientIndex {
  private index: PatientIndex | undefined;
  private worker: LinkingWorker | undefined;

  constructor(readonly config: MpiConfig) {}

  /** What createFhirServer needs: pass writeInterceptors, operations, eventQueues and patientLinkParameter. */
  storeExtensions(): MpiStoreExtensions {
    return {
      writeInterceptors: [patientWriteRule()],
      operations: mpiOperations(() => this.patientIndex),
      eventQueues: [MPI_EVENT_CONSUMER],
      patientLinkParameter: LINKED_RECORDS_PARAMETER.code as string,
    };
  }

  get patientIndex(): PatientIndex {
    if (!this.index) throw new Error('The master patient index is not started (MasterPatientIndex.start)');
    return this.index;
  }

  /**
   * Installs the SearchParameters the index relies on (once: an unchanged one is not rewritten) and, unless
   * MPI_WORKERS=false, starts the linking worker in this process.
   */
  async start(options: MpiStartOptions): Promise<void> {
    this.index = new PatientIndex(options.repository, { thresholds: this.config.thresholds, maxCandidates: this.config.maxCandidates });
    await options.repository.write(async (s) => {
      for (const parameter of [LINKED_RECORDS_PARAMETER, MOTHERS_MAIDEN_NAME_PARAMETER]) {
        const existing = await s.read('SearchParameter', parameter.id);
        if (!existing || (existing as typeof parameter).expression !== parameter.expression) {
          await s.update('SearchParameter', parameter.id, parameter);
        }
      }
    });
    if (this.config.workers) {
      this.worker = new LinkingWorker({
        index: this.index,
        redisUrl: options.redisUrl,
        prefix: options.redisPrefix,
        onError: options.onError,
        onReconciled: options.onReconciled,
      });
    }
  }

  async stop(): Promise<void> {
    await this.worker?.close();
  }
}
