'use strict';

// `npm pack` runs this with "copy" before packing and "remove" after, so
// that a packed tarball carries the API file it was built against while
// the repository keeps a single copy of it in proto/.

const fs = require('node:fs');
const path = require('node:path');

const PACKAGE = path.resolve(__dirname, '..');
const SOURCE = path.resolve(PACKAGE, '..', '..', 'proto', 'modelsync', 'v1', 'modelsync.proto');
const BUNDLED = path.join(PACKAGE, 'proto');

const action = process.argv[2];
if (action === 'copy') {
  const target = path.join(BUNDLED, 'modelsync', 'v1', 'modelsync.proto');
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(SOURCE, target);
} else if (action === 'remove') {
  fs.rmSync(BUNDLED, { recursive: true, force: true });
} else {
  console.error('usage: bundle-proto.js copy|remove');
  process.exit(2);
}
