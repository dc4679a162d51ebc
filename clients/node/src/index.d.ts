import { Readable } from 'node:stream';

/** A 64-bit field: a number by default, a bigint with `{ bigint: true }`. */
export type Int64 = number | bigint;

export interface ClientOptions {
  /** The daemon's socket; MODELSYNC_SOCKET, then /tmp/modelsync.sock. */
  socket?: string;
  /** modelsync.proto or its proto root; MODELSYNC_PROTO, then the bundled or repository copy. */
  protoPath?: string;
  /** Return every 64-bit field as a bigint instead of a number. */
  bigint?: boolean;
  /** Payload bytes per data message a push sends (1 MiB). */
  messageBytes?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: Record<string, unknown>;
}

export type Bytes = Buffer | Uint8Array | ArrayBuffer;
export type Metadata = Record<string, Buffer>;
export type MetadataInput = Record<string, Bytes | string> | Map<string, Bytes | string>;
export type PushData = Bytes | Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface PushOptions {
  metadata?: MetadataInput;
  ttlSeconds?: number | bigint;
  /** "auto[:LEVEL]", "none", "zstd[:LEVEL]", "zlib[:LEVEL]" or "shuffle-zstd[:LEVEL]"; the namespace's when unset. */
  codec?: string;
  /** The size of streamed data, checked by the daemon. */
  rawSize?: number | bigint;
  /** Commit only if the key is at this version now (0: absent); else ABORTED. */
  expectedVersion?: number | bigint;
}

export interface PushResult<I extends Int64 = number> {
  version: I;
  rawSize: I;
  storedSize: I;
  chunkCount: I;
  /** The codec the version is stored with, as the daemon settled "auto". */
  codec: string;
}

export interface ModelHeader<I extends Int64 = number> {
  namespace: string;
  key: string;
  version: I;
  /** The identity address of the daemon that pushed this version. */
  updater: string;
  updatedAtMs: I;
  rawSize: I;
  metadata: Metadata;
  codec: string;
  storedSize: I;
  chunkCount: I;
  /** Milliseconds until this version expires; 0 when it never does. */
  ttlMs: I;
}

export interface NamespaceInfo<I extends Int64 = number> {
  namespace: string;
  layout: string;
  codec: string;
  chunkSize: I;
  ttlSeconds: I;
  trustPickle: boolean;
}

export interface Status<I extends Int64 = number> {
  address: string;
  labels: Record<string, string>;
  redisEndpoint: string;
  redisConnected: boolean;
  version: string;
  uptimeSeconds: I;
  callsServed: I;
  maxMessageBytes: I;
  namespaces: NamespaceInfo<I>[];
}

export class Client<I extends Int64 = number> {
  constructor(options?: ClientOptions);
  /** The absolute path of the daemon's socket. */
  readonly socket: string;
  /** The modelsync.proto this client was built from. */
  readonly protoPath: string;
  readonly messageBytes: number;
  ready(timeoutMs?: number): Promise<void>;
  push(namespace: string, key: string, data: PushData, options?: PushOptions): Promise<PushResult<I>>;
  pull(namespace: string, key: string): Promise<{ header: ModelHeader<I>; data: Buffer }>;
  pullStream(namespace: string, key: string): Promise<{ header: ModelHeader<I>; stream: Readable }>;
  head(namespace: string, key: string): Promise<ModelHeader<I> | null>;
  exists(namespace: string, key: string): Promise<boolean>;
  list(namespace: string): AsyncGenerator<ModelHeader<I>, void, undefined>;
  delete(namespace: string, key: string): Promise<boolean>;
  status(): Promise<Status<I>>;
  namespace(namespace: string): Promise<NamespaceInfo<I>>;
  close(): void;
}

export const DEFAULT_SOCKET: string;
export const MESSAGE_BYTES: number;
export function resolveProto(override?: string): { root: string; file: string };

export type StatusCodeName =
  | 'OK' | 'CANCELLED' | 'UNKNOWN' | 'INVALID_ARGUMENT' | 'DEADLINE_EXCEEDED' | 'NOT_FOUND'
  | 'ALREADY_EXISTS' | 'PERMISSION_DENIED' | 'RESOURCE_EXHAUSTED' | 'FAILED_PRECONDITION'
  | 'ABORTED' | 'OUT_OF_RANGE' | 'UNIMPLEMENTED' | 'INTERNAL' | 'UNAVAILABLE' | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

export class ModelSyncError extends Error {
  /** The gRPC status name, e.g. "NOT_FOUND". */
  readonly code: StatusCodeName;
  /** The gRPC status number, e.g. 5. */
  readonly grpcCode: number;
  /** The daemon's message. */
  readonly details: string;
  readonly socket?: string;
  readonly metadata?: unknown;
}
export class InvalidArgumentError extends ModelSyncError {}
export class NotFoundError extends ModelSyncError {}
export class AbortedError extends ModelSyncError {}
export class ResourceExhaustedError extends ModelSyncError {}
export class DataLossError extends ModelSyncError {}
export class UnavailableError extends ModelSyncError {}
export class DeadlineExceededError extends ModelSyncError {}
export class CancelledError extends ModelSyncError {}
export class InternalError extends ModelSyncError {}
export class UnimplementedError extends ModelSyncError {}
