'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

/** The API file, relative to a proto root. */
const PROTO_FILE = path.join('modelsync', 'v1', 'modelsync.proto');

/**
 * Proto roots to try, in order, when none is given: a copy inside the
 * package, which exists only in a packed tarball (`npm pack` puts it
 * there), then the repository's own `proto/`, two folders up from this
 * package at clients/node. The bundled copy comes first so that an
 * installed package never picks up an unrelated proto/ of the project that
 * installed it. Both are found from this file, never from the current
 * directory, so the client loads the same API wherever it is run.
 */
function candidateRoots() {
  const packageDir = path.resolve(__dirname, '..');
  return [path.join(packageDir, 'proto'), path.resolve(packageDir, '..', '..', 'proto')];
}

/**
 * Finds modelsync.proto. `override` (or MODELSYNC_PROTO) may name either
 * the .proto file itself or a proto root that holds modelsync/v1/.
 * Returns { root, file } with `file` relative to `root`, so that imports
 * between proto files resolve as they do for protoc.
 */
function resolveProto(override = process.env.MODELSYNC_PROTO) {
  if (override) {
    const given = path.resolve(override);
    let stat;
    try {
      stat = fs.statSync(given);
    } catch {
      throw new Error(`modelsync proto not found at ${given} (from the protoPath option or MODELSYNC_PROTO)`);
    }
    if (stat.isDirectory()) {
      const file = path.join(given, PROTO_FILE);
      if (!fs.existsSync(file)) {
        throw new Error(`${given} holds no ${PROTO_FILE}; give a proto root or the .proto file itself`);
      }
      return { root: given, file: PROTO_FILE };
    }
    return { root: path.dirname(given), file: path.basename(given) };
  }
  const roots = candidateRoots();
  for (const root of roots) {
    if (fs.existsSync(path.join(root, PROTO_FILE))) {
      return { root, file: PROTO_FILE };
    }
  }
  throw new Error(
    `cannot find ${PROTO_FILE}; looked in ${roots.join(', ')}. ` +
      'Set MODELSYNC_PROTO or the protoPath option to the file or to its proto root.',
  );
}

/**
 * proto-loader options. 64-bit integers arrive as decimal strings so that
 * no precision is lost on the way in; the client turns them into numbers
 * or BigInts itself. Bytes stay Buffers, and `defaults` fills in absent
 * proto3 scalars so that a zero is 0 rather than undefined.
 */
const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

const cache = new Map();

/** Loads the ModelSync service constructor, once per proto file. */
function loadService(override) {
  const { root, file } = resolveProto(override);
  const key = path.join(root, file);
  let service = cache.get(key);
  if (!service) {
    const definition = protoLoader.loadSync(file, { ...LOADER_OPTIONS, includeDirs: [root] });
    const api = grpc.loadPackageDefinition(definition);
    service = api.modelsync && api.modelsync.v1 && api.modelsync.v1.ModelSync;
    if (!service) {
      throw new Error(`${key} does not define the service modelsync.v1.ModelSync`);
    }
    cache.set(key, service);
  }
  return { service, protoPath: key };
}

module.exports = { resolveProto, loadService, PROTO_FILE };
