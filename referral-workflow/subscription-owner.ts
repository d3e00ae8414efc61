/**
 * A Subscription belongs to the client that created it, and is matched and delivered with that client's rights
 * (see subscriptions.ts): a hospital a patient's consent denies must not learn of the patient's records through a
 * notification, full-resource or id-only. The owner is recorded on the Subscription itself, as an extension the
 * server writes from the authenticated caller of the create (`InterceptedWrite.actor`), never from what the client
 * sent, and keeps on every later version. A Subscription created by an administrator or by the platform has no
 * owner and is matched with the platform's rights, as before.
 */
import type { Extension, Subscription } from '@medplum/fhirtypes';
import { OWNER_TAG_SYSTEM, type CallerIdentity, type InterceptedWrite, type WriteInterceptor, type WriteSession } from '../fhir-server';

export const SUBSCRIPTION_OWNER_EXTENSION = 'http://huimin.health/fhir/StructureDefinition/subscription-owner';

/** The recorded owner, as the identity the store's `asCaller` takes. */
export function subscriptionOwner(subscription: Subscription): CallerIdentity | undefined {
  const owner = subscription.extension?.find((e) => e.url === SUBSCRIPTION_OWNER_EXTENSION);
  const part = (url: string): Extension | undefined => owner?.extension?.find((e) => e.url === url);
  const clientId = part('client')?.valueString;
  if (!clientId) {
    return undefined;
  }
  const user = part('user')?.valueString;
  const practitioner = part('practitioner')?.valueString;
  const scope = part('scope')?.valueString;
  // The role and organisation are the client's (or user's) as registered when the work is done, not these.
  return { clientId, role: '', ...(user ? { user } : {}), ...(practitioner ? { practitioner } : {}), ...(scope !== undefined ? { scope } : {}) };
}

/** Owned by an organisation (the stamp's owner tag) but without a recorded owner: written before owners were recorded. */
export function ownerUnrecorded(subscription: Subscription): boolean {
  return subscriptionOwner(subscription) === undefined && (subscription.meta?.security ?? []).some((c) => c.system === OWNER_TAG_SYSTEM);
}

function ownerExtension(actor: CallerIdentity): Extension {
  return {
    url: SUBSCRIPTION_OWNER_EXTENSION,
    extension: [
      { url: 'client', valueString: actor.clientId },
      ...(actor.user ? [{ url: 'user', valueString: actor.user }] : []),
      // Text, not a Reference: a clinician's practitioner need not be a resource here, and referential integrity
      // must not refuse the subscription for it. The organisation is the owner tag's (meta.security).
      ...(actor.practitioner ? [{ url: 'practitioner', valueString: actor.practitioner }] : []),
      ...(actor.scope !== undefined ? [{ url: 'scope', valueString: actor.scope }] : []),
    ],
  };
}

/** Records the creating caller as owner and keeps it on every later version; a client cannot set or change it. */
export function subscriptionOwnerRule(): WriteInterceptor {
  return {
    resourceTypes: ['Subscription'],
    async beforeWrite(_session: WriteSession, write: InterceptedWrite): Promise<Subscription | void> {
      const subscription = write.resource as Subscription | undefined;
      if (!subscription) {
        return;
      }
      const previous = write.previous as Subscription | undefined;
      const kept = previous?.extension?.find((e) => e.url === SUBSCRIPTION_OWNER_EXTENSION);
      // A version written before owners were recorded gets its writer's identity, if it is the owner's own client.
      const owner = kept ?? (write.actor && (!previous || ownerUnrecorded(previous)) ? ownerExtension(write.actor) : undefined);
      const others = (subscription.extension ?? []).filter((e) => e.url !== SUBSCRIPTION_OWNER_EXTENSION);
      const extension = owner ? [...others, owner] : others;
      const { extension: _sent, ...rest } = subscription;
      return extension.length ? { ...rest, extension } : rest;
    },
  };
}
