// writes.test.mjs - the write path's promises under faults, with the shipped
// defaults (redis_timeout_ms 2000, token_cache_ttl 5, the rate limits):
// idempotent sends (Idempotency-Key, a WebSocket "key") across two daemons
// and the FastCGI pool; a send whose reply from Redis is lost (a TCP proxy
// in this file cuts or stalls it) is a 503 that says the outcome is unknown,
// and its retry stores nothing twice and delivers nothing twice; Redis
// SIGSTOPped for 15 s under load; /healthz and sends naming out of memory
// and read-only; a deleted user's token refused everywhere within
// token_cache_ttl. Real redis-server, crosstalkd, spawn-fcgi, nginx.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import {
  assertError, bearer, cleanup, freePort, http, register, roomKey, sleep, sseOpen, startDaemon,
  startFcgi, startNginx, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const REDIS_TIMEOUT_MS = 2000; // redis_timeout_ms, shipped
const TOKEN_CACHE_TTL_MS = 5000; // token_cache_ttl, shipped

let redis; // the one Redis
let proxy; // a TCP proxy in front of it
let a; // crosstalkd on Redis directly
let p; // crosstalkd through the proxy
let fcgi; // the FastCGI pool, through the proxy
let nginx; // in front of a and the pool: its /api/rooms/{room}/messages and /healthz are the pool's
let alice;
let bob;
const sockets = new Set();

// ------------------------------------------------------------ helpers

/**
 * A TCP proxy on loopback in front of Redis. dropReplyOf(pattern, {mode})
 * arms it once: the next connection whose client bytes contain `pattern`
 * forwards them, then forwards nothing more that Redis answers on it; with
 * mode 'cut' it closes that connection `cutAfterMs` later (Redis has run
 * the command by then), with 'hold' it keeps it open until the client
 * gives up. Resolves when it fired.
 */
async function startProxy(targetPort) {
  const port = await freePort();
  const conns = new Set();
  let armed = null;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const c = { client, upstream, dropping: false, seen: Buffer.alloc(0) };
    conns.add(c);
    const close = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(c);
    };
    client.on('data', (d) => {
      upstream.write(d);
      if (!armed || c.dropping) return;
      const hay = Buffer.concat([c.seen, d]);
      c.seen = hay.subarray(Math.max(0, hay.length - 64));
      if (!hay.includes(armed.pattern)) return;
      const arm = armed;
      armed = null;
      c.dropping = true;
      if (arm.mode === 'cut') setTimeout(close, arm.cutAfterMs);
      arm.fired();
    });
    upstream.on('data', (d) => {
      if (!c.dropping) client.write(d);
    });
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', () => {});
    upstream.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  server.unref();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    dropReplyOf(pattern, { mode = 'cut', cutAfterMs = 300 } = {}) {
      return new Promise((fired) => {
        armed = { pattern: Buffer.from(pattern), mode, cutAfterMs, fired };
      });
    },
    close() {
      server.close();
      for (const c of conns) {
        c.client.destroy();
        c.upstream.destroy();
      }
    },
  };
}

// The RESP bytes of the append script's command as hiredis writes it.
const EVALSHA = '$7\r\nEVALSHA\r\n';

const newKey = (prefix = 'k') => `${prefix}-${crypto.randomUUID()}`;

/** POST a message with an Idempotency-Key header (a string, or an array for several). */
function sendKey(baseUrl, room, user, text, key, opts = {}) {
  const headers = { ...bearer(user.token) };
  if (key !== undefined) headers['Idempotency-Key'] = key;
  return http('POST', `${baseUrl}/api/rooms/${room}/messages`, { headers, body: { text }, ...opts });
}

async function stored(room) {
  const entries = await redis.cmd('XRANGE', roomKey(room), '-', '+');
  return entries.map(([id, fields]) => {
    const f = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    return { id, ...f };
  });
}

/** Opens a WebSocket with the npm client; collects parsed frames in `events`. */
function wsOpen(dm, room, user) {
  const url = `ws://127.0.0.1:${dm.port}/api/rooms/${room}/ws?token=${user.token}`;
  const ws = new WebSocket(url);
  const c = { ws, events: [], listeners: new Set() };
  sockets.add(ws);
  ws.on('message', (data) => {
    c.events.push(JSON.parse(data.toString('utf8')));
    for (const f of [...c.listeners]) f();
  });
  c.of = (type) => c.events.filter((e) => e.type === type);
  c.send = (obj) => ws.send(JSON.stringify(obj));
  c.until = (pred, what, ms = 5000 * SLOW) => new Promise((resolve, reject) => {
    const t0 = Date.now();
    const check = () => {
      const v = pred();
      if (v) {
        c.listeners.delete(check);
        clearTimeout(tm);
        resolve(v);
      }
    };
    const tm = setTimeout(() => {
      c.listeners.delete(check);
      reject(new Error(`timed out after ${Date.now() - t0} ms waiting for ${what} on a WebSocket of ${dm.url}; ` +
        `last frames: ${JSON.stringify(c.events.slice(-4)).slice(0, 500)}`));
    }, ms);
    c.listeners.add(check);
    check();
  });
  c.close = () => {
    sockets.delete(ws);
    ws.terminate();
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('error', (e) => reject(new Error(`WebSocket ${url.replace(/token=.*/, '')}: ${e.message}`)));
  });
}

/** How many times each id arrived as a message event (SSE events or WebSocket frames). */
function deliveries(events) {
  const n = new Map();
  for (const e of events) n.set(e.id, (n.get(e.id) ?? 0) + 1);
  return n;
}

const healthz = (baseUrl) => http('GET', `${baseUrl}/healthz`);

function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

// ------------------------------------------------------------ setup

before(async () => {
  redis = await startRedis();
  proxy = await startProxy(redis.port);
  [a, p] = await Promise.all([
    startDaemon({ redisUrl: redis.url, config: { trusted_proxies: '127.0.0.1,unix' } }),
    startDaemon({ redisUrl: proxy.url }),
  ]);
  fcgi = await startFcgi({ redisUrl: proxy.url, children: 2 });
  nginx = await startNginx({ daemons: [a.port], fcgiSocket: fcgi.socket });
  alice = await register(a.url, uniqueName('alice'));
  bob = await register(a.url, uniqueName('bob'));
});

after(async () => {
  for (const ws of sockets) ws.terminate();
  proxy?.close();
  await fcgi?.stop().catch(() => {});
  await cleanup();
});

// ------------------------------------------------------------ idempotent sends

test('the same Idempotency-Key on two daemons and the FastCGI pool: one message, 201 then 200 with it, one delivery', async () => {
  const room = uniqueRoom();
  const sse = await sseOpen(`${a.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  const ws = await wsOpen(p, room, bob);
  try {
    assert.equal(sse.status, 200, sse.text);
    await sleep(200);
    const key = newKey();
    const first = await sendKey(a.url, room, alice, 'hello', key);
    assert.equal(first.status, 201, first.text);
    for (const [where, url] of [['crosstalkd B', p.url], ['the FastCGI pool', nginx.url], ['crosstalkd A', a.url]]) {
      const r = await sendKey(url, room, alice, 'hello, changed on the retry', key);
      assert.equal(r.status, 200, `a repeat on ${where}: ${r.text}`);
      assert.deepEqual(r.json, first.json, `a repeat on ${where} answers the first event`);
    }
    const quoted = await sendKey(a.url, room, alice, 'hello', `"${key}"`);
    assert.equal(quoted.status, 200, `the draft's quoted form of the same key: ${quoted.text}`);
    assert.equal(quoted.json.id, first.json.id);

    const other = await sendKey(nginx.url, room, bob, 'bob, same key', key);
    assert.equal(other.status, 201, `another user's same key is a new message: ${other.text}`);
    const plain = await sendKey(p.url, room, alice, 'no key', undefined);
    assert.equal(plain.status, 201, plain.text);

    // Retries racing on every server at once: one of them stores.
    const raced = newKey('race');
    const rs = await Promise.all([a.url, p.url, nginx.url, a.url, p.url, nginx.url]
      .map((url, i) => sendKey(url, room, alice, `race ${i}`, raced)));
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 200, 200, 200, 200, 201], rs.map((r) => r.text).join('\n'));
    assert.equal(new Set(rs.map((r) => r.json.id)).size, 1, 'every racer got the same id');

    const ids = [first.json.id, other.json.id, plain.json.id, rs[0].json.id];
    assert.deepEqual((await stored(room)).map((e) => e.id), ids, 'what Redis holds');
    await sse.waitEvents(4, { filter: (e) => e.event === 'message', what: 'the 4 messages on SSE' });
    await ws.until(() => ws.of('message').length >= 4, 'the 4 messages on the WebSocket');
    await sleep(1000); // room for a duplicate to show up
    for (const [name, events] of [['SSE', sse.messages().map((e) => e.json)], ['WebSocket', ws.of('message')]]) {
      const n = deliveries(events);
      assert.deepEqual([...n.keys()], ids, `${name}: the messages, in order`);
      assert.deepEqual([...n.values()], [1, 1, 1, 1], `${name}: each delivered once`);
    }
  } finally {
    sse.close();
    ws.close();
  }
});

test('bad idempotency keys: 400 bad_request and nothing stored, on crosstalkd and the pool', async () => {
  const room = uniqueRoom();
  const bad = ['', 'a b', 'a:b', 'x'.repeat(65), 'k\u00e9', 'a.b', '"', '""', '"a', ['k1', 'k2']];
  for (const [where, url] of [['crosstalkd', a.url], ['the FastCGI pool', nginx.url]]) {
    for (const key of bad) {
      const r = await sendKey(url, room, alice, 'must not be stored', key);
      assertError(r, 400, 'bad_request', `${where}, Idempotency-Key ${JSON.stringify(key)}`);
    }
  }
  assert.equal(await redis.cmd('XLEN', roomKey(room)), 0, 'a send with a bad key was stored');
  assert.deepEqual(await redis.cmd('KEYS', `ct:idem:{${room}}:*`), [], 'a bad key was remembered');
  const longest = await sendKey(nginx.url, room, alice, '64 characters', 'K'.repeat(64));
  assert.equal(longest.status, 201, longest.text);
  assert.equal(await redis.cmd('XLEN', roomKey(room)), 1);
});

test('WebSocket "key": a repeat is acked with the same id and stored once; a bad key is a 400 error frame', async () => {
  const room = uniqueRoom();
  const watcher = await wsOpen(a, room, bob);
  const c = await wsOpen(a, room, alice);
  const c2 = await wsOpen(p, room, alice);
  try {
    const key = newKey('ws');
    c.send({ type: 'message', text: 'over the socket', key });
    const ack1 = await c.until(() => c.of('ack')[0], 'the first ack');
    c.send({ type: 'message', text: 'over the socket, again', key });
    const ack2 = await c.until(() => c.of('ack')[1], 'the ack of the repeat');
    c2.send({ type: 'message', text: 'from the other daemon', key });
    const ack3 = await c2.until(() => c2.of('ack')[0], 'the ack of the repeat on the other daemon');
    assert.deepEqual([ack1, ack2, ack3], [0, 1, 2].map(() => ({ type: 'ack', id: ack1.id, key })), 'acks name the key and the one id');
    const rest = await sendKey(nginx.url, room, alice, 'by REST', key);
    assert.equal(rest.status, 200, `the same key by REST through the pool: ${rest.text}`);
    assert.equal(rest.json.id, ack1.id);
    assert.equal(rest.json.text, 'over the socket', 'the repeat answers the first text');

    c.send({ type: 'message', text: 'bad key', key: 'no spaces' });
    const err = await c.until(() => c.of('error')[0], 'the error frame of a bad key');
    assert.equal(err.error, 'bad_request', JSON.stringify(err));
    c.send({ type: 'message', text: 'bad key', key: 42 });
    const err2 = await c.until(() => c.of('error')[1], 'the error frame of a key that is no string');
    assert.equal(err2.error, 'bad_request', JSON.stringify(err2));

    await watcher.until(() => watcher.of('message').length >= 1, 'the message on another socket');
    await sleep(1000);
    assert.deepEqual(watcher.of('message').map((e) => [e.id, e.text]), [[ack1.id, 'over the socket']], 'delivered once');
    assert.deepEqual((await stored(room)).map((e) => e.id), [ack1.id], 'stored once');
  } finally {
    for (const s of [watcher, c, c2]) s.close();
  }
});

test('allowed_origins: a browser\'s preflight for a send with an Idempotency-Key passes', async () => {
  const origin = 'http://good.example';
  const d = await startDaemon({ redisUrl: redis.url, config: { allowed_origins: origin } });
  try {
    const r = await http('OPTIONS', `${d.url}/api/rooms/${uniqueRoom()}/messages`, {
      headers: {
        Origin: origin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization,content-type,idempotency-key',
      },
    });
    assert.equal(r.status, 204, r.text);
    assert.equal(r.headers['access-control-allow-origin'], origin);
    const allowed = (r.headers['access-control-allow-headers'] ?? '').toLowerCase().split(/\s*,\s*/);
    assert.ok(allowed.includes('idempotency-key'), `Access-Control-Allow-Headers: ${r.headers['access-control-allow-headers']}`);
  } finally {
    await d.stop();
  }
});

// ------------------------------------------------------------ unknown outcomes

test('the reply of a stored send is lost with its connection: 503 "unknown", the retry is a 200, one message, one delivery each', async () => {
  const room = uniqueRoom();
  const sse = await sseOpen(`${a.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  const ws = await wsOpen(p, room, bob);
  try {
    await sleep(200);
    const warm = await sendKey(p.url, room, alice, 'warm-up', undefined);
    assert.equal(warm.status, 201, warm.text);
    const key = newKey('lost');
    const fired = proxy.dropReplyOf(EVALSHA, { mode: 'cut', cutAfterMs: 300 });
    const t0 = Date.now();
    const r = await sendKey(p.url, room, alice, 'the reply of this is lost', key);
    const dt = Date.now() - t0;
    await fired;
    assertError(r, 503, 'unavailable', 'the send whose reply was lost');
    assert.match(r.json.message, /outcome is unknown/, r.text);
    assert.match(r.json.message, /Idempotency-Key/, r.text);
    assert.doesNotMatch(r.json.message, /nothing was stored/, r.text);
    assert.ok(dt < REDIS_TIMEOUT_MS + 1000, `answered in ${dt} ms`);
    const held = await stored(room);
    assert.equal(held.length, 2, 'Redis stored it all the same');

    const retry = await waitFor(async () => {
      const x = await sendKey(p.url, room, alice, 'the reply of this is lost', key);
      return x.status === 503 ? null : x;
    }, { timeout: 10000, what: 'the retry to be answered once crosstalkd has reconnected' });
    assert.equal(retry.status, 200, retry.text);
    assert.equal(retry.json.id, held[1].id, 'the retry answers the stored message');

    await sse.waitEvents(2, { filter: (e) => e.event === 'message', what: 'both messages on SSE' });
    await ws.until(() => ws.of('message').length >= 2, 'both messages on the WebSocket');
    await sleep(1000);
    for (const [name, events] of [['SSE', sse.messages().map((e) => e.json)], ['WebSocket', ws.of('message')]]) {
      assert.deepEqual([...deliveries(events)], [[warm.json.id, 1], [held[1].id, 1]], `${name}: one delivery each`);
    }
    assert.equal((await stored(room)).length, 2, 'the retry stored nothing');
  } finally {
    sse.close();
    ws.close();
  }
});

test('a reply that never comes: crosstalkd and the pool answer 503 "unknown" within redis_timeout_ms + 1 s; the retry is a 200', async () => {
  for (const [where, url] of [['crosstalkd', p.url], ['the FastCGI pool', nginx.url]]) {
    const room = uniqueRoom();
    const warm = await sendKey(url, room, alice, 'warm-up', undefined);
    assert.equal(warm.status, 201, `${where}: ${warm.text}`);
    const key = newKey('stall');
    const fired = proxy.dropReplyOf(EVALSHA, { mode: 'hold' });
    const t0 = Date.now();
    const r = await sendKey(url, room, alice, 'no reply to this', key);
    const dt = Date.now() - t0;
    await fired;
    assertError(r, 503, 'unavailable', `${where}: the send with no reply`);
    assert.match(r.json.message, /outcome is unknown/, r.text);
    assert.ok(dt >= REDIS_TIMEOUT_MS - 100 && dt <= REDIS_TIMEOUT_MS + 1000,
      `${where}: answered after ${dt} ms, not within ${REDIS_TIMEOUT_MS}..${REDIS_TIMEOUT_MS + 1000}`);
    const held = await stored(room);
    assert.equal(held.length, 2, `${where}: Redis stored it`);
    const retry = await waitFor(async () => {
      const x = await sendKey(url, room, alice, 'no reply to this', key);
      return x.status === 503 ? null : x;
    }, { timeout: 10000, what: `${where}: the retry to be answered` });
    assert.equal(retry.status, 200, `${where}: ${retry.text}`);
    assert.equal(retry.json.id, held[1].id, `${where}: the retry answers the stored message`);
    assert.equal((await stored(room)).length, 2, `${where}: the retry stored nothing`);
    console.log(`# ${where}: a send with no reply answered 503 after ${dt} ms`);
  }
  assert.equal((await healthz(p.url)).status, 200, 'crosstalkd through the proxy is healthy again');
});

// ------------------------------------------------------------ tokens

test('a deleted user is refused on both daemons and the pool within token_cache_ttl; its name registered again gets a token that works, the old one stays refused', async () => {
  const name = uniqueName('gone');
  const u = await register(a.url, name);
  const room = uniqueRoom();
  const targets = [['crosstalkd A', a.url], ['crosstalkd B', p.url], ['the FastCGI pool', nginx.url]];
  for (const [where, url] of targets) {
    // twice each, so that both pool processes and both daemons have seen it
    for (let i = 0; i < 2; i++) {
      const r = await sendKey(url, room, u, `before ${i}`, undefined);
      assert.equal(r.status, 201, `${where}: ${r.text}`);
    }
  }
  await redis.cmd('DEL', `ct:user:${name}`);
  const tDel = Date.now();
  const firstRefused = new Map();
  const lateSuccess = [];
  while (firstRefused.size < targets.length || Date.now() - tDel < TOKEN_CACHE_TTL_MS + 1000) {
    assert.ok(Date.now() - tDel < 3 * TOKEN_CACHE_TTL_MS,
      `still not refused after ${Date.now() - tDel} ms on ${targets.filter(([w]) => !firstRefused.has(w)).map(([w]) => w).join(', ')}`);
    for (const [where, url] of targets) {
      const t = Date.now();
      const r = await sendKey(url, room, u, 'after the delete', undefined);
      if (r.status === 401) {
        if (!firstRefused.has(where)) firstRefused.set(where, t - tDel);
      } else {
        assert.equal(r.status, 201, `${where}: ${r.text}`);
        if (t - tDel >= TOKEN_CACHE_TTL_MS) lateSuccess.push(`${where} at +${t - tDel} ms`);
      }
    }
    await sleep(100);
  }
  console.log(`# first 401 after the delete: ${[...firstRefused].map(([w, ms]) => `${w} +${ms} ms`).join(', ')}`);
  assert.deepEqual(lateSuccess, [], `the token still worked ${TOKEN_CACHE_TTL_MS} ms after the user was deleted`);

  const again = await register(a.url, name);
  assert.notEqual(again.token, u.token);
  for (let round = 0; round < 3; round++) {
    for (const [where, url] of targets) {
      const ok = await sendKey(url, room, again, 'the new token', undefined);
      assert.equal(ok.status, 201, `${where}, the new token: ${ok.text}`);
      assert.equal(ok.json.from, name);
      assertError(await sendKey(url, room, u, 'the old token', undefined), 401, 'unauthorized', `${where}, the old token`);
    }
    await sleep(TOKEN_CACHE_TTL_MS / 2);
  }
});

test('a WebSocket opened before its user was deleted cannot send after token_cache_ttl: an unauthorized error frame, close 1008, nothing stored', async () => {
  const name = uniqueName('gonews');
  const u = await register(a.url, name);
  const room = uniqueRoom();
  const c = await wsOpen(a, room, u);
  let closed = null;
  c.ws.on('close', (code) => { closed = code; });
  try {
    c.send({ type: 'message', text: 'while it exists' });
    const ack = await c.until(() => c.of('ack')[0], 'the ack of a send before the delete');
    await redis.cmd('DEL', `ct:user:${name}`);
    await sleep(TOKEN_CACHE_TTL_MS + 500);
    c.send({ type: 'message', text: 'after the delete' });
    const err = await c.until(() => c.of('error')[0], 'the error frame of a send after the delete');
    assert.equal(err.error, 'unauthorized', JSON.stringify(err));
    await waitFor(() => closed !== null, { timeout: 5000 * SLOW, what: 'the close of the socket after the error frame' });
    assert.equal(closed, 1008, 'closed as a policy violation');
    assert.deepEqual((await stored(room)).map((e) => e.id), [ack.id], 'only the send before the delete is stored');
  } finally {
    c.close();
  }
});

// ------------------------------------------------------------ writes refused

test('/healthz and sends name out of memory and a read-only replica, on crosstalkd and the pool; 200 again when undone', async () => {
  const r2 = await startRedis();
  const other = await startRedis();
  const d2 = await startDaemon({ redisUrl: r2.url, config: { trusted_proxies: '127.0.0.1,unix' } });
  const pool2 = await startFcgi({ redisUrl: r2.url, children: 2 });
  const ng2 = await startNginx({ daemons: [d2.port], fcgiSocket: pool2.socket });
  try {
    const room = uniqueRoom();
    const ids = [];
    const fresh = async (what) => {
      const u = await register(d2.url, uniqueName('w'));
      for (const url of [d2.url, ng2.url]) {
        const r = await sendKey(url, room, u, `${what} via ${url}`, newKey());
        assert.equal(r.status, 201, `${what}: ${r.text}`);
      }
      return u;
    };
    const u = await register(d2.url, uniqueName('w'));
    const key0 = newKey('before');
    const r0 = await sendKey(d2.url, room, u, 'before the fault', key0);
    assert.equal(r0.status, 201, r0.text);
    ids.push(r0.json.id);
    const servers = [['crosstalkd', d2.url], ['the FastCGI pool', ng2.url]];

    const refused = async (fault, pattern) => {
      for (const [where, url] of servers) {
        const h = await waitFor(async () => {
          const x = await healthz(url);
          return x.status === 503 && pattern.test(x.json?.message ?? '') ? x : null;
        }, { timeout: 5000, what: `${where}: /healthz 503 naming ${fault}` });
        assertError(h, 503, 'unavailable', `${where} /healthz`);
        const before = await r2.cmd('XLEN', roomKey(room));
        const s = await sendKey(url, room, u, `during ${fault}`, newKey());
        assertError(s, 503, 'unavailable', `${where}: a send during ${fault}`);
        assert.match(s.json.message, pattern, s.text);
        assert.match(s.json.message, /nothing was stored/, s.text);
        assert.equal(await r2.cmd('XLEN', roomKey(room)), before, `${where}: stored during ${fault}`);
        const rep = await sendKey(url, room, u, 'a repeat', key0);
        assert.equal(rep.status, 200, `${where}: a repeat needs no write, even during ${fault}: ${rep.text}`);
        assert.equal(rep.json.id, r0.json.id);
        // reads go on: a short poll from an id (a resume: before, a
        // MULTI, which Redis refuses whole when over maxmemory)
        const poll = await http('GET', `${url}/api/rooms/${room}/messages?since=0-0`, { headers: bearer(u.token) });
        assert.equal(poll.status, 200, `${where}: a short poll with since during ${fault}: ${poll.text}`);
        assert.ok(poll.json.events.some((e) => e.id === r0.json.id), `${where}: the poll holds ${r0.json.id}: ${poll.text}`);
      }
      const lp = await http('GET', `${d2.url}/api/rooms/${room}/poll?since=0-0&timeout=0`, { headers: bearer(u.token) });
      assert.equal(lp.status, 200, `a long poll with since during ${fault}: ${lp.text}`);
      const sse = await sseOpen(`${d2.url}/api/rooms/${room}/events?since=0-0`, { headers: bearer(u.token) });
      try {
        assert.equal(sse.status, 200, sse.text);
        const isMsg = (e) => e.event === 'message';
        await sse.waitEvents(1, { filter: isMsg, what: `SSE to replay from since during ${fault}` });
        const first = sse.events.find(isMsg);
        assert.equal(first.json?.id, r0.json.id, `SSE replays from since during ${fault}: ${JSON.stringify(first)}`);
      } finally {
        sse.close();
      }
    };
    const healthy = async (what) => {
      for (const [where, url] of servers) {
        await waitFor(async () => (await healthz(url)).status === 200, { timeout: 10000, what: `${where}: /healthz 200 after ${what}` });
      }
    };

    await r2.cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await r2.cmd('CONFIG', 'SET', 'maxmemory', '1');
    await refused('out of memory', /out of memory/);
    await r2.cmd('CONFIG', 'SET', 'maxmemory', '0');
    await healthy('maxmemory was lifted');
    await fresh('after out of memory');

    // A failover drill: the other Redis takes a copy, then r2 becomes its replica.
    await other.cmd('REPLICAOF', '127.0.0.1', String(r2.port));
    await waitFor(async () => /master_link_status:up/.test(await other.cmd('INFO', 'replication')),
      { timeout: 10000, what: 'the other Redis to copy r2' });
    await other.cmd('REPLICAOF', 'NO', 'ONE');
    await r2.cmd('REPLICAOF', '127.0.0.1', String(other.port));
    await waitFor(async () => /master_link_status:up/.test(await r2.cmd('INFO', 'replication')),
      { timeout: 10000, what: 'r2 to be a replica of the other Redis' });
    await refused('a read-only replica', /read-only/);
    await r2.cmd('REPLICAOF', 'NO', 'ONE');
    await healthy('REPLICAOF NO ONE');
    await fresh('after the replica was promoted');
  } finally {
    await pool2.stop().catch(() => {});
    await Promise.all([ng2.stop(), d2.stop()]);
    await Promise.all([r2.stop(), other.stop()]);
  }
});

// ------------------------------------------------------------ a stalled Redis

test('Redis SIGSTOPped for 15 s under 200 sends: each answered within redis_timeout_ms + 1 s, fds back, nothing acknowledged lost, retries store once', async () => {
  const N = 200;
  const STALL_MS = 15000;
  const BOUND_MS = REDIS_TIMEOUT_MS + 1000;
  const room = uniqueRoom();
  // four senders, each well under the shipped rate_send_per_sec
  const users = [alice, bob, await register(a.url, uniqueName('c')), await register(a.url, uniqueName('d'))];
  const sse = await sseOpen(`${a.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  let stopped = false;
  try {
    await sleep(200);
    const warm = await sendKey(a.url, room, alice, 'before the stall', newKey());
    assert.equal(warm.status, 201, warm.text);
    const fd0 = fdCount(a.pid);
    let fdMax = fd0;

    process.kill(redis.pid, 'SIGSTOP');
    stopped = true;
    const t0 = Date.now();
    const health = (async () => {
      await sleep(3000);
      const t = Date.now();
      const h = await healthz(a.url);
      return { status: h.status, message: h.json?.message, ms: Date.now() - t };
    })();
    const results = [];
    const sends = [];
    for (let i = 0; i < N; i++) {
      const at = t0 + (i * STALL_MS) / N;
      await sleep(Math.max(0, at - Date.now()));
      fdMax = Math.max(fdMax, fdCount(a.pid));
      const key = `load-${room}-${i}`;
      const ts = Date.now();
      sends.push(sendKey(a.url, room, users[i % users.length], `load ${i}`, key).then(
        (r) => results.push({ i, key, status: r.status, json: r.json, ms: Date.now() - ts }),
        (e) => results.push({ i, key, status: 0, error: e.message, ms: Date.now() - ts }),
      ));
    }
    await sleep(Math.max(0, t0 + STALL_MS - Date.now()));
    process.kill(redis.pid, 'SIGCONT');
    stopped = false;
    await Promise.all(sends);
    const h = await health;

    results.sort((x, y) => x.i - y.i);
    const slowest = results.reduce((m, r) => (r.ms > m.ms ? r : m));
    const byStatus = {};
    for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    const unknown = results.filter((r) => r.status === 503 && /unknown/.test(r.json?.message ?? '')).length;
    console.log(`# stall: answers ${JSON.stringify(byStatus)} (${unknown} of the 503 "outcome unknown"), ` +
      `slowest ${slowest.ms} ms (send ${slowest.i}); /healthz during it: ${h.status} in ${h.ms} ms; fds ${fd0} -> max ${fdMax}`);
    assert.ok(slowest.ms <= BOUND_MS, `send ${slowest.i} took ${slowest.ms} ms (bound ${BOUND_MS}): ${JSON.stringify(slowest).slice(0, 300)}`);
    for (const r of results) {
      assert.ok([200, 201, 503].includes(r.status), `send ${r.i}: ${r.status} ${r.error ?? JSON.stringify(r.json)}`);
      if (r.status === 503) assert.equal(r.json.error, 'unavailable');
    }
    assert.ok((byStatus[503] ?? 0) > N / 2, `only ${byStatus[503] ?? 0} of ${N} sends failed while Redis was stopped`);
    assert.equal(h.status, 503, `/healthz during the stall: ${JSON.stringify(h)}`);
    assert.ok(h.ms <= BOUND_MS, `/healthz took ${h.ms} ms`);

    await waitFor(async () => (await healthz(a.url)).status === 200, { timeout: 10000, what: '/healthz 200 after SIGCONT' });
    const fdAfter = await waitFor(() => {
      const n = fdCount(a.pid);
      return n <= fd0 + 2 ? n : null;
    }, { timeout: 10000, what: `crosstalkd's open fds back near ${fd0} (max during the stall ${fdMax}, now ${fdCount(a.pid)})` });
    console.log(`# fds: ${fd0} before, ${fdMax} at most during, ${fdAfter} after`);

    const held = new Set((await stored(room)).map((e) => e.id));
    for (const r of results.filter((x) => x.status === 200 || x.status === 201)) {
      assert.ok(held.has(r.json.id), `send ${r.i} was acknowledged ${r.status} with ${r.json.id}, which Redis does not hold`);
    }

    // Retry every failed send with its key: each is stored once at most.
    const retried = { 200: 0, 201: 0 };
    const finalIds = new Map(results.filter((r) => r.status !== 503).map((r) => [r.key, r.json.id]));
    for (const r of results.filter((x) => x.status === 503)) {
      const again = await waitFor(async () => {
        const x = await sendKey(a.url, room, users[r.i % users.length], `load ${r.i}`, r.key);
        return x.status === 429 ? null : x;
      }, { timeout: 10000, what: `the retry of send ${r.i}` });
      assert.ok(again.status === 200 || again.status === 201, `retry of send ${r.i}: ${again.status} ${again.text}`);
      retried[again.status]++;
      finalIds.set(r.key, again.json.id);
      await sleep(15);
    }
    console.log(`# retries with the same key: ${retried[200]} answered 200 (stored after all), ${retried[201]} stored now (201)`);
    const all = await stored(room);
    assert.equal(all.length, N + 1, `Redis holds ${all.length} messages for ${N} keys and the warm-up`);
    assert.equal(new Set(all.map((e) => e.text)).size, N + 1, 'a text stored twice');
    for (const [key, id] of finalIds) assert.ok(held.has(id) || all.some((e) => e.id === id), `${key} answered ${id}, not stored`);

    // The subscription came back: the SSE client has every message, once.
    await sse.waitEvents(N + 1, { filter: (e) => e.event === 'message', timeout: 15000, what: `all ${N + 1} messages on SSE` });
    await sleep(500);
    assert.deepEqual(sse.messages().map((e) => e.id), all.map((e) => e.id), 'SSE: every stored message once, in order');
  } finally {
    if (stopped) process.kill(redis.pid, 'SIGCONT');
    sse.close();
  }
});
