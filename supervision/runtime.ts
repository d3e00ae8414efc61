/**
 * What supervision's operations need once the store exists. The operations are handed to createFhirServer before
 * the repository they write through exists, so they reach it through this holder, filled by `attach`.
 */
import { FhirError, issue, outcome, type Database, type FhirRepository } from '../fhir-server';
import type { SupervisionConfig } from './config';
import type { SupervisionEngine } from './engine';
import type { MeasureCatalogue } from './measures';
import type { RuleStore } from './rules/store';

export interface AttachedRuntime {
  db: Database;
  repository: FhirRepository;
  rules: RuleStore;
  engine: SupervisionEngine;
  measures: MeasureCatalogue;
  config: SupervisionConfig;
  now: () => number;
}

export class SupervisionRuntime {
  private current: AttachedRuntime | undefined;

  set(runtime: AttachedRuntime): void {
    this.current = runtime;
  }

  attached(): AttachedRuntime {
    if (!this.current) {
      throw new FhirError(503, outcome([issue('error', 'transient', 'Supervision is starting; try again in a moment')]));
    }
    return this.current;
  }
}
