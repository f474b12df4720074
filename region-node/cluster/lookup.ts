// Topic lookup: which broker serves a topic. Any broker answers, from its mirrors of the
// metadata store: the bundle's assignment says which broker should serve it, the owner key
// says which broker does. The answer is given only when both agree, so a client is never
// sent to a broker that is about to hand the bundle over, nor to one that has not taken it
// yet. An unassigned bundle is asked for (an assignment request, see load-manager.ts) and
// the lookup waits for the leader's assignment and the new owner — on watch events, for at
// most `lookupTimeoutMs`, after which it fails with ADMQ_ERR_LOOKUP_TIMEOUT.
import type { MetadataStore } from '../metadata-store/index.ts';
import { BUNDLES_PER_NAMESPACE_DEFAULT, bundleOfTopic } from './bundles.ts';
import { requirePositive } from './errors.ts';
import { ClusterKeys, MetadataKeys } from './keys.ts';
import type { AssignmentRecord, AssignmentRequestRecord } from './load-manager.ts';
import type { OwnerRecord } from './ownership.ts';
import { PrefixMirror, encodeJson } from './prefix-mirror.ts';

export interface LookupResult {
  bundle: string;
  brokerId: string;
  grpcAddress: string;
  /** The owner key's version (ownership.ts). */
  epoch: number;
}

export interface TopicLookupOptions {
  /** Who asks (written in assignment requests, for operators). */
  requesterId: string;
  /** Default 16; every broker of a region must use the same value. */
  bundlesPerNamespace?: number;
  /** Default 10,000 ms. */
  lookupTimeoutMs?: number;
}

export const LOOKUP_TIMEOUT_MS_DEFAULT = 10_000;

export class TopicLookup {
  readonly #store: MetadataStore;
  readonly #assignments: PrefixMirror<AssignmentRecord>;
  readonly #owners: PrefixMirror<OwnerRecord>;
  readonly #requesterId: string;
  readonly #bundlesPerNamespace: number;
  readonly #timeoutMs: number;

  constructor(store: MetadataStore, mirrors: { assignments: PrefixMirror<AssignmentRecord>; owners: PrefixMirror<OwnerRecord> }, options: TopicLookupOptions) {
    this.#store = store;
    this.#assignments = mirrors.assignments;
    this.#owners = mirrors.owners;
    this.#requesterId = options.requesterId;
    this.#bundlesPerNamespace = options.bundlesPerNamespace ?? BUNDLES_PER_NAMESPACE_DEFAULT;
    this.#timeoutMs = requirePositive('lookupTimeoutMs', options.lookupTimeoutMs ?? LOOKUP_TIMEOUT_MS_DEFAULT);
    bundleOfTopic('t/n/x', this.#bundlesPerNamespace); // validates bundlesPerNamespace now, not at the first lookup
  }

  bundleOf(topic: string): string {
    return bundleOfTopic(topic, this.#bundlesPerNamespace);
  }

  /** The broker serving `topic` (InvalidNameError for a bad name, ClusterError ADMQ_ERR_LOOKUP_TIMEOUT). */
  lookup(topic: string): Promise<LookupResult> {
    return this.lookupBundle(this.bundleOf(topic));
  }

  async lookupBundle(bundle: string): Promise<LookupResult> {
    const answer = (): LookupResult | undefined => {
      const assignment = this.#assignments.get(MetadataKeys.assignment(bundle));
      const owner = this.#owners.get(MetadataKeys.bundleOwner(bundle));
      if (assignment === undefined || owner === undefined || owner.value.brokerId !== assignment.value.brokerId) return undefined;
      return { bundle, brokerId: owner.value.brokerId, grpcAddress: owner.value.grpcAddress, epoch: owner.version };
    };
    const now = answer();
    if (now !== undefined) return now;
    if (this.#assignments.get(MetadataKeys.assignment(bundle)) === undefined) {
      // A plain put: several brokers asking for the same bundle write the same request.
      const request: AssignmentRequestRecord = { requestedBy: this.#requesterId };
      await this.#store.put(ClusterKeys.assignmentRequest(bundle), encodeJson(request));
    }
    return PrefixMirror.waitFor<LookupResult>([this.#assignments, this.#owners], answer, this.#timeoutMs, () => {
      const assignment = this.#assignments.get(MetadataKeys.assignment(bundle));
      const owner = this.#owners.get(MetadataKeys.bundleOwner(bundle));
      return `lookup of bundle ${bundle}: assigned to ${assignment?.value.brokerId ?? 'nobody (is there a load manager leader?)'}, owned by ${owner?.value.brokerId ?? 'nobody'}`;
    });
  }
}
