'use strict';

const { constants: bufferConstants } = require('node:buffer');
const path = require('node:path');
const { Readable } = require('node:stream');
const grpc = require('@grpc/grpc-js');

const { loadService } = require('./proto');
const { ModelSyncError, UnavailableError, UnimplementedError, fromGrpc } = require('./errors');

/** Where the daemon listens unless told otherwise, as for its own CLI. */
const DEFAULT_SOCKET = '/tmp/modelsync.sock';

/**
 * Bytes of payload per data message: the daemon's default (and smallest
 * sensible) limit, so that pushes work against any daemon unchanged.
 */
const MESSAGE_BYTES = 1 << 20;

/**
 * The largest message the client accepts. A pull's header carries up to
 * 1 MiB of metadata and data messages follow the daemon's
 * max_message_bytes, which may be set above gRPC's 4 MiB default.
 */
const MAX_RECEIVE_BYTES = 64 << 20;

/**
 * A connection to one modelsync daemon over its Unix socket.
 *
 * 64-bit integers (versions, sizes, times) are plain numbers by default:
 * exact up to 2^53 - 1 (8 PiB, or some 285,000 years of milliseconds), and
 * a value beyond that raises a RangeError rather than being rounded. With
 * `{ bigint: true }` every 64-bit field is a BigInt instead.
 */
class Client {
  /**
   * @param {object} [options]
   * @param {string} [options.socket] the daemon's socket; MODELSYNC_SOCKET
   *   or /tmp/modelsync.sock when unset. Relative paths are resolved now.
   * @param {string} [options.protoPath] modelsync.proto, or the proto root
   *   holding modelsync/v1/; MODELSYNC_PROTO, then the repository's proto/.
   * @param {boolean} [options.bigint] 64-bit fields as BigInt.
   * @param {number} [options.messageBytes] payload bytes per data message
   *   sent by push; at most the daemon's max_message_bytes.
   * @param {object} [options.channelOptions] extra grpc-js channel options.
   */
  constructor(options = {}) {
    const { socket, protoPath, bigint = false, messageBytes = MESSAGE_BYTES, channelOptions = {} } = options;
    if (!Number.isSafeInteger(messageBytes) || messageBytes < 1) {
      throw new RangeError(`messageBytes must be a positive integer, not ${messageBytes}`);
    }
    this.socket = path.resolve(socket || process.env.MODELSYNC_SOCKET || DEFAULT_SOCKET);
    this.messageBytes = messageBytes;
    this._int = bigint ? toBigInt : toSafeNumber;
    const { service, protoPath: loaded } = loadService(protoPath);
    this.protoPath = loaded;
    this._stub = new service(`unix:${this.socket}`, grpc.credentials.createInsecure(), {
      // Without this grpc-js may send the socket path as the HTTP/2
      // :authority, which the daemon's HTTP/2 server refuses as malformed.
      'grpc.default_authority': 'localhost',
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      // A Unix socket is never reached through a proxy; grpc-js already
      // skips proxies for unix: targets, and this keeps it so.
      'grpc.enable_http_proxy': 0,
      ...channelOptions,
    });
  }

  /**
   * Resolves once the channel is connected, or rejects after `timeoutMs`.
   * Calls do not need it: each connects on its own and fails with
   * UNAVAILABLE when the daemon is not there.
   */
  ready(timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      this._stub.waitForReady(Date.now() + timeoutMs, (error) => {
        if (!error) return resolve();
        reject(
          new UnavailableError('UNAVAILABLE', `cannot reach the daemon at ${this.socket}: ${error.message}`, {
            socket: this.socket,
            cause: error,
          }),
        );
      });
    });
  }

  /**
   * Stores `data` as a new version of (namespace, key).
   *
   * @param {string} namespace
   * @param {string} key
   * @param {Buffer|Uint8Array|ArrayBuffer|AsyncIterable<Uint8Array>|Iterable<Uint8Array>} data
   *   the whole model, or a stream of its bytes (a Readable works).
   * @param {object} [options]
   * @param {Object<string, Buffer|Uint8Array|string>|Map<string, Buffer|Uint8Array|string>} [options.metadata]
   *   returned byte-exact by pull, head and list; strings are stored as UTF-8.
   * @param {number|bigint} [options.ttlSeconds] the namespace's TTL when unset.
   * @param {string} [options.codec] "auto[:LEVEL]", "none", "zstd[:LEVEL]",
   *   "zlib[:LEVEL]" or "shuffle-zstd[:LEVEL]"; the namespace's when unset.
   * @param {number|bigint} [options.rawSize] the size of a streamed model,
   *   checked by the daemon; known already for a buffer.
   * @param {number|bigint} [options.expectedVersion] commit only if the key
   *   is at this version now (0: absent), otherwise fail with ABORTED.
   * @returns {Promise<{version, rawSize, storedSize, chunkCount, codec}>}
   */
  async push(namespace, key, data, options = {}) {
    checkName('namespace', namespace);
    checkName('key', key);
    const header = {
      namespace,
      key,
      metadata: encodeMetadata(options.metadata),
      codec: options.codec == null ? '' : String(options.codec),
    };
    const whole = asBuffer(data);
    const rawSize = options.rawSize != null ? options.rawSize : whole && whole.length;
    setUint64(header, 'ttlSeconds', options.ttlSeconds);
    setUint64(header, 'rawSize', rawSize);
    setUint64(header, 'expectedVersion', options.expectedVersion);
    const source = whole || data;
    if (!whole && !isIterable(source)) {
      throw new TypeError('data must be a Buffer, a Uint8Array, an ArrayBuffer, a Readable or an (async) iterable of them');
    }

    let call;
    let settled = false;
    let wake = null;
    const response = new Promise((resolve, reject) => {
      call = this._stub.Push((error, reply) => (error ? reject(fromGrpc(error, this.socket)) : resolve(reply)));
    });
    // The outcome is awaited only after the last write; until then a
    // refusal just stops the writes, and must not count as unhandled.
    response.catch(() => {}).finally(() => {
      settled = true;
      if (wake) wake();
    });
    call.on('error', () => {});

    // Waits until grpc-js has room again, or the call is over (a refusal
    // ends it early, and then no 'drain' may ever come).
    const send = async (message) => {
      if (settled) return false;
      if (!call.write(message)) {
        let resume;
        await new Promise((resolve) => {
          resume = resolve;
          if (settled) return resolve();
          wake = resolve;
          call.once('drain', resolve);
        });
        call.off('drain', resume);
        wake = null;
      }
      return !settled;
    };

    try {
      if (await send({ header })) {
        for await (const piece of pieces(source, this.messageBytes)) {
          if (!(await send({ data: piece }))) break;
        }
      }
    } catch (error) {
      // The caller's data failed (a read error, a bad chunk), so the daemon
      // must not commit what it has. Cancelling cannot promise that: Node's
      // HTTP/2 stream half-closes (END_STREAM) before it resets, and a
      // daemon that reads that clean end first commits the truncated model.
      // A message with neither header nor data, which the daemon always
      // refuses, sent in order before the end, fails the push for certain.
      abandon(call);
      await response.catch(() => {});
      throw error;
    }
    call.end();
    const reply = await response;
    return {
      version: this._int(reply.version),
      rawSize: this._int(reply.rawSize),
      storedSize: this._int(reply.storedSize),
      chunkCount: this._int(reply.chunkCount),
      codec: reply.codec,
    };
  }

  /**
   * The newest version of (namespace, key), whole.
   * @returns {Promise<{header: ModelHeader, data: Buffer}>}
   */
  async pull(namespace, key) {
    const { header, stream } = await this.pullStream(namespace, key);
    const size = Number(header.rawSize);
    if (size > bufferConstants.MAX_LENGTH) {
      stream.destroy();
      throw new RangeError(
        `${namespace}/${key} holds ${header.rawSize} bytes, more than one Buffer can; read it with pullStream()`,
      );
    }
    // One allocation of the announced size: the pieces are copied in once,
    // with no list of them and no concatenation at the end.
    const data = Buffer.allocUnsafe(size);
    let offset = 0;
    for await (const piece of stream) {
      piece.copy(data, offset);
      offset += piece.length;
    }
    return { header, data };
  }

  /**
   * The newest version of (namespace, key) as its header and a Readable of
   * its bytes, read from the daemon only as fast as the Readable is
   * consumed. The stream fails (rather than ends) if the pull breaks off or
   * delivers other than header.rawSize bytes. Destroying it, or leaving a
   * for-await loop over it early, cancels the call.
   * @returns {Promise<{header: ModelHeader, stream: Readable}>}
   */
  async pullStream(namespace, key) {
    checkName('namespace', namespace);
    checkName('key', key);
    const call = this._stub.Pull({ namespace, key });
    const outcome = watchStatus(call, this.socket);
    const messages = call[Symbol.asyncIterator]();

    let first;
    try {
      first = await messages.next();
    } catch (error) {
      throw await outcome.failure(error);
    }
    if (first.done) {
      await outcome.check();
      throw new ModelSyncError('INTERNAL', 'the pull ended without a header', { socket: this.socket });
    }
    if (first.value.message !== 'header' || !first.value.header) {
      call.cancel();
      throw new ModelSyncError('INTERNAL', 'the daemon did not start the pull with a header', { socket: this.socket });
    }
    const wire = first.value.header;
    const header = this._header(wire);
    const expected = BigInt(wire.rawSize);
    const socket = this.socket;

    async function* body() {
      let received = 0n;
      let finished = false;
      try {
        while (true) {
          let next;
          try {
            next = await messages.next();
          } catch (error) {
            finished = true;
            throw await outcome.failure(error);
          }
          if (next.done) break;
          if (next.value.message !== 'data') continue;
          const piece = next.value.data;
          received += BigInt(piece.length);
          if (received > expected) {
            throw new ModelSyncError('DATA_LOSS', `the pull sent more than the ${expected} bytes its header announced`, {
              socket,
            });
          }
          yield piece;
        }
        finished = true;
        await outcome.check();
        if (received !== expected) {
          throw new ModelSyncError('DATA_LOSS', `the pull ended after ${received} of ${expected} bytes`, { socket });
        }
      } finally {
        if (!finished) call.cancel();
      }
    }

    return { header, stream: Readable.from(body(), { objectMode: false }) };
  }

  /** The header of the newest version of (namespace, key), or null. */
  async head(namespace, key) {
    checkName('namespace', namespace);
    checkName('key', key);
    const reply = await this._unary('Exists', { namespace, key });
    return reply.exists && reply.header ? this._header(reply.header) : null;
  }

  /** Whether (namespace, key) has a version that has not expired. */
  async exists(namespace, key) {
    return (await this.head(namespace, key)) !== null;
  }

  /**
   * The header of every model in `namespace`, as an async iterable; the
   * call starts with the first iteration, and leaving the loop early
   * cancels it.
   */
  async *list(namespace) {
    checkName('namespace', namespace);
    const call = this._stub.List({ namespace });
    const outcome = watchStatus(call, this.socket);
    let finished = false;
    try {
      try {
        for await (const item of call) {
          if (item.header) yield this._header(item.header);
        }
      } catch (error) {
        finished = true;
        throw await outcome.failure(error);
      }
      finished = true;
      await outcome.check();
    } finally {
      if (!finished) call.cancel();
    }
  }

  /** Removes every version of (namespace, key); false if there was none. */
  async delete(namespace, key) {
    checkName('namespace', namespace);
    checkName('key', key);
    const reply = await this._unary('Delete', { namespace, key });
    return reply.deleted;
  }

  /** The daemon's identity, its Redis and its counters. */
  async status() {
    const s = await this._unary('Status', {});
    return {
      address: s.address,
      labels: { ...s.labels },
      redisEndpoint: s.redisEndpoint,
      redisConnected: s.redisConnected,
      version: s.version,
      uptimeSeconds: this._int(s.uptimeSeconds),
      callsServed: this._int(s.callsServed),
      maxMessageBytes: this._int(s.maxMessageBytes),
      namespaces: Array.isArray(s.namespaces)
        ? s.namespaces.map((info) => this._namespaceInfo(info))
        : { ...s.namespaces },
    };
  }

  /** How `namespace` is stored: layout, codec, chunk size, TTL. */
  async namespace(namespace) {
    checkName('namespace', namespace);
    return this._namespaceInfo(await this._unary('Namespace', { namespace }));
  }

  /** Closes the channel; calls in flight are cancelled. */
  close() {
    this._stub.close();
  }

  _unary(method, request) {
    if (typeof this._stub[method] !== 'function') {
      return Promise.reject(
        new UnimplementedError('UNIMPLEMENTED', `${this.protoPath} has no ${method} call`, { socket: this.socket }),
      );
    }
    return new Promise((resolve, reject) => {
      this._stub[method](request, (error, reply) => (error ? reject(fromGrpc(error, this.socket)) : resolve(reply)));
    });
  }

  _header(h) {
    return {
      namespace: h.namespace,
      key: h.key,
      version: this._int(h.version),
      updater: h.updater,
      updatedAtMs: this._int(h.updatedAtMs),
      rawSize: this._int(h.rawSize),
      metadata: decodeMetadata(h.metadata),
      codec: h.codec,
      storedSize: this._int(h.storedSize),
      chunkCount: this._int(h.chunkCount),
      ttlMs: this._int(h.ttlMs),
    };
  }

  _namespaceInfo(info) {
    return {
      namespace: info.namespace,
      layout: info.layout,
      codec: info.codec,
      chunkSize: this._int(info.chunkSize),
      ttlSeconds: this._int(info.ttlSeconds),
      trustPickle: info.trustPickle,
    };
  }
}

/** Makes the daemon refuse a push that is under way. */
function abandon(call) {
  call.write({});
  call.end();
}

/**
 * Records the final status of a streaming call. grpc-js reports a failed
 * stream both as an 'error' and as a 'status', in an order that a reader
 * may observe either way round; the status is the one to trust.
 */
function watchStatus(call, socket) {
  let status = null;
  const arrived = new Promise((resolve) => {
    call.on('status', (s) => {
      status = s;
      resolve(s);
    });
  });
  // A cancelled or failed call still emits 'error' after its reader has
  // gone; without a listener that would be thrown as uncaught.
  call.on('error', () => {});
  return {
    async check() {
      const s = status || (await arrived);
      if (s.code !== grpc.status.OK) throw fromGrpc({ ...s, message: s.details }, socket);
    },
    async failure(error) {
      if (error && typeof error.code === 'number') return fromGrpc(error, socket);
      const s = status || (await arrived);
      return s.code !== grpc.status.OK ? fromGrpc({ ...s, message: s.details }, socket) : error;
    },
  };
}

/** Splits the model into data messages of exactly `max` bytes but the last. */
async function* pieces(source, max) {
  if (Buffer.isBuffer(source)) {
    for (let offset = 0; offset < source.length; offset += max) {
      yield source.subarray(offset, Math.min(offset + max, source.length));
    }
    return;
  }
  // Small chunks (a file stream's 64 KiB) are gathered into full messages
  // and large ones cut, so the message count depends on the size alone.
  let pending = [];
  let pendingBytes = 0;
  for await (const chunk of source) {
    const buffer = asBuffer(chunk);
    if (!buffer) {
      throw new TypeError(`data yielded a ${typeof chunk === 'string' ? 'string' : typeof chunk}; yield Buffers or Uint8Arrays`);
    }
    let offset = 0;
    while (offset < buffer.length) {
      const take = Math.min(max - pendingBytes, buffer.length - offset);
      pending.push(buffer.subarray(offset, offset + take));
      pendingBytes += take;
      offset += take;
      if (pendingBytes === max) {
        yield pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) yield pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
}

/** A Buffer view of binary data without copying, or null. */
function asBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return null;
}

function isIterable(value) {
  return value != null && (typeof value[Symbol.asyncIterator] === 'function' || typeof value[Symbol.iterator] === 'function');
}

function checkName(field, value) {
  if (typeof value !== 'string') {
    throw new TypeError(`${field} must be a string, not ${value === null ? 'null' : typeof value}`);
  }
}

function encodeMetadata(metadata) {
  const out = {};
  if (metadata == null) return out;
  const entries = metadata instanceof Map ? metadata.entries() : Object.entries(metadata);
  for (const [name, value] of entries) {
    if (typeof value === 'string') {
      out[name] = Buffer.from(value, 'utf8');
    } else {
      const buffer = asBuffer(value);
      if (!buffer) throw new TypeError(`metadata ${JSON.stringify(name)} must be a Buffer, a Uint8Array or a string`);
      out[name] = buffer;
    }
  }
  return out;
}

function decodeMetadata(metadata) {
  const out = {};
  for (const [name, value] of Object.entries(metadata || {})) {
    out[name] = Buffer.isBuffer(value) ? value : Buffer.from(value);
  }
  return out;
}

/** Sets an optional uint64 field from a number, BigInt or decimal string. */
function setUint64(message, field, value) {
  if (value == null) return;
  let n;
  try {
    n = BigInt(value);
  } catch {
    n = -1n;
  }
  if (n < 0n || n > 0xffffffffffffffffn || (typeof value === 'number' && !Number.isInteger(value))) {
    throw new RangeError(`${field} must be an integer from 0 to 2^64 - 1, not ${value}`);
  }
  message[field] = n.toString();
}

function toSafeNumber(text) {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`${text} does not fit a JavaScript number exactly; create the Client with { bigint: true }`);
  }
  return n;
}

function toBigInt(text) {
  return BigInt(text);
}

module.exports = { Client, DEFAULT_SOCKET, MESSAGE_BYTES };
