/**
 * Audit: an AuditEvent (IHE BALP style) for every request, in an append-only, hash-chained log. See
 * docs/architecture.md, "Security".
 */
export { AuditLog, insertAuditRecords, type AuditLogOptions } from './audit-log';
export { auditRecord, renderAuditEvent, AUDIT_FLAG_SYSTEM, BREAK_GLASS_FLAG, type AuditRecord, type AuditFacts, type AuditAgent, type StoredAuditFacts } from './audit-event';
export { verifyAuditChain, chainHash, GENESIS_HASH, type ChainReport } from './hash-chain';
export { AuditJournal, recoverJournals } from './journal';
export { readAuditLog, type AuditEntry } from './audit-reader';
