// signals.test.mjs - what a resuming client is told, on the shipped
// defaults: history Redis no longer holds ("truncated", first_id) and an id
// newer than anything stored ("reset", last_id) on the short poll, the long
// poll, SSE and WebSocket of crosstalkd and on the FastCGI pool's polls;
// streams open across a Redis FLUSHALL and restart are reset and go on;
// malformed ids are a 400 everywhere; GET /api/rooms is paged alike on
// both. Real redis-server, crosstalkd, spawn-fcgi, nginx.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import {
  assertError, bearer, cleanup, compareIds, history, http, register, roomKey, sendOk, sleep, sseOpen,
  startDaemon, startFcgi, startNginx, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const FUTURE = '9999999999999-0';
const LARGEST = '18446744073709551615-18446744073709551615';

let redis, d, fcgi, nginx, alice;
const sockets = new Set();

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url });
  fcgi = await startFcgi({ redisUrl: redis.url });
  nginx = await startNginx({ daemons: [d.port], fcgiSocket: fcgi.socket });
  alice = await register(d.url, uniqueName('alice'));
});

after(async () => {
  for (const c of sockets) c.ws.terminate();
  await fcgi?.stop().catch(() => {});
  await cleanup();
});

// ------------------------------------------------------------ helpers

/** crosstalkd itself, and the FastCGI pool through nginx's /f/ prefix. */
const fcgiUrl = () => `${nginx.url}/f`;

/** GET .../messages (short poll), asserting a 200 JSON answer. */
async function poll(base, room, q, user = alice) {
  const r = await history(base, room, user, q);
  assert.equal(r.status, 200, `short poll ${base} ${room} ${JSON.stringify(q)}: ${r.status} ${r.text}`);
  return r.json;
}

/** GET .../poll (long poll). */
function longPoll(base, room, q, user = alice) {
  const qs = new URLSearchParams(q).toString();
  return http('GET', `${base}/api/rooms/${room}/poll?${qs}`, { headers: bearer(user.token), timeout: 70000 * SLOW });
}

/** Sends n messages as `user`; resolves with their ids, oldest first. */
async function sendMany(base, room, n, user = alice, tag = 'm') {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push((await sendOk(base, room, user, `${tag}${i}`)).id);
  return ids;
}

/** Opens a WebSocket (npm ws) and collects its JSON frames. */
function wsOpen(base, room, user, q = {}) {
  const url = `${base.replace('http', 'ws')}/api/rooms/${room}/ws?${new URLSearchParams({ token: user.token, ...q })}`;
  const ws = new WebSocket(url);
  const c = { ws, url, frames: [], closed: null, listeners: new Set() };
  sockets.add(c);
  const notify = () => { for (const f of [...c.listeners]) f(); };
  ws.on('message', (data) => { c.frames.push(JSON.parse(data.toString('utf8'))); notify(); });
  ws.on('close', (code) => { c.closed = code; notify(); });
  ws.on('error', (e) => { c.error = e; notify(); });
  c.until = (pred, what, ms = 5000 * SLOW) => new Promise((resolve, reject) => {
    const t0 = Date.now();
    const check = () => {
      if (pred()) { c.listeners.delete(check); clearTimeout(tm); resolve(c.frames); }
    };
    const tm = setTimeout(() => {
      c.listeners.delete(check);
      reject(new Error(`timed out after ${Date.now() - t0} ms waiting for ${what} on WebSocket ${room}; ` +
        `frames: ${JSON.stringify(c.frames).slice(0, 500)}, closed=${c.closed}`));
    }, ms);
    c.listeners.add(check);
    check();
  });
  c.messages = () => c.frames.filter((f) => f.type === 'message');
  c.close = () => { sockets.delete(c); ws.terminate(); };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('unexpected-response', (req, res) => reject(new Error(`WebSocket ${room}: HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** The SSE URL of a room (token in the query, as EventSource must). */
const sseUrl = (base, room, user, q = {}) =>
  `${base}/api/rooms/${room}/events?${new URLSearchParams({ token: user.token, ...q })}`;

/** The first non-presence/typing items of an SSE stream or WebSocket. */
const chatOnly = (items, key) => items.filter((e) => !['presence', 'typing'].includes(e[key]));

/** A room with six messages of which Redis keeps the last three (XTRIM). */
async function trimmedRoom() {
  const room = uniqueRoom('trim');
  const ids = await sendMany(d.url, room, 6);
  const removed = await redis.cmd('XTRIM', roomKey(room), 'MINID', ids[3]);
  assert.equal(removed, 3, 'XTRIM removed the three oldest');
  return { room, ids };
}

// ------------------------------------------------------------ gaps

test('a gap: since older than the oldest held is "truncated" with first_id on every transport', async () => {
  const { room, ids } = await trimmedRoom();
  const held = ids.slice(3);

  for (const [name, base] of [['crosstalkd', d.url], ['FastCGI', fcgiUrl()]]) {
    for (const since of [ids[0], ids[1], '0-0']) {
      const j = await poll(base, room, { since });
      assert.equal(j.truncated, true, `${name} short poll since=${since}: ${JSON.stringify(j)}`);
      assert.equal(j.first_id, ids[3], `${name}: first_id is the oldest held`);
      assert.deepEqual(j.events.map((e) => e.id), held, `${name}: the replay starts at first_id`);
      assert.equal(j.last_id, ids[5], `${name}: last_id the newest given`);
    }
    for (const since of [ids[3], ids[4], ids[5]]) {
      const j = await poll(base, room, { since });
      assert.equal(j.truncated, undefined, `${name}: since=${since} is held: no gap. ${JSON.stringify(j)}`);
      assert.equal(j.first_id, undefined);
    }
  }
  // both answer byte for byte alike
  const a = await history(d.url, room, alice, { since: ids[0] });
  const b = await history(fcgiUrl(), room, alice, { since: ids[0] });
  assert.equal(b.text, a.text, 'crosstalkd and the FastCGI pool answer the same');

  const t0 = Date.now();
  const lp = await longPoll(d.url, room, { since: ids[1] });
  assert.equal(lp.status, 200, `long poll: ${lp.status} ${lp.text}`);
  assert.ok(Date.now() - t0 < 3000 * SLOW, `the long poll answered at once (${Date.now() - t0} ms)`);
  assert.equal(lp.json.truncated, true, `long poll: ${lp.text}`);
  assert.equal(lp.json.first_id, ids[3]);
  assert.deepEqual(lp.json.events.map((e) => e.id), held);
  assert.equal(lp.json.last_id, ids[5]);

  for (const how of ['?since=', 'Last-Event-ID']) {
    const s = how === 'Last-Event-ID'
      ? await sseOpen(sseUrl(d.url, room, alice), { headers: { 'Last-Event-ID': ids[0] } })
      : await sseOpen(sseUrl(d.url, room, alice, { since: ids[0] }));
    assert.equal(s.status, 200, `SSE ${how}: ${s.status} ${s.text}`);
    await s.waitEvents(4, { filter: (e) => e.event === 'message' || e.event === 'truncated', what: `truncated and 3 messages (${how})` });
    const evs = chatOnly(s.events, 'event');
    assert.equal(evs[0].event, 'truncated', `SSE ${how}: the signal comes first: ${JSON.stringify(evs)}`);
    assert.deepEqual(evs[0].json, { first_id: ids[3] }, `SSE ${how}: data {"first_id"}`);
    assert.deepEqual(evs.slice(1).map((e) => e.id), held, `SSE ${how}: then the replay from first_id`);
    s.close();
  }

  const ws = await wsOpen(d.url, room, alice, { since: ids[0] });
  await ws.until(() => ws.messages().length >= 3, 'truncated and 3 messages');
  const frames = chatOnly(ws.frames, 'type');
  assert.deepEqual(frames[0], { type: 'truncated', first_id: ids[3] }, `WebSocket: the signal first: ${JSON.stringify(frames)}`);
  assert.deepEqual(frames.slice(1).map((f) => f.id), held, 'WebSocket: then the replay');
  ws.close();
});

test('no gap and no reset where there is none: since=0-0 on a room never trimmed, since the newest', async () => {
  const room = uniqueRoom('whole');
  const ids = await sendMany(d.url, room, 3);
  for (const base of [d.url, fcgiUrl()]) {
    for (const since of ['0-0', ids[0], ids[2]]) {
      const j = await poll(base, room, { since });
      assert.equal(j.truncated, undefined, `${base} since=${since}: ${JSON.stringify(j)}`);
      assert.equal(j.reset, undefined, `${base} since=${since}: ${JSON.stringify(j)}`);
    }
  }
  const s = await sseOpen(sseUrl(d.url, room, alice, { since: '0-0' }));
  const ws = await wsOpen(d.url, room, alice, { since: '0-0' });
  await s.waitEvents(3, { filter: (e) => e.event === 'message' });
  await ws.until(() => ws.messages().length >= 3, '3 messages');
  const newer = await sendOk(d.url, room, alice, 'live');
  await s.waitEvents(4, { filter: (e) => e.event === 'message' });
  await ws.until(() => ws.messages().length >= 4, 'the live message');
  assert.deepEqual(chatOnly(s.events, 'event').map((e) => e.event), ['message', 'message', 'message', 'message'], 'SSE: no signal');
  assert.deepEqual(chatOnly(ws.frames, 'type').map((f) => f.type), ['message', 'message', 'message', 'message'], 'WebSocket: no signal');
  assert.equal(s.messages().at(-1).id, newer.id);
  s.close();
  ws.close();
  const lp = await longPoll(d.url, room, { since: '0-0' });
  assert.equal(lp.status, 200);
  assert.equal(lp.json.truncated, undefined, lp.text);
});

test('a room trimmed to nothing: a gap up to its newest id, and the next message goes on from there', async () => {
  const room = uniqueRoom('empty');
  const ids = await sendMany(d.url, room, 3);
  await redis.cmd('XTRIM', roomKey(room), 'MAXLEN', '0');
  for (const base of [d.url, fcgiUrl()]) {
    const j = await poll(base, room, { since: ids[0] });
    assert.equal(j.truncated, true, `${base}: ${JSON.stringify(j)}`);
    assert.deepEqual(j.events, []);
    assert.equal(j.last_id, ids[2], `${base}: go on from the newest id ever added`);
    assert.equal(compareIds(j.first_id, ids[2]), 1, `${base}: first_id ${j.first_id} is past ${ids[2]}: everything below it is gone`);
    const k = await poll(base, room, { since: j.last_id });
    assert.equal(k.truncated, undefined, `${base}: polling on from last_id: no gap any more. ${JSON.stringify(k)}`);
  }
  const lp = await longPoll(d.url, room, { since: ids[0] });
  assert.equal(lp.status, 200, `long poll answers the gap at once: ${lp.status}`);
  assert.equal(lp.json.truncated, true);
  assert.equal(lp.json.last_id, ids[2]);

  const s = await sseOpen(sseUrl(d.url, room, alice, { since: ids[0] }));
  const ws = await wsOpen(d.url, room, alice, { since: ids[0] });
  await s.waitEvents(1, { filter: (e) => e.event === 'truncated' });
  await ws.until(() => ws.frames.some((f) => f.type === 'truncated'), 'truncated');
  const next = await sendOk(d.url, room, alice, 'after the trim');
  await s.waitEvents(1, { filter: (e) => e.event === 'message' });
  await ws.until(() => ws.messages().length >= 1, 'the next message');
  assert.equal(s.messages()[0].id, next.id);
  assert.equal(ws.messages()[0].id, next.id);
  s.close();
  ws.close();
});

// ------------------------------------------------------------ resets

test('a reset: an id from the future gets "reset" with the room\'s newest, and delivery goes on from it', async () => {
  const room = uniqueRoom('future');
  const ids = await sendMany(d.url, room, 2);
  const newest = ids[1];

  for (const base of [d.url, fcgiUrl()]) {
    for (const since of [FUTURE, LARGEST]) {
      const r = await history(base, room, alice, { since });
      assert.equal(r.status, 200, `${base} since=${since}: never a 503: ${r.status} ${r.text}`);
      assert.deepEqual(r.json, { events: [], last_id: newest, reset: true }, `${base} since=${since}`);
    }
  }

  // the long poll does not wait for a message that can never come
  for (const since of [FUTURE, LARGEST]) {
    const t0 = Date.now();
    const lp = await longPoll(d.url, room, { since });
    assert.equal(lp.status, 200, `long poll since=${since}: ${lp.status} ${lp.text}`);
    assert.ok(Date.now() - t0 < 3000 * SLOW, `answered at once (${Date.now() - t0} ms)`);
    assert.deepEqual(lp.json, { events: [], last_id: newest, reset: true });
  }
  // and polling on from last_id gets the next message
  const waiting = longPoll(d.url, room, { since: newest });
  await sleep(200);
  const m = await sendOk(d.url, room, alice, 'next');
  const got = await waiting;
  assert.equal(got.status, 200);
  assert.deepEqual(got.json.events.map((e) => e.id), [m.id]);
  assert.equal(got.json.reset, undefined);

  const s = await sseOpen(sseUrl(d.url, room, alice, { since: FUTURE }));
  const s2 = await sseOpen(sseUrl(d.url, room, alice), { headers: { 'Last-Event-ID': LARGEST } });
  const ws = await wsOpen(d.url, room, alice, { since: FUTURE });
  for (const [what, st] of [['?since=', s], ['Last-Event-ID', s2]]) {
    await st.waitEvents(1, { filter: (e) => e.event === 'reset', what: `event: reset (${what})` });
    const r = st.events.find((e) => e.event === 'reset');
    assert.deepEqual(r.json, { last_id: m.id }, `SSE ${what}: data {"last_id"}`);
    assert.equal(r.id, m.id, `SSE ${what}: the reset's id is where EventSource resumes from`);
  }
  await ws.until(() => ws.frames.some((f) => f.type === 'reset'), 'reset');
  assert.deepEqual(ws.frames.find((f) => f.type === 'reset'), { type: 'reset', last_id: m.id });
  const later = await sendOk(d.url, room, alice, 'later');
  await s.waitEvents(1, { filter: (e) => e.event === 'message', what: 'the message after the reset' });
  await s2.waitEvents(1, { filter: (e) => e.event === 'message', what: 'the message after the reset' });
  await ws.until(() => ws.messages().length >= 1, 'the message after the reset');
  for (const items of [chatOnly(s.events, 'event'), chatOnly(s2.events, 'event')]) {
    assert.deepEqual(items.map((e) => [e.event, e.id]), [['reset', m.id], ['message', later.id]]);
  }
  assert.deepEqual(chatOnly(ws.frames, 'type').map((f) => [f.type, f.id ?? f.last_id]), [['reset', m.id], ['message', later.id]]);
  s.close();
  s2.close();
  ws.close();
});

test('a room with no stream: any since but 0-0 is reset to "0-0"', async () => {
  const room = uniqueRoom('nothing');
  for (const base of [d.url, fcgiUrl()]) {
    assert.deepEqual(await poll(base, room, { since: '5-0' }), { events: [], last_id: '0-0', reset: true }, base);
    assert.deepEqual(await poll(base, room, { since: '0-0' }), { events: [], last_id: '0-0' }, base);
  }
  const lp = await longPoll(d.url, room, { since: '5-0' });
  assert.deepEqual(lp.json, { events: [], last_id: '0-0', reset: true });
  const ws = await wsOpen(d.url, room, alice, { since: '5-0' });
  await ws.until(() => ws.frames.some((f) => f.type === 'reset'), 'reset');
  assert.deepEqual(ws.frames.find((f) => f.type === 'reset'), { type: 'reset', last_id: '0-0' });
  const m = await sendOk(d.url, room, alice, 'first');
  await ws.until(() => ws.messages().length >= 1, 'the first message');
  assert.equal(ws.messages()[0].id, m.id);
  ws.close();
});

test('a poll already up to date costs no Redis call (long and short): the signals are checked only when a poll reads Redis', async () => {
  const room = uniqueRoom('hot');
  const [first] = await sendMany(d.url, room, 1);
  // a long poll subscribes the room, so the daemon follows its newest id
  const waiting = longPoll(d.url, room, { since: first });
  await sleep(200);
  const m = await sendOk(d.url, room, alice, 'seen on the bus');
  assert.equal((await waiting).status, 200);
  const calls = async () => {
    const info = await redis.cmd('INFO', 'commandstats');
    const count = (c) => Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
    return { xinfo: count('xinfo\\|stream'), xrange: count('xrange'), exec: count('exec') };
  };
  const before0 = await calls();
  const lp = await longPoll(d.url, room, { since: m.id, timeout: 1 });
  assert.equal(lp.status, 204, `up to date: 204 after 1 s, got ${lp.status} ${lp.text}`);
  assert.deepEqual(await calls(), before0, 'no XINFO, XRANGE or EXEC for a poll already up to date');
  // a short poll up to date too; and a room only short-polled is followed
  // from its first poll on
  const sp = await history(d.url, room, alice, { since: m.id });
  assert.deepEqual(sp.json, { events: [], last_id: m.id });
  assert.deepEqual(await calls(), before0, 'nor for a short poll up to date');
  const room2 = uniqueRoom('hotshort');
  assert.deepEqual((await poll(d.url, room2, { since: '0-0' })).events, [], 'a new room: nothing yet');
  const m2 = await sendOk(d.url, room2, alice, 'short');
  await sleep(100); // the bus sees it
  const b2 = await calls();
  const sp2 = await history(d.url, room2, alice, { since: m2.id });
  assert.equal(sp2.status, 200);
  assert.equal(sp2.text, (await history(fcgiUrl(), room2, alice, { since: m2.id })).text, 'the same answer as the FastCGI pool');
  assert.deepEqual(await calls(), { xinfo: b2.xinfo + 1, xrange: b2.xrange + 1, exec: b2.exec + 1 }, 'only the FastCGI poll read Redis');
  assert.deepEqual(sp2.json, { events: [], last_id: m2.id });
  assert.deepEqual(await calls(), { xinfo: b2.xinfo + 1, xrange: b2.xrange + 1, exec: b2.exec + 1 });
  const before1 = await calls();
  const lp2 = await longPoll(d.url, room, { since: first, timeout: 1 });
  assert.equal(lp2.status, 200);
  const after0 = await calls();
  assert.equal(after0.exec - before1.exec, 1, `a poll behind reads Redis once (one MULTI/EXEC): ${JSON.stringify([before1, after0])}`);
  assert.equal(after0.xinfo - before1.xinfo, 1, 'with XINFO STREAM in it');
});

test('Redis FLUSHALL and restart under open SSE, WebSocket and long poll: each is reset, then gets new messages', async () => {
  const r2 = await startRedis();
  const d2 = await startDaemon({ redisUrl: r2.url });
  const bob = await register(d2.url, uniqueName('bob'));
  const room = uniqueRoom('flush');
  const ids = await sendMany(d2.url, room, 3, bob);
  const newest = ids[2];

  const s = await sseOpen(sseUrl(d2.url, room, bob, { since: newest }));
  const ws = await wsOpen(d2.url, room, bob, { since: newest });
  const lp = longPoll(d2.url, room, { since: newest }, bob);
  await sleep(300);
  assert.equal(await r2.cmd('FLUSHALL'), 'OK');
  await r2.restart();
  const t0 = Date.now();
  await s.waitEvents(1, { filter: (e) => e.event === 'reset', timeout: 15000 * SLOW, what: 'event: reset after the restart' });
  await ws.until(() => ws.frames.some((f) => f.type === 'reset'), 'reset after the restart', 15000 * SLOW);
  const lpr = await lp;
  console.log(`reset seen ${Date.now() - t0} ms after Redis answered again`);
  assert.deepEqual(s.events.find((e) => e.event === 'reset').json, { last_id: '0-0' }, 'SSE: reset to 0-0 (no stream)');
  assert.deepEqual(ws.frames.find((f) => f.type === 'reset'), { type: 'reset', last_id: '0-0' }, 'WebSocket: reset to 0-0');
  assert.equal(lpr.status, 200, `the waiting long poll answers the reset: ${lpr.status} ${lpr.text}`);
  assert.deepEqual(lpr.json, { events: [], last_id: '0-0', reset: true });

  // the users went with the flush: a new one writes the next message
  const carol = await register(d2.url, uniqueName('carol'));
  const m = await sendOk(d2.url, room, carol, 'after the flush');
  await s.waitEvents(1, { filter: (e) => e.event === 'message' && e.json?.id === m.id, what: 'the message after the flush', timeout: 5000 * SLOW });
  await ws.until(() => ws.messages().some((f) => f.id === m.id), 'the message after the flush');
  assert.deepEqual(chatOnly(s.events, 'event').map((e) => e.event), ['reset', 'message']);
  assert.deepEqual(chatOnly(ws.frames, 'type').map((f) => f.type), ['reset', 'message']);
  const p = await poll(d2.url, room, { since: '0-0' }, carol);
  assert.deepEqual(p.events.map((e) => e.id), [m.id], 'the room holds only the new message');
  s.close();
  ws.close();
  await d2.stop();
  await r2.stop();
});

// ------------------------------------------------------------ malformed ids

test('a malformed id is a 400 bad_request on every transport, in since, Last-Event-ID and before', async () => {
  const room = uniqueRoom('bad');
  const ids = await sendMany(d.url, room, 2);
  const len0 = await redis.cmd('XLEN', roomKey(room));
  const bad = ['abc', '1-2-3', '-1', '1-', '18446744073709551616-0', '1-0 ', '1.5', '+1'];
  const key = crypto.randomBytes(16).toString('base64');
  const upgrade = { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key };
  for (const id of bad) {
    const q = new URLSearchParams({ since: id }).toString();
    assertError(await http('GET', `${d.url}/api/rooms/${room}/messages?${q}`, { headers: bearer(alice.token) }), 400, 'bad_request', `short poll since=${id}`);
    assertError(await http('GET', `${fcgiUrl()}/api/rooms/${room}/messages?${q}`, { headers: bearer(alice.token) }), 400, 'bad_request', `FastCGI since=${id}`);
    assertError(await http('GET', `${d.url}/api/rooms/${room}/poll?${q}`, { headers: bearer(alice.token) }), 400, 'bad_request', `long poll since=${id}`);
    assertError(await http('GET', `${d.url}/api/rooms/${room}/events?${q}&token=${alice.token}`), 400, 'bad_request', `SSE since=${id}`);
    if (id.trim() === id) { // a header value loses its surrounding blanks
      assertError(await http('GET', `${d.url}/api/rooms/${room}/events?token=${alice.token}`, { headers: { 'Last-Event-ID': id } }), 400, 'bad_request', `SSE Last-Event-ID: ${id}`);
    }
    assertError(await http('GET', `${d.url}/api/rooms/${room}/ws?${q}&token=${alice.token}`, { headers: upgrade }), 400, 'bad_request', `WebSocket since=${id}`);
    const qb = new URLSearchParams({ before: id }).toString();
    assertError(await http('GET', `${d.url}/api/rooms/${room}/messages?${qb}`, { headers: bearer(alice.token) }), 400, 'bad_request', `before=${id}`);
    assertError(await http('GET', `${fcgiUrl()}/api/rooms/${room}/messages?${qb}`, { headers: bearer(alice.token) }), 400, 'bad_request', `FastCGI before=${id}`);
  }
  for (const id of ['0-0', '0']) {
    for (const base of [d.url, fcgiUrl()]) {
      const r = await history(base, room, alice, { before: id });
      assertError(r, 400, 'bad_request', `${base} before=${id}: a client mistake, not a 503`);
    }
  }
  // the edges Redis would refuse are bounds like any other
  for (const base of [d.url, fcgiUrl()]) {
    const r = await history(base, room, alice, { before: '0-1' });
    assert.equal(r.status, 200, `before=0-1: ${r.status} ${r.text}`);
    assert.deepEqual(r.json.events, []);
    const all = await history(base, room, alice, { before: LARGEST });
    assert.equal(all.status, 200, `before=the largest id: ${all.status} ${all.text}`);
    assert.deepEqual(all.json.events.map((e) => e.id), ids);
  }
  assert.equal(await redis.cmd('XLEN', roomKey(room)), len0, 'nothing changed in the room');
});

// ------------------------------------------------------------ rooms

/** Pages through GET /api/rooms at `base` with `limit`; checks each page's shape. */
async function allRooms(base, user, { limit, between } = {}) {
  const pages = [];
  let after;
  for (let i = 0; i < 50; i++) {
    const q = new URLSearchParams({ ...(limit ? { limit } : {}), ...(after ? { after } : {}) }).toString();
    const r = await http('GET', `${base}/api/rooms${q ? '?' + q : ''}`, { headers: bearer(user.token) });
    assert.equal(r.status, 200, `${base} rooms ${q}: ${r.status} ${r.text}`);
    assert.equal(typeof r.json.more, 'boolean', `"more" is always there: ${r.text.slice(0, 200)}`);
    pages.push(r.json);
    if (!r.json.more) {
      assert.equal(r.json.next, undefined, 'no "next" on the last page');
      return pages;
    }
    assert.equal(typeof r.json.next, 'string', '"next" with more');
    after = r.json.next;
    if (between) await between(i);
  }
  throw new Error(`${base}: more than 50 pages of rooms`);
}

test('GET /api/rooms is paged (limit 100 by default, 1000 at most) and says when there is more, alike on both', async () => {
  const r3 = await startRedis();
  const d3 = await startDaemon({ redisUrl: r3.url });
  const f3 = await startFcgi({ redisUrl: r3.url });
  const n3 = await startNginx({ daemons: [d3.port], fcgiSocket: f3.socket });
  try {
    const dave = await register(d3.url, uniqueName('dave'));
    // 250 rooms, some sharing a last_ts (the cursor must tell ties apart)
    const rooms = Array.from({ length: 250 }, (_, i) => ({ name: `room-${String(i).padStart(3, '0')}`, ts: 1732230000000 + Math.floor(i / 3) }));
    await r3.pipeline(rooms.map((x) => ['ZADD', 'ct:rooms', String(x.ts), x.name]));
    const order = [...rooms].sort((a, b) => b.ts - a.ts || (a.name < b.name ? 1 : -1)).map((x) => x.name);
    for (const base of [d3.url, `${n3.url}/f`]) {
        const pages = await allRooms(base, dave);
        assert.deepEqual(pages.map((p) => p.rooms.length), [100, 100, 50], `${base}: pages of 100`);
        assert.deepEqual(pages.flatMap((p) => p.rooms.map((x) => x.name)), order, `${base}: every room once, newest first`);
        const big = await allRooms(base, dave, { limit: 1000 });
        assert.equal(big.length, 1, `${base}: limit=1000 lists all 250 at once`);
        const small = await allRooms(base, dave, { limit: 7 });
        assert.deepEqual(small.flatMap((p) => p.rooms.map((x) => x.name)), order, `${base}: pages of 7 through ties`);
        for (const q of ['limit=0', 'limit=1001', 'limit=x', 'after=lobby', 'after=1:UPPER', 'after=12:']) {
          assertError(await http('GET', `${base}/api/rooms?${q}`, { headers: bearer(dave.token) }), 400, 'bad_request', `${base} ${q}`);
        }
      }
      // the same bytes from both
      for (const q of ['', '?limit=3', `?limit=5&after=${encodeURIComponent('1732230000080:room-242')}`]) {
        const a = await http('GET', `${d3.url}/api/rooms${q}`, { headers: bearer(dave.token) });
        const b = await http('GET', `${n3.url}/f/api/rooms${q}`, { headers: bearer(dave.token) });
        assert.equal(b.text, a.text, `rooms${q}: crosstalkd and FastCGI alike`);
      }
      // activity while paging: a room already listed is not listed again
      const seen = [];
      const pages = await allRooms(d3.url, dave, {
        limit: 40,
        between: async (i) => {
          if (i === 0) await sendOk(d3.url, order[5], dave, 'bump a listed room');
        },
      });
      for (const p of pages) seen.push(...p.rooms.map((x) => x.name));
      assert.equal(new Set(seen).size, seen.length, 'no room twice');
      assert.equal(seen.length, 250, 'and none missed');
  } finally {
    await f3.stop().catch(() => {});
    await n3.stop().catch(() => {});
    await d3.stop();
    await r3.stop();
  }
});
