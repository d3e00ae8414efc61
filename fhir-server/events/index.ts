/**
 * Resource-change events: written to the transactional outbox by the repository inside each change's
 * transaction, relayed after commit to the BullMQ queue that workflows, subscriptions and supervision consume.
 */
export {
  addChangeEvents,
  appendChangeEvents,
  changeEventId,
  RESOURCE_CHANGE_QUEUE,
  type ChangeInteraction,
  type ResourceChangeEvent,
  type ResourceChangeJob,
} from './outbox';
export { OutboxRelay, type EventQueueTarget, type OutboxRelayOptions, type RelayLogger } from './relay';
