// ws.test.mjs - the WebSocket transport with a real client (npm `ws`): chat
// over one socket (message -> ack, typing, every room event), resume with
// ?since=, presence and /api/stats, delivery across daemons and transports
// both ways, the Origin check, keepalive pings, slow consumers dropped with
// 1008 that resume without loss, and close 1001 on SIGTERM.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import {
  RELAXED, bearer, cleanup, history, http, rawHttp, register, sendOk, sleep, sseOpen, startDaemon, startRedis,
  uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const CONFIG = { ...RELAXED, max_message_bytes: 1000 };

let redis;
let d;   // the main daemon
let d2;  // another daemon on the same Redis
let alice;
let bob;
let carol;
const clients = new Set();

before(async () => {
  redis = await startRedis();
  [d, d2] = await Promise.all([
    startDaemon({ redisUrl: redis.url, config: CONFIG }),
    startDaemon({ redisUrl: redis.url, config: CONFIG }),
  ]);
  alice = await register(d.url, uniqueName('alice'));
  bob = await register(d.url, uniqueName('bob'));
  carol = await register(d.url, uniqueName('carol'));
});
after(async () => {
  for (const c of clients) c.ws.terminate();
  await cleanup();
});

const wsUrl = (dm, room, user, q = {}) =>
  `ws://127.0.0.1:${dm.port}/api/rooms/${room}/ws?${new URLSearchParams({ token: user.token, ...q })}`;

/**
 * Opens a WebSocket with the npm client and collects what arrives.
 * Resolves on open with {ws, events (parsed JSON), closed: {code, reason} | null,
 * pings, until(pred, what, ms), of(type), send(obj), close()}.
 */
function wsOpen(dm, room, user, { q = {}, origin } = {}) {
  const url = wsUrl(dm, room, user, q);
  const ws = new WebSocket(url, { origin });
  const c = { ws, url, room, events: [], closed: null, pings: 0, listeners: new Set() };
  clients.add(c);
  const notify = () => { for (const f of [...c.listeners]) f(); };
  ws.on('message', (data, isBinary) => {
    c.events.push(isBinary ? { binary: data } : JSON.parse(data.toString('utf8')));
    notify();
  });
  ws.on('ping', () => { c.pings++; notify(); });
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString(), at: Date.now() }; notify(); });
  ws.on('error', (e) => { c.error = e; notify(); });
  c.until = (pred, what, ms = 5000 * SLOW) => new Promise((res, rej) => {
    const t0 = Date.now();
    const check = () => {
      const v = pred();
      if (v) { c.listeners.delete(check); clearTimeout(tm); res(v); }
    };
    const tm = setTimeout(() => {
      c.listeners.delete(check);
      rej(new Error(`timed out after ${Date.now() - t0} ms waiting for ${what} on ${url.replace(/token=[^&]+/, 'token=…')}; ` +
        `have ${c.events.length} events (last: ${JSON.stringify(c.events.slice(-3)).slice(0, 400)}), closed=${JSON.stringify(c.closed)}`));
    }, ms);
    c.listeners.add(check);
    check();
  });
  c.of = (type) => c.events.filter((e) => e.type === type);
  c.send = (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  c.close = () => { clients.delete(c); ws.terminate(); };
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    ws.once('open', () => resolve(c));
    ws.once('unexpected-response', (req, res) => {
      clients.delete(c);
      reject(new Error(`WebSocket ${url}: HTTP ${res.statusCode} instead of 101 after ${Date.now() - t0} ms`));
    });
    ws.once('error', (e) => reject(new Error(`WebSocket ${url}: ${e.message} after ${Date.now() - t0} ms`)));
  });
}

/** Sends a message frame and waits for its ack; resolves with the id. */
async function say(c, text) {
  const n = c.of('ack').length;
  c.send({ type: 'message', text });
  const ack = await c.until(() => c.of('ack')[n], `the ack of ${JSON.stringify(text.slice(0, 40))}`);
  return ack.id;
}

const stats = async (dm) => (await http('GET', `${dm.url}/api/stats?scope=process`)).json.transports.websocket;

// ------------------------------------------------------------- chat

test('chat: message -> ack with the stored id, the event to everyone in the room, typing to the others', async () => {
  const room = uniqueRoom();
  const a = await wsOpen(d, room, alice);
  const b = await wsOpen(d, room, bob);
  const elsewhere = await wsOpen(d, uniqueRoom('other'), carol);
  try {
    const ids = [];
    for (const t of ['hello "bob"', 'second\nline', 'κόσμε 𝄞']) ids.push(await say(a, t));
    for (const c of [a, b]) {
      const msgs = await c.until(() => c.of('message').length === 3 && c.of('message'), '3 messages');
      assert.deepEqual(msgs.map((m) => m.id), ids);
      assert.deepEqual(msgs.map((m) => m.text), ['hello "bob"', 'second\nline', 'κόσμε 𝄞']);
      for (const m of msgs) {
        assert.equal(m.from, alice.name);
        assert.equal(m.room, room);
        assert.equal(typeof m.ts, 'number');
      }
    }
    assert.deepEqual(a.of('ack').map((x) => Object.keys(x).sort()), [['id', 'type'], ['id', 'type'], ['id', 'type']]);
    assert.equal(b.of('ack').length, 0, 'bob got acks for alice\'s messages');
    // the same ids are what REST history holds
    const h = await history(d.url, room, carol, { since: '0-0' });
    assert.deepEqual(h.json.events.map((e) => e.id), ids);

    b.send({ type: 'typing' });
    const [typing] = await a.until(() => a.of('typing').length && a.of('typing'), 'bob typing');
    assert.equal(typing.from, bob.name);
    assert.equal(typing.id, undefined, 'typing is not stored: no id');
    await sleep(100);
    assert.equal(elsewhere.events.filter((e) => e.type !== 'presence').length, 0,
      `another room saw ${JSON.stringify(elsewhere.events)}`);
  } finally {
    a.close();
    b.close();
    elsewhere.close();
  }
});

test('bad frames get error frames and the socket stays open: bad JSON, unknown type, empty, too long, binary closes 1003', async () => {
  const room = uniqueRoom();
  const a = await wsOpen(d, room, alice);
  try {
    const cases = [
      ['not json', 'bad_json'],
      [{ type: 'shout', text: 'x' }, 'bad_request'],
      [{ type: 'message' }, 'bad_request'],
      [{ type: 'message', text: '' }, 'empty_text'],
      [{ type: 'message', text: 'x'.repeat(1001) }, 'too_large'],
      [{ type: 'message', text: 'nul\u0000byte' }, 'bad_utf8'],
    ];
    for (const [i, [frame, code]] of cases.entries()) {
      a.send(frame);
      const err = await a.until(() => a.of('error')[i], `error frame ${code}`);
      assert.equal(err.error, code, JSON.stringify(err));
      assert.ok(typeof err.message === 'string' && err.message.length > 0);
    }
    assert.equal(a.closed, null);
    const id = await say(a, 'x'.repeat(1000)); // exactly max_message_bytes
    assert.match(id, /^\d+-\d+$/);
    a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await a.until(() => a.closed, 'the close');
    assert.equal(a.closed.code, 1003);
  } finally {
    a.close();
  }
});

test('presence and stats: a WebSocket user is online (REST and presence events) and counted in /api/stats', async () => {
  const room = uniqueRoom();
  const before0 = await stats(d);
  const a = await wsOpen(d, room, alice);
  const online = async () => (await http('GET', `${d.url}/api/rooms/${room}/presence`, { headers: bearer(carol.token) })).json.online;
  try {
    await waitFor(async () => (await online()).includes(alice.name), { timeout: 3000 * SLOW, what: `${alice.name} online over WebSocket` });
    await a.until(() => a.of('presence').some((p) => p.online.includes(alice.name)), 'a presence event listing alice');
    const b = await wsOpen(d, room, bob);
    await a.until(() => a.of('presence').some((p) => p.online.includes(bob.name)), 'a presence event listing bob');
    const s1 = await stats(d);
    assert.equal(s1.open, before0.open + 2, JSON.stringify(s1));
    await say(a, 'counted');
    await b.until(() => b.of('message').length === 1, 'the message at bob');
    const s2 = await stats(d);
    assert.ok(s2.requests >= s1.requests + 1, `frames received: ${JSON.stringify(s1)} -> ${JSON.stringify(s2)}`);
    assert.ok(s2.delivered >= s1.delivered + 2, `delivered: ${JSON.stringify(s1)} -> ${JSON.stringify(s2)}`);
    assert.ok(s2.bytes_out > s1.bytes_out);
    b.ws.close(1000);
    await b.until(() => b.closed, 'bob closed');
    await waitFor(async () => !(await online()).includes(bob.name), { timeout: 3000 * SLOW, what: `${bob.name} offline after close` });
    await a.until(() => a.of('presence').at(-1)?.online.join() === alice.name, 'a presence event without bob');
    await waitFor(async () => (await stats(d)).open === before0.open + 1, { timeout: 2000, what: 'open to drop by one' });
  } finally {
    a.close();
  }
});

// ------------------------------------------------------------- resume

test('resume: ?since= replays exactly the stored messages after it, then live ones, none twice', async () => {
  const room = uniqueRoom();
  const sent = [];
  for (let i = 0; i < 6; i++) sent.push((await sendOk(d.url, room, alice, `m${i}`)).id);
  const a = await wsOpen(d, room, bob, { q: { since: sent[2] } });
  try {
    await a.until(() => a.of('message').length === 3, 'the 3 messages after since');
    const live = await sendOk(d2.url, room, carol, 'live');
    await a.until(() => a.of('message').length === 4, 'the live message');
    assert.deepEqual(a.of('message').map((m) => m.id), [...sent.slice(3), live.id]);
    a.close();
    // away for a while; messages go on; back with the last id seen
    const meanwhile = [];
    for (let i = 0; i < 3; i++) meanwhile.push((await sendOk(d.url, room, alice, `away${i}`)).id);
    const b = await wsOpen(d2, room, bob, { q: { since: live.id } });
    await b.until(() => b.of('message').length === 3, 'the messages sent while away');
    await sleep(200);
    assert.deepEqual(b.of('message').map((m) => m.id), meanwhile);
    b.close();
    // since=0-0: the whole history, in order
    const all = await wsOpen(d, room, carol, { q: { since: '0-0' } });
    await all.until(() => all.of('message').length === 10, 'the whole history');
    assert.deepEqual(all.of('message').map((m) => m.id), [...sent, live.id, ...meanwhile]);
    all.close();
  } finally {
    a.close();
  }
});

test('resume under load: messages sent while the socket opens are neither lost nor doubled', async () => {
  const room = uniqueRoom();
  const first = await sendOk(d.url, room, alice, 'start');
  const sending = (async () => {
    const ids = [];
    for (let i = 0; i < 40; i++) ids.push((await sendOk(d2.url, room, alice, `n${i}`)).id);
    return ids;
  })();
  await sleep(5);
  const c = await wsOpen(d, room, bob, { q: { since: first.id } });
  try {
    const ids = await sending;
    await c.until(() => c.of('message').length >= 40, '40 messages');
    await sleep(200);
    assert.deepEqual(c.of('message').map((m) => m.id), ids);
  } finally {
    c.close();
  }
});

// ------------------------------------------------------------- across daemons and transports

test('a message sent over WebSocket reaches SSE, long-poll and short-poll clients of another daemon, and back', async () => {
  const room = uniqueRoom();
  const base = await sendOk(d.url, room, carol, 'base');
  const sse = await sseOpen(`${d2.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  const ws1 = await wsOpen(d, room, alice);
  const ws2 = await wsOpen(d2, room, carol);
  try {
    await sleep(100);
    const lp = http('GET', `${d2.url}/api/rooms/${room}/poll?since=${base.id}&timeout=10`, { headers: bearer(bob.token) });
    await sleep(100);
    const id = await say(ws1, 'over websocket');
    const [ev] = await sse.waitEvents(1, { filter: (e) => e.event === 'message', what: 'the WebSocket message on SSE of the other daemon' });
    assert.equal(ev.id, id);
    assert.equal(ev.json.text, 'over websocket');
    const polled = await lp;
    assert.equal(polled.status, 200, polled.text);
    assert.deepEqual(polled.json.events.map((e) => [e.id, e.text]), [[id, 'over websocket']]);
    const sp = await history(d2.url, room, bob, { since: base.id });
    assert.deepEqual(sp.json.events.map((e) => e.id), [id]);
    assert.equal(sp.json.last_id, id);
    await ws2.until(() => ws2.of('message').some((m) => m.id === id), 'the message on a WebSocket of the other daemon');

    // and back: REST and WebSocket on the other daemon reach the WebSocket here
    const viaRest = await sendOk(d2.url, room, bob, 'over rest');
    const viaWs = await say(ws2, 'over the other websocket');
    await ws1.until(() => ws1.of('message').length === 3, 'three messages at the first socket');
    assert.deepEqual(ws1.of('message').map((m) => [m.id, m.from]), [[id, alice.name], [viaRest.id, bob.name], [viaWs, carol.name]]);
    // typing crosses daemons too
    ws2.send({ type: 'typing' });
    await ws1.until(() => ws1.of('typing').some((t) => t.from === carol.name), 'typing from the other daemon');
  } finally {
    sse.close();
    ws1.close();
    ws2.close();
  }
});

// ------------------------------------------------------------- origin

test('Origin: same host accepted, a cross-site page refused 403 before the upgrade; allowed_origins replaces the default', async () => {
  const room = uniqueRoom();
  const ok = await wsOpen(d, room, alice, { origin: `http://127.0.0.1:${d.port}` });
  ok.close();
  const noOrigin = await wsOpen(d, room, alice);
  noOrigin.close();
  const head = (dm, origin) => rawHttp(dm.port, `GET /api/rooms/${room}/ws?token=${alice.token} HTTP/1.1\r\n` +
    `Host: 127.0.0.1:${dm.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nOrigin: ${origin}\r\n\r\n`);
  for (const origin of ['http://evil.example', `http://127.0.0.1:${d.port}.evil.example`, 'null']) {
    const r = await head(d, origin);
    assert.equal(r.status, 403, `${origin}: ${r.raw.slice(0, 200)}`);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/);
    assert.equal(typeof r.json?.error, 'string');
    assert.ok(!/sec-websocket-accept/i.test(r.raw));
  }
  await assert.rejects(wsOpen(d, room, alice, { origin: 'http://evil.example' }), /HTTP 403/);

  const listed = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, allowed_origins: 'https://chat.example, http://other.example' } });
  const c = await wsOpen(listed, room, alice, { origin: 'https://chat.example' });
  c.close();
  for (const origin of ['https://evil.example', `http://127.0.0.1:${listed.port}`]) {
    const r = await head(listed, origin);
    assert.equal(r.status, 403, `${origin} with allowed_origins set: ${r.raw.slice(0, 200)}`);
  }
  await listed.stop();
});

test('Origin, absolute-form target: its authority is the host the Origin must match, not the Host header (RFC 9112 3.2.2)', async () => {
  const room = uniqueRoom();
  const self = `127.0.0.1:${d.port}`;
  const upgrade = (target, host) => rawHttp(d.port, `GET ${target}/api/rooms/${room}/ws?token=${alice.token} HTTP/1.1\r\n` +
    `Host: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nOrigin: http://${self}\r\n\r\n`);
  // a Host that matches the Origin no longer lets in a target of another host
  const foreign = await upgrade('http://evil.example', self);
  assert.equal(foreign.status, 403, foreign.raw.slice(0, 300));
  assert.match(foreign.json?.error ?? '', /forbidden/);
  // and the target's own host is the origin, whatever Host says
  const own = await upgrade(`http://${self}`, 'evil.example');
  assert.equal(own.status, 101, own.raw.slice(0, 300));
});

// ------------------------------------------------------------- keepalive

test('keepalive: pings every ws_ping_interval; a client that pongs stays, one that does not is dropped', async () => {
  const pd = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, ws_ping_interval: 1, ws_pong_timeout: 1 } });
  const room = uniqueRoom();
  const c = await wsOpen(pd, room, alice);
  // a raw client that never answers
  const sock = net.connect({ host: '127.0.0.1', port: pd.port });
  let got = Buffer.alloc(0);
  let ended = null;
  const t0 = Date.now();
  sock.on('data', (x) => { got = Buffer.concat([got, x]); });
  sock.on('close', () => { ended = Date.now(); });
  sock.on('error', () => {});
  sock.write(`GET /api/rooms/${room}/ws?token=${bob.token} HTTP/1.1\r\nHost: 127.0.0.1:${pd.port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
  try {
    await waitFor(() => ended, { timeout: 6000 * SLOW, what: 'the silent client to be dropped' });
    const after = ended - t0;
    const head = got.indexOf('\r\n\r\n');
    assert.match(got.toString('latin1', 0, head), /^HTTP\/1\.1 101/);
    assert.ok(got.subarray(head + 4).includes(Buffer.from([0x89])), 'no ping frame reached the silent client');
    assert.ok(after >= 1500 && after < 4000 * SLOW, `dropped after ${after} ms; expected about 2000 (ping at 1 s, pong due 1 s later)`);
    await sleep(Math.max(0, 3500 - (Date.now() - t0)));
    assert.equal(c.closed, null, `the ponging client was closed: ${JSON.stringify(c.closed)}`);
    assert.ok(c.pings >= 2, `${c.pings} pings in 3.5 s`);
    await say(c, 'still here');
  } finally {
    sock.destroy();
    c.close();
    await pd.stop();
  }
});

// ------------------------------------------------------------- slow consumer

test('slow consumer: a reader that stops is closed 1008 past client_buffer_limit, resumes with since losing nothing; history is paced', async () => {
  const sd = await startDaemon({
    redisUrl: redis.url,
    config: { ...RELAXED, max_message_bytes: 16000, client_buffer_limit: 65536, ws_pong_timeout: 10 },
  });
  const room = uniqueRoom();
  const sender = await wsOpen(sd, room, alice);
  // the slow one: a raw socket that reads the 101 and then stops reading
  const sock = net.connect({ host: '127.0.0.1', port: sd.port });
  let got = Buffer.alloc(0);
  let ended = false;
  sock.on('data', (x) => { got = Buffer.concat([got, x]); });
  sock.on('end', () => { ended = true; });
  sock.on('close', () => { ended = true; });
  sock.on('error', () => { ended = true; });
  sock.write(`GET /api/rooms/${room}/ws?token=${bob.token} HTTP/1.1\r\nHost: 127.0.0.1:${sd.port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
  try {
    await waitFor(() => got.includes('\r\n\r\n'), { timeout: 3000 * SLOW, what: 'the 101 for the slow client' });
    sock.pause();
    const s0 = await stats(sd);
    const sent = [];
    const text = (i) => `${String(i).padStart(6, '0')} ${'z'.repeat(15000)}`;
    const t0 = Date.now();
    while ((await stats(sd)).dropped === s0.dropped) {
      assert.ok(sent.length < 3000, `not dropped after ${sent.length} messages of 15 kB`);
      // 20 at a time; acks come back in the order of the frames
      const n = sender.of('ack').length;
      for (let i = 0; i < 20; i++) sender.send({ type: 'message', text: text(sent.length + i) });
      await sender.until(() => sender.of('ack').length === n + 20, `acks ${n + 1}..${n + 20}`);
      sent.push(...sender.of('ack').slice(n).map((a) => a.id));
    }
    const dropMs = Date.now() - t0;
    // read what is left: the frames that made it, then the close
    sock.resume();
    await waitFor(() => ended, { timeout: 10000 * SLOW, what: 'the dropped connection to end' });
    const body = got.subarray(got.indexOf('\r\n\r\n') + 4);
    const frames = [];
    for (let p = 0; ;) {
      if (body.length < p + 2) break;
      let n = body[p + 1] & 0x7f;
      let off = 2;
      if (n === 126) { n = body.readUInt16BE(p + 2); off = 4; } else if (n === 127) { n = Number(body.readBigUInt64BE(p + 2)); off = 10; }
      if (body.length < p + off + n) break; // cut short
      frames.push({ opcode: body[p] & 0x0f, payload: body.subarray(p + off, p + off + n) });
      p += off + n;
    }
    const close = frames.find((f) => f.opcode === 8);
    assert.ok(close, `no close frame after ${frames.length} frames`);
    assert.equal(close.payload.readUInt16BE(0), 1008, `close ${close.payload.toString('hex')}`);
    const seen = frames.filter((f) => f.opcode === 1).map((f) => JSON.parse(f.payload)).filter((e) => e.type === 'message').map((e) => e.id);
    assert.deepEqual(seen, sent.slice(0, seen.length), 'the slow client got messages out of order');
    assert.ok(seen.length < sent.length, 'the slow client got everything: nothing was dropped');
    process.stderr.write(`# slow consumer: dropped after ${sent.length} messages (${dropMs} ms), ` +
      `${seen.length} had reached it; close ${close.payload.readUInt16BE(0)} ${JSON.stringify(close.payload.subarray(2).toString())}\n`);
    // back with the last id it saw: every other message, once, in order
    const more = await say(sender, 'after the drop');
    const back = await wsOpen(sd, room, bob, { q: { since: seen.at(-1) ?? '0-0' } });
    const want = [...sent.slice(seen.length), more];
    await back.until(() => back.of('message').length >= want.length, `${want.length} messages after resuming`, 10000 * SLOW);
    await sleep(100);
    assert.deepEqual(back.of('message').map((m) => m.id), want);
    back.close();
    // far behind: the whole history (about 3 MB, 45x the limit) is paced, not held against it
    const s1 = await stats(sd);
    const all = await wsOpen(sd, room, carol, { q: { since: '0-0' } });
    await all.until(() => all.of('message').length >= sent.length + 1, `all ${sent.length + 1} messages from 0-0`, 15000 * SLOW);
    assert.deepEqual(all.of('message').map((m) => m.id), [...sent, more]);
    assert.equal(all.closed, null);
    assert.equal((await stats(sd)).dropped, s1.dropped, 'a reader catching up was dropped');
    all.close();
  } finally {
    sock.destroy();
    sender.close();
    await sd.stop();
  }
});

// ------------------------------------------------------------- shutdown and Redis

test('SIGTERM: open sockets get close 1001, the daemon exits 0, also with a socket whose client stopped reading', async () => {
  const td = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, max_message_bytes: 16000 } });
  const room = uniqueRoom();
  const a = await wsOpen(td, room, alice);
  const b = await wsOpen(td, room, bob, { q: { since: '0-0' } });
  // a client that reads the 101 and then nothing: its close can never be written
  const stuck = net.connect({ host: '127.0.0.1', port: td.port });
  let head = '';
  stuck.on('data', (x) => { head += x.toString('latin1'); if (head.includes('\r\n\r\n')) stuck.pause(); });
  stuck.on('error', () => {});
  stuck.write(`GET /api/rooms/${room}/ws?token=${carol.token} HTTP/1.1\r\nHost: 127.0.0.1:${td.port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
  try {
    await waitFor(() => head.includes('\r\n\r\n'), { timeout: 3000 * SLOW, what: 'the 101 for the stuck client' });
    // 6 MB: more than the socket buffers take
    for (let i = 0; i < 20; i++) {
      const n = a.of('ack').length;
      for (let j = 0; j < 20; j++) a.send({ type: 'message', text: 'q'.repeat(15000) });
      await a.until(() => a.of('ack').length === n + 20, `acks ${n + 1}..${n + 20}`);
    }
    const t0 = Date.now();
    const code = await td.stop();
    assert.equal(code, 0, `exit ${code}; log:\n${td.logs().slice(-2000)}`);
    assert.match(td.logs(), /still closing at exit/, 'the stuck socket was not there at exit');
    for (const c of [a, b]) {
      await c.until(() => c.closed, 'the close', 10000 * SLOW);
      assert.equal(c.closed.code, 1001, JSON.stringify(c.closed));
      assert.equal(c.closed.reason, 'server shutting down');
    }
    assert.ok(Date.now() - t0 < 7000 * SLOW, `shutdown took ${Date.now() - t0} ms`);
  } finally {
    stuck.destroy();
    a.close();
    b.close();
  }
});

// A message frame on its way to Redis at SIGTERM: the drain waits for the
// write, and the ack must come before the close 1001; it came never, and a
// client without an idempotency key sent the stored message again. A frame
// sent once the daemon drains is not read: never stored without its ack.
// Twice: with the token cached (right after a send), and after the shipped
// token_cache_ttl (5 s) of quiet, when the send first asks Redis for the
// token, and the drain did not count it until the answer.
for (const [label, quietMs, pause] of [
  ['its token cached', 0, 'WRITE'],
  ['its token asked again after 5 s of quiet (token_cache_ttl)', 5500, 'ALL'],
]) {
  test(`SIGTERM with a message frame on its way to Redis, ${label}: its ack comes before the close 1001; nothing is stored unacknowledged`, async () => {
    const td = await startDaemon({ redisUrl: redis.url, config: CONFIG });
    const room = uniqueRoom();
    const a = await wsOpen(td, room, alice);
    try {
      const first = await say(a, 'before');
      await sleep(quietMs);
      await redis.cmd('CLIENT', 'PAUSE', '1200', pause);
      a.send({ type: 'message', text: 'in flight' });
      await sleep(150);
      const stopped = td.stop();
      await sleep(100);
      a.send({ type: 'message', text: 'after SIGTERM' });
      assert.equal(await stopped, 0, td.logs().slice(-2000));
      await a.until(() => a.closed, 'the close', 10000 * SLOW);
      assert.equal(a.closed.code, 1001, JSON.stringify(a.closed));
      const acked = a.of('ack').map((x) => x.id);
      const stored = (await history(d.url, room, alice, { since: '0-0' })).json.events.map((e) => [e.id, e.text]);
      assert.deepEqual(acked.slice(0, 2), [first, stored[1]?.[0]], `acks ${JSON.stringify(a.events)}; stored ${JSON.stringify(stored)}`);
      assert.deepEqual(stored.map(([id]) => id), acked, `every stored message acknowledged, and no other: stored ${JSON.stringify(stored)}, acks ${JSON.stringify(acked)}`);
      assert.deepEqual(stored.slice(0, 2).map(([, t]) => t), ['before', 'in flight']);
    } finally {
      a.close();
    }
  });
}

test('Redis down: a message gets an "unavailable" error frame, the socket stays, and works again when Redis is back', async () => {
  const r2 = await startRedis();
  const rd = await startDaemon({ redisUrl: r2.url, config: CONFIG });
  const u = await register(rd.url, uniqueName('dora'));
  const room = uniqueRoom();
  const c = await wsOpen(rd, room, u);
  try {
    await say(c, 'up');
    await r2.stop();
    c.send({ type: 'message', text: 'down' });
    const err = await c.until(() => c.of('error')[0], 'the unavailable error frame');
    assert.equal(err.error, 'unavailable');
    assert.equal(c.closed, null);
    await r2.restart();
    // the daemon reconnects with backoff: try until a message is stored
    await waitFor(async () => {
      const n = c.of('ack').length;
      const e = c.of('error').length;
      c.send({ type: 'message', text: 'back' });
      await c.until(() => c.of('ack').length > n || c.of('error').length > e, 'an ack or an error', 3000);
      return c.of('ack').length > n;
    }, { timeout: 15000 * SLOW, interval: 200, what: 'a message to be stored after Redis came back' });
    await c.until(() => c.of('message').some((m) => m.text === 'back'), 'the message from the bus after reconnecting', 10000);
  } catch (e) {
    e.message += `\n--- crosstalkd log (tail) ---\n${rd.logs().slice(-1500)}`;
    throw e;
  } finally {
    c.close();
    await rd.stop();
  }
});
