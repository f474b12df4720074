// Names of tenants, namespaces and topics (DESIGN §2). Validation names the part that is
// wrong, because "invalid topic" alone sends an operator hunting.
import { ErrorCode } from '../proto/index.ts';
import { AdmqError, InvalidNameError } from './errors.ts';

export const NAME_PART_PATTERN = /^[a-zA-Z0-9_.=-]+$/;
export const TOPIC_NAME_MAX_CHARS = 255;
export const PARTITION_SUFFIX = '-partition-';

export interface TopicName {
  tenant: string;
  namespace: string;
  /** The local name, including a -partition-N suffix for a partition. */
  topic: string;
  /** persistent://tenant/namespace/topic */
  full: string;
  /** For a partition: the partitioned topic's local name and the index. */
  partitionOf?: { topic: string; index: number };
}

function checkPart(kind: string, value: string, whole: string): void {
  if (value.length === 0) throw new InvalidNameError(`${kind} name is empty in "${whole}"`);
  if (!NAME_PART_PATTERN.test(value)) {
    throw new InvalidNameError(
      `${kind} name "${value}" in "${whole}" has a character outside [a-zA-Z0-9_.=-]`,
    );
  }
  if (value === '.' || value === '..') throw new InvalidNameError(`${kind} name "${value}" is reserved`);
}

export function validateTenantName(tenant: string): string {
  if (typeof tenant !== 'string') throw new AdmqError(ErrorCode.BadName, 'tenant name must be a string');
  checkPart('tenant', tenant, tenant);
  if (tenant.length > 128) throw new InvalidNameError(`tenant name "${tenant}" is longer than 128 characters`);
  return tenant;
}

export function validateNamespaceName(tenant: string, namespace: string): string {
  validateTenantName(tenant);
  checkPart('namespace', namespace, `${tenant}/${namespace}`);
  if (tenant.length + namespace.length + 1 > 200) {
    throw new InvalidNameError(`namespace "${tenant}/${namespace}" is longer than 200 characters`);
  }
  return namespace;
}

/** Parses `persistent://tenant/namespace/topic` or the short form `tenant/namespace/topic`. */
export function parseTopicName(input: string): TopicName {
  if (typeof input !== 'string' || input.length === 0) throw new InvalidNameError('topic name is empty');
  let rest = input;
  const scheme = /^([a-z-]+):\/\//.exec(input);
  if (scheme) {
    if (scheme[1] !== 'persistent') {
      throw new InvalidNameError(`topic "${input}" has domain "${scheme[1]}"; only persistent:// is supported`);
    }
    rest = input.slice(scheme[0].length);
  }
  const parts = rest.split('/');
  if (parts.length !== 3) {
    throw new InvalidNameError(
      `topic "${input}" must have the form [persistent://]tenant/namespace/topic (got ${parts.length} parts)`,
    );
  }
  const [tenant, namespace, topic] = parts as [string, string, string];
  checkPart('tenant', tenant, input);
  checkPart('namespace', namespace, input);
  checkPart('topic', topic, input);
  const full = `persistent://${tenant}/${namespace}/${topic}`;
  if (full.length > TOPIC_NAME_MAX_CHARS) {
    throw new InvalidNameError(`topic "${full}" is ${full.length} characters; the limit is ${TOPIC_NAME_MAX_CHARS}`);
  }
  const name: TopicName = { tenant, namespace, topic, full };
  const partition = /^(.*)-partition-(\d+)$/.exec(topic);
  if (partition && partition[1]) name.partitionOf = { topic: partition[1], index: Number(partition[2]) };
  return name;
}

export function partitionName(name: TopicName, index: number): TopicName {
  return parseTopicName(`${name.full}${PARTITION_SUFFIX}${index}`);
}

export function validateSubscriptionName(subscription: string): string {
  if (typeof subscription !== 'string' || subscription.length === 0) {
    throw new AdmqError(ErrorCode.BadName, 'subscription name is empty');
  }
  if (subscription.length > 255 || !NAME_PART_PATTERN.test(subscription)) {
    throw new AdmqError(
      ErrorCode.BadName,
      `subscription name "${subscription}" must be 1–255 characters of [a-zA-Z0-9_.=-]`,
    );
  }
  return subscription;
}

export function validateProducerName(name: string): string {
  if (name.length > 255 || !NAME_PART_PATTERN.test(name)) {
    throw new AdmqError(ErrorCode.BadName, `producer name "${name}" must be 1–255 characters of [a-zA-Z0-9_.=-]`);
  }
  return name;
}
