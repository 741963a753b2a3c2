// ws_quiet.test.mjs - a WebSocket that stays quiet for longer than every
// HTTP timeout still sends and receives (issue 11.1), on a crosstalkd with
// the shipped defaults (header_timeout 10 s, ws_ping_interval 30 s,
// ws_pong_timeout 10 s) and the npm `ws` client. libevent 2.1 used to re-arm
// header_timeout as a read timeout on each read of the upgraded connection:
// a socket quiet for 10 s after its first frame was no longer read, and was
// dropped at its first ping.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  bearer, cleanup, history, http, register, sendOk, sleep, startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

const QUIET_MS = 75000;

let redis;
let d;
const sockets = [];

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url }); // the shipped defaults
});
after(async () => {
  for (const s of sockets) s.ws.terminate();
  await cleanup();
});

/** Opens a WebSocket and records what arrives; resolves once it is open. */
function wsOpen(room, user) {
  const url = `ws://127.0.0.1:${d.port}/api/rooms/${room}/ws?token=${user.token}`;
  const ws = new WebSocket(url);
  const c = { ws, events: [], pings: 0, closed: null };
  sockets.push(c);
  ws.on('message', (m) => c.events.push(JSON.parse(m.toString('utf8'))));
  ws.on('ping', () => { c.pings++; });
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString(), at: Date.now() }; });
  c.until = async (pred, what, ms = 3000) => {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      const v = pred();
      if (v) return v;
      if (c.closed) break;
      await sleep(20);
    }
    throw new Error(`waited ${Date.now() - t0} ms for ${what}; closed=${JSON.stringify(c.closed)}, ` +
      `last events ${JSON.stringify(c.events.slice(-3)).slice(0, 300)}`);
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('error', (e) => reject(new Error(`opening ${url.replace(/token=.*/, 'token=…')}: ${e.message}`)));
  });
}

test(`a WebSocket quiet for ${QUIET_MS / 1000} s then sends and receives (shipped defaults)`, { timeout: QUIET_MS + 40000 }, async () => {
  const room = uniqueRoom('quiet');
  const alice = await register(d.url, uniqueName('alice'));
  const bob = await register(d.url, uniqueName('bob'));
  const carol = await register(d.url, uniqueName('carol'));

  // alice sends a frame first and then goes quiet (the case that broke);
  // bob never sends anything before his quiet spell.
  const a = await wsOpen(room, alice);
  const b = await wsOpen(room, bob);
  a.ws.send(JSON.stringify({ type: 'message', text: 'before the quiet' }));
  const ack0 = await a.until(() => a.events.find((e) => e.type === 'ack'), 'the ack of the first message');

  // The quiet spell; /healthz keeps answering meanwhile.
  const t0 = Date.now();
  while (Date.now() - t0 < QUIET_MS) {
    const h0 = Date.now();
    const h = await http('GET', `${d.url}/healthz`, { timeout: 1000 });
    assert.equal(h.status, 200, `GET /healthz during the quiet spell: ${h.status} ${h.text}`);
    assert.ok(Date.now() - h0 < 1000, `GET /healthz took ${Date.now() - h0} ms`);
    await sleep(Math.min(5000, QUIET_MS - (Date.now() - t0)));
  }
  for (const [who, c] of [['alice', a], ['bob', b]]) {
    assert.equal(c.closed, null, `${who}'s socket closed during the quiet spell: ${JSON.stringify(c.closed)}`);
    assert.ok(c.pings >= 2, `${who} got ${c.pings} pings in ${QUIET_MS / 1000} s (ws_ping_interval 30)`);
  }

  // Both send: each gets its ack and the message is stored.
  const acks = [];
  for (const [who, c] of [['alice', a], ['bob', b]]) {
    const before = c.events.filter((e) => e.type === 'ack').length;
    const s0 = Date.now();
    c.ws.send(JSON.stringify({ type: 'message', text: `${who} after the quiet` }));
    const ack = await c.until(() => c.events.filter((e) => e.type === 'ack')[before], `${who}'s ack after the quiet`);
    assert.ok(Date.now() - s0 < 2000, `${who}'s ack took ${Date.now() - s0} ms`);
    acks.push(ack.id);
  }
  const stored = await history(d.url, room, carol, { since: ack0.id });
  assert.equal(stored.status, 200, stored.text);
  assert.deepEqual(stored.json.events.map((e) => e.id), acks, 'the two messages sent after the quiet are stored, in order');
  assert.deepEqual(stored.json.events.map((e) => e.text), ['alice after the quiet', 'bob after the quiet']);

  // Both receive a message sent by REST.
  const m = await sendOk(d.url, room, carol, 'by REST after the quiet');
  for (const [who, c] of [['alice', a], ['bob', b]]) {
    await c.until(() => c.events.some((e) => e.id === m.id), `${who} to receive ${m.id}`);
  }

  // Pings came at 30 s and 60 s, each answered within ws_pong_timeout (the
  // pongs were read): both sockets are still open.
  assert.equal(a.closed, null, `alice's socket closed after the quiet: ${JSON.stringify(a.closed)}`);
  assert.equal(b.closed, null, `bob's socket closed after the quiet: ${JSON.stringify(b.closed)}`);
  assert.doesNotMatch(d.logs(), /stray .* timeout|no pong/, 'crosstalkd logged a timeout on these sockets');
  const h = await http('GET', `${d.url}/api/rooms/${room}/presence`, { headers: bearer(carol.token) });
  assert.equal(h.status, 200);
  assert.ok(h.json.online.includes(alice.name) && h.json.online.includes(bob.name), `presence: ${h.text}`);
});
