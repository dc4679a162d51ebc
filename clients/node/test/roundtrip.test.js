'use strict';

const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Readable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { after, before, describe, it } = require('node:test');

const { Client, MESSAGE_BYTES, ResourceExhaustedError } = require('../src');
const { startStack } = require('./helpers');

const MiB = 1 << 20;

let stack;
let client;

before(async () => {
  stack = await startStack();
  client = stack.client;
});

after(async () => {
  if (stack) await stack.stop();
});

describe('round trips', () => {
  const sizes = [
    ['0 bytes', 0],
    ['1 byte', 1],
    ['1 MiB + 1 byte (two data messages)', MiB + 1],
    ['50 MB (many messages and chunks)', 50_000_000],
  ];
  for (const [name, size] of sizes) {
    it(`a model of ${name} is pulled back byte for byte`, async () => {
      const data = randomBytes(size);
      const key = `size-${size}`;
      const pushed = await client.push('roundtrip', key, data);
      assert.equal(pushed.rawSize, size);
      assert.equal(pushed.version, 1);
      assert.ok(pushed.chunkCount >= (size > 0 ? 1 : 0));

      const { header, data: pulled } = await client.pull('roundtrip', key);
      assert.equal(header.namespace, 'roundtrip');
      assert.equal(header.key, key);
      assert.equal(header.version, pushed.version);
      assert.equal(header.rawSize, size);
      assert.equal(header.storedSize, pushed.storedSize);
      assert.equal(header.chunkCount, pushed.chunkCount);
      // Random bytes look like no fixed-width numbers: auto keeps zstd.
      assert.equal(pushed.codec, 'zstd');
      assert.equal(header.codec, pushed.codec);
      assert.equal(header.updater, 'node-test');
      assert.ok(Buffer.isBuffer(pulled));
      assert.ok(pulled.equals(data), 'the pulled bytes differ from the pushed ones');
    });
  }

  it('a Uint8Array and an ArrayBuffer are pushed as their bytes', async () => {
    const bytes = new Uint8Array(randomBytes(1000));
    const view = bytes.subarray(10, 990);
    await client.push('roundtrip', 'u8', view);
    assert.ok((await client.pull('roundtrip', 'u8')).data.equals(Buffer.from(view)));

    await client.push('roundtrip', 'ab', bytes.buffer);
    assert.ok((await client.pull('roundtrip', 'ab')).data.equals(Buffer.from(bytes)));
  });

  it('every push commits the next version, and a pull returns the newest', async () => {
    const first = await client.push('roundtrip', 'versions', Buffer.from('one'));
    const second = await client.push('roundtrip', 'versions', Buffer.from('two'));
    assert.equal(second.version, first.version + 1);
    const { header, data } = await client.pull('roundtrip', 'versions');
    assert.equal(header.version, second.version);
    assert.equal(data.toString(), 'two');
  });
});

describe('streamed pushes', () => {
  it('a Readable file stream is pushed whole', async () => {
    const file = path.join(stack.dir, 'model.bin');
    const data = randomBytes(3 * MiB + 7);
    fs.writeFileSync(file, data);
    const pushed = await client.push('stream', 'file', fs.createReadStream(file), { rawSize: data.length });
    assert.equal(pushed.rawSize, data.length);
    assert.ok((await client.pull('stream', 'file')).data.equals(data));
  });

  it('an async generator of uneven chunks is pushed in order', async () => {
    const parts = [randomBytes(10), randomBytes(2 * MiB + 3), Buffer.alloc(0), randomBytes(MiB - 1), randomBytes(1)];
    async function* source() {
      for (const part of parts) yield part;
    }
    const pushed = await client.push('stream', 'generator', source());
    const whole = Buffer.concat(parts);
    assert.equal(pushed.rawSize, whole.length);
    assert.ok((await client.pull('stream', 'generator')).data.equals(whole));
  });

  it('an array of Uint8Arrays is pushed as their concatenation', async () => {
    const parts = [new Uint8Array([1, 2, 3]), new Uint8Array([4]), new Uint8Array([])];
    await client.push('stream', 'array', parts);
    assert.deepEqual([...(await client.pull('stream', 'array')).data], [1, 2, 3, 4]);
  });

  it('push waits for the daemon instead of reading its source ahead', async () => {
    // While the daemon is stopped nothing drains the socket, so a client
    // that respects backpressure stops pulling from its source after a
    // bounded number of messages; one that ignores it reads all of it.
    const total = 256;
    const piece = Buffer.alloc(MiB, 0x5a);
    let yielded = 0;
    async function* source() {
      for (let i = 0; i < total; i++) {
        yielded++;
        yield piece;
      }
    }
    process.kill(stack.daemon.pid, 'SIGSTOP');
    let pushing;
    try {
      pushing = client.push('stream', 'backpressure', source());
      pushing.catch(() => {});
      // Wait until the producer has stalled: no new piece over a few polls.
      let last = -1;
      let steady = 0;
      while (steady < 5) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        steady = yielded === last ? steady + 1 : 0;
        last = yielded;
      }
      assert.ok(yielded < total / 4, `the source was read ${yielded} MiB ahead of a stopped daemon`);
    } finally {
      process.kill(stack.daemon.pid, 'SIGCONT');
    }
    const pushed = await pushing;
    assert.equal(yielded, total);
    assert.equal(pushed.rawSize, total * MiB);
  });

  it('data messages stay within the daemon limit, which refuses larger ones', async () => {
    const status = await client.status();
    assert.equal(MESSAGE_BYTES, status.maxMessageBytes);
    const data = randomBytes(3 * MiB);
    await client.push('stream', 'limit', data);

    const oversized = new Client({ socket: stack.socket, messageBytes: status.maxMessageBytes + 1 });
    try {
      await assert.rejects(oversized.push('stream', 'too-big', data), (error) => {
        assert.ok(error instanceof ResourceExhaustedError);
        assert.equal(error.code, 'RESOURCE_EXHAUSTED');
        return true;
      });
    } finally {
      oversized.close();
    }
    assert.equal(await client.exists('stream', 'too-big'), false);
  });
});

describe('streamed pulls', () => {
  it('pullStream gives the header first, then the bytes as a Readable', async () => {
    const data = randomBytes(5 * MiB + 11);
    await client.push('pull', 'big', data, { metadata: { step: '12' } });
    const { header, stream } = await client.pullStream('pull', 'big');
    assert.equal(header.rawSize, data.length);
    assert.equal(header.metadata.step.toString(), '12');
    assert.ok(stream instanceof Readable);
    const file = path.join(stack.dir, 'pulled.bin');
    await pipeline(stream, fs.createWriteStream(file));
    assert.ok(fs.readFileSync(file).equals(data));
  });

  it('pullStream is async-iterable in message-sized pieces', async () => {
    const data = randomBytes(2 * MiB + 5);
    await client.push('pull', 'pieces', data);
    const { stream } = await client.pullStream('pull', 'pieces');
    const received = [];
    for await (const piece of stream) {
      assert.ok(piece.length <= MESSAGE_BYTES);
      received.push(piece);
    }
    assert.ok(Buffer.concat(received).equals(data));
  });

  it('leaving a pullStream early cancels it and the client carries on', async () => {
    const data = randomBytes(8 * MiB);
    await client.push('pull', 'abandoned', data);
    const { stream } = await client.pullStream('pull', 'abandoned');
    for await (const piece of stream) {
      assert.ok(piece.length > 0);
      break;
    }
    assert.ok(stream.destroyed);
    const again = await client.pull('pull', 'abandoned');
    assert.ok(again.data.equals(data));
  });
});

describe('metadata and options', () => {
  it('metadata comes back byte-exact, non-UTF-8 bytes included', async () => {
    const metadata = {
      binary: Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x00]),
      empty: Buffer.alloc(0),
      text: Buffer.from('epoch=3 loss=0.25', 'utf8'),
      'unicode name ü': Buffer.from('värde', 'utf8'),
      all: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    };
    await client.push('meta', 'exact', Buffer.from('model'), { metadata });

    const expected = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, Buffer.from(v)]));
    const pulled = await client.pull('meta', 'exact');
    assert.deepEqual(pulled.header.metadata, expected);
    assert.deepEqual((await client.head('meta', 'exact')).metadata, expected);
    const listed = [];
    for await (const header of client.list('meta')) listed.push(header);
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0].metadata, expected);
  });

  it('metadata may be a Map, with strings stored as UTF-8', async () => {
    const metadata = new Map([
      ['name', 'résumé'],
      ['raw', new Uint8Array([1, 2, 255])],
    ]);
    await client.push('meta', 'map', Buffer.from('x'), { metadata });
    const { header } = await client.pull('meta', 'map');
    assert.deepEqual(header.metadata, {
      name: Buffer.from('résumé', 'utf8'),
      raw: Buffer.from([1, 2, 255]),
    });
  });

  it('ttlSeconds sets how long the version lives', async () => {
    await client.push('meta', 'ttl', Buffer.from('x'), { ttlSeconds: 120 });
    const header = await client.head('meta', 'ttl');
    assert.ok(header.ttlMs > 0 && header.ttlMs <= 120_000, `ttlMs is ${header.ttlMs}`);
  });

  it('codec picks how the version is stored', async () => {
    const data = Buffer.alloc(100_000, 'a');
    const plain = await client.push('meta', 'none', data, { codec: 'none' });
    assert.equal(plain.storedSize, data.length);
    assert.equal((await client.head('meta', 'none')).codec, 'none');

    const packed = await client.push('meta', 'zlib', data, { codec: 'zlib' });
    assert.ok(packed.storedSize < data.length);
    const { header, data: back } = await client.pull('meta', 'zlib');
    assert.match(header.codec, /^zlib/);
    assert.ok(back.equals(data));
  });

  it('with bigint: true every 64-bit field is a BigInt', async () => {
    const wide = new Client({ socket: stack.socket, bigint: true });
    try {
      const pushed = await wide.push('meta', 'bigint', Buffer.from('abc'), { ttlSeconds: 60n });
      assert.equal(typeof pushed.version, 'bigint');
      assert.equal(pushed.rawSize, 3n);
      const { header, data } = await wide.pull('meta', 'bigint');
      for (const field of ['version', 'updatedAtMs', 'rawSize', 'storedSize', 'chunkCount', 'ttlMs']) {
        assert.equal(typeof header[field], 'bigint', field);
      }
      assert.equal(data.toString(), 'abc');
      assert.equal(typeof (await wide.status()).uptimeSeconds, 'bigint');
    } finally {
      wide.close();
    }
  });
});

describe('connecting', () => {
  it('the daemon accepts the client over a socket path with spaces and percent signs', async () => {
    const odd = await startStack({ socketName: 'model sync %41.sock' });
    try {
      assert.equal((await odd.client.status()).address, 'node-test');
      await odd.client.push('connect', 'k', Buffer.from('hello'));
      assert.equal((await odd.client.pull('connect', 'k')).data.toString(), 'hello');
    } finally {
      await odd.stop();
    }
  });

  it('ready resolves once the channel to a running daemon is up', async () => {
    const fresh = new Client({ socket: stack.socket });
    try {
      await fresh.ready();
      assert.equal((await fresh.status()).address, 'node-test');
    } finally {
      fresh.close();
    }
  });

  it('MODELSYNC_SOCKET is the socket when none is given', async () => {
    const saved = process.env.MODELSYNC_SOCKET;
    process.env.MODELSYNC_SOCKET = stack.socket;
    let fromEnv;
    try {
      fromEnv = new Client();
    } finally {
      if (saved === undefined) delete process.env.MODELSYNC_SOCKET;
      else process.env.MODELSYNC_SOCKET = saved;
    }
    try {
      assert.equal(fromEnv.socket, stack.socket);
      assert.equal((await fromEnv.status()).address, 'node-test');
    } finally {
      fromEnv.close();
    }
  });

  it('a relative socket path is resolved against the current folder', async () => {
    const relative = path.relative(process.cwd(), stack.socket);
    const near = new Client({ socket: relative });
    try {
      assert.equal(near.socket, stack.socket);
      assert.equal((await near.status()).address, 'node-test');
    } finally {
      near.close();
    }
  });
});
