/**
 * The regional implementation guide (profiles, extensions, code systems and value sets under one canonical base),
 * its installation into the store, its registration with the store's validator, and the conformance kit.
 */
export { DEFAULT_CANONICAL_BASE, loadConformanceConfig, parseCanonicalBase, type ConformanceConfig } from './config';
export { GUIDE_DIR, guideResources, loadImplementationGuide, publishedDefinition, type GuideExample, type ImplementationGuideContent } from './guide';
export { installImplementationGuide } from './install';
export { registerImplementationGuide } from './register';
export { runConformanceKit, type KitCheck, type KitOptions, type KitReport } from './kit';
export { withSnapshot } from './snapshot';
