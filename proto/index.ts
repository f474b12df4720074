// The public contract shared by the server and every client: where the .proto lives, how
// to load it, and the stable error codes that travel in `admq-error-code`.
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PATH = fileURLToPath(new URL('./admq.proto', import.meta.url));
export const REPLICATION_PROTO_PATH = fileURLToPath(new URL('./replication.proto', import.meta.url));

/** Trailing-metadata key that carries an ADMQ_ERR_* code on a failed call. */
export const ERROR_CODE_METADATA_KEY = 'admq-error-code';

/**
 * Every stable error code of the client API. Callers match on these, never on messages.
 * proto/README.md explains each one.
 */
export const ErrorCode = {
  TopicName: 'ADMQ_ERR_TOPIC_NAME',
  BadName: 'ADMQ_ERR_BAD_NAME',
  TenantNotFound: 'ADMQ_ERR_TENANT_NOT_FOUND',
  NamespaceNotFound: 'ADMQ_ERR_NAMESPACE_NOT_FOUND',
  TopicNotFound: 'ADMQ_ERR_TOPIC_NOT_FOUND',
  SubscriptionNotFound: 'ADMQ_ERR_SUBSCRIPTION_NOT_FOUND',
  AlreadyExists: 'ADMQ_ERR_ALREADY_EXISTS',
  NotEmpty: 'ADMQ_ERR_NOT_EMPTY',
  InUse: 'ADMQ_ERR_IN_USE',
  MessageTooLarge: 'ADMQ_ERR_MESSAGE_TOO_LARGE',
  ConsumerBusy: 'ADMQ_ERR_CONSUMER_BUSY',
  SubscriptionTypeMismatch: 'ADMQ_ERR_SUBSCRIPTION_TYPE',
  BadRequest: 'ADMQ_ERR_BAD_REQUEST',
  StorageFull: 'ADMQ_ERR_STORAGE_FULL',
  Storage: 'ADMQ_ERR_STORAGE',
  Checksum: 'ADMQ_ERR_CHECKSUM',
  ShuttingDown: 'ADMQ_ERR_SHUTTING_DOWN',
  Config: 'ADMQ_ERR_CONFIG',
  Internal: 'ADMQ_ERR_INTERNAL',
  // Raised by the client itself.
  Timeout: 'ADMQ_ERR_TIMEOUT',
  Connection: 'ADMQ_ERR_CONNECTION',
  Closed: 'ADMQ_ERR_CLOSED',
  QueueFull: 'ADMQ_ERR_QUEUE_FULL',
  Admin: 'ADMQ_ERR_ADMIN',
  // Replication between regions.
  ClockSkew: 'ADMQ_ERR_CLOCK_SKEW',
  Residency: 'ADMQ_ERR_RESIDENCY',
  TenantFenced: 'ADMQ_ERR_TENANT_FENCED',
  // Regional cluster.
  TopicMoved: 'ADMQ_ERR_TOPIC_MOVED',
  Unauthorized: 'ADMQ_ERR_UNAUTHORIZED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const knownCodes = new Set<string>(Object.values(ErrorCode));

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && knownCodes.has(value);
}

/**
 * Options for @grpc/proto-loader. 64-bit integers become decimal strings so that the HLC
 * (a full 64-bit value) survives; callers convert offsets with Number() and the HLC with
 * BigInt().
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let cached: protoLoader.PackageDefinition | undefined;
let cachedReplication: protoLoader.PackageDefinition | undefined;

export function loadPackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
  return cached;
}

/** The internal region-to-region replication service (replication.proto). */
export function loadReplicationPackageDefinition(): protoLoader.PackageDefinition {
  cachedReplication ??= protoLoader.loadSync(REPLICATION_PROTO_PATH, PROTO_LOADER_OPTIONS);
  return cachedReplication;
}

export type * from './types.ts';
