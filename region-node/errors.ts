// Typed errors of the region node. Every error that can reach a client carries a stable
// code from proto/ (ErrorCode); the gRPC layer puts it in the `admq-error-code` trailer and
// the admin API in the JSON body.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ErrorCode } from '../proto/index.ts';

export class AdmqError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class InvalidNameError extends AdmqError {
  constructor(message: string) {
    super(ErrorCode.TopicName, message);
  }
}

export class NotFoundError extends AdmqError {}
export class ConflictStateError extends AdmqError {}
export class BadRequestError extends AdmqError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.BadRequest, message, options);
  }
}
export class MessageTooLargeError extends AdmqError {
  constructor(sizeBytes: number, messageBytesMax: number) {
    super(ErrorCode.MessageTooLarge, `message of ${sizeBytes} bytes exceeds messageBytesMax (${messageBytesMax} bytes)`);
  }
}
export class StorageError extends AdmqError {}
export class ConfigError extends AdmqError {
  constructor(message: string) {
    super(ErrorCode.Config, message);
  }
}

/** A broken invariant: the process must stop rather than serve possibly wrong data. */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = 'InvariantViolation';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}

/** Wraps any thrown value as an AdmqError, keeping typed ones as they are. */
export function toAdmqError(error: unknown): AdmqError {
  if (error instanceof AdmqError) return error;
  // topology/ is pure and has its own error types; these carry a stable code.
  if (error instanceof Error && (error as { code?: unknown }).code === ErrorCode.Residency) return new AdmqError(ErrorCode.Residency, error.message, { cause: error });
  const text = error instanceof Error ? error.message : String(error);
  if (/ENOSPC|MDB_MAP_FULL|No space left/i.test(text)) {
    return new StorageError(ErrorCode.StorageFull, `storage is full: ${text}`, { cause: error });
  }
  return new AdmqError(ErrorCode.Internal, text, { cause: error });
}

export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  switch (code) {
    case ErrorCode.TopicName:
    case ErrorCode.BadName:
    case ErrorCode.BadRequest:
    case ErrorCode.MessageTooLarge:
    case ErrorCode.SubscriptionTypeMismatch:
      return GrpcStatus.INVALID_ARGUMENT;
    case ErrorCode.TenantNotFound:
    case ErrorCode.NamespaceNotFound:
    case ErrorCode.TopicNotFound:
    case ErrorCode.SubscriptionNotFound:
      return GrpcStatus.NOT_FOUND;
    case ErrorCode.AlreadyExists:
      return GrpcStatus.ALREADY_EXISTS;
    case ErrorCode.ConsumerBusy:
    case ErrorCode.InUse:
    case ErrorCode.NotEmpty:
    case ErrorCode.Residency:
      return GrpcStatus.FAILED_PRECONDITION;
    case ErrorCode.TenantFenced:
    case ErrorCode.TopicMoved:
      return GrpcStatus.UNAVAILABLE;
    case ErrorCode.StorageFull:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case ErrorCode.ShuttingDown:
      return GrpcStatus.UNAVAILABLE;
    case ErrorCode.Checksum:
      return GrpcStatus.DATA_LOSS;
    default:
      return GrpcStatus.INTERNAL;
  }
}

export function httpStatusOf(code: ErrorCode): number {
  switch (grpcStatusOf(code)) {
    case GrpcStatus.INVALID_ARGUMENT:
      return 400;
    case GrpcStatus.NOT_FOUND:
      return 404;
    case GrpcStatus.ALREADY_EXISTS:
    case GrpcStatus.FAILED_PRECONDITION:
      return 409;
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return 507;
    case GrpcStatus.UNAVAILABLE:
      return 503;
    default:
      return 500;
  }
}
