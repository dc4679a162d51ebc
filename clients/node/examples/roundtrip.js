#!/usr/bin/env node
'use strict';

// Pushes a file to the modelsync daemon, pulls it back into a second file
// and checks that both hold the same bytes.
//
//   node examples/roundtrip.js FILE [--socket SOCK] [--namespace NS] [--key KEY]
//
// The socket defaults to MODELSYNC_SOCKET, then /tmp/modelsync.sock.

const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { pipeline } = require('node:stream/promises');
const { parseArgs } = require('node:util');

const { Client, ModelSyncError } = require('..');

async function sha256(file) {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      socket: { type: 'string' },
      namespace: { type: 'string', default: 'examples' },
      key: { type: 'string' },
    },
  });
  if (positionals.length !== 1) {
    console.error('usage: node examples/roundtrip.js FILE [--socket SOCK] [--namespace NS] [--key KEY]');
    process.exitCode = 2;
    return;
  }
  const file = positionals[0];
  const namespace = values.namespace;
  const key = values.key || path.basename(file);
  const size = fs.statSync(file).size;

  const client = new Client({ socket: values.socket });
  try {
    // Streamed from disk: the file is never held in memory whole.
    const pushed = await client.push(namespace, key, fs.createReadStream(file), {
      rawSize: size,
      metadata: { source: path.resolve(file), pushedBy: 'examples/roundtrip.js' },
    });
    console.log(
      `pushed ${namespace}/${key} version ${pushed.version}: ${pushed.rawSize} bytes, ` +
        `stored ${pushed.storedSize} in ${pushed.chunkCount} chunks`,
    );

    const out = `${file}.pulled`;
    const { header, stream } = await client.pullStream(namespace, key);
    await pipeline(stream, fs.createWriteStream(out));
    console.log(`pulled version ${header.version} by ${header.updater} (${header.codec}) into ${out}`);
    for (const [name, value] of Object.entries(header.metadata)) {
      console.log(`  metadata ${name} = ${value.toString('utf8')}`);
    }

    const [before, after] = await Promise.all([sha256(file), sha256(out)]);
    if (before !== after) {
      console.error(`MISMATCH: ${file} is ${before}, ${out} is ${after}`);
      process.exitCode = 1;
      return;
    }
    console.log(`identical: sha256 ${before}`);
  } catch (error) {
    if (!(error instanceof ModelSyncError)) throw error;
    console.error(`modelsync: ${error.message}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main();
