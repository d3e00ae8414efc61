/**
 * Security: SMART Backend Services authorization (tokens, clients, scopes), organisation and role rules, patient
 * consent. See docs/architecture.md, "Security".
 */
export { securityMigrations, OWNER_TAG_SYSTEM, RESTRICTED_TO_SYSTEM } from './migrations';
export { PlatformSecurity, type SecurityOptions } from './security';
export { AccessPolicy, ownerOf, type Interaction } from './access-policy';
export { ClientStore, checkRegistration, type Client, type RegistrationInput, type AuthMethod } from './clients';
export { TokenService, OAuthError, TokenError, CLIENT_ASSERTION_TYPE, type Caller, type AppClient } from './tokens';
export { UserStore, type User, type UserInput } from './users';
export { Permissions, type ScopeLetter } from './scopes';
export { ROLES, isRole, rulesOf, type Role } from './roles';
export { loadOrCreateSigningKey, type SigningKey } from './signing-key';
export { RateLimiter } from './rate-limit';
export { ConsentDecisions } from './consent-decisions';
export { consentNoticeOperation, CONSENT_NOTICE_DEFINITION } from './consent-notice';
export { partyOfOrganization } from './organization-party';
