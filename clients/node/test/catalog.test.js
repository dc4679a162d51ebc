'use strict';

const assert = require('node:assert/strict');
const { after, before, describe, it } = require('node:test');

const { startStack } = require('./helpers');

let stack;
let client;

before(async () => {
  stack = await startStack({ address: 'node-catalog' });
  client = stack.client;
});

after(async () => {
  if (stack) await stack.stop();
});

async function collect(iterable) {
  const items = [];
  for await (const item of iterable) items.push(item);
  return items;
}

describe('list', () => {
  it('lists every model of a namespace and none of another', async () => {
    const keys = ['alpha', 'beta', 'gamma/with/slashes', 'delta with spaces'];
    for (const [i, key] of keys.entries()) {
      await client.push('catalog', key, Buffer.alloc(i + 1, i), { metadata: { index: String(i) } });
    }
    await client.push('catalog-other', 'alpha', Buffer.from('elsewhere'));

    const listed = await collect(client.list('catalog'));
    assert.deepEqual(listed.map((h) => h.key).sort(), [...keys].sort());
    for (const header of listed) {
      const i = keys.indexOf(header.key);
      assert.equal(header.namespace, 'catalog');
      assert.equal(header.rawSize, i + 1);
      assert.equal(header.updater, 'node-catalog');
      assert.deepEqual(header.metadata, { index: Buffer.from(String(i)) });
    }
  });

  it('an unknown namespace lists nothing', async () => {
    assert.deepEqual(await collect(client.list('catalog-never-used')), []);
  });

  it('leaving a list early cancels it and the client carries on', async () => {
    for (let i = 0; i < 20; i++) await client.push('catalog-many', `k${i}`, Buffer.from([i]));
    for await (const header of client.list('catalog-many')) {
      assert.equal(header.namespace, 'catalog-many');
      break;
    }
    assert.equal((await collect(client.list('catalog-many'))).length, 20);
  });
});

describe('exists and delete', () => {
  it('exists follows a model through push and delete', async () => {
    assert.equal(await client.exists('catalog', 'lifecycle'), false);
    const pushed = await client.push('catalog', 'lifecycle', Buffer.from('weights'), {
      metadata: { tag: Buffer.from([0xde, 0xad]) },
    });
    assert.equal(await client.exists('catalog', 'lifecycle'), true);

    const header = await client.head('catalog', 'lifecycle');
    assert.equal(header.version, pushed.version);
    assert.equal(header.rawSize, 7);
    assert.deepEqual(header.metadata, { tag: Buffer.from([0xde, 0xad]) });
    assert.ok(header.updatedAtMs > 0);

    assert.equal(await client.delete('catalog', 'lifecycle'), true);
    assert.equal(await client.exists('catalog', 'lifecycle'), false);
    assert.equal(await client.delete('catalog', 'lifecycle'), false);
    const remaining = await collect(client.list('catalog'));
    assert.ok(!remaining.some((h) => h.key === 'lifecycle'));
  });

  it('delete removes every version, so the next push starts again', async () => {
    await client.push('catalog', 'restart', Buffer.from('1'));
    await client.push('catalog', 'restart', Buffer.from('2'));
    assert.equal(await client.delete('catalog', 'restart'), true);
    await assert.rejects(client.pull('catalog', 'restart'), { code: 'NOT_FOUND' });
    const again = await client.push('catalog', 'restart', Buffer.from('3'), { expectedVersion: 0 });
    assert.equal((await client.pull('catalog', 'restart')).header.version, again.version);
  });
});

describe('status', () => {
  it('status describes this daemon, its Redis and its limits', async () => {
    const status = await client.status();
    assert.equal(status.address, 'node-catalog');
    assert.equal(status.redisEndpoint, stack.redisUrl);
    assert.equal(status.redisConnected, true);
    assert.equal(typeof status.version, 'string');
    assert.ok(status.callsServed >= 1);
    assert.equal(status.maxMessageBytes, 1 << 20);
  });

  it('namespace describes how a namespace is stored', async () => {
    const info = await client.namespace('catalog');
    assert.equal(info.namespace, 'catalog');
    assert.equal(info.layout, 'chunked');
    assert.ok(info.chunkSize > 0);
    assert.equal(typeof info.ttlSeconds, 'number');
  });
});

describe('configured namespaces', () => {
  it('status and namespace report the settings of a configured namespace, and pushes follow them', async () => {
    const tuned = await startStack({
      config: 'namespaces:\n  tuned:\n    codec: none\n    chunk_size: 65536\n    ttl: 42\n',
    });
    try {
      const status = await tuned.client.status();
      const listed = status.namespaces.find((info) => info.namespace === 'tuned');
      assert.ok(listed, `status lists ${JSON.stringify(status.namespaces)}`);
      const info = await tuned.client.namespace('tuned');
      assert.deepEqual(info, listed);
      assert.equal(info.codec, 'none');
      assert.equal(info.chunkSize, 65536);
      assert.equal(info.ttlSeconds, 42);

      const pushed = await tuned.client.push('tuned', 'k', Buffer.alloc(65536 * 3 + 1, 7));
      assert.equal(pushed.chunkCount, 4);
      assert.equal(pushed.storedSize, pushed.rawSize);
      const header = await tuned.client.head('tuned', 'k');
      assert.ok(header.ttlMs > 0 && header.ttlMs <= 42_000, `ttlMs is ${header.ttlMs}`);
    } finally {
      await tuned.stop();
    }
  });
});
