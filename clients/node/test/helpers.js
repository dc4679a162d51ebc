'use strict';

// A real Redis and a real daemon for each test file, both private to it:
// Redis on a free loopback port with nothing kept on disk, the daemon on a
// socket in a fresh temporary folder. Nothing here ever falls back to a
// default socket or Redis address.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { Client } = require('../src');

const REPO = path.resolve(__dirname, '..', '..', '..');
const DAEMON = process.env.MODELSYNC_BIN || path.join(REPO, 'target', 'release', 'modelsync');
const PYTHON = process.env.MODELSYNC_PYTHON || 'python3';
const PYTHON_SRC = path.join(REPO, 'clients', 'python', 'src');

/** How long a child gets to come up or to stop before it counts as hung. */
const START_LIMIT_MS = 30_000;
const STOP_LIMIT_MS = 15_000;

const children = new Set();
const folders = new Set();

// Should the test process end without running `after` hooks (an uncaught
// error, or the runner stopping it), the children go with it rather than
// outlive it.
function killAll() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true });
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Starts a child whose output is kept for failure messages. */
function launch(command, args, options) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.output = '';
  const keep = (chunk) => {
    child.output = (child.output + chunk.toString()).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (error) => {
      children.delete(child);
      child.failed = true;
      child.output += `\n${error.message}`;
      resolve({ code: null, signal: null, error });
    });
  });
  return child;
}

function gone(child) {
  return Boolean(child.failed) || child.exitCode !== null || child.signalCode !== null;
}

async function stop(child) {
  if (!child || gone(child)) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_LIMIT_MS);
  await child.exited;
  clearTimeout(timer);
}

/** Sends PING to our own Redis and tells whether it answered PONG. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

async function startRedis(dir) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const redis = launch(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { cwd: dir },
    );
    const deadline = Date.now() + START_LIMIT_MS;
    while (Date.now() < deadline && !gone(redis)) {
      if (await ping(port)) return { redis, port };
      await sleep(50);
    }
    await stop(redis);
    // Another process may have taken the port between probe and bind.
    if (attempt >= 3) throw new Error(`redis-server did not start on port ${port}:\n${redis.output}`);
  }
}

/** The environment minus anything that could point a child elsewhere. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(MODELSYNC_|REDIS_|ID_FILE$)/.test(name)) delete env[name];
  }
  return { ...env, RUST_LOG: 'warn', ...extra };
}

/**
 * A Redis, a daemon using it, and a Client for the daemon, in a temporary
 * folder. `stop()` ends both processes and removes the folder.
 */
async function startStack({ address = 'node-test', daemonArgs = [], socketName = 'modelsync.sock', config } = {}) {
  if (!fs.existsSync(DAEMON)) {
    throw new Error(`no daemon binary at ${DAEMON}: run \`cargo build --release\` in ${REPO}, or set MODELSYNC_BIN`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'modelsync-node-'));
  folders.add(dir);
  const stack = { dir, socket: path.join(dir, socketName) };
  stack.stop = async () => {
    if (stack.client) stack.client.close();
    await stop(stack.daemon);
    await stop(stack.redis);
    fs.rmSync(dir, { recursive: true, force: true });
    folders.delete(dir);
  };
  try {
    const { redis, port } = await startRedis(dir);
    stack.redis = redis;
    stack.redisPort = port;
    stack.redisUrl = `redis://127.0.0.1:${port}/0`;

    const identity = path.join(dir, 'identity.yaml');
    fs.writeFileSync(identity, `address: ${address}\n`);
    const extra = [...daemonArgs];
    if (config !== undefined) {
      const file = path.join(dir, 'config.yaml');
      fs.writeFileSync(file, config);
      extra.push('--config', file);
    }
    stack.daemon = launch(
      DAEMON,
      ['--socket', stack.socket, 'serve', '--identity', identity, '--redis', stack.redisUrl, ...extra],
      { cwd: dir, env: cleanEnv() },
    );
    stack.client = new Client({ socket: stack.socket });
    const deadline = Date.now() + START_LIMIT_MS;
    for (;;) {
      if (gone(stack.daemon)) {
        throw new Error(`the daemon exited while starting:\n${stack.daemon.output}`);
      }
      if (fs.existsSync(stack.socket)) {
        try {
          await stack.client.status();
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
        }
      }
      if (Date.now() > deadline) throw new Error(`the daemon did not listen on ${stack.socket}:\n${stack.daemon.output}`);
      await sleep(50);
    }
    return stack;
  } catch (error) {
    await stack.stop();
    throw error;
  }
}

/** Runs the daemon's own CLI against `socket`. */
function cli(socket, args, options = {}) {
  const result = spawnSync(DAEMON, ['--socket', socket, ...args], {
    env: cleanEnv(),
    maxBuffer: 256 << 20,
    ...options,
  });
  if (result.error) throw result.error;
  return result;
}

/** The environment under which Python finds the repository's client. */
function pythonEnv() {
  const paths = [PYTHON_SRC, process.env.PYTHONPATH].filter(Boolean);
  return cleanEnv({ PYTHONPATH: paths.join(path.delimiter) });
}

/**
 * Why the Python client cannot be used, or null when `import modelsync`
 * works. Run from an empty folder so that no stray module is picked up.
 */
function pythonUnavailable() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'modelsync-py-'));
  try {
    const result = spawnSync(PYTHON, ['-c', 'import modelsync'], { cwd: dir, env: pythonEnv() });
    if (result.error) return `${PYTHON} cannot be run: ${result.error.message}`;
    if (result.status !== 0) {
      const why = result.stderr.toString().trim().split('\n').pop();
      return `\`${PYTHON} -c "import modelsync"\` fails (${why}); the Python client is not installed or not at ${PYTHON_SRC}`;
    }
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a Python script with the repository's client importable. */
function python(script, args, options = {}) {
  const result = spawnSync(PYTHON, ['-c', script, ...args], {
    env: pythonEnv(),
    maxBuffer: 256 << 20,
    ...options,
  });
  if (result.error) throw result.error;
  return result;
}

module.exports = { startStack, cli, python, pythonUnavailable, REPO, DAEMON };
