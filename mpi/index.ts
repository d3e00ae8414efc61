export * from './national-ids';
export { withLink, mergePatients } from './merge-links';
export { demographicsOf, blockingKeys, type Demographics } from './demographics';
export { compareRecords, decisionOf, DEFAULT_THRESHOLDS, MAX_WEIGHT, type MatchThresholds, type MatchResult, type FieldEvidence, type Decision } from './scoring';
