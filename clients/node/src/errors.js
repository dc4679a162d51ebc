'use strict';

const { status: Status } = require('@grpc/grpc-js');

/** gRPC status numbers to their canonical names (NOT_FOUND, ...). */
const CODE_NAMES = Object.freeze(
  Object.fromEntries(Object.entries(Status).map(([name, number]) => [number, name])),
);

/**
 * A call that failed. `code` is the gRPC status name ("NOT_FOUND"),
 * `grpcCode` its number, and `details` the daemon's own message, which
 * says what to do next; `message` is "CODE: details".
 */
class ModelSyncError extends Error {
  constructor(code, details, { grpcCode, metadata, socket, cause } = {}) {
    super(`${code}: ${details}`, cause === undefined ? undefined : { cause });
    this.name = this.constructor.name;
    this.code = code;
    this.grpcCode = grpcCode === undefined ? Status[code] : grpcCode;
    this.details = details;
    if (metadata !== undefined) this.metadata = metadata;
    if (socket !== undefined) this.socket = socket;
  }
}

// One subclass for each code the daemon answers with (see its status.rs),
// so that callers can branch with `instanceof` as well as on `code`.
class InvalidArgumentError extends ModelSyncError {}
class NotFoundError extends ModelSyncError {}
class AbortedError extends ModelSyncError {}
class ResourceExhaustedError extends ModelSyncError {}
class DataLossError extends ModelSyncError {}
class UnavailableError extends ModelSyncError {}
class DeadlineExceededError extends ModelSyncError {}
class CancelledError extends ModelSyncError {}
class InternalError extends ModelSyncError {}
class UnimplementedError extends ModelSyncError {}

const CLASSES = {
  INVALID_ARGUMENT: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  ABORTED: AbortedError,
  RESOURCE_EXHAUSTED: ResourceExhaustedError,
  DATA_LOSS: DataLossError,
  UNAVAILABLE: UnavailableError,
  DEADLINE_EXCEEDED: DeadlineExceededError,
  CANCELLED: CancelledError,
  INTERNAL: InternalError,
  UNIMPLEMENTED: UnimplementedError,
};

/** grpc-js's own text when the socket cannot be connected to at all. */
const NO_CONNECTION = 'No connection established';

/**
 * Turns what grpc-js rejects with into a ModelSyncError; anything that is
 * not a gRPC status (a bug, a failed read of the caller's data) passes
 * through unchanged.
 */
function fromGrpc(error, socket) {
  if (error instanceof ModelSyncError) return error;
  if (!error || typeof error.code !== 'number' || !(error.code in CODE_NAMES)) return error;
  const code = CODE_NAMES[error.code];
  let details = typeof error.details === 'string' ? error.details : String(error.message);
  if (code === 'UNAVAILABLE' && details.startsWith(NO_CONNECTION)) {
    details = `cannot reach the daemon at ${socket}: ${details} (is \`modelsync serve\` running there?)`;
  }
  const Class = CLASSES[code] || ModelSyncError;
  return new Class(code, details, { grpcCode: error.code, metadata: error.metadata, socket, cause: error });
}

module.exports = {
  ModelSyncError,
  InvalidArgumentError,
  NotFoundError,
  AbortedError,
  ResourceExhaustedError,
  DataLossError,
  UnavailableError,
  DeadlineExceededError,
  CancelledError,
  InternalError,
  UnimplementedError,
  fromGrpc,
  CODE_NAMES,
};
