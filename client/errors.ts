// Typed errors of the client. The server's code travels in the `admq-error-code` trailer
// (or in an Error message on the stream); the client rebuilds an AdmqClientError with the
// same stable code, so applications match on `error.code`.
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { ERROR_CODE_METADATA_KEY, ErrorCode, isErrorCode, type WireError } from '../proto/index.ts';

export class AdmqClientError extends Error {
  readonly code: ErrorCode;
  /** The gRPC status of the failed call, when there was one. */
  readonly grpcStatus: number | undefined;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; grpcStatus?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AdmqClientError';
    this.code = code;
    this.grpcStatus = options?.grpcStatus;
  }

  /** Rebuilds the typed error from a failed gRPC call. */
  static fromServiceError(error: ServiceError): AdmqClientError {
    const raw = error.metadata?.get(ERROR_CODE_METADATA_KEY)?.[0];
    const code = typeof raw === 'string' && isErrorCode(raw) ? raw : undefined;
    if (code) {
      const details = error.details?.startsWith(`${code}: `) ? error.details.slice(code.length + 2) : error.details;
      return new AdmqClientError(code, details ?? error.message, { cause: error, grpcStatus: error.code });
    }
    const connection = error.code === GrpcStatus.UNAVAILABLE || error.code === GrpcStatus.CANCELLED || error.code === GrpcStatus.DEADLINE_EXCEEDED;
    return new AdmqClientError(connection ? ErrorCode.Connection : ErrorCode.Internal, error.details || error.message, {
      cause: error,
      grpcStatus: error.code,
    });
  }

  static fromWire(error: WireError): AdmqClientError {
    const code = isErrorCode(error.code) ? error.code : ErrorCode.Internal;
    return new AdmqClientError(code, error.message);
  }

  /** Whether reconnecting may help: the node went away or is restarting, the tenant is fenced for a moment, or the topic moved to another broker. */
  get retriable(): boolean {
    return this.code === ErrorCode.Connection || this.code === ErrorCode.ShuttingDown || this.code === ErrorCode.TenantFenced || this.code === ErrorCode.TopicMoved;
  }
}
