'use strict';

// The same model through two clients: what Node pushes, the daemon's CLI
// and the Python client pull unchanged, and the other way round.

const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, describe, it } = require('node:test');

const { startStack, cli, python, pythonUnavailable } = require('./helpers');

const MiB = 1 << 20;

let stack;
let client;

before(async () => {
  stack = await startStack({ address: 'node-crosslang' });
  client = stack.client;
});

after(async () => {
  if (stack) await stack.stop();
});

function checkRun(result, what) {
  assert.equal(result.status, 0, `${what} exited with ${result.status}:\n${result.stderr}\n${result.stdout}`);
}

/** Metadata that is not valid UTF-8 anywhere, next to plain text. */
const BINARY_METADATA = {
  'not utf-8': Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc0, 0xaf]),
  empty: Buffer.alloc(0),
  text: Buffer.from('lr=3e-4 épocas=7', 'utf8'),
};

describe('the daemon CLI', () => {
  for (const [name, size] of [
    ['empty', 0],
    ['2 MiB + 3 bytes', 2 * MiB + 3],
  ]) {
    it(`a model of ${name} pushed from Node is pulled unchanged by \`modelsync pull\``, async () => {
      const data = randomBytes(size);
      const key = `node-to-cli-${size}`;
      await client.push('crosslang', key, data, { metadata: BINARY_METADATA });

      const out = path.join(stack.dir, `${key}.out`);
      checkRun(cli(stack.socket, ['pull', '-n', 'crosslang', '-k', key, '-o', out]), 'modelsync pull');
      assert.ok(fs.readFileSync(out).equals(data), 'the CLI pulled other bytes');

      const exists = cli(stack.socket, ['exists', '-n', 'crosslang', '-k', key]);
      checkRun(exists, 'modelsync exists');
      assert.match(exists.stdout.toString(), new RegExp(`${key} version 1: ${size} bytes`));
    });
  }

  it('a model pushed by `modelsync push --meta` is pulled by Node with the same bytes and metadata', async () => {
    const data = randomBytes(3 * MiB + 1);
    const file = path.join(stack.dir, 'from-cli.bin');
    fs.writeFileSync(file, data);
    const push = cli(stack.socket, [
      'push', '-n', 'crosslang', '-k', 'cli-to-node', file,
      '--meta', 'framework=torch', '--meta', 'note=a=b c', '--meta', 'unicode=größe',
    ]);
    checkRun(push, 'modelsync push');

    const { header, data: pulled } = await client.pull('crosslang', 'cli-to-node');
    assert.ok(pulled.equals(data), 'Node pulled other bytes than the CLI pushed');
    assert.equal(header.rawSize, data.length);
    assert.equal(header.updater, 'node-crosslang');
    assert.deepEqual(header.metadata, {
      framework: Buffer.from('torch'),
      note: Buffer.from('a=b c'),
      unicode: Buffer.from('größe', 'utf8'),
    });
  });

  it('a model Node deleted is gone for `modelsync exists` (exit status 3)', async () => {
    await client.push('crosslang', 'deleted', Buffer.from('x'));
    assert.equal(await client.delete('crosslang', 'deleted'), true);
    const exists = cli(stack.socket, ['exists', '-n', 'crosslang', '-k', 'deleted']);
    assert.equal(exists.status, 3, exists.stderr.toString());
  });
});

// The Python side reads and writes files named on its command line, so no
// bytes pass through a text pipe; metadata travels as hex in JSON.
const PYTHON_SCRIPT = `
import json, sys
from modelsync import Client

socket, mode, namespace, key, data_file, meta_file = sys.argv[1:7]
client = Client(socket=socket)
try:
    if mode == "pull":
        model = client.pull(namespace, key)
        with open(data_file, "wb") as f:
            f.write(model.data)
        with open(meta_file, "w") as f:
            json.dump({name: value.hex() for name, value in model.metadata.items()}, f)
    else:
        with open(meta_file) as f:
            metadata = {name: bytes.fromhex(value) for name, value in json.load(f).items()}
        with open(data_file, "rb") as f:
            data = f.read()
        client.push(namespace, key, data, metadata=metadata)
finally:
    client.close()
`;

function hexMetadata(metadata) {
  return Object.fromEntries(Object.entries(metadata).map(([name, value]) => [name, value.toString('hex')]));
}

describe('the Python client', () => {
  const unavailable = pythonUnavailable();
  const skip = unavailable ? `Python client unavailable: ${unavailable}` : false;

  it('a model pushed from Node is pulled by Python with the same bytes and metadata', { skip }, async () => {
    const data = randomBytes(2 * MiB + 17);
    await client.push('crosslang', 'node-to-python', data, { metadata: BINARY_METADATA });

    const dataFile = path.join(stack.dir, 'py-pulled.bin');
    const metaFile = path.join(stack.dir, 'py-pulled.json');
    const run = python(PYTHON_SCRIPT, [stack.socket, 'pull', 'crosslang', 'node-to-python', dataFile, metaFile], {
      cwd: stack.dir,
    });
    checkRun(run, 'the Python pull');
    assert.ok(fs.readFileSync(dataFile).equals(data), 'Python pulled other bytes than Node pushed');
    assert.deepEqual(JSON.parse(fs.readFileSync(metaFile, 'utf8')), hexMetadata(BINARY_METADATA));
  });

  it('a model pushed from Python is pulled by Node with the same bytes and metadata', { skip }, async () => {
    const data = randomBytes(MiB + 1);
    const dataFile = path.join(stack.dir, 'py-push.bin');
    const metaFile = path.join(stack.dir, 'py-push.json');
    fs.writeFileSync(dataFile, data);
    fs.writeFileSync(metaFile, JSON.stringify(hexMetadata(BINARY_METADATA)));
    const run = python(PYTHON_SCRIPT, [stack.socket, 'push', 'crosslang', 'python-to-node', dataFile, metaFile], {
      cwd: stack.dir,
    });
    checkRun(run, 'the Python push');

    const { header, data: pulled } = await client.pull('crosslang', 'python-to-node');
    assert.ok(pulled.equals(data), 'Node pulled other bytes than Python pushed');
    assert.deepEqual(header.metadata, BINARY_METADATA);
  });
});
