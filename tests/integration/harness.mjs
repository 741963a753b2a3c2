// harness.mjs - starts the real parts of crosstalk (redis-server, crosstalkd,
// the FastCGI pool, nginx, FerretDB) on free loopback ports in temp dirs for
// the node tests, gives them real clients, and kills every process it started
// on every exit path (process exit, SIGINT/SIGTERM/SIGHUP, cleanup()).
//
// Nothing here is a mock: every helper talks to a real server over a socket.
// A helper that waits says what it waited for and for how long when it fails.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import nodeHttp from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// A sanitizer build is slower to start and to answer.
const SLOW = process.env.CT_BUILDDIR ? 3 : 1;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- cleanup

const tracked = new Map(); // pid -> {name, obj (spawnTracked's object, if any)}
const openClients = new Set(); // SSE/EventSource clients, closed by cleanup()
const tmpDirs = [];
let exiting = false;

function track(pid, name, obj = null) {
  if (pid > 0) tracked.set(pid, { name, obj });
}

function untrack(pid) {
  tracked.delete(pid);
}

// State letter of /proc/PID/stat, or null when the process is gone. A zombie
// ('Z') counts as gone: PID 1 here need not reap orphans.
function procState(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return null;
  }
}

export function alive(pid) {
  const st = procState(pid);
  return st !== null && st !== 'Z' && st !== 'X';
}

/** Direct children of `pid` (from /proc), e.g. nginx workers. */
export function childrenOf(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid) out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

function descendants(pid, acc = []) {
  for (const c of childrenOf(pid)) {
    acc.push(c);
    descendants(c, acc);
  }
  return acc;
}

function killSync(pid, sig = 'SIGKILL') {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function killAllSync() {
  const pids = [...tracked.keys()];
  const all = [];
  for (const pid of pids) all.push(...descendants(pid), pid);
  for (const pid of all) killSync(pid, 'SIGKILL');
  tracked.clear();
}

function removeTmpDirsSync() {
  if (process.env.CT_KEEP_TMP) return;
  for (const d of tmpDirs.splice(0)) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

process.on('exit', () => {
  exiting = true;
  killAllSync();
  removeTmpDirsSync();
});
for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.on(sig, () => {
    exiting = true;
    killAllSync();
    removeTmpDirsSync();
    process.exit(128 + n);
  });
}

/**
 * Stops every process the harness started (SIGTERM, then SIGKILL after a
 * grace period), newest first. Use as `after(cleanup)` in a test file; the
 * process 'exit' hook does the same with SIGKILL if a file forgets.
 */
export async function cleanup() {
  for (const c of [...openClients]) {
    try { c.close(); } catch { /* already closed */ }
  }
  openClients.clear();
  const pids = [...tracked.keys()].reverse();
  for (const pid of pids) {
    const obj = tracked.get(pid)?.obj;
    if (obj) obj.expectedExit = true;
    for (const c of descendants(pid)) killSync(c, 'SIGTERM');
    killSync(pid, 'SIGTERM');
  }
  const t0 = Date.now();
  while (Date.now() - t0 < 5000 * SLOW && pids.some(alive)) await sleep(20);
  for (const pid of pids) {
    for (const c of descendants(pid)) killSync(c, 'SIGKILL');
    killSync(pid, 'SIGKILL');
    untrack(pid);
  }
}

/** A fresh directory under the system temp dir, removed when the process exits (unless CT_KEEP_TMP is set). */
export function tmpDir(prefix = 'tmp') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `ct-${prefix}-`));
  tmpDirs.push(d);
  return d;
}

// ---------------------------------------------------------------- waiting

/**
 * Resolves with fn()'s first truthy value; polls every `interval` ms. After
 * `timeout` ms it throws an error naming `what`, the time waited and the last
 * error fn threw. With `proc` (a harness process object or ChildProcess) it
 * fails at once when that process has exited.
 */
export async function waitFor(fn, { timeout = 5000, interval = 25, what = 'a condition', proc = null } = {}) {
  const t0 = Date.now();
  let lastErr = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    const cp = proc?.proc ?? proc;
    if (cp && cp.exitCode !== null && cp.exitCode !== undefined) {
      throw new Error(`waiting for ${what}: ${proc.name ?? 'process'} exited with ${describeExit(cp)} after ${Date.now() - t0} ms` +
        (proc.logs ? `\n--- its log (tail) ---\n${tail(proc.logs())}` : ''));
    }
    if (cp && cp.signalCode) {
      throw new Error(`waiting for ${what}: ${proc.name ?? 'process'} was killed by ${cp.signalCode} after ${Date.now() - t0} ms` +
        (proc.logs ? `\n--- its log (tail) ---\n${tail(proc.logs())}` : ''));
    }
    if (Date.now() - t0 >= timeout) {
      throw new Error(`timed out after ${Date.now() - t0} ms waiting for ${what}` +
        (lastErr ? ` (last error: ${lastErr.message})` : ''));
    }
    await sleep(interval);
  }
}

/** Rejects with a message naming `what` and the time if `promise` takes longer than `ms`. */
export function within(ms, promise, what = 'an operation') {
  let timer;
  const t0 = Date.now();
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out after ${Date.now() - t0} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function describeExit(cp) {
  return cp.signalCode ? `signal ${cp.signalCode}` : `code ${cp.exitCode}`;
}

function tail(s, n = 4000) {
  return s.length > n ? '…' + s.slice(-n) : s;
}

// ---------------------------------------------------------------- ports, binaries

const handedOut = new Set();

/** The ports the kernel hands out as source ports of outgoing connections
 * (net.ipv4.ip_local_port_range). A port taken from there can be given to a
 * client socket between our check and the server's bind. */
function ephemeralRange() {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch {}
  return [32768, 60999];
}

/** Ports no outgoing connection takes: from 10000 to below the ephemeral
 * range, and above it. Empty when the machine's range leaves none. */
function quietRanges() {
  const [lo, hi] = ephemeralRange();
  const out = [];
  if (lo - 1 >= 10000) out.push([10000, lo - 1]);
  if (hi + 1 <= 65535) out.push([hi + 1, 65535]);
  return out;
}

function quietCandidate(ranges) {
  const size = ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
  let k = Math.floor(Math.random() * size);
  for (const [a, b] of ranges) {
    if (k <= b - a) return a + k;
    k -= b - a + 1;
  }
  return ranges[0][0];
}

function kernelPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago (never the same one
 * twice in this process). It is picked outside the kernel's ephemeral range,
 * so a client connection made meanwhile cannot take it before the server
 * binds it (demo_shards once failed on "Address already in use" that way). */
export async function freePort() {
  const ranges = quietRanges();
  for (let i = 0; i < 200; i++) {
    const port = ranges.length ? quietCandidate(ranges) : await kernelPort();
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('freePort: no fresh port after 200 tries');
}

/** Who is online in `room` (GET .../presence at `base` with `token`),
 * asserting the 200. */
export async function onlineIn(base, room, token) {
  const r = await http('GET', `${base}/api/rooms/${room}/presence`, { headers: bearer(token) });
  if (r.status !== 200) throw new Error(`GET ${base}/api/rooms/${room}/presence: ${r.status} ${r.text}`);
  return r.json.online;
}

/** Stream reads Redis has run so far (INFO commandstats: XRANGE, XREVRANGE,
 * XINFO): whether a daemon asked Redis, or answered from memory. */
export async function streamReads(redis) {
  const info = String(await redis.cmd('INFO', 'commandstats'));
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(xrange|xrevrange|xinfo[^:]*):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

/** Absolute path of a built program: $CT_BUILDDIR/name, else the repo top. */
export function bin(name) {
  return path.resolve(process.env.CT_BUILDDIR || REPO, name);
}

function requireBin(name) {
  const p = bin(name);
  if (!fs.existsSync(p)) throw new Error(`${p} does not exist: build it first (make, or scripts/test)`);
  return p;
}

/** Finds a program on PATH (and in sbin dirs, where Debian puts nginx); null if absent. */
export function which(name) {
  const dirs = (process.env.PATH || '').split(':').concat(['/usr/sbin', '/sbin', '/usr/local/sbin']);
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

// ---------------------------------------------------------------- processes

// The environment for our programs: the test's own, minus any CROSSTALK_*
// setting that would make a run depend on the caller's shell.
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CROSSTALK_')) env[k] = v;
  return { ...env, ...extra };
}

const LOG_CAP = 4 << 20;

/**
 * Spawns a tracked long-running process with its stdout+stderr captured.
 * The child and its pipes are unref'd, so a test file still exits when its
 * tests are done; the exit hook then kills what is left.
 */
function spawnTracked(name, file, args, { env, cwd } = {}) {
  let log = '';
  const proc = spawn(file, args.map(String), { env: env ?? cleanEnv(), cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = {
    name,
    proc,
    pid: proc.pid,
    expectedExit: false,
    logs: () => log,
  };
  const onData = (b) => {
    log += b.toString('utf8');
    if (log.length > LOG_CAP) log = log.slice(-LOG_CAP / 2);
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  proc.on('error', (e) => {
    log += `\n[harness] could not start ${file}: ${e.message}\n`;
  });
  out.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      untrack(proc.pid);
      if (!out.expectedExit && !exiting) {
        process.stderr.write(`[harness] ${name} (pid ${proc.pid}) exited unexpectedly with ` +
          `${signal ? 'signal ' + signal : 'code ' + code}; log tail:\n${tail(log, 2000)}\n`);
      }
      resolve(code ?? 128 + (os.constants.signals[signal] ?? 0));
    });
  });
  proc.unref();
  proc.stdout.unref?.();
  proc.stderr.unref?.();
  if (proc.pid) track(proc.pid, name, out);
  return out;
}

async function stopProc(p, sig = 'SIGTERM', grace = 10000 * SLOW) {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return p.exited;
  p.expectedExit = true;
  for (const c of descendants(p.pid)) killSync(c, sig);
  killSync(p.pid, sig);
  let timer;
  const res = await Promise.race([p.exited, new Promise((r) => { timer = setTimeout(() => r('timeout'), grace); })]);
  clearTimeout(timer);
  if (res === 'timeout') {
    process.stderr.write(`[harness] ${p.name} (pid ${p.pid}) did not exit within ${grace} ms of ${sig}; sending SIGKILL\n`);
    killSync(p.pid, 'SIGKILL');
    await p.exited;
    return 'timeout';
  }
  return res;
}

/**
 * Runs a program to completion (for --help, bad configurations and the
 * like) with a clean environment. Returns {status, signal, stdout, stderr,
 * timedOut, pid}.
 */
export function runSync(file, args = [], { env = {}, timeout = 10000 * SLOW, input } = {}) {
  const r = spawnSync(file, args.map(String), { env: cleanEnv(env), timeout, input, encoding: 'utf8' });
  if (r.error && r.error.code !== 'ETIMEDOUT') throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut: r.error?.code === 'ETIMEDOUT', pid: r.pid };
}

// ---------------------------------------------------------------- Redis

function encodeResp(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

// Parses one RESP2 reply at buf[pos]; returns [value, next] or null when incomplete.
function parseResp(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [new RedisError(line), next];
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return null;
        arr.push(r[0]);
        p = r[1];
      }
      return [arr, p];
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(type)}`);
  }
}

export class RedisError extends Error {}

/**
 * Sends one command to the Redis on 127.0.0.1:port over a fresh connection
 * and resolves with its reply (string, number, array, null); a Redis error
 * reply rejects with RedisError.
 */
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${args[0]} on port ${port}: no reply within 5000 ms`));
    }, 5000);
    sock.on('connect', () => sock.write(encodeResp(args)));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let r;
      try {
        r = parseResp(buf, 0);
      } catch (e) {
        clearTimeout(timer);
        sock.destroy();
        reject(e);
        return;
      }
      if (!r) return;
      clearTimeout(timer);
      sock.end();
      if (r[0] instanceof RedisError) reject(r[0]);
      else resolve(r[0]);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Sends several commands (arrays) in one write on one connection, so Redis
 * runs them back to back with no other client in between; resolves with the
 * replies in order (a Redis error reply is returned as a RedisError value).
 */
export function redisPipeline(port, cmds) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis pipeline on port ${port}: no complete reply within 5000 ms`));
    }, 5000);
    sock.on('connect', () => sock.write(Buffer.concat(cmds.map(encodeResp))));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const out = [];
      let pos = 0;
      while (out.length < cmds.length) {
        const r = parseResp(buf, pos);
        if (!r) return;
        out.push(r[0]);
        pos = r[1];
      }
      clearTimeout(timer);
      sock.end();
      resolve(out);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Starts `redis-server` on a free loopback port with append-only persistence
 * in `dir` (a new temp dir by default) and waits until it answers PING.
 * With {unixSocket: true} it also listens on D/redis.sock (socketUrl).
 * Returns {port, url, socketUrl, dir, pid, proc, stop(), kill(), restart(), cmd(...args), pipeline(cmds), logs()}.
 * restart() starts it again on the same port and dir (stopping it first if it runs).
 */
export async function startRedis({ dir, port: wantPort, unixSocket = false } = {}) {
  const d = dir ?? tmpDir('redis');
  const port = wantPort ?? (await freePort());
  const sockPath = path.join(d, 'redis.sock');
  const exe = which('redis-server');
  if (!exe) throw new Error('redis-server not found: run scripts/bootstrap');
  let p = null;
  const r = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    /** unix:// URL of its socket (only with {unixSocket: true}) */
    socketUrl: unixSocket ? `unix://${sockPath}` : undefined,
    dir: d,
    get pid() { return p?.pid; },
    get proc() { return p?.proc; },
    logs: () => p?.logs() ?? '',
    cmd: (...args) => redisCommand(port, ...args),
    pipeline: (cmds) => redisPipeline(port, cmds),
    async stop() { return p ? stopProc(p, 'SIGTERM') : 0; },
    async kill() { return p ? stopProc(p, 'SIGKILL') : 0; },
    async restart() {
      if (p && alive(p.pid)) await stopProc(p, 'SIGTERM');
      await start();
      return r;
    },
  };
  async function start() {
    // appendfsync always: tests kill Redis and then count what it had
    // acknowledged; with everysec a busy disk can delay the AOF write past
    // the reply (docs/reliability.md says what each setting loses).
    p = spawnTracked(`redis-server:${port}`, exe, [
      '--port', port, '--bind', '127.0.0.1', '--dir', d,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--logfile', '',
      ...(unixSocket ? ['--unixsocket', sockPath, '--unixsocketperm', '700'] : []),
    ]);
    await waitFor(async () => (await redisCommand(port, 'PING')) === 'PONG', {
      timeout: 10000 * SLOW, what: `redis-server on 127.0.0.1:${port} to answer PING`, proc: p,
    });
  }
  await start();
  return r;
}

// ---------------------------------------------------------------- crosstalkd

function configArgs(config = {}) {
  return Object.entries(config).map(([k, v]) => `--${k.replaceAll('_', '-')}=${v}`);
}

/**
 * Starts bin('crosstalkd') on 127.0.0.1 (a free port unless `port` is given)
 * and on a Unix socket in a temp dir (--unix-socket, as the shipped nginx
 * config reaches it; `unix: false` for none), with --redis-url, --www-root
 * <repo>/www and each `config` key as --key-with-dashes=value, then `args`;
 * waits until GET /healthz answers with any status.
 * Returns {port, url, socket, pid, proc, stop(), kill(), restart(), logs()};
 * startNginx proxies to `socket` when given the object, to the port when
 * given the number.
 * stop() sends SIGTERM, waits for the exit and resolves with the exit code
 * (128+signal if killed, 'timeout' if it had to be SIGKILLed).
 */
export async function startDaemon({ redisUrl, port, config = {}, env = {}, args = [], unix = true, startTimeout = 15000 * SLOW } = {}) {
  if (!redisUrl) throw new Error('startDaemon: redisUrl is required');
  const exe = requireBin('crosstalkd');
  const p0 = port ?? (await freePort());
  let socket = '';
  if (unix) {
    const sd = tmpDir('sock');
    fs.chmodSync(sd, 0o755); // nginx workers run as nobody when the tests run as root
    socket = path.join(sd, 'http.sock');
  }
  const argv = [`--port=${p0}`, '--bind=127.0.0.1', `--redis-url=${redisUrl}`, `--www-root=${path.join(REPO, 'www')}`,
    ...(socket ? [`--unix-socket=${socket}`] : []), ...configArgs(config), ...args];
  let p = null;
  const d = {
    port: p0,
    url: `http://127.0.0.1:${p0}`,
    socket,
    argv,
    get pid() { return p?.pid; },
    get proc() { return p?.proc; },
    get name() { return p?.name; },
    logs: () => p?.logs() ?? '',
    stop: () => stopProc(p, 'SIGTERM'),
    kill: () => stopProc(p, 'SIGKILL'),
    /** Stops it (SIGTERM) if it runs and starts it again with the same port and flags. */
    async restart() {
      if (p && alive(p.pid)) await stopProc(p, 'SIGTERM');
      await start();
      return d;
    },
  };
  async function start() {
    p = spawnTracked(`crosstalkd:${p0}`, exe, argv, { env: cleanEnv(env) });
    await waitFor(async () => (await http('GET', `${d.url}/healthz`, { timeout: 2000 })).status > 0, {
      timeout: startTimeout, interval: 50, what: `crosstalkd on port ${p0} to answer GET /healthz`, proc: p,
    });
  }
  await start();
  return d;
}

/**
 * Starts bin('crosstalk-floor') (src/bench/floor.c, the benchmark's floor)
 * on a free loopback port and waits for GET /healthz. Returns {port, url,
 * pid, logs(), stop()}.
 */
export async function startFloor() {
  const exe = requireBin('crosstalk-floor');
  const port = await freePort();
  const p = spawnTracked(`crosstalk-floor:${port}`, exe, [`--port=${port}`]);
  const f = { port, url: `http://127.0.0.1:${port}`, pid: p.pid, logs: () => p.logs(), stop: () => stopProc(p, 'SIGTERM') };
  await waitFor(async () => (await http('GET', `${f.url}/healthz`, { timeout: 2000 })).status > 0, {
    timeout: 10000 * SLOW, interval: 50, what: `crosstalk-floor on port ${port} to answer GET /healthz`, proc: p,
  });
  return f;
}

// ---------------------------------------------------------------- FastCGI pool

/**
 * Starts a pool of bin('crosstalk-fcgi') under spawn-fcgi on a Unix socket
 * in a temp dir: spawn-fcgi -s D/fcgi.sock -M 0666 -F children -P D/fcgi.pid
 * -- crosstalk-fcgi --redis-url=... [--mongo-uri=...] --log-file=D/fcgi.log
 * [config flags]. Returns {socket, dir, pids, stop(), logs()}.
 */
export async function startFcgi({ redisUrl, mongoUri, children = 2, config = {}, env = {} } = {}) {
  if (!redisUrl) throw new Error('startFcgi: redisUrl is required');
  const exe = requireBin('crosstalk-fcgi');
  const sf = which('spawn-fcgi');
  if (!sf) throw new Error('spawn-fcgi not found: run scripts/bootstrap');
  const d = tmpDir('fcgi');
  fs.chmodSync(d, 0o755); // nginx workers may run as another user
  const socket = path.join(d, 'fcgi.sock');
  const pidFile = path.join(d, 'fcgi.pid');
  const logFile = path.join(d, 'fcgi.log');
  const cfg = { log_file: logFile, ...config };
  const appArgs = [`--redis-url=${redisUrl}`, ...(mongoUri ? [`--mongo-uri=${mongoUri}`] : []), ...configArgs(cfg)];
  const r = runSync(sf, ['-s', socket, '-M', '0666', '-F', children, '-P', pidFile, '--', exe, ...appArgs], { env });
  if (r.status !== 0) {
    throw new Error(`spawn-fcgi exited with ${r.status ?? r.signal}: ${r.stdout}${r.stderr}`);
  }
  const pids = fs.readFileSync(pidFile, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) track(pid, `crosstalk-fcgi:${pid}`);
  const logs = () => {
    try {
      return fs.readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect(socket, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { timeout: 5000 * SLOW, what: `the FastCGI socket ${socket} to accept connections` });
  await sleep(50);
  const dead = pids.filter((pid) => !alive(pid));
  if (dead.length) throw new Error(`crosstalk-fcgi children ${dead.join(', ')} died right after start; log:\n${tail(logs())}`);
  return {
    socket,
    dir: d,
    pids,
    logs,
    async stop() {
      for (const pid of pids) killSync(pid, 'SIGTERM');
      try {
        await waitFor(() => !pids.some(alive), { timeout: 5000 * SLOW, what: 'the crosstalk-fcgi children to exit after SIGTERM' });
      } finally {
        for (const pid of pids) {
          killSync(pid, 'SIGKILL');
          untrack(pid);
        }
      }
    },
  };
}

// ---------------------------------------------------------------- nginx

/**
 * Renders nginx/crosstalk.standalone.conf.in (placeholders @PORT@, @PREFIX@,
 * @UPSTREAMS@ = a `server unix:S;` line for each daemon object with a socket,
 * `server 127.0.0.1:P;` for each port number, @FCGI_SOCKET@, @WWW_ROOT@) into a
 * temp dir D and runs `nginx -p D/ -c D/nginx.conf -e D/error.log` in the
 * foreground. Waits until its port accepts connections.
 * Returns {port, url, dir, pid, stop(), reload(), logs()}.
 */
export async function startNginx({ daemons = [], fcgiSocket = '', wwwRoot, port } = {}) {
  const exe = which('nginx');
  if (!exe) throw new Error('nginx not found: run scripts/bootstrap');
  const tpl = path.join(REPO, 'nginx', 'crosstalk.standalone.conf.in');
  if (!fs.existsSync(tpl)) throw new Error(`${tpl} is missing: startNginx renders it`);
  const d = tmpDir('nginx');
  fs.chmodSync(d, 0o755); // workers run as nobody when the tests run as root
  const p0 = port ?? (await freePort());
  const upstreams = daemons
    .map((x) => (typeof x === 'object' && x.socket ? `server unix:${x.socket};` : `server 127.0.0.1:${typeof x === 'object' ? x.port : x};`))
    .join('\n    ');
  const conf = fs.readFileSync(tpl, 'utf8')
    .replaceAll('@PORT@', String(p0))
    .replaceAll('@PREFIX@', d)
    .replaceAll('@UPSTREAMS@', upstreams || 'server 127.0.0.1:9;')
    .replaceAll('@FCGI_SOCKET@', fcgiSocket || path.join(d, 'no-fcgi.sock'))
    .replaceAll('@WWW_ROOT@', wwwRoot ?? path.join(REPO, 'www'));
  const confFile = path.join(d, 'nginx.conf');
  fs.writeFileSync(confFile, conf);
  // Whatever the template says, this nginx stays in the foreground (so it is
  // our child) and keeps its pid file under D.
  const globals = [];
  if (!/^\s*daemon\s/m.test(conf)) globals.push('daemon off;');
  if (!/^\s*pid\s/m.test(conf)) globals.push(`pid ${path.join(d, 'nginx.pid')};`);
  const errorLog = path.join(d, 'error.log');
  const args = ['-p', d + '/', '-c', confFile, '-e', errorLog, ...(globals.length ? ['-g', globals.join(' ')] : [])];
  const p = spawnTracked(`nginx:${p0}`, exe, args);
  const ownLogs = p.logs;
  const logs = () => {
    let s = ownLogs();
    try {
      s += fs.readFileSync(errorLog, 'utf8');
    } catch {
      /* not yet written */
    }
    return s;
  };
  p.logs = logs;
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p0 }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { timeout: 10000 * SLOW, what: `nginx to listen on 127.0.0.1:${p0}`, proc: p });
  return {
    port: p0,
    url: `http://127.0.0.1:${p0}`,
    dir: d,
    conf: confFile,
    pid: p.pid,
    proc: p.proc,
    logs,
    stop: () => stopProc(p, 'SIGQUIT'),
    kill: () => stopProc(p, 'SIGKILL'),
    /** SIGHUP to the master; resolves once every old worker has exited and new ones run. */
    async reload() {
      const old = childrenOf(p.pid);
      killSync(p.pid, 'SIGHUP');
      await waitFor(() => {
        const now = childrenOf(p.pid).filter(alive);
        return now.length > 0 && !old.some(alive) && now.some((x) => !old.includes(x));
      }, { timeout: 10000 * SLOW, what: 'nginx workers to be replaced after SIGHUP', proc: p });
    },
  };
}

// ---------------------------------------------------------------- FerretDB

/** Path of the ferretdb binary ($CT_FERRETDB, the bootstrap cache, or PATH), or null. */
export function ferretPath() {
  const cands = [
    process.env.CT_FERRETDB,
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'crosstalk', 'bin', 'ferretdb'),
    which('ferretdb'),
  ];
  for (const c of cands) {
    if (c && fs.existsSync(c)) return c;
  }
  return null;
}

/**
 * Starts FerretDB (MongoDB wire protocol, SQLite handler) on a free port in a
 * temp dir and waits until it accepts connections.
 * Returns {port, uri, dir, pid, stop(), kill(), logs()}.
 */
export async function startFerret() {
  const exe = ferretPath();
  if (!exe) throw new Error('ferretdb not found: run scripts/bootstrap --with-ferretdb, or set CT_FERRETDB');
  const d = tmpDir('ferret');
  fs.mkdirSync(path.join(d, 'fdb'));
  const port = await freePort();
  const debugPort = await freePort();
  const p = spawnTracked(`ferretdb:${port}`, exe, [
    '--handler=sqlite', `--sqlite-url=file:${d}/fdb/`, `--state-dir=${d}`,
    `--listen-addr=127.0.0.1:${port}`, `--debug-addr=127.0.0.1:${debugPort}`, '--telemetry=disable',
  ]);
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { timeout: 15000 * SLOW, what: `FerretDB to listen on 127.0.0.1:${port}`, proc: p });
  return {
    port,
    uri: `mongodb://127.0.0.1:${port}/crosstalk`,
    dir: d,
    pid: p.pid,
    proc: p.proc,
    logs: p.logs,
    stop: () => stopProc(p, 'SIGTERM'),
    kill: () => stopProc(p, 'SIGKILL'),
  };
}

// ---------------------------------------------------------------- HTTP clients

/**
 * One HTTP request over a fresh connection (no pooling, so a restarted
 * server never meets a stale socket), to the URL's host and port or to
 * `socketPath` (a Unix socket; the URL gives the path). `body`: an object/array is sent as
 * JSON, a string or Buffer as is. Resolves with
 * {status, headers, body (Buffer), text, json (undefined if not JSON)};
 * a connection error or timeout rejects, naming the request.
 */
export function http(method, url, { headers = {}, body, timeout = 10000 * SLOW, socketPath } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    let payload = null;
    const h = { ...headers };
    if (body !== undefined && body !== null) {
      if (Buffer.isBuffer(body) || typeof body === 'string') payload = Buffer.from(body);
      else {
        payload = Buffer.from(JSON.stringify(body));
        if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
      }
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) {
        h['Content-Length'] = payload.length;
      }
    }
    const t0 = Date.now();
    const req = nodeHttp.request({
      ...(socketPath ? { socketPath } : { host: u.hostname, port: u.port }), path: u.pathname + u.search, method, headers: h, agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const b = Buffer.concat(chunks);
        const text = b.toString('utf8');
        let json;
        try {
          json = text.length ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: b, text, json });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`${method} ${url}: response error after ${Date.now() - t0} ms: ${e.message}`));
      });
    });
    // Settle here, not through req's 'error' event: a request that ended
    // otherwise (an upgrade, a destroyed socket) may never emit one.
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${url}: no complete response within ${timeout} ms`));
    }, timeout);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${method} ${url} failed after ${Date.now() - t0} ms: ${e.message}`));
    });
    // A 101 answer: report it and close the upgraded socket (node closes it
    // anyway when nobody listens for 'upgrade', without a 'response').
    req.on('upgrade', (res, socket, head) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: head, text: '', json: undefined, upgraded: true });
    });
    if (payload) req.write(payload);
    req.end();
  });
}

/**
 * Skips test context `t` (returning true) when net.core.somaxconn caps
 * every listen backlog below `n`: a burst of `n` connections cannot all
 * wait in one accept queue on this host.
 */
export function skipUnlessBacklog(t, n) {
  const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  if (somaxconn > n) return false;
  t.skip(`net.core.somaxconn is ${somaxconn}, which caps any backlog below ${n}`);
  return true;
}

/**
 * Opens `n` TCP connections to 127.0.0.1:`port` at once. Resolves
 * {sockets, connected}: how many completed their handshake within `ms`. A
 * listener whose accept queue is full drops the SYN, and the client retries
 * only 1 s later; stop the server (SIGSTOP) first to let the queue alone
 * decide.
 */
export async function connectBurst(port, n, ms = 700) {
  const sockets = [];
  const done = await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    sockets.push(s);
    const timer = setTimeout(() => resolve(false), ms);
    s.once('connect', () => { clearTimeout(timer); resolve(true); });
    s.once('error', () => { clearTimeout(timer); resolve(false); });
  })));
  return { sockets, connected: done.filter(Boolean).length };
}

/** Writes `request` on each socket; resolves the answers, each read until the server closes. */
export function answersOf(sockets, request, { timeout = 30000 * SLOW } = {}) {
  return within(timeout, Promise.all(sockets.map((s) => new Promise((resolve) => {
    let got = '';
    s.on('data', (c) => { got += c; });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.write(request);
  }))), `${sockets.length} connections to be answered`);
}

/**
 * Writes `data` (string or Buffer) as is to 127.0.0.1:port and reads the
 * reply: until the connection closes, a complete Content-Length/chunked
 * response has arrived, or `timeout` ms. Resolves with
 * {status (0 if none), headers, text, json, raw, closed}; for malformed
 * requests that fetch or node:http refuse to send.
 */
export function rawHttp(port, data, { timeout = 5000 * SLOW } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let closed = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(parseRawResponse(buf, closed));
    };
    const timer = setTimeout(finish, timeout);
    sock.on('connect', () => sock.write(data));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (rawComplete(buf)) finish();
    });
    sock.on('end', () => { closed = true; finish(); });
    sock.on('close', () => { closed = true; finish(); });
    sock.on('error', () => { closed = true; finish(); });
  });
}

function rawComplete(buf) {
  const he = buf.indexOf('\r\n\r\n');
  if (he < 0) return false;
  const head = buf.toString('latin1', 0, he).toLowerCase();
  const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (cl) return buf.length >= he + 4 + Number(cl[1]);
  if (/\r\ntransfer-encoding:\s*chunked/.test(head)) return buf.indexOf('\r\n0\r\n\r\n', he) >= 0 || buf.indexOf('0\r\n\r\n', he + 4) === he + 4;
  return /^http\/1\.\d (1\d\d|204|304)/.test(head);
}

function parseRawResponse(buf, closed) {
  const raw = buf.toString('utf8');
  const he = buf.indexOf('\r\n\r\n');
  const out = { status: 0, headers: {}, text: '', json: undefined, raw, closed };
  if (he < 0) return out;
  const lines = buf.toString('latin1', 0, he).split('\r\n');
  const m = /^HTTP\/1\.\d (\d{3})/.exec(lines[0]);
  if (!m) return out;
  out.status = Number(m[1]);
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) out.headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = buf.subarray(he + 4);
  if (/chunked/i.test(out.headers['transfer-encoding'] ?? '')) {
    const parts = [];
    let p = 0;
    for (;;) {
      const e = body.indexOf('\r\n', p);
      if (e < 0) break;
      const n = parseInt(body.toString('latin1', p, e), 16);
      if (!(n > 0)) break;
      parts.push(body.subarray(e + 2, e + 2 + n));
      p = e + 2 + n + 2;
    }
    body = Buffer.concat(parts);
  } else if (out.headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(out.headers['content-length']));
  }
  out.text = body.toString('utf8');
  try {
    out.json = out.text ? JSON.parse(out.text) : undefined;
  } catch {
    out.json = undefined;
  }
  return out;
}

// ---------------------------------------------------------------- SSE

/**
 * Opens a raw Server-Sent Events stream with node:http (no reconnects), so a
 * test sees the wire: `id:`, `event:`, `retry:` fields and `:` comments.
 * Resolves when the response head arrives with
 * {status, headers, text (body if not 200), events: [{id, event, data, json, at}],
 *  comments: [{text, at}], retries: [ms], raw, ended, waitEvents(n, opts), waitComments(n, opts),
 *  waitEnd(opts), close()}.
 * `events` holds dispatched events (blocks with data) in arrival order.
 */
export function sseOpen(url, { headers = {}, timeout = 10000 * SLOW } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const t0 = Date.now();
    const req = nodeHttp.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'GET', agent: false,
      headers: { Accept: 'text/event-stream', ...headers },
    }, (res) => {
      clearTimeout(timer);
      const s = {
        url,
        status: res.statusCode,
        headers: res.headers,
        text: '',
        events: [],
        comments: [],
        retries: [],
        raw: '',
        ended: false,
        endedCleanly: false,
        close: () => { openClients.delete(s); req.destroy(); res.destroy(); },
      };
      openClients.add(s);
      let pending = '';
      let cur = { id: undefined, event: undefined, data: [] };
      const listeners = new Set();
      const notify = () => { for (const f of listeners) f(); };
      const line = (l) => {
        if (l === '') {
          if (cur.data.length) {
            const data = cur.data.join('\n');
            let json;
            try { json = JSON.parse(data); } catch { json = undefined; }
            s.events.push({ id: cur.id, event: cur.event ?? 'message', data, json, at: Date.now() });
          }
          cur = { id: undefined, event: undefined, data: [] };
          return;
        }
        if (l.startsWith(':')) {
          s.comments.push({ text: l.slice(1), at: Date.now() });
          return;
        }
        const i = l.indexOf(':');
        const field = i < 0 ? l : l.slice(0, i);
        let value = i < 0 ? '' : l.slice(i + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') cur.data.push(value);
        else if (field === 'id') cur.id = value;
        else if (field === 'event') cur.event = value;
        else if (field === 'retry') s.retries.push(Number(value));
      };
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        s.raw += chunk;
        if (res.statusCode !== 200) { s.text += chunk; return; }
        pending += chunk;
        const parts = pending.split(/\r\n|\r(?!$)|\n/);
        pending = parts.pop();
        for (const l of parts) line(l);
        notify();
      });
      res.on('end', () => { s.ended = true; s.endedCleanly = true; notify(); });
      res.on('close', () => { s.ended = true; notify(); });
      res.on('error', () => { s.ended = true; notify(); });
      const until = (pred, { timeout: ms = 5000 * SLOW, what } = {}) => new Promise((res2, rej2) => {
        const t1 = Date.now();
        const check = () => {
          if (pred()) { listeners.delete(check); clearTimeout(tm); res2(s); return true; }
          return false;
        };
        const tm = setTimeout(() => {
          listeners.delete(check);
          rej2(new Error(`timed out after ${Date.now() - t1} ms waiting for ${what} on SSE ${url}` +
            ` (have ${s.events.length} events, ${s.comments.length} comments, ended=${s.ended}; last bytes: ${JSON.stringify(s.raw.slice(-300))})`));
        }, ms);
        if (!check()) listeners.add(check);
      });
      /** Waits until at least n events (optionally only those passing `filter`) have arrived; resolves with them. */
      s.waitEvents = async (n, { filter = () => true, timeout: ms, what } = {}) => {
        await until(() => s.events.filter(filter).length >= n, { timeout: ms, what: what ?? `${n} event(s)` });
        return s.events.filter(filter);
      };
      s.waitComments = (n, opts = {}) => until(() => s.comments.length >= n, { ...opts, what: opts.what ?? `${n} comment line(s)` });
      s.waitEnd = (opts = {}) => until(() => s.ended, { ...opts, what: opts.what ?? 'the stream to end' });
      s.messages = () => s.events.filter((e) => e.event === 'message');
      resolve(s);
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`SSE GET ${url}: no response head within ${timeout} ms`));
    }, timeout);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`SSE GET ${url} failed after ${Date.now() - t0} ms: ${e.message}`));
    });
    req.end();
  });
}

/**
 * A real browser-style EventSource (npm `eventsource` v2: it reconnects by
 * itself after `retry` ms and sends Last-Event-ID). Collects events of the
 * given types. Returns {es, events: [{type, id, data, json}], errors, opens,
 * waitOpen(opts), waitEvents(n, opts), close()}.
 */
export async function eventSource(url, { headers = {}, types = ['message', 'typing', 'presence'] } = {}) {
  const { default: EventSource } = await import('eventsource');
  const es = new EventSource(url, { headers });
  const c = { es, events: [], errors: [], opens: 0, url };
  const listeners = new Set();
  const notify = () => { for (const f of listeners) f(); };
  for (const t of types) {
    es.addEventListener(t, (ev) => {
      let json;
      try { json = JSON.parse(ev.data); } catch { json = undefined; }
      c.events.push({ type: t, id: ev.lastEventId, data: ev.data, json, at: Date.now() });
      notify();
    });
  }
  es.addEventListener('open', () => { c.opens++; notify(); });
  es.addEventListener('error', (e) => { c.errors.push(e); notify(); });
  const until = (pred, ms, what) => new Promise((resolve, reject) => {
    const t0 = Date.now();
    const check = () => {
      if (pred()) { listeners.delete(check); clearTimeout(tm); resolve(); return true; }
      return false;
    };
    const tm = setTimeout(() => {
      listeners.delete(check);
      reject(new Error(`timed out after ${Date.now() - t0} ms waiting for ${what} on EventSource ${url}` +
        ` (have ${c.events.length} events, ${c.opens} opens, ${c.errors.length} errors` +
        `${c.errors.length ? ': ' + JSON.stringify(c.errors.at(-1)?.message ?? c.errors.at(-1)?.status) : ''})`));
    }, ms);
    if (!check()) listeners.add(check);
  });
  c.waitOpen = ({ count = 1, timeout = 5000 * SLOW } = {}) => until(() => c.opens >= count, timeout, `${count} open(s)`);
  c.waitEvents = async (n, { filter = () => true, timeout = 5000 * SLOW, what } = {}) => {
    await until(() => c.events.filter(filter).length >= n, timeout, what ?? `${n} event(s)`);
    return c.events.filter(filter);
  };
  c.messages = () => c.events.filter((e) => e.type === 'message');
  c.close = () => es.close();
  openClients.add(c);
  const close0 = c.close;
  c.close = () => { openClients.delete(c); close0(); };
  return c;
}

// ---------------------------------------------------------------- API helpers

let userSeq = 0;

/** A fresh valid user name (unique per run). */
export function uniqueName(prefix = 'u') {
  return `${prefix}${process.pid % 10000}_${Date.now() % 1000000}_${++userSeq}`.slice(0, 32);
}

/** A fresh valid room name. */
export function uniqueRoom(prefix = 'r') {
  return `${prefix}-${process.pid % 10000}-${Date.now() % 1000000}-${++userSeq}`.toLowerCase().slice(0, 64);
}

/** POST /api/register; resolves with {name, token} or throws with the answer. */
export async function register(baseUrl, name = uniqueName()) {
  const r = await http('POST', `${baseUrl}/api/register`, { body: { name } });
  if (r.status !== 201 || !r.json?.token) {
    throw new Error(`register ${name} at ${baseUrl}: expected 201 with a token, got ${r.status} ${r.text}`);
  }
  return { name: r.json.name, token: r.json.token };
}

export const bearer = (token) => ({ Authorization: `Bearer ${token}` });

/** POST /api/rooms/{room}/messages as `user` ({token}); resolves with the http() result. */
export function send(baseUrl, room, user, text, opts = {}) {
  return http('POST', `${baseUrl}/api/rooms/${room}/messages`, { headers: bearer(user.token), body: { text }, ...opts });
}

/** Like send() but throws unless the answer is 201; resolves with the stored event. */
export async function sendOk(baseUrl, room, user, text) {
  const r = await send(baseUrl, room, user, text);
  if (r.status !== 201) throw new Error(`send to ${room} at ${baseUrl}: expected 201, got ${r.status} ${r.text}`);
  return r.json;
}

/** GET /api/rooms/{room}/messages with query `q` ({since, before, limit}). */
export function history(baseUrl, room, user, q = {}) {
  const qs = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined)).toString();
  return http('GET', `${baseUrl}/api/rooms/${room}/messages${qs ? '?' + qs : ''}`, { headers: bearer(user.token) });
}

/** CPU time (user+system, in seconds) a process has used so far, from /proc. */
export function cpuSeconds(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
const CLK_TCK = (() => {
  try {
    return Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Compares two Redis stream ids ("ms-seq"): negative, 0 or positive. */
export function compareIds(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if ((as ?? 0n) !== (bs ?? 0n)) return (as ?? 0n) < (bs ?? 0n) ? -1 : 1;
  return 0;
}

/** The Redis key of a room's message stream (DESIGN.md). */
export const roomKey = (room) => `ct:room:{${room}}:log`;

/** Config for test daemons: rate limits high enough that a suite never trips them by accident. */
export const RELAXED = { rate_register_per_min: 1000000, rate_send_per_sec: 1000000 };

/**
 * Asserts that an http()/rawHttp() answer is the JSON error of DESIGN.md:
 * status `status` (or one of an array), Content-Type JSON, body
 * {"error": code (or one of an array), "message": non-empty string}.
 */
export function assertError(res, status, code, what = '') {
  const ctx = `${what ? what + ': ' : ''}got ${res.status} ${JSON.stringify(res.text?.slice(0, 300))}`;
  const statuses = [].concat(status);
  const codes = [].concat(code);
  if (!statuses.includes(res.status)) throw new Error(`expected status ${statuses.join(' or ')}; ${ctx}`);
  const ct = res.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(ct)) throw new Error(`expected Content-Type application/json, got ${JSON.stringify(ct)}; ${ctx}`);
  if (!res.json || typeof res.json !== 'object') throw new Error(`expected a JSON object body; ${ctx}`);
  if (!codes.includes(res.json.error)) throw new Error(`expected "error": ${codes.map((c) => JSON.stringify(c)).join(' or ')}; ${ctx}`);
  if (typeof res.json.message !== 'string' || res.json.message.length === 0) {
    throw new Error(`expected a non-empty "message" string; ${ctx}`);
  }
  // docs/api.md: every 503, from either program, says when to come back
  if (res.status === 503 && res.headers['retry-after'] !== '1') {
    throw new Error(`a 503 without Retry-After: 1 (got ${JSON.stringify(res.headers['retry-after'])}); ${ctx}`);
  }
}

// The append script every writer runs: the body of src/common/keys.c's
// append_body[] C string, unescaped, for tests that write streams exactly
// as the daemon leaves them (EVAL APPEND_LUA 2 roomKey(room) ct:rooms room
// from text channel).
export const APPEND_LUA = (() => {
  const src = fs.readFileSync(path.join(REPO, 'src/common/keys.c'), 'utf8');
  const m = /static const char append_body\[\]\s*=((?:\s*"(?:[^"\\]|\\.)*")+)\s*;/.exec(src);
  if (!m) throw new Error('src/common/keys.c: no `static const char append_body[] = "...";` to take the append script from');
  const body = [...m[1].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]).join('');
  return body.replace(/\\([nt"\\])/g, (_, c) => ({ n: '\n', t: '\t', '"': '"', '\\': '\\' })[c]);
})();

/** Can 127.0.0.1:port be bound right now? */
export function canBind(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A free port P with P+1..P+n-1 free too and none of them in `avoid` (the shards of a demo). */
export async function freePortRun(n, avoid = []) {
  for (let tries = 0; tries < 50; tries++) {
    const p = await freePort();
    if (p + n - 1 >= 65536 || avoid.some((o) => o >= p && o < p + n)) continue;
    let ok = true;
    for (let i = 1; i < n && ok; i++) ok = await canBind(p + i);
    if (ok) return p;
  }
  throw new Error(`freePortRun: no ${n} free ports in a row in 50 tries`);
}

/**
 * The shard (0..n-1) of a room name, or of a user name lower-cased, in a
 * redis_url list of n shards: docs/sharding.md's FNV-1a 64 then jump
 * consistent hash (a JavaScript copy of src/common/shard.c).
 */
export function shardOf(name, n) {
  let h = 14695981039346656037n;
  for (const b of Buffer.from(name, 'utf8')) {
    h ^= BigInt(b);
    h = (h * 1099511628211n) & 0xffffffffffffffffn;
  }
  let b = -1n;
  let j = 0n;
  while (j < BigInt(n)) {
    b = j;
    h = (h * 2862933555777941757n + 1n) & 0xffffffffffffffffn;
    j = BigInt(Math.floor(Number(b + 1n) * (2 ** 31 / Number((h >> 33n) + 1n))));
  }
  return Number(b);
}
