// unix_socket.test.mjs - crosstalkd's unix_socket (--unix-socket PATH): the
// whole API on a Unix socket beside the TCP port, for an nginx on the same
// host (the shipped nginx config proxies to it):
//   - the socket file is mode 0666 and serves what the port serves;
//   - X-Real-IP over it is believed only with "unix" in trusted_proxies,
//     and "unix" trusts no TCP peer;
//   - SIGTERM removes the file and frees the path; a file left by a killed
//     daemon is replaced, one another daemon listens on is not, nor one
//     whose PATH.lock another holds, a symbolic link or a file that is no
//     socket; a stale one that cannot be removed is named with the reason;
//     a path too long for a socket stops start-up, naming the limit;
//   - behind the shipped nginx config over it, with the shipped defaults,
//     an SSE stream, a WebSocket and a long poll get the same message.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import {
  assertError, bearer, bin, cleanup, freePort, http, register, sendOk, sseOpen, startDaemon, startNginx,
  startRedis, tmpDir, uniqueName, uniqueRoom, waitFor, which,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const sockets = new Set();

let redisP = null;
const redis = () => (redisP ??= startRedis());

after(async () => {
  for (const s of sockets) s.terminate?.() ?? s.close?.();
  await cleanup();
});

// crosstalkd started by hand and expected to stop at once: its exit and stderr.
async function startFails(args) {
  const r = await redis();
  return spawnSync(bin('crosstalkd'), [`--port=${await freePort()}`, '--bind=127.0.0.1', `--redis-url=${r.url}`, ...args],
    { encoding: 'utf8', timeout: 10000 * SLOW });
}

describe('unix_socket', () => {
  test('serves the API on a socket file of mode 0666, beside the port', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    const st = fs.lstatSync(d.socket);
    assert.ok(st.isSocket(), `${d.socket} is a socket`);
    assert.equal(st.mode & 0o777, 0o666, `mode ${(st.mode & 0o777).toString(8)}`);
    const health = await http('GET', 'http://localhost/healthz', { socketPath: d.socket });
    assert.equal(health.status, 200, health.text);
    const name = uniqueName('ux');
    const reg = await http('POST', 'http://localhost/api/register', { socketPath: d.socket, body: { name } });
    assert.equal(reg.status, 201, reg.text);
    const room = uniqueRoom('ux');
    const sent = await http('POST', `http://localhost/api/rooms/${room}/messages`,
      { socketPath: d.socket, headers: bearer(reg.json.token), body: { text: 'over the socket' } });
    assert.equal(sent.status, 201, sent.text);
    const got = await http('GET', `${d.url}/api/rooms/${room}/messages`, { headers: bearer(reg.json.token) });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json.events.map((m) => m.text), ['over the socket'], 'the message sent over the socket, read over TCP');
  });

  const registerAs = (d, ip, via) => http('POST', via === 'unix' ? 'http://localhost/api/register' : `${d.url}/api/register`,
    { socketPath: via === 'unix' ? d.socket : undefined, body: { name: uniqueName('ip') }, headers: { 'X-Real-IP': ip } });

  test('X-Real-IP over the socket is ignored unless trusted_proxies names "unix"', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { trusted_proxies: '127.0.0.1', rate_register_per_min: 2 } });
    assert.equal((await registerAs(d, '203.0.113.1', 'unix')).status, 201);
    assert.equal((await registerAs(d, '203.0.113.2', 'unix')).status, 201);
    assertError(await registerAs(d, '203.0.113.3', 'unix'), 429, 'rate_limited',
      'a third registration over the socket, another X-Real-IP each time, unix not trusted');
    assert.match(d.logs(), /warn: trusted_proxies names addresses but not unix: X-Real-IP on unix:.* is ignored/,
      'no warning that a proxy on the socket would put every client under one address');
    // the TCP peer 127.0.0.1 is trusted: its X-Real-IP counts
    assert.equal((await registerAs(d, '203.0.113.3', 'tcp')).status, 201);
  });

  test('with trusted_proxies = unix each X-Real-IP over the socket has its own limit, and no TCP peer is trusted', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { trusted_proxies: 'unix', rate_register_per_min: 2 } });
    for (let i = 1; i <= 4; i++) assert.equal((await registerAs(d, `203.0.113.${i}`, 'unix')).status, 201, `as 203.0.113.${i}`);
    assert.equal((await registerAs(d, '198.51.100.7', 'unix')).status, 201);
    assert.equal((await registerAs(d, '198.51.100.7', 'unix')).status, 201);
    assertError(await registerAs(d, '198.51.100.7', 'unix'), 429, 'rate_limited', 'the 3rd registration as 198.51.100.7');
    assert.equal((await registerAs(d, '192.0.2.1', 'tcp')).status, 201);
    assert.equal((await registerAs(d, '192.0.2.2', 'tcp')).status, 201);
    assertError(await registerAs(d, '192.0.2.3', 'tcp'), 429, 'rate_limited',
      'a third registration from 127.0.0.1 over TCP, another X-Real-IP each time');
    assert.doesNotMatch(d.logs(), /trusted_proxies names addresses but not unix/);
  });

  test('SIGTERM removes the socket file; one left by a killed daemon is replaced at the next start', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    assert.equal(await d.stop(), 0);
    assert.equal(fs.existsSync(d.socket), false, 'the socket file is gone after SIGTERM');
    await d.restart();
    await d.kill();
    assert.ok(fs.lstatSync(d.socket).isSocket(), 'a killed daemon leaves its socket file');
    await d.restart();
    assert.match(d.logs(), /was left by a process that is gone: removed/);
    assert.equal((await http('GET', 'http://localhost/healthz', { socketPath: d.socket })).status, 200);
  });

  test('a socket another process listens on stops start-up, and that process keeps it', async () => {
    const sock = path.join(tmpDir('ux'), 'other.sock');
    const other = net.createServer((c) => c.once('data', () => c.end('HTTP/1.1 204 No Content\r\n\r\n')));
    await new Promise((resolve) => other.listen(sock, resolve));
    try {
      const res = await startFails([`--unix-socket=${sock}`]);
      assert.notEqual(res.status, 0, `crosstalkd started on ${sock}: ${res.stderr}`);
      assert.match(res.stderr, /cannot listen on unix:.*: another process listens on it/, res.stderr);
      assert.equal((await http('GET', 'http://localhost/', { socketPath: sock })).status, 204, 'the other still answers on it');
    } finally {
      other.close();
    }
  });

  test('a daemon starting on a path another holds the lock of is refused, so two at once cannot take each other\'s socket', async () => {
    // bound and not yet listening, a socket refuses connections as a stale
    // one does: PATH.lock, held while a daemon accepts, tells them apart
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    assert.ok(fs.existsSync(`${d.socket}.lock`), 'the lock file beside the socket');
    let res = await startFails([`--unix-socket=${d.socket}`]);
    assert.notEqual(res.status, 0, res.stderr);
    assert.match(res.stderr, /cannot listen on unix:.*: another crosstalkd holds .*http\.sock\.lock/, res.stderr);
    assert.equal((await http('GET', 'http://localhost/healthz', { socketPath: d.socket })).status, 200, 'the first still answers on it');
    // a lock held (here by flock(1)) with a stale socket file beside it: the file is not touched
    const dir = tmpDir('ux');
    fs.chmodSync(dir, 0o755);
    const sock = path.join(dir, 'http.sock');
    const holder = await startDaemon({ redisUrl: r.url, args: [`--unix-socket=${sock}`], unix: false });
    await holder.kill();
    const ino = fs.lstatSync(sock).ino;
    // flock(1) and the sleep it runs both hold the lock: a group of their own, killed together
    const flock = spawn('flock', [`${sock}.lock`, 'sleep', '60'], { stdio: 'ignore', detached: true });
    try {
      await waitFor(() => spawnSync('flock', ['-n', `${sock}.lock`, 'true']).status !== 0, { timeout: 5000 * SLOW, what: 'flock(1) to hold the lock' });
      res = await startFails([`--unix-socket=${sock}`]);
      assert.notEqual(res.status, 0, res.stderr);
      assert.match(res.stderr, /another crosstalkd holds/, res.stderr);
      assert.equal(fs.lstatSync(sock).ino, ino, 'the socket file under a held lock was removed');
    } finally {
      process.kill(-flock.pid, 'SIGKILL');
    }
    await waitFor(() => spawnSync('flock', ['-n', `${sock}.lock`, 'true']).status === 0, { timeout: 5000 * SLOW, what: 'the lock to be free' });
    // SIGTERM frees the path at once: the next daemon takes it
    await holder.restart();
    assert.match(holder.logs(), /was left by a process that is gone: removed/);
    assert.equal(await holder.stop(), 0);
    await holder.restart();
    assert.equal((await http('GET', 'http://localhost/healthz', { socketPath: sock })).status, 200);
  });

  test('a symbolic link at the path stops start-up and its target is left as it was', async () => {
    const dir = tmpDir('ux');
    const target = path.join(dir, 'target');
    fs.writeFileSync(target, 'keep me\n', { mode: 0o600 });
    const link = path.join(dir, 'http.sock');
    fs.symlinkSync(target, link);
    const res = await startFails([`--unix-socket=${link}`]);
    assert.notEqual(res.status, 0, res.stderr);
    assert.match(res.stderr, /the file exists and is not a socket \(a symbolic link\)/, res.stderr);
    assert.equal(fs.readFileSync(target, 'utf8'), 'keep me\n');
    assert.equal(fs.statSync(target).mode & 0o777, 0o600, 'the target\'s mode');
  });

  test('a stale socket that cannot be removed stops start-up with the reason of the removal', async (t) => {
    if (process.getuid?.() !== 0 || !which('setpriv')) return t.skip('needs root and setpriv(1) to run crosstalkd as nobody');
    const r = await redis();
    const dir = tmpDir('ux');
    fs.chmodSync(dir, 0o1777); // sticky, like /tmp: nobody may not remove root's file
    const sock = path.join(dir, 'http.sock');
    // root's socket, bound and closed: left behind as a killed process leaves it
    const py = spawnSync('python3', ['-c', 'import os,socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666)', sock]);
    assert.equal(py.status, 0, String(py.stderr));
    const res = spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', bin('crosstalkd'),
      `--port=${await freePort()}`, '--bind=127.0.0.1', `--redis-url=${r.url}`, `--unix-socket=${sock}`],
    { encoding: 'utf8', timeout: 10000 * SLOW });
    assert.notEqual(res.status, 0, res.stderr);
    assert.match(res.stderr, /it was left by a process that is gone, and removing it failed: Operation not permitted/, res.stderr);
  });

  test('a file that is not a socket stops start-up and is left as it was', async () => {
    const f = path.join(tmpDir('ux'), 'not-a-socket');
    fs.writeFileSync(f, 'keep me\n');
    const res = await startFails([`--unix-socket=${f}`]);
    assert.notEqual(res.status, 0, res.stderr);
    assert.match(res.stderr, /cannot listen on unix:.*: the file exists and is not a socket/, res.stderr);
    assert.equal(fs.readFileSync(f, 'utf8'), 'keep me\n');
  });

  test('a path too long for a socket, or in a missing directory, stops start-up, saying why', async () => {
    const long = `/tmp/${'x'.repeat(120)}.sock`;
    let res = await startFails([`--unix-socket=${long}`]);
    assert.notEqual(res.status, 0, res.stderr);
    assert.match(res.stderr, /the path is 130 bytes, longer than a socket's may be \(107\)/, res.stderr);
    res = await startFails([`--unix-socket=${path.join(tmpDir('ux'), 'no', 'such', 'dir.sock')}`]);
    assert.notEqual(res.status, 0, res.stderr);
    assert.match(res.stderr, /cannot listen on unix:.*No such file or directory/, res.stderr);
    res = await startFails(['--trusted-proxies=unix,localhost']);
    assert.notEqual(res.status, 0, res.stderr);
    assert.match(res.stderr, /trusted_proxies: "localhost" is not an IPv4 or IPv6 address, nor "unix"/, res.stderr);
  });
});

describe('behind the shipped nginx config over the socket, shipped defaults', () => {
  test('an SSE stream, a WebSocket and a long poll all get the message sent through nginx', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    const ng = await startNginx({ daemons: [d] });
    const conf = fs.readFileSync(path.join(ng.dir, 'nginx.conf'), 'utf8');
    assert.match(conf, new RegExp(`server unix:${d.socket.replaceAll('.', '\\.')};`), 'nginx proxies to the socket');
    const base = `${ng.url}/d`;
    const user = await register(base);
    const room = uniqueRoom('ux');
    const first = await sendOk(base, room, user, 'before the streams');
    // from 0-0: the replay brings `first`, then the stream goes on live
    const sse = await sseOpen(`${base}/api/rooms/${room}/events?since=0-0&token=${user.token}`);
    sockets.add(sse);
    assert.equal(sse.status, 200);
    const ws = new WebSocket(`ws://127.0.0.1:${ng.port}/api/rooms/${room}/ws?since=0-0&token=${user.token}`);
    sockets.add(ws);
    const wsEvents = [];
    ws.on('message', (b) => wsEvents.push(JSON.parse(b.toString('utf8'))));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    await waitFor(() => sse.events.some((e) => e.id === first.id) && wsEvents.some((e) => e.id === first.id),
      { timeout: 5000 * SLOW, what: 'the first message replayed on both streams' });
    const poll = http('GET', `${base}/api/rooms/${room}/poll?since=${first.id}`, { headers: bearer(user.token), timeout: 40000 * SLOW });
    const ev = await sendOk(base, room, user, 'through nginx over unix');
    const answered = await poll;
    assert.equal(answered.status, 200, answered.text);
    assert.deepEqual(answered.json.events.map((m) => m.id), [ev.id], 'the long poll');
    await waitFor(() => sse.events.some((e) => e.id === ev.id), { timeout: 5000 * SLOW, what: 'the message on the SSE stream' });
    await waitFor(() => wsEvents.some((e) => e.id === ev.id), { timeout: 5000 * SLOW, what: 'the message on the WebSocket' });
    ws.close();
    sse.close();
  });
});
