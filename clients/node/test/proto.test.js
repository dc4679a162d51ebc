'use strict';

// Where the client finds modelsync.proto. None of this talks to a daemon:
// building a Client only loads the API, it does not connect.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { after, before, describe, it } = require('node:test');

const { Client, resolveProto } = require('../src');
const { REPO } = require('./helpers');

const PACKAGE = path.resolve(__dirname, '..');
const REPO_PROTO = path.join(REPO, 'proto', 'modelsync', 'v1', 'modelsync.proto');

let dir;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'modelsync-proto-'));
});

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `code` in a fresh node, from `cwd`, with the package's dependencies. */
function node(code, { cwd, env = {} }) {
  const result = spawnSync(process.execPath, ['-e', code], {
    cwd,
    env: { ...process.env, NODE_PATH: path.join(PACKAGE, 'node_modules'), MODELSYNC_PROTO: '', ...env },
  });
  assert.equal(result.status, 0, result.stderr.toString());
  return result.stdout.toString().trim();
}

describe('finding the proto', () => {
  it('the repository proto is found whatever the current folder', () => {
    const found = node(
      `const { resolveProto } = require(${JSON.stringify(path.join(PACKAGE, 'src'))});
       const { root, file } = resolveProto();
       console.log(require('node:path').join(root, file));`,
      { cwd: dir },
    );
    assert.equal(found, REPO_PROTO);
  });

  it('protoPath may name the .proto file or its proto root', () => {
    const root = path.join(dir, 'root');
    const file = path.join(root, 'modelsync', 'v1', 'modelsync.proto');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.copyFileSync(REPO_PROTO, file);

    const byRoot = new Client({ socket: path.join(dir, 'unused.sock'), protoPath: root });
    assert.equal(byRoot.protoPath, file);
    byRoot.close();
    const byFile = new Client({ socket: path.join(dir, 'unused.sock'), protoPath: file });
    assert.equal(byFile.protoPath, file);
    byFile.close();
  });

  it('MODELSYNC_PROTO overrides the repository proto', () => {
    const file = path.join(dir, 'elsewhere.proto');
    fs.copyFileSync(REPO_PROTO, file);
    const found = node(
      `const { resolveProto } = require(${JSON.stringify(path.join(PACKAGE, 'src'))});
       const { root, file } = resolveProto();
       console.log(require('node:path').join(root, file));`,
      { cwd: dir, env: { MODELSYNC_PROTO: file } },
    );
    assert.equal(found, file);
  });

  it('a missing override is an error naming the path', () => {
    const missing = path.join(dir, 'no-such.proto');
    assert.throws(() => resolveProto(missing), (error) => error.message.includes(missing));
    assert.throws(() => resolveProto(dir), /holds no modelsync/);
  });

  it('a packed copy of the package loads the proto bundled inside it', () => {
    // The layout `npm pack` produces: src/ with proto/ beside it, and no
    // repository around them.
    const packed = path.join(dir, 'packed', 'node_modules', 'modelsync');
    fs.cpSync(path.join(PACKAGE, 'src'), path.join(packed, 'src'), { recursive: true });
    const bundled = path.join(packed, 'proto', 'modelsync', 'v1', 'modelsync.proto');
    fs.mkdirSync(path.dirname(bundled), { recursive: true });
    fs.copyFileSync(REPO_PROTO, bundled);
    const found = node(
      `const { Client } = require(${JSON.stringify(path.join(packed, 'src'))});
       const client = new Client({ socket: 'unused.sock' });
       console.log(client.protoPath);
       client.close();`,
      { cwd: dir },
    );
    assert.equal(found, bundled);
  });
});
