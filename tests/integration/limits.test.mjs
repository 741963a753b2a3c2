// limits.test.mjs - crosstalkd's limits against real clients: max_connections
// over every kind of stream (refused fast, the held ones unharmed; it counts
// TCP connections, so a request past it is refused whatever it asks),
// slowloris with Debian's slowhttptest against header_timeout,
// client_buffer_limit on an SSE subscriber that stops reading (dropped, then
// resumes by Last-Event-ID with nothing lost or repeated), longpolls_per_token,
// and the register/send rates (429 with a usable Retry-After, per IP and per
// token). Body, head and message sizes are badinput.test.mjs's.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import nodeHttp from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

import {
  RELAXED, answersOf, assertError, bearer, cleanup, compareIds, connectBurst, http, skipUnlessBacklog, register, roomKey, send, sendOk, sleep, sseOpen,
  startDaemon, startRedis, tmpDir, uniqueName, uniqueRoom, waitFor, which, within,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

let redisP = null;
const redis = () => (redisP ??= startRedis());
const children = new Set();

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await cleanup();
});

async function stats(d) {
  const r = await http('GET', `${d.url}/api/stats?scope=process`);
  assert.equal(r.status, 200, r.text);
  return r.json;
}

/** Opens a WebSocket; resolves {ws, status, events} once it is open or refused. */
function wsOpen(url, { timeout = 5000 } = {}) {
  return within(timeout, new Promise((resolve) => {
    const ws = new WebSocket(url);
    const events = [];
    ws.on('message', (d) => { try { events.push(JSON.parse(d.toString())); } catch { /* not JSON */ } });
    ws.once('open', () => resolve({ ws, status: 101, events }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ ws, status: res.statusCode, headers: res.headers, body, events }));
    });
    ws.once('error', (e) => resolve({ ws, status: 0, error: e.message, events }));
  }), `the WebSocket ${url} to open or be refused`);
}

// ------------------------------------------------------------ listen backlog

// A burst of connections while crosstalkd is busy (clients coming back after
// a restart; nginx opening upstream connections for a wave of re-polls)
// waits in the kernel's accept queue. evhttp_bind_socket listens with a
// backlog of 128: past it SYNs were dropped, and each client waited for its
// retry, 1 s later. crosstalkd is stopped (SIGSTOP) here, so nothing is
// accepted and the queue alone decides: every handshake must complete at
// once, and every connection be served once crosstalkd runs again.
test('600 connections while crosstalkd is stopped: every handshake completes at once, and each is answered after', async (t) => {
  const N = 600;
  if (skipUnlessBacklog(t, N)) return;
  const d = await startDaemon({ redisUrl: (await redis()).url });
  let burst;
  process.kill(d.pid, 'SIGSTOP');
  try {
    burst = await connectBurst(d.port, N);
  } finally {
    process.kill(d.pid, 'SIGCONT');
  }
  try {
    assert.equal(burst.connected, N, `${burst.connected} of ${N} handshakes completed within 700 ms while crosstalkd was stopped`);
    const answers = await answersOf(burst.sockets, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    const ok = answers.filter((a) => a.startsWith('HTTP/1.1 200 ')).length;
    assert.equal(ok, N, `${ok} of ${N} answered 200; one of the others: ${JSON.stringify(answers.find((a) => !a.startsWith('HTTP/1.1 200 ')))}`);
  } finally {
    for (const s of burst.sockets) s.destroy();
  }
});

// ------------------------------------------------------------ max_connections

describe('max_connections', () => {
  test('20 streams of every kind are held; the 21st (SSE, long poll or WebSocket) gets 503 at once; the 20 still get messages', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { ...RELAXED, max_connections: 20, longpoll_timeout: 30 } });
    // max_connections counts TCP connections: with d full, sends go through d2
    const d2 = await startDaemon({ redisUrl: r.url, config: RELAXED });
    const users = [];
    for (let i = 0; i < 4; i++) users.push(await register(d.url, uniqueName('mc')));
    const room = uniqueRoom('mc');
    const seed = await sendOk(d.url, room, users[0], 'seed');
    const sses = [];
    const wss = [];
    const polls = [];
    try {
      for (let i = 0; i < 8; i++) {
        const s = await sseOpen(`${d.url}/api/rooms/${room}/events`, { headers: bearer(users[i % 4].token) });
        assert.equal(s.status, 200, `SSE #${i + 1}: ${s.status} ${s.text}`);
        sses.push(s);
      }
      for (let i = 0; i < 6; i++) {
        const w = await wsOpen(`ws://127.0.0.1:${d.port}/api/rooms/${room}/ws?token=${users[i % 4].token}&since=${seed.id}`);
        assert.equal(w.status, 101, `WebSocket #${i + 1}: ${w.status} ${w.body ?? w.error ?? ''}`);
        wss.push(w);
      }
      for (let i = 0; i < 6; i++) {
        polls.push(http('GET', `${d.url}/api/rooms/${room}/poll?since=${seed.id}&timeout=30`, { headers: bearer(users[i % 4].token), timeout: 40000 }));
      }
      await waitFor(async () => (await http('GET', `${d.url}/healthz`, { timeout: 2000 })).status === 503,
        { timeout: 5000, what: 'GET /healthz to be refused once 20 connections are held' });

      // The 21st of each kind: 503 in JSON with Retry-After, fast.
      for (const [kind, go] of [
        ['SSE', () => http('GET', `${d.url}/api/rooms/${room}/events`, { headers: bearer(users[0].token), timeout: 3000 })],
        ['long poll', () => http('GET', `${d.url}/api/rooms/${room}/poll?timeout=5`, { headers: bearer(users[1].token), timeout: 3000 })],
      ]) {
        const t0 = Date.now();
        const res = await go();
        const ms = Date.now() - t0;
        assertError(res, 503, 'unavailable', `the 21st stream (${kind})`);
        assert.ok(res.headers['retry-after'], `no Retry-After on the 503 for the 21st ${kind}`);
        assert.ok(ms < 1000, `the 21st ${kind} was refused only after ${ms} ms`);
      }
      const t0 = Date.now();
      const extraWs = await wsOpen(`ws://127.0.0.1:${d.port}/api/rooms/${room}/ws?token=${users[2].token}`);
      extraWs.ws.terminate();
      assert.equal(extraWs.status, 503, `the 21st stream (WebSocket) got ${extraWs.status} ${extraWs.body ?? extraWs.error ?? ''}`);
      assert.ok(Date.now() - t0 < 1000, `the 21st WebSocket was refused only after ${Date.now() - t0} ms`);

      // Past max_connections a request that would hold nothing is refused too, in JSON.
      assertError(await http('GET', `${d.url}/healthz`), 503, 'unavailable', 'GET /healthz past max_connections');

      // The 20 held streams all get the next message.
      const m = await sendOk(d2.url, room, users[3], 'for the twenty');
      for (const [i, s] of sses.entries()) {
        await s.waitEvents(1, { filter: (e) => e.event === 'message' && e.id === m.id, timeout: 3000, what: `message ${m.id} on SSE #${i + 1}` });
      }
      for (const [i, w] of wss.entries()) {
        await waitFor(() => w.events.some((e) => e.id === m.id), { timeout: 3000, what: `message ${m.id} on WebSocket #${i + 1}` });
        assert.equal(w.events.filter((e) => e.type === 'message').length, 1, `WebSocket #${i + 1} got ${JSON.stringify(w.events)}`);
      }
      const answers = await within(3000, Promise.all(polls), 'the six long polls to be answered by the message');
      for (const [i, a] of answers.entries()) {
        assert.equal(a.status, 200, `long poll #${i + 1}: ${a.status} ${a.text}`);
        assert.deepEqual(a.json.events.map((e) => e.id), [m.id], `long poll #${i + 1}`);
      }
      // With the long polls answered there is room again.
      const again = await http('GET', `${d.url}/api/rooms/${room}/poll?since=${m.id}&timeout=1`, { headers: bearer(users[0].token) });
      assert.equal(again.status, 204, `a long poll once the others were answered: ${again.status} ${again.text}`);
    } finally {
      for (const s of sses) s.close();
      for (const w of wss) w.ws.terminate();
    }
    assert.equal(d.proc.exitCode, null, 'crosstalkd exited');
  });
});

// ------------------------------------------------------------ slowloris

/**
 * Runs slowhttptest in slowloris mode (-H) against `url`, with its CSV
 * statistics (-g -o); meanwhile probes /healthz every 200 ms. Resolves
 * {rows: [{s, closed, pending, connected, available}], probes: [{at, ms, status}], out}.
 */
async function slowloris(d, { conns = 200, interval, seconds }) {
  const exe = which('slowhttptest');
  assert.ok(exe, 'slowhttptest not found: run scripts/bootstrap');
  const dir = tmpDir('slowloris');
  const prefix = path.join(dir, 'stats');
  // -c connections, -r connections per second, -i seconds between the
  // follow-up header lines, -x their max length, -l the test length,
  // -p its own probe's timeout, -g -o the per-second CSV.
  const args = ['-H', '-c', conns, '-r', conns, '-i', interval, '-x', 24, '-l', seconds, '-p', 2,
    '-u', `${d.url}/healthz`, '-g', '-o', prefix].map(String);
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout.on('data', (b) => { out += b; });
  child.stderr.on('data', (b) => { out += b; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => { children.delete(child); resolve({ code, signal }); }));
  const probes = [];
  const t0 = Date.now();
  let done = false;
  exited.then(() => { done = true; });
  while (!done && Date.now() - t0 < (seconds + 10) * 1000) {
    const p0 = Date.now();
    const r = await http('GET', `${d.url}/healthz`, { timeout: 3000 }).catch((e) => ({ status: 0, text: e.message }));
    probes.push({ at: p0 - t0, ms: Date.now() - p0, status: r.status });
    await sleep(200);
  }
  if (!done) child.kill('SIGKILL');
  const res = await exited;
  let csv = '';
  try { csv = fs.readFileSync(`${prefix}.csv`, 'utf8'); } catch { /* none written */ }
  const rows = csv.split('\n').slice(1).filter(Boolean).map((l) => {
    const [s, closed, pending, connected, available] = l.split(',').map(Number);
    return { s, closed, pending, connected, available };
  });
  const clean = out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
  assert.ok(rows.length > 0, `slowhttptest ${args.join(' ')} wrote no statistics (exit ${res.code ?? res.signal}):\n${clean.slice(-1500)}`);
  return { rows, probes, out: clean, args };
}

/**
 * The first second (after the peak) at which at most 5 of slowhttptest's
 * connections were still open; null if never.
 */
function cutAt(run) {
  const peakAt = run.rows.findIndex((r) => r.connected >= 150);
  if (peakAt < 0) return null;
  const row = run.rows.slice(peakAt).find((r) => r.connected <= 5);
  if (row) return row.s;
  // slowhttptest stops early, without a last row, once the server closed them all
  return /No open connections left/.test(run.out) ? run.rows.at(-1).s + 1 : null;
}

function describeRun(run) {
  return `slowhttptest ${run.args.join(' ')}\nper second (closed/pending/connected): ` +
    run.rows.map((r) => `${r.s}s ${r.closed}/${r.pending}/${r.connected}`).join(', ');
}

describe('slowloris (slowhttptest -H) against header_timeout', () => {
  const HEADER_TIMEOUT = 2;
  let d;
  const daemon = async () => {
    d ??= await startDaemon({ redisUrl: (await redis()).url, config: { ...RELAXED, header_timeout: HEADER_TIMEOUT } });
    return d;
  };

  test('200 slow heads, a header line every 5 s: each is cut after header_timeout (2 s); /healthz answers throughout', async () => {
    const dd = await daemon();
    const run = await slowloris(dd, { conns: 200, interval: 5, seconds: 8 });
    const slow = run.probes.filter((p) => p.status !== 200 || p.ms > 1000);
    assert.deepEqual(slow, [], `/healthz during the attack: ${slow.length} of ${run.probes.length} probes slow or failed\n${describeRun(run)}`);
    assert.ok(run.probes.length >= 10, `only ${run.probes.length} probes ran`);
    const peak = Math.max(...run.rows.map((r) => r.connected));
    assert.ok(peak >= 150, `slowhttptest never held its connections open (peak ${peak}): the attack did not happen\n${describeRun(run)}`);
    // Opened in the first second, cut header_timeout later.
    const cut = cutAt(run);
    assert.ok(cut !== null && cut <= 1 + HEADER_TIMEOUT + 2,
      `connections still open ${HEADER_TIMEOUT + 2} s after header_timeout should have cut them (cut at ${cut} s)\n${describeRun(run)}`);
    const u = await register(dd.url, uniqueName('after'));
    await sendOk(dd.url, uniqueRoom(), u, 'served after the attack');
  });

  test('200 slow heads, a header line every second: header_timeout bounds the whole head, not each pause', async () => {
    // DESIGN.md: header_timeout is "seconds to receive a whole request
    // head". A client that drips a header line more often than that must
    // still be cut once header_timeout has passed since it connected.
    const dd = await daemon();
    const run = await slowloris(dd, { conns: 200, interval: 1, seconds: 8 });
    const slow = run.probes.filter((p) => p.status !== 200 || p.ms > 1000);
    assert.deepEqual(slow, [], `/healthz during the attack: ${slow.length} of ${run.probes.length} probes slow or failed\n${describeRun(run)}`);
    const cut = cutAt(run);
    assert.ok(cut !== null && cut <= 1 + HEADER_TIMEOUT + 2,
      `slow heads that send a line every second stay connected long past header_timeout=${HEADER_TIMEOUT} s ` +
      `(cut at ${cut} s; evhttp_set_timeout is an idle timeout, reset by every byte)\n${describeRun(run)}`);
  });
});

// ------------------------------------------------------------ client_buffer_limit

/**
 * A raw SSE reader on a plain socket, so the test decides when it reads.
 * `paused` starts it with reading stopped right after the request is sent.
 */
function rawSse(port, pathQ, headers = {}, { paused = false } = {}) {
  const sock = net.connect({ host: '127.0.0.1', port });
  const st = { sock, raw: Buffer.alloc(0), ended: false, status: 0 };
  sock.on('connect', () => {
    sock.write(`GET ${pathQ} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n` +
      Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n');
    if (paused) sock.pause();
  });
  sock.on('data', (b) => { st.raw = Buffer.concat([st.raw, b]); });
  sock.on('end', () => { st.ended = true; });
  sock.on('close', () => { st.ended = true; });
  sock.on('error', () => { st.ended = true; });
  /** The complete events received so far (a block cut off by the drop is not an event). */
  st.events = () => {
    const text = st.raw.toString('utf8');
    const he = text.indexOf('\r\n\r\n');
    if (he < 0) return [];
    st.status = Number(/^HTTP\/1\.\d (\d+)/.exec(text)?.[1] ?? 0);
    // undo chunked transfer coding
    let body = '';
    const b = st.raw.subarray(Buffer.byteLength(text.slice(0, he + 4)));
    let p = 0;
    for (;;) {
      const e = b.indexOf('\r\n', p);
      if (e < 0) break;
      const n = parseInt(b.toString('latin1', p, e), 16);
      if (!(n > 0) || b.length < e + 2 + n) break;
      body += b.toString('utf8', e + 2, e + 2 + n);
      p = e + 2 + n + 2;
    }
    const out = [];
    const blocks = body.split('\n\n');
    blocks.pop(); // incomplete
    for (const blk of blocks) {
      const ev = {};
      for (const line of blk.split('\n')) {
        const i = line.indexOf(':');
        if (i <= 0) continue;
        ev[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, '');
      }
      if (ev.data !== undefined) out.push(ev);
    }
    return out;
  };
  return st;
}

describe('client_buffer_limit', () => {
  test('an SSE subscriber that stops reading is dropped; it resumes by Last-Event-ID and gets every message once; a reader beside it is untouched', async () => {
    const LIMIT = 65536;
    const r = await redis();
    const d = await startDaemon({
      redisUrl: r.url,
      config: { ...RELAXED, client_buffer_limit: LIMIT, max_message_bytes: 65536, max_body_bytes: 262144 },
    });
    const u = await register(d.url, uniqueName('slow'));
    const room = uniqueRoom('buf');
    const seed = await sendOk(d.url, room, u, 'seed');
    const stalled = rawSse(d.port, `/api/rooms/${room}/events?since=${seed.id}`, bearer(u.token), { paused: true });
    const reader = await sseOpen(`${d.url}/api/rooms/${room}/events?since=${seed.id}`, { headers: bearer(u.token), timeout: 60000 });
    const dropped0 = (await stats(d)).transports.sse.dropped;
    await waitFor(async () => (await stats(d)).transports.sse.open >= 2, { timeout: 3000, what: 'both SSE streams to be open' });

    // 48 KiB messages until the daemon gives up on the stalled reader (the
    // kernel's socket buffers take a few MB first); at most 400 (19 MB).
    const big = 'x'.repeat(48 * 1024);
    let sentN = 0;
    let dropped = false;
    const t0 = Date.now();
    while (sentN < 400 && !dropped) {
      await sendOk(d.url, room, u, `${sentN} ${big}`);
      sentN++;
      if (sentN % 10 === 0) dropped = (await stats(d)).transports.sse.dropped > dropped0;
    }
    dropped ||= (await stats(d)).transports.sse.dropped > dropped0;
    assert.ok(dropped, `the stalled SSE reader was not dropped after ${sentN} messages of 48 KiB (${Date.now() - t0} ms) with client_buffer_limit=${LIMIT}`);
    assert.match(d.logs(), /dropped a slow consumer/, 'the drop is logged');
    // A few more after the drop.
    for (let i = 0; i < 5; i++, sentN++) await sendOk(d.url, room, u, `after ${i}`);

    // The stalled client reads what it has and sees its stream end.
    stalled.sock.resume();
    await waitFor(() => stalled.ended, { timeout: 10000, what: 'the dropped SSE stream to end once read' });
    const first = stalled.events().filter((e) => e.event === 'message');
    assert.equal(stalled.status, 200);
    const stored = (await r.cmd('XRANGE', roomKey(room), '-', '+')).map((e) => e[0]).slice(1);
    assert.equal(stored.length, sentN);
    assert.ok(first.length < stored.length, `the dropped client got all ${first.length} messages before the drop`);

    // It comes back as EventSource would: Last-Event-ID = the last complete event's id.
    const lastId = first.length ? first.at(-1).id : seed.id;
    const again = await sseOpen(`${d.url}/api/rooms/${room}/events?since=${seed.id}`,
      { headers: { ...bearer(u.token), 'Last-Event-ID': lastId }, timeout: 60000 });
    try {
      const rest = await again.waitEvents(stored.length - first.length, {
        filter: (e) => e.event === 'message', timeout: 20000, what: `the ${stored.length - first.length} messages after ${lastId}`,
      });
      const ids = [...first.map((e) => e.id), ...rest.map((e) => e.id)];
      assert.deepEqual(ids, stored, 'before the drop + after the resume should be every stored message once, in order');
      // The reader that kept reading got everything on its one stream.
      const got = await reader.waitEvents(stored.length, { filter: (e) => e.event === 'message', timeout: 20000, what: 'every message on the reading stream' });
      assert.deepEqual(got.map((e) => e.id), stored);
      assert.equal(reader.ended, false, 'the reading subscriber was dropped too');
    } finally {
      again.close();
      reader.close();
      stalled.sock.destroy();
    }
  });
});

// ------------------------------------------------------------ long polls per token

describe('longpolls_per_token', () => {
  test('the 3rd waiting long poll of one token (limit 2) gets 429 with Retry-After; other users are not limited; room again once answered', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { ...RELAXED, longpolls_per_token: 2 } });
    const a = await register(d.url, uniqueName('lpa'));
    const b = await register(d.url, uniqueName('lpb'));
    const room = uniqueRoom('lp');
    const seed = await sendOk(d.url, room, a, 'seed');
    const poll = (u, t = 10) => http('GET', `${d.url}/api/rooms/${room}/poll?since=${seed.id}&timeout=${t}`, { headers: bearer(u.token), timeout: 20000 });
    const held = [poll(a), poll(a)];
    await waitFor(async () => (await stats(d)).transports.long_poll.open >= 2, { timeout: 3000, what: 'two long polls to be waiting' });
    const t0 = Date.now();
    const third = await poll(a);
    assertError(third, 429, 'rate_limited', 'a third long poll of one token');
    assert.ok(Number(third.headers['retry-after']) >= 1, `Retry-After: ${third.headers['retry-after']}`);
    assert.ok(Date.now() - t0 < 1000, `refused only after ${Date.now() - t0} ms`);
    // The same token in another room counts too: the limit is per token.
    const other = await http('GET', `${d.url}/api/rooms/${uniqueRoom('lp')}/poll?timeout=1`, { headers: bearer(a.token) });
    assert.equal(other.status, 429, `a long poll of the same token in another room: ${other.status}`);
    const heldB = [poll(b), poll(b)];
    await waitFor(async () => (await stats(d)).transports.long_poll.open >= 4, { timeout: 3000, what: 'user b\'s two long polls to be waiting' });
    const m = await sendOk(d.url, room, b, 'wake up');
    for (const res of await within(3000, Promise.all([...held, ...heldB]), 'the four waiting long polls to be answered')) {
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json.events.map((e) => e.id), [m.id]);
    }
    const next = await poll(a, 1);
    assert.equal(next.status, 200, `a's next long poll once the others were answered: ${next.status} ${next.text}`);
  });
});

// ------------------------------------------------------------ rates

/** POST /api/register from a given loopback address (127.0.0.x). */
function registerFrom(port, localAddress, name, headers = {}) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ name });
    const req = nodeHttp.request({
      host: '127.0.0.1', port, path: '/api/register', method: 'POST', localAddress, agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5000 ms')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('rates', () => {
  test('rate_register_per_min is per client address: 429 with Retry-After for one, another address still registers', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { rate_register_per_min: 2, rate_send_per_sec: 1000 } });
    const codes = [];
    let last;
    for (let i = 0; i < 3; i++) {
      last = await registerFrom(d.port, '127.0.0.1', uniqueName('ra'));
      codes.push(last.status);
    }
    assert.deepEqual(codes, [201, 201, 429], 'two registrations a minute from 127.0.0.1');
    assertError(last, 429, 'rate_limited', 'the third registration');
    const ra = Number(last.headers['retry-after']);
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 60, `Retry-After of a per-minute limit: ${last.headers['retry-after']}`);
    const fromOther = await registerFrom(d.port, '127.0.0.2', uniqueName('rb'));
    assert.equal(fromOther.status, 201, `a registration from 127.0.0.2: ${fromOther.status} ${fromOther.text}`);
  });

  test('rate_send_per_sec is per token: 429 with Retry-After; another token is not limited; after Retry-After the token sends again', async () => {
    const r = await redis();
    const d = await startDaemon({ redisUrl: r.url, config: { rate_register_per_min: 1000, rate_send_per_sec: 2 } });
    const a = await register(d.url, uniqueName('sa'));
    const b = await register(d.url, uniqueName('sb'));
    const room = uniqueRoom('rate');
    let refused = null;
    let ok = 0;
    for (let i = 0; i < 12 && !refused; i++) {
      const res = await send(d.url, room, a, `burst ${i}`);
      if (res.status === 201) ok++;
      else refused = res;
    }
    assert.ok(refused, `12 immediate sends at 2/s (burst 4) were all accepted`);
    assertError(refused, 429, 'rate_limited', 'a send over the rate');
    assert.ok(ok >= 2 && ok <= 6, `${ok} sends accepted before the 429 at 2/s, burst 4`);
    const ra = Number(refused.headers['retry-after']);
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= 2, `Retry-After: ${refused.headers['retry-after']}`);
    const other = await send(d.url, room, b, 'another token');
    assert.equal(other.status, 201, `another user's send right after: ${other.status} ${other.text}`);
    await sleep(ra * 1000);
    const back = await send(d.url, room, a, 'after Retry-After');
    assert.equal(back.status, 201, `a send after waiting Retry-After (${ra} s): ${back.status} ${back.text}`);
    assert.equal(await r.cmd('XLEN', roomKey(room)), ok + 2, 'exactly the accepted sends are stored');
  });
});
