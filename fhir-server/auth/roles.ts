/**
 * What each role may do, on top of (never beyond) the scopes of its token.
 *
 * | role                  | reads                                                   | writes                                   |
 * | --------------------- | ------------------------------------------------------- | ---------------------------------------- |
 * | admin                 | everything, consent not applied (platform operation)   | everything; client registration          |
 * | supervisor            | everything the patients' consents allow; AuditEvents   | nothing                                  |
 * | facility-system       | what the patients' consents allow                       | its organisation's records only          |
 * | referral-coordinator  | what the patients' consents allow                       | Task, ServiceRequest, Appointment(Response) of its organisation |
 * | clinician             | patients with a care relationship to its organisation, or by break-the-glass; consents apply | its organisation's records only |
 *
 * Resources labelled as restricted to named organisations (RESTRICTED_TO_SYSTEM) are seen only by administrators,
 * supervisors, their owner and the organisations named. An operation that names a role in its `roles` may be
 * invoked by that role even when it changes data (the operation enforces its own rules, e.g. supervisors reviewing
 * findings), which the role's write rules would otherwise forbid.
 */
export const ROLES = ['facility-system', 'clinician', 'referral-coordinator', 'supervisor', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** The resource types a referral coordinator manages. */
const COORDINATOR_TYPES: ReadonlySet<string> = new Set(['Task', 'ServiceRequest', 'Appointment', 'AppointmentResponse']);

export interface RoleRules {
  /** Consent and care-relationship filters do not apply. */
  unrestricted: boolean;
  /** May write resources of this type at all (ownership is checked separately). */
  mayWrite(resourceType: string): boolean;
  /** Reads need a care relationship with the patient (or break-the-glass). */
  needsCareRelationship: boolean;
  /** May read the audit log. */
  mayReadAudit: boolean;
  /** Needs an owning organisation to be registered. */
  needsOrganization: boolean;
  /** Sees resources restricted to other organisations (RESTRICTED_TO_SYSTEM labels). */
  seesRestricted: boolean;
}

export function rulesOf(role: Role): RoleRules {
  switch (role) {
    case 'admin':
      return { unrestricted: true, mayWrite: () => true, needsCareRelationship: false, mayReadAudit: true, needsOrganization: false, seesRestricted: true };
    case 'supervisor':
      return { unrestricted: false, mayWrite: () => false, needsCareRelationship: false, mayReadAudit: true, needsOrganization: true, seesRestricted: true };
    case 'facility-system':
      return { unrestricted: false, mayWrite: () => true, needsCareRelationship: false, mayReadAudit: false, needsOrganization: true, seesRestricted: false };
    case 'referral-coordinator':
      return { unrestricted: false, mayWrite: (t) => COORDINATOR_TYPES.has(t), needsCareRelationship: false, mayReadAudit: false, needsOrganization: true, seesRestricted: false };
    case 'clinician':
      return { unrestricted: false, mayWrite: () => true, needsCareRelationship: true, mayReadAudit: false, needsOrganization: true, seesRestricted: false };
  }
}
