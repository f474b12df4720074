// Keys of the cluster layer in the region's metadata store. The shared ones come from
// ledger-types.ts (MetadataKeys); the one below is private to this folder.
import { MetadataKeys } from '../ledger-storage/ledger-types.ts';

export { MetadataKeys };

export const ClusterKeys = {
  /**
   * A broker asks the load manager's leader to place a bundle nobody has asked for yet (the
   * first lookup of one of its topics). Not leased: a request outlives its requester and
   * a leader change; the leader deletes it once the bundle has an assignment.
   */
  assignmentRequest: (bundle: string) => `/admq/assignment-requests/${bundle}`,
  assignmentRequestsPrefix: '/admq/assignment-requests/',
} as const;
