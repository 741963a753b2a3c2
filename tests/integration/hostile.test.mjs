// hostile.test.mjs - crosstalkd under hostile load (issue 12, items 1, 2, 3,
// 7 and 8), each attack bounded in count and time and on loopback:
//   - out of file descriptors (a low RLIMIT_NOFILE, 300 idle connections;
//     then the limit lowered under a running daemon so that accept() fails
//     with EMFILE): CPU and log stay bounded, /healthz answers afterwards;
//     a max_connections the limit cannot hold stops start-up, naming both;
//   - max_connections counts TCP connections: past it a connection is
//     refused at once with a JSON 503, the open ones unharmed;
//   - header_timeout bounds every request head of a keep-alive connection;
//   - X-Real-IP is believed only from trusted_proxies;
//   - request smuggling shapes, and a NUL anywhere in a head, get 400
//     (a bad chunk size too) and the connection closed, and
//     nothing of them is stored.
// Each asserts that /healthz keeps answering within 1 s where it can.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  REPO, RELAXED, assertError, bearer, bin, cleanup, cpuSeconds, freePort, history, http, rawHttp, register,
  sendOk, sleep, sseOpen, startDaemon, startRedis, uniqueName, uniqueRoom, waitFor, which,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const own = new Set(); // processes started here (not through the harness)
const sockets = new Set();
const watches = new Set(); // healthWatch loops, stopped by after() if a test failed

let redisP = null;
const redis = () => (redisP ??= startRedis());

after(async () => {
  for (const w of watches) await w.stop();
  for (const s of sockets) s.destroy();
  for (const p of own) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await cleanup();
});
process.on('exit', () => {
  for (const p of own) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/**
 * Starts crosstalkd through `prlimit --nofile=SOFT:HARD` (prlimit execs it:
 * same pid) with the harness's usual flags; waits for /healthz.
 * Returns {pid, port, url, log(), stop()}.
 */
async function startLimited(nofile, config = {}) {
  const r = await redis();
  const port = await freePort();
  const argv = [`--nofile=${nofile}`, bin('crosstalkd'), `--port=${port}`, '--bind=127.0.0.1',
    `--redis-url=${r.url}`, `--www-root=${path.join(REPO, 'www')}`,
    ...Object.entries(config).map(([k, v]) => `--${k.replaceAll('_', '-')}=${v}`)];
  const p = spawn(which('prlimit'), argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  own.add(p);
  let log = '';
  p.stdout.on('data', (c) => { log += c; });
  p.stderr.on('data', (c) => { log += c; });
  const d = {
    pid: p.pid, port, url: `http://127.0.0.1:${port}`, proc: p, name: `crosstalkd:${port} (prlimit ${nofile})`,
    log: () => log,
    logs: () => log,
    async stop() {
      p.kill('SIGTERM');
      await waitFor(() => p.exitCode !== null || p.signalCode !== null, { timeout: 8000, what: `${d.name} to exit on SIGTERM` });
    },
  };
  await waitFor(async () => (await http('GET', `${d.url}/healthz`, { timeout: 2000 })).status > 0,
    { timeout: 15000 * SLOW, interval: 50, what: `${d.name} to answer GET /healthz`, proc: d });
  return d;
}

/** A connection to `port` that keeps what it receives (`data`) and when it closed (`closedAt`). */
async function watched(port) {
  const w = { s: net.connect({ host: '127.0.0.1', port }), data: '', closedAt: null };
  sockets.add(w.s);
  w.s.on('data', (b) => { w.data += b.toString('latin1'); });
  w.s.on('close', () => { w.closedAt = Date.now(); });
  w.s.on('error', () => {});
  await new Promise((res) => w.s.once('connect', res));
  return w;
}

/**
 * Writes `data` to 127.0.0.1:port and reads until the server closes the
 * connection (or `timeout` ms). Resolves with {status, headers, text, json,
 * raw, closed, ms}: `closed` is false when the connection was still open.
 */
function rawUntilClose(port, data, { timeout = 3000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ host: '127.0.0.1', port });
    sockets.add(s);
    let buf = '';
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      sockets.delete(s);
      const out = { status: 0, headers: {}, text: '', json: undefined, raw: buf, closed, ms: Date.now() - t0 };
      const he = buf.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.\d (\d{3})/.exec(buf);
      if (m && he > 0) {
        out.status = Number(m[1]);
        for (const l of buf.slice(0, he).split('\r\n').slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) out.headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        const len = Number(out.headers['content-length'] ?? buf.length - he - 4);
        out.text = Buffer.from(buf.slice(he + 4), 'latin1').subarray(0, len).toString('utf8');
        try { out.json = JSON.parse(out.text); } catch { /* not JSON */ }
      }
      resolve(out);
    };
    const timer = setTimeout(() => finish(false), timeout);
    s.on('connect', () => s.write(data));
    s.on('data', (b) => { buf += b.toString('latin1'); });
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
  });
}

const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

/** Opens n TCP connections that send nothing; resolves once each is connected or failed. */
async function idleConnections(port, n) {
  const conns = [];
  await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const c = { s, data: '', closed: false, error: null };
    sockets.add(s);
    conns.push(c);
    s.on('data', (b) => { c.data += b.toString('latin1'); });
    s.on('close', () => { c.closed = true; });
    s.on('error', (e) => { c.error = e.message; resolve(); });
    s.on('connect', resolve);
  })));
  return conns;
}

function closeAll(conns) {
  for (const c of conns) {
    c.s.destroy();
    sockets.delete(c.s);
  }
}

/**
 * Asks GET /healthz every 200 ms until stop() and records how long each took
 * and what it answered; stop() resolves with {n, maxMs, statuses, failures}.
 */
function healthWatch(url, { okStatuses = [200] } = {}) {
  let running = true;
  const out = { n: 0, maxMs: 0, statuses: {}, failures: [] };
  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      try {
        const r = await http('GET', `${url}/healthz`, { timeout: 3000 });
        const ms = Date.now() - t0;
        out.n++;
        out.maxMs = Math.max(out.maxMs, ms);
        out.statuses[r.status] = (out.statuses[r.status] ?? 0) + 1;
        if (!okStatuses.includes(r.status)) out.failures.push(`${r.status} ${r.text.slice(0, 120)}`);
        else if (r.status !== 200) assertError(r, r.status, 'unavailable', 'GET /healthz refused');
      } catch (e) {
        out.n++;
        out.failures.push(e.message);
      }
      await sleep(200);
    }
  })();
  const w = {
    async stop() {
      running = false;
      watches.delete(w);
      await loop;
      return out;
    },
  };
  watches.add(w);
  return w;
}

function assertHealthy(h, what) {
  assert.ok(h.n >= 2, `${what}: only ${h.n} /healthz probes ran`);
  assert.deepEqual(h.failures, [], `${what}: /healthz failed: ${h.failures.slice(0, 3).join('; ')}`);
  assert.ok(h.maxMs < 1000, `${what}: /healthz took up to ${h.maxMs} ms`);
}

// ------------------------------------------------------------ file descriptors

describe('out of file descriptors', () => {
  test('RLIMIT_NOFILE 256:256, max_connections 200, 300 idle connections: 200 held, the rest refused, CPU and log bounded', async () => {
    const d = await startLimited('256:256', { max_connections: 200 });
    assert.match(d.log(), /file descriptors: 256 allowed, 232 needed for max_connections 200/, d.log());
    const log0 = d.log().length;
    const cpu0 = cpuSeconds(d.pid);
    const t0 = Date.now();
    const health = healthWatch(d.url, { okStatuses: [200, 503] });
    const conns = await idleConnections(d.port, 300);
    await waitFor(() => conns.filter((c) => c.closed).length >= 100,
      { timeout: 5000, what: 'the 100 connections past max_connections to be refused and closed' });
    await sleep(2000);
    const h = await health.stop();
    const cpu = cpuSeconds(d.pid) - cpu0;
    const secs = (Date.now() - t0) / 1000;
    const refused = conns.filter((c) => c.data.startsWith('HTTP/1.1 503 '));
    const held = conns.filter((c) => !c.closed);
    assert.ok(held.length <= 200 && held.length >= 190, `${held.length} of 300 connections held (max_connections 200)`);
    assert.ok(refused.length >= 100, `${refused.length} connections got the 503`);
    assert.match(refused[0].data, /\r\n\r\n\{"error":"unavailable","message":"[^"]+max_connections \(200\)/);
    assert.ok(fdCount(d.pid) <= 256, `crosstalkd holds ${fdCount(d.pid)} fds`);
    assert.ok(cpu < 0.5 * secs, `crosstalkd used ${cpu.toFixed(2)} s of CPU in ${secs.toFixed(1)} s`);
    const grew = d.log().length - log0;
    assert.ok(grew < 4096, `the log grew by ${grew} bytes:\n${d.log().slice(log0, log0 + 2000)}`);
    assertHealthy(h, 'with 200 idle connections held');

    closeAll(conns);
    const c0 = Date.now();
    await waitFor(async () => (await http('GET', `${d.url}/healthz`, { timeout: 1000 })).status === 200,
      { timeout: 1500, interval: 50, what: 'GET /healthz to answer 200 once the idle connections closed' });
    assert.ok(Date.now() - c0 < 1500);
    await waitFor(() => fdCount(d.pid) < 40, { timeout: 3000, what: `crosstalkd's fds to drop (now ${fdCount(d.pid)})` });
    await d.stop();
  });

  test('accept() failing with EMFILE (limit lowered under the running daemon) pauses accepting: no spin, no log flood; serves again after', async () => {
    const d = await startLimited('256:256', { max_connections: 200 });
    const held = await idleConnections(d.port, 100);
    await waitFor(() => fdCount(d.pid) >= 100, { timeout: 3000, what: `crosstalkd to hold 100 connections (fds ${fdCount(d.pid)})` });
    const r = spawnSync(which('prlimit'), ['--pid', String(d.pid), '--nofile=64:256'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `prlimit --pid: ${r.stderr}`);
    const log0 = d.log().length;
    const cpu0 = cpuSeconds(d.pid);
    const t0 = Date.now();
    const more = await idleConnections(d.port, 50); // stay in the backlog: no fd to accept them with
    await sleep(3000);
    const cpu = cpuSeconds(d.pid) - cpu0;
    const secs = (Date.now() - t0) / 1000;
    const added = d.log().slice(log0);
    assert.ok(cpu < 0.3 * secs, `crosstalkd used ${cpu.toFixed(2)} s of CPU in ${secs.toFixed(1)} s out of fds`);
    assert.ok(added.length < 2048, `the log grew by ${added.length} bytes out of fds:\n${added.slice(0, 2000)}`);
    assert.match(added, /accept: Too many open files .*pausing accepts/);
    assert.equal(more.filter((c) => c.data.length > 0).length, 0, 'a connection past the fd limit got an answer');

    closeAll(held);
    closeAll(more);
    const c0 = Date.now();
    await waitFor(async () => (await http('GET', `${d.url}/healthz`, { timeout: 1000 })).status === 200,
      { timeout: 2000, interval: 50, what: 'GET /healthz to answer once the connections closed' });
    const ms = Date.now() - c0;
    assert.ok(ms < 2000, `/healthz answered ${ms} ms after the connections closed`);
    await waitFor(() => /accepting connections again/.test(d.log()), { timeout: 2000, what: 'the log to say accepting resumed' });
    const h = healthWatch(d.url);
    await sleep(1000);
    assertHealthy(await h.stop(), 'after the fds came back');
    await d.stop();
  });

  test('a soft limit below the hard one is raised at start, and the log says what was obtained', async () => {
    const d = await startLimited('256:4096', { max_connections: 1000 });
    assert.match(d.log(), /file descriptors: 4096 allowed, 1032 needed for max_connections 1000/, d.log());
    const lim = fs.readFileSync(`/proc/${d.pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    assert.match(lim, /\s4096\s+4096\s/, lim);
    await d.stop();
  });

  test('max_connections that RLIMIT_NOFILE cannot hold: refuses to start, naming both numbers', async () => {
    const r = await redis();
    const port = await freePort();
    const res = spawnSync(which('prlimit'), ['--nofile=256:256', bin('crosstalkd'), `--port=${port}`, '--bind=127.0.0.1',
      `--redis-url=${r.url}`, '--max-connections=1000'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(res.status, 2, `exit ${res.status} ${res.signal ?? ''}: ${res.stderr}`);
    assert.match(res.stderr, /max_connections 1000 needs 1032 file descriptors, but only 256 are allowed/, res.stderr);
    const h = await http('GET', `http://127.0.0.1:${port}/healthz`, { timeout: 1000 }).catch((e) => e);
    assert.ok(h instanceof Error, 'something answers on the port of a crosstalkd that refused to start');
  });
});

// ------------------------------------------------------------ max_connections

describe('max_connections counts TCP connections', () => {
  test('past 50 (5 SSE streams, 45 idle), 200 more connections are refused at once with a JSON 503; the streams are unharmed', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { max_connections: 50 } });
    const d2 = await startDaemon({ redisUrl: r.url });
    const u = await register(d2.url, uniqueName('mc'));
    const room = uniqueRoom('mc');
    const streams = [];
    for (let i = 0; i < 5; i++) {
      const s = await sseOpen(`${d.url}/api/rooms/${room}/events`, { headers: bearer(u.token) });
      assert.equal(s.status, 200, `SSE #${i + 1}: ${s.status} ${s.text}`);
      streams.push(s);
    }
    const idle = await idleConnections(d.port, 45);
    await waitFor(async () => (await http('GET', `${d.url}/healthz`, { timeout: 1000 })).status === 503,
      { timeout: 3000, what: 'the 51st connection to be refused' });
    const fds0 = fdCount(d.pid);
    const cpu0 = cpuSeconds(d.pid);
    const log0 = d.logs().length;
    const health = healthWatch(d.url, { okStatuses: [503] });
    const t0 = Date.now();
    const answers = [];
    for (let b = 0; b < 4; b++) {
      answers.push(...await Promise.all(Array.from({ length: 50 }, () => {
        return rawUntilClose(d.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      })));
    }
    const secs = (Date.now() - t0) / 1000;
    await sleep(1000);
    const h = await health.stop();
    for (const a of answers) {
      assertError(a, 503, 'unavailable', 'a connection past max_connections');
      assert.equal(a.headers.connection, 'close');
      assert.ok(a.headers['retry-after'], 'no Retry-After');
      assert.ok(a.closed, 'the refused connection stayed open');
      assert.ok(a.ms < 1000, `refused only after ${a.ms} ms`);
    }
    const cpu = cpuSeconds(d.pid) - cpu0;
    assert.ok(cpu < 1.0, `200 refusals cost ${cpu.toFixed(2)} s of CPU in ${secs.toFixed(1)} s`);
    assert.ok(fdCount(d.pid) <= fds0 + 2, `fds went from ${fds0} to ${fdCount(d.pid)}`);
    const grew = d.logs().length - log0;
    assert.ok(grew < 2048, `the log grew by ${grew} bytes`);
    assertHealthy(h, 'at max_connections');

    // The held ones are unharmed: the streams get a message sent elsewhere, and it is stored.
    const m = await sendOk(d2.url, room, u, 'to the held streams');
    for (const [i, s] of streams.entries()) {
      await s.waitEvents(1, { filter: (e) => e.event === 'message' && e.id === m.id, timeout: 3000, what: `${m.id} on SSE #${i + 1}` });
    }
    assert.equal(idle.filter((c) => c.closed).length, 0, 'an idle connection within the limit was closed');
    const hist = await history(d2.url, room, u);
    assert.deepEqual(hist.json.events.map((e) => e.id), [m.id]);

    for (const s of streams) s.close();
    closeAll(idle);
    await waitFor(async () => (await http('GET', `${d.url}/healthz`, { timeout: 1000 })).status === 200,
      { timeout: 1500, interval: 50, what: 'GET /healthz to answer 200 once the held connections closed' });
  });
});

// ------------------------------------------------------------ header_timeout

describe('header_timeout bounds every request head and its body', () => {
  test('a keep-alive connection whose third head trickles a line every 3 s is cut within header_timeout (10 s, the default)', { timeout: 60000 }, async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    const w = await watched(d.port);
    for (let i = 1; i <= 2; i++) {
      w.s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => (w.data.match(/HTTP\/1\.1 200 /g) ?? []).length >= i, { timeout: 3000, what: `answer #${i} on the keep-alive connection` });
    }
    const t0 = Date.now();
    const health = healthWatch(d.url);
    w.s.write('GET /healthz HTTP/1.1\r\n');
    let n = 0;
    while (w.closedAt === null && Date.now() - t0 < 25000) {
      await sleep(3000);
      if (w.closedAt === null) w.s.write(`X-Slow-${++n}: ${'a'.repeat(10)}\r\n`);
    }
    const h = await health.stop();
    assert.ok(w.closedAt !== null, `the trickling head was still open after ${Date.now() - t0} ms (${n} lines)`);
    const after = w.closedAt - t0;
    assert.ok(after >= 9000 && after <= 12500, `the connection was cut ${after} ms into its third head (header_timeout 10 s)`);
    assert.equal((w.data.match(/HTTP\/1\.1 /g) ?? []).length, 2, `answers on the connection: ${w.data}`);
    assertHealthy(h, 'while a head trickled');
  });

  test('a body that trickles a byte a second is cut within header_timeout (10 s, the default), unanswered; nothing is stored', { timeout: 60000 }, async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    const name = uniqueName('slowbody');
    const body = JSON.stringify({ name }).padEnd(60, ' ');
    const w = await watched(d.port);
    const t0 = Date.now();
    w.s.write(`POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    let n = 0;
    while (w.closedAt === null && n < body.length - 1 && Date.now() - t0 < 25000) {
      w.s.write(body[n++]);
      await sleep(1000);
    }
    assert.ok(w.closedAt !== null, `the trickling body was still open after ${Date.now() - t0} ms (${n} bytes)`);
    const after = w.closedAt - t0;
    assert.ok(after >= 9000 && after <= 12500, `the connection was cut ${after} ms after its head (header_timeout 10 s)`);
    assert.equal(w.data, '', 'no answer to a request cut short');
    assert.equal((await http('POST', `${d.url}/api/register`, { body: { name } })).status, 201, `${name} was registered by the cut request`);
  });
});

// ------------------------------------------------------------ trusted_proxies

describe('trusted_proxies', () => {
  const registerAs = (url, ip) => http('POST', `${url}/api/register`, { body: { name: uniqueName('ip') }, headers: { 'X-Real-IP': ip } });

  test('by default X-Real-IP is ignored: 30 registrations a minute per peer, whatever the header says', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    for (let i = 0; i < 30; i++) {
      const res = await registerAs(d.url, `203.0.113.${i + 1}`);
      assert.equal(res.status, 201, `registration #${i + 1}: ${res.status} ${res.text}`);
    }
    const res = await registerAs(d.url, '198.51.100.7');
    assertError(res, 429, 'rate_limited', 'the 31st registration from one peer with another X-Real-IP');
  });

  test('with trusted_proxies = 127.0.0.1 each X-Real-IP has its own limit', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { trusted_proxies: ' 10.9.9.9, 127.0.0.1 ', rate_register_per_min: 2 } });
    for (let i = 0; i < 5; i++) {
      const res = await registerAs(d.url, `203.0.113.${i + 1}`);
      assert.equal(res.status, 201, `registration as 203.0.113.${i + 1}: ${res.status} ${res.text}`);
    }
    assert.equal((await registerAs(d.url, '198.51.100.7')).status, 201);
    assert.equal((await registerAs(d.url, '198.51.100.7')).status, 201);
    assertError(await registerAs(d.url, '198.51.100.7'), 429, 'rate_limited', 'the 3rd registration as 198.51.100.7');
  });

  test('a trusted_proxies item that is not an address stops start-up, naming it', async () => {
    const r = await redis();
    const res = spawnSync(bin('crosstalkd'), [`--port=${await freePort()}`, '--bind=127.0.0.1', `--redis-url=${r.url}`,
      '--trusted-proxies=127.0.0.1,nginx.local'], { encoding: 'utf8', timeout: 10000 });
    assert.notEqual(res.status, 0, `crosstalkd started with trusted_proxies=nginx.local: ${res.stderr}`);
    assert.match(res.stderr, /trusted_proxies: "nginx\.local" is not an IPv4 or IPv6 address/, res.stderr);
  });
});

// ------------------------------------------------------------ smuggling

describe('request smuggling shapes', () => {
  const head = (lines, body = '') => `${lines.join('\r\n')}\r\n\r\n${body}`;

  test('ambiguous lengths get 400 JSON and the connection closed; what rode along is not run', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: RELAXED });
    const health = healthWatch(d.url);
    const cases = [];
    const shape = (what, build) => {
      const name = uniqueName('smug');
      const hidden = uniqueName('hid');
      const json = JSON.stringify({ name });
      const smuggled = head(['POST /api/register HTTP/1.1', 'Host: x', 'Content-Type: application/json',
        `Content-Length: ${JSON.stringify({ name: hidden }).length}`], JSON.stringify({ name: hidden }));
      cases.push({ what, name, hidden, raw: build(json, smuggled) });
    };
    const common = ['POST /api/register HTTP/1.1', 'Host: x', 'Content-Type: application/json'];
    shape('two different Content-Lengths', (j, s) => head([...common, `Content-Length: ${j.length}`, `Content-Length: ${j.length + s.length}`], j + s));
    shape('two different Content-Lengths, the longer first', (j, s) => head([...common, `Content-Length: ${j.length + s.length}`, `Content-Length: ${j.length}`], j + s));
    shape('"Content-Length : N"', (j, s) => head([...common, `Content-Length : ${j.length}`], j + s));
    shape('Content-Length +N', (j, s) => head([...common, `Content-Length: +${j.length}`], j + s));
    shape('Transfer-Encoding other than chunked', (j, s) => head([...common, 'Transfer-Encoding: identity, chunked'],
      `${j.length.toString(16)}\r\n${j}\r\n0\r\n\r\n${s}`));
    // evhttp keeps a value as a C string: without the scan it read "N\0M" as N
    shape('a NUL in the Content-Length', (j, s) => head([...common, `Content-Length: ${j.length}\0${s.length}`], j + s));
    shape('Content-Length in hex', (j, s) => head([...common, `Content-Length: 0x${j.length.toString(16)}`], j + s));
    shape('Content-Length "N, N"', (j, s) => head([...common, `Content-Length: ${j.length}, ${j.length}`], j + s));
    shape('a Content-Length folded onto a second line', (j, s) => head([...common, `Content-Length: ${j.length}`, ` ${s.length}`], j + s));
    shape('a CR inside a header line', (j, s) => head([...common, `Content-Length: ${j.length}\rX: y`], j + s));
    shape('Content-Length beside Transfer-Encoding', (j, s) => head([...common, `Content-Length: ${j.length}`, 'Transfer-Encoding: chunked'],
      `${j.length.toString(16)}\r\n${j}\r\n0\r\n\r\n${s}`));
    shape('two Transfer-Encodings', (j, s) => head([...common, 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'],
      `${j.length.toString(16)}\r\n${j}\r\n0\r\n\r\n${s}`));
    for (const c of cases) {
      const res = await rawUntilClose(d.port, c.raw);
      assertError(res, 400, 'bad_request', c.what);
      assert.equal(res.headers.connection, 'close', `${c.what}: no Connection: close`);
      assert.ok(res.closed, `${c.what}: the connection stayed open`);
      assert.equal((res.raw.match(/HTTP\/1\.1 \d{3}/g) ?? []).length, 1, `${c.what}: more than one answer:\n${res.raw}`);
    }
    await sleep(500);
    assertHealthy(await health.stop(), 'while smuggling');
    // Nothing was stored: both names are free.
    for (const c of cases) {
      for (const n of [c.name, c.hidden]) {
        const res = await http('POST', `${d.url}/api/register`, { body: { name: n } });
        assert.equal(res.status, 201, `${c.what}: ${n} was registered by the smuggling attempt (${res.status} ${res.text})`);
      }
    }
  });

  test('a NUL in a header value is refused, not cut: a token, an Idempotency-Key, a head sent byte by byte, a pipelined second head', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: RELAXED });
    const u = await register(d.url);
    const room = uniqueRoom();
    const post = (extra, text) => {
      const body = JSON.stringify({ text });
      return head(['POST /api/rooms/' + room + '/messages HTTP/1.1', 'Host: x', 'Content-Type: application/json',
        ...extra, `Content-Length: ${body.length}`], body);
    };
    const refused = async (what, raw, opts) => {
      const res = await rawUntilClose(d.port, raw, opts);
      assertError(res, 400, 'bad_request', what);
      assert.match(res.json.message, /NUL byte/, `${what}: ${res.json.message}`);
      assert.ok(res.closed, `${what}: the connection stayed open`);
      return res;
    };
    await refused('a token, then NUL and junk', post([`Authorization: Bearer ${u.token}\0junk`], 'token-nul'));
    await refused('an Idempotency-Key with a NUL', post([`Authorization: Bearer ${u.token}`, 'Idempotency-Key: ab\0cd'], 'key-nul'));
    // The same key without the NUL part was never stored under "ab": a send
    // with key "ab" stores its own message.
    const ok = await rawHttp(d.port, post([`Authorization: Bearer ${u.token}`, 'Idempotency-Key: ab', 'Connection: close'], 'key-ab'));
    assert.equal(ok.status, 201, ok.raw);
    // A head that comes a byte at a time is scanned as a whole all the same.
    const slow = Buffer.from(post([`Authorization: Bearer ${u.token}`, 'X-Junk: a\0b'], 'trickled'), 'latin1');
    const res = await new Promise((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port: d.port });
      sock.setNoDelay(true);
      let buf = Buffer.alloc(0);
      let i = 0;
      const timer = setInterval(() => {
        if (i < slow.length && !sock.destroyed) sock.write(slow.subarray(i, ++i));
      }, 2);
      sock.on('data', (c) => { buf = Buffer.concat([buf, c]); });
      sock.on('error', () => {});
      sock.on('close', () => { clearInterval(timer); resolve({ raw: buf.toString(), sent: i }); });
    });
    assert.match(res.raw, /^HTTP\/1\.1 400 /, `byte by byte: ${res.raw}`);
    assert.match(res.raw, /NUL byte/, `byte by byte: ${res.raw}`);
    assert.ok(res.sent < slow.length, `byte by byte: the connection was not closed at the NUL (${res.sent} of ${slow.length} bytes taken)`);
    // A sound first request is answered, the second, with a NUL, refused.
    const two = await rawUntilClose(d.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' + post([`Authorization: Bearer ${u.token}`, 'X-A: \0'], 'pipelined'));
    assert.equal((two.raw.match(/HTTP\/1\.1 200 /g) ?? []).length, 1, two.raw);
    assert.match(two.raw, /HTTP\/1\.1 400 [^]*NUL byte/, two.raw);
    assert.ok(two.closed, 'pipelined: the connection stayed open');
    const h = await history(d.url, room, u);
    assert.deepEqual(h.json.events.filter((e) => e.type === 'message').map((e) => e.text), ['key-ab'], 'only the sound send is stored');
  });

  test('a malformed chunked body (size "zz", "0x5", " 5", "+5", "-1", data longer than its size) is a JSON 400 and a close; nothing is stored', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: RELAXED });
    const common = ['POST /api/register HTTP/1.1', 'Host: x', 'Content-Type: application/json'];
    const chunked = (body) => head([...common, 'Transfer-Encoding: chunked'], body);
    for (const [what, build] of [
      ['chunk size zz', (j) => chunked(`zz\r\n${j}\r\n0\r\n\r\n`)],
      ['chunk size 0x..', (j) => chunked(`0x${j.length.toString(16)}\r\n${j}\r\n0\r\n\r\n`)],
      ['chunk size after a space', (j) => chunked(` ${j.length.toString(16)}\r\n${j}\r\n0\r\n\r\n`)],
      ['chunk size +..', (j) => chunked(`+${j.length.toString(16)}\r\n${j}\r\n0\r\n\r\n`)],
      ['chunk size -1', (j) => chunked(`-1\r\n${j}\r\n0\r\n\r\n`)],
      ['a chunk longer than its size', (j) => chunked(`${(j.length - 2).toString(16)}\r\n${j}\r\n0\r\n\r\n`)],
    ]) {
      const name = uniqueName('zz');
      const res = await rawUntilClose(d.port, build(JSON.stringify({ name })) + 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      assertError(res, 400, 'bad_request', what);
      assert.match(res.json.message, /malformed chunked body/, what);
      assert.ok(res.closed, `${what}: the connection stayed open`);
      assert.equal((res.raw.match(/HTTP\/1\.1 \d{3}/g) ?? []).length, 1, `${what}: more than one answer:\n${res.raw}`);
      assert.equal((await http('POST', `${d.url}/api/register`, { body: { name } })).status, 201, `${what}: ${name} was registered`);
    }
    // chunk extensions and trailers are HTTP's, and read past
    const name = uniqueName('ext');
    const j = JSON.stringify({ name });
    const ok = await rawHttp(d.port, chunked(`3;a=b\r\n${j.slice(0, 3)}\r\n${(j.length - 3).toString(16)} ; c\r\n${j.slice(3)}\r\n0\r\nX-Trailer: t\r\n\r\n`), { timeout: 3000 });
    assert.equal(ok.status, 201, `extensions and a trailer: ${ok.raw.slice(0, 300)}`);
  });

  test('methods we do not know, or do not serve, are answered in JSON', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url });
    const unknown = await rawUntilClose(d.port, head(['FOO /healthz HTTP/1.1', 'Host: x']), { timeout: 3000 });
    assertError(unknown, 501, 'not_implemented', 'FOO /healthz');
    assert.ok(unknown.closed, 'FOO: the connection stayed open');
    const trace = await rawHttp(d.port, head(['TRACE /healthz HTTP/1.1', 'Host: x']), { timeout: 3000 });
    assertError(trace, 405, 'method_not_allowed', 'TRACE /healthz');
    const put = await rawHttp(d.port, head(['PUT / HTTP/1.1', 'Host: x', 'Content-Length: 0']), { timeout: 3000 });
    assertError(put, 405, 'method_not_allowed', 'PUT /');
    // an answer to CONNECT could be taken for the start of a tunnel: the
    // connection is closed after it, and what followed is not answered
    for (const target of ['example.com:443', '/healthz']) {
      const connect = await rawUntilClose(d.port, head([`CONNECT ${target} HTTP/1.1`, 'Host: x']) + head(['GET /healthz HTTP/1.1', 'Host: x']), { timeout: 3000 });
      assertError(connect, 405, 'method_not_allowed', `CONNECT ${target}`);
      assert.equal(connect.headers.connection, 'close', `CONNECT ${target}: ${connect.raw}`);
      assert.ok(connect.closed, `CONNECT ${target}: the connection stayed open`);
      assert.equal((connect.raw.match(/HTTP\/1\.1 \d{3}/g) ?? []).length, 1, `CONNECT ${target}: more than one answer:\n${connect.raw}`);
    }
  });

  test('after an answer that closes the connection, a pipelined head (sound or not) is neither run nor answered', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: RELAXED });
    const name = uniqueName('after');
    const json = JSON.stringify({ name });
    const sound = head(['POST /api/register HTTP/1.1', 'Host: x', 'Content-Type: application/json', `Content-Length: ${json.length}`], json);
    const broken = head(['GET /healthz HTTP/1.1', 'Host: x', 'X-A: a\0b']);
    for (const [what, first, status, says] of [
      ['HTTP/1.0', head(['GET /healthz HTTP/1.0']), 200],
      ['Connection: close', head(['GET /healthz HTTP/1.1', 'Host: x', 'Connection: close']), 200],
      ['an unknown method (501, closing)', head(['FOO /healthz HTTP/1.1', 'Host: x']), 501],
      // "close" among the Connection options, which evhttp alone would not honour
      ['Connection: close, TE', head(['GET /healthz HTTP/1.1', 'Host: x', 'Connection: close, TE', 'TE: trailers']), 200],
      ['Connection: keep-alive, then Connection: close', head(['GET /healthz HTTP/1.1', 'Host: x', 'Connection: keep-alive', 'Connection: close']), 200],
      // a target not in origin form: a proxy's request, answered and closed
      ['an absolute-form target', head(['GET http://x/healthz HTTP/1.1', 'Host: x']), 200],
      ['an absolute-form target of HTTPS, with a port and a query', head(['GET HTTPS://x:8443/healthz?a=b HTTP/1.1', 'Host: y']), 200],
      // its authority is the request's host (RFC 9112 3.2.2), so it is
      // checked as a Host is
      ['an absolute-form target with a user', head(['GET http://u@x/healthz HTTP/1.1', 'Host: x']), 400, /absolute-form target whose authority/],
      ['an absolute-form target with no host', head(['GET http:///healthz HTTP/1.1', 'Host: x']), 400, /absolute-form target whose authority/],
      ['an absolute-form target with a port and no host', head(['GET http://:80/healthz HTTP/1.1', 'Host: x']), 400, /absolute-form target whose authority/],
      ['an absolute-form target with empty brackets', head(['GET http://[]/healthz HTTP/1.1', 'Host: x']), 400, /absolute-form target whose authority/],
      ['an absolute-form target with a port past 65535', head(['GET http://x:99999/healthz HTTP/1.1', 'Host: x']), 400, /absolute-form target whose authority/],
      ['an absolute-form target of another scheme', head(['GET ftp://x/healthz HTTP/1.1', 'Host: x']), 400, /scheme is not http or https/],
      // the other forms belong to CONNECT and OPTIONS (RFC 9112 3.2.3-4)
      ['a GET of *', head(['GET * HTTP/1.1', 'Host: x']), 400, /not a path, an absolute URL, or \* for OPTIONS/],
      ['a GET of a host and port', head(['GET 127.0.0.1:80 HTTP/1.1', 'Host: x']), 400, /not a path, an absolute URL/],
      ['a GET of a path without its slash', head(['GET healthz HTTP/1.1', 'Host: x']), 400, /not a path, an absolute URL/],
      ['a GET of http:/ with one slash', head(['GET http:/x/healthz HTTP/1.1', 'Host: x']), 400, /not a path, an absolute URL/],
      // no HTTP version (a parser could read them as 1.0, and close after):
      // refused, with nothing after them run; a later major version: 505
      ['HTTP/1.00', head(['GET /healthz HTTP/1.00', 'Host: x']), 400],
      ['HTTP/01.0', head(['GET /healthz HTTP/01.0', 'Host: x']), 400],
      ['HTTP/0.5', head(['GET /healthz HTTP/0.5', 'Host: x']), 400],
      ['HTTP/2.0', head(['GET /healthz HTTP/2.0', 'Host: x']), 505],
      // a request line other than method SP target SP version (RFC 9112);
      // HTTP/1.1 without one Host, or with one that is no host (RFC 9112
      // 3.2); chunks in HTTP/1.0 (RFC 9112 6.1)
      ['a space after the version', head(['GET /healthz HTTP/1.1 ', 'Host: x']), 400, /not a method, a target and HTTP\/1\.0 or 1\.1, one space apart/],
      ['two spaces after the method', head(['GET  /healthz HTTP/1.1', 'Host: x']), 400, /one space apart/],
      ['two spaces before the version', head(['GET /healthz  HTTP/1.1', 'Host: x']), 400, /one space apart/],
      ['a tab for a space', head(['GET\t/healthz HTTP/1.1', 'Host: x']), 400, /one space apart/],
      ['no version', head(['GET /healthz']), 400, /one space apart/],
      ['HTTP/1.1 without Host', head(['GET /healthz HTTP/1.1']), 400, /no Host header/],
      ['two Host headers', head(['GET /healthz HTTP/1.1', 'Host: x', 'Host: y']), 400, /more than one Host/],
      ['a Host with a space', head(['GET /healthz HTTP/1.1', 'Host: a b']), 400, /a Host that is not/],
      ['a Host with a slash', head(['GET /healthz HTTP/1.1', 'Host: x/y']), 400, /a Host that is not/],
      ['a Host with an open bracket', head(['GET /healthz HTTP/1.1', 'Host: [::1']), 400, /a Host that is not/],
      ['a Host with a port past 65535', head(['GET /healthz HTTP/1.1', 'Host: x:99999999']), 400, /a Host that is not/],
      ['a Host with a port and no host', head(['GET /healthz HTTP/1.1', 'Host: :80']), 400, /a Host that is not/],
      ['a Host of a colon', head(['GET /healthz HTTP/1.1', 'Host: :']), 400, /a Host that is not/],
      ['a Host of empty brackets', head(['GET /healthz HTTP/1.1', 'Host: []']), 400, /a Host that is not/],
      ['Transfer-Encoding in HTTP/1.0', head(['POST /api/register HTTP/1.0', 'Connection: keep-alive', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), 400, /Transfer-Encoding in an HTTP\/1\.0/],
    ]) {
      for (const next of [broken, sound]) {
        const res = await rawUntilClose(d.port, first + next, { timeout: 3000 });
        assert.equal(res.status, status, `${what}: ${res.raw}`);
        if (says) assert.match(res.raw, says, what);
        assert.ok(res.closed, `${what}: the connection stayed open`);
        assert.equal((res.raw.match(/HTTP\/1\.[01] \d{3}/g) ?? []).length, 1, `${what}: more than one answer:\n${res.raw}`);
      }
    }
    // HTTP/1.0 with keep-alive stays open: the next head is read, and a
    // broken one refused
    const kept = await rawUntilClose(d.port, head(['GET /healthz HTTP/1.0', 'Connection: keep-alive']) + broken, { timeout: 3000 });
    // (answered HTTP/1.1, as RFC 9110 2.5 asks of a 1.1 server)
    assert.match(kept.raw, /^HTTP\/1\.1 200 [^]*Connection: keep-alive[^]*HTTP\/1\.1 400 [^]*NUL byte/, kept.raw);
    // so does "keep-alive, x": the next head is scanned all the same, and
    // a smuggling one refused
    const smug = uniqueName('kax');
    const sj = JSON.stringify({ name: smug });
    const kax = await rawUntilClose(d.port, head(['GET /healthz HTTP/1.0', 'Connection: keep-alive, x']) +
      head(['POST /api/register HTTP/1.1', 'Host: x', `Content-Length: ${sj.length}`, 'Content-Length: 0'], sj), { timeout: 3000 });
    assert.match(kax.raw, /^HTTP\/1\.1 200 [^]*HTTP\/1\.1 400 [^]*more than one Content-Length/, kax.raw);
    assert.equal((await http('POST', `${d.url}/api/register`, { body: { name: smug } })).status, 201, `${smug} was registered by the smuggled head`);
    assert.equal((await http('POST', `${d.url}/api/register`, { body: { name } })).status, 201, `${name} was registered after a closing answer`);
  });

  test('what RFC 9112 asks a server to tolerate: HTTP/1.2 read as 1.1, an empty line before a request, pipelined requests ended by a half-close', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: RELAXED });
    const hz = head(['GET /healthz HTTP/1.1', 'Host: x']);
    // a later 1.x is compatible with 1.1 (RFC 9112 2.3): answered HTTP/1.1
    const v12 = await rawHttp(d.port, head(['GET /healthz HTTP/1.2', 'Host: x']), { timeout: 3000 });
    assert.equal(v12.status, 200, v12.raw);
    assert.match(v12.raw, /^HTTP\/1\.1 200 /, v12.raw);
    // an empty line before the request line (RFC 9112 2.2), as a client
    // may send after a body: ignored
    const blank = await rawHttp(d.port, '\r\n' + hz, { timeout: 3000 });
    assert.equal(blank.status, 200, blank.raw);
    // requests sent whole before a half-close are each answered, in order
    // (/healthz asks Redis, so the close comes while the first is served)
    const u = await register(d.url, uniqueName('half'));
    const room = uniqueRoom();
    const body = JSON.stringify({ text: 'half-closed' });
    const post = head(['POST /api/rooms/' + room + '/messages HTTP/1.1', 'Host: x', `Authorization: Bearer ${u.token}`,
      'Content-Type: application/json', `Content-Length: ${body.length}`], body);
    const got = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: d.port });
      sockets.add(s);
      let buf = '';
      s.on('connect', () => { s.write(hz + post + hz); s.end(); });
      s.on('data', (b) => { buf += b.toString('latin1'); });
      s.on('close', () => resolve(buf));
      s.on('error', () => resolve(buf));
      setTimeout(() => { s.destroy(); resolve(buf); }, 3000 * SLOW);
    });
    assert.deepEqual(got.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 200', 'HTTP/1.1 201', 'HTTP/1.1 200'], got);
    const h = await history(d.url, room, u);
    assert.deepEqual(h.json.events.filter((e) => e.type === 'message').map((e) => e.text), ['half-closed']);
  });

  test('an SSE stream asked with "Connection: keep-alive, close" says Connection: close in its head', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: RELAXED });
    const u = await register(d.url, uniqueName('ssec'));
    const s = await sseOpen(`${d.url}/api/rooms/${uniqueRoom('ssec')}/events`, { headers: { ...bearer(u.token), Connection: 'keep-alive, close' } });
    try {
      assert.equal(s.status, 200, s.text);
      assert.equal(s.headers.connection, 'close', JSON.stringify(s.headers));
    } finally {
      s.close();
    }
  });
});
