'use strict';

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { after, before, it } = require('node:test');

const { startStack } = require('./helpers');

const EXAMPLE = path.resolve(__dirname, '..', 'examples', 'roundtrip.js');

let stack;

before(async () => {
  stack = await startStack();
});

after(async () => {
  if (stack) await stack.stop();
});

it('examples/roundtrip.js pushes a file and pulls back the same bytes', async () => {
  const file = path.join(stack.dir, 'weights.bin');
  const data = randomBytes(2_500_000);
  fs.writeFileSync(file, data);
  const run = spawnSync(process.execPath, [EXAMPLE, file, '--socket', stack.socket, '--key', 'weights'], {
    cwd: stack.dir,
  });
  const output = run.stdout.toString();
  assert.equal(run.status, 0, `${run.stderr}\n${output}`);
  assert.match(output, /identical: sha256 [0-9a-f]{64}/);
  assert.ok(fs.readFileSync(`${file}.pulled`).equals(data));

  const { header } = await stack.client.pull('examples', 'weights');
  assert.equal(header.metadata.source.toString(), file);
});
