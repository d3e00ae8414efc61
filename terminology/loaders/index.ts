/** The release loaders (each also a command: see cli.ts). */
export { loadLoinc, LOINC_URL, type LoincLoadOptions } from './loinc';
export { loadIcd10, ICD10_CN_URL, ICD10_WHO_URL, type Icd10LoadOptions } from './icd10';
export { loadSnomed, SNOMED_URL, type SnomedLoadOptions } from './snomed';
export { loadConceptMapCsv, hospitalLabSystem, type ConceptMapCsvOptions, type ConceptMapCsvReport } from './conceptmap-csv';
export type { LoadReport, LoaderOptions } from './common';
