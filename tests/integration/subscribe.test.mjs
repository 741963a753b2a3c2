// subscribe.test.mjs - per-room bus subscriptions: crosstalkd SUBSCRIBEs
// ct:bus:{room} when a room's first local listener (SSE, WebSocket, long
// poll) arrives and UNSUBSCRIBEs it FEED_LINGER_MS (5 s, a constant) after
// the last left; it receives no traffic of rooms nobody listens to here
// (PUBSUB NUMSUB, PUBLISH's receiver count); and nothing stored is lost
// across a first subscription raced by sends, a resubscription within and
// after the linger, short polls (which subscribe too), a Redis restart.
// Everything runs on the shipped defaults.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  RELAXED, bearer, cleanup, compareIds, http, register, sendOk, sleep, sseOpen, startDaemon, startRedis,
  uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const LINGER_MS = 5000; // FEED_LINGER_MS in src/daemon/feed.h
const SLACK_MS = 5000;  // the machine is shared: generous, as TESTING.md asks

let redis;
let d;   // the daemon whose subscriptions we watch
let d2;  // another daemon on the same Redis, for sends and polls
let alice;
let bob;
const sockets = new Set();

before(async () => {
  redis = await startRedis();
  [d, d2] = await Promise.all([
    startDaemon({ redisUrl: redis.url, config: RELAXED }),
    startDaemon({ redisUrl: redis.url, config: RELAXED }),
  ]);
  alice = await register(d.url, uniqueName('alice'));
  bob = await register(d.url, uniqueName('bob'));
});
after(async () => {
  for (const ws of sockets) ws.terminate();
  await cleanup();
});

const chan = (room) => `ct:bus:{${room}}`;
/** Subscribers of a room's channel, over both daemons. */
const numsub = async (room) => Number((await redis.cmd('PUBSUB', 'NUMSUB', chan(room)))[1]);
/** Rooms' channels subscribed anywhere. */
const channels = async () => (await redis.cmd('PUBSUB', 'CHANNELS', 'ct:bus:*')).map(String);

const sse = (room, since) => sseOpen(`${d.url}/api/rooms/${room}/events`, {
  headers: { ...bearer(bob.token), ...(since ? { 'Last-Event-ID': since } : {}) },
});

/** A WebSocket listener on d; resolves on open with {ws, messages}. */
function wsListen(room, since) {
  const q = new URLSearchParams({ token: bob.token, ...(since ? { since } : {}) });
  const ws = new WebSocket(`ws://127.0.0.1:${d.port}/api/rooms/${room}/ws?${q}`);
  const c = { ws, events: [] };
  sockets.add(ws);
  ws.on('message', (data) => c.events.push(JSON.parse(data.toString('utf8'))));
  c.messages = () => c.events.filter((e) => e.type === 'message');
  c.close = () => { sockets.delete(ws); ws.terminate(); };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('error', (e) => reject(new Error(`WebSocket to ${room}: ${e.message}`)));
  });
}

const waitNumsub = (room, n, what, timeout = 5000) =>
  waitFor(async () => (await numsub(room)) === n, { timeout, what: `NUMSUB ${chan(room)} = ${n} (${what})` });

/** Waits until the channel is unsubscribed and checks it took the linger. */
async function waitUnsubscribed(room, leftAt, what) {
  await waitNumsub(room, 0, what, LINGER_MS + SLACK_MS);
  const ms = Date.now() - leftAt;
  assert.ok(ms >= LINGER_MS - 500, `${chan(room)} unsubscribed ${ms} ms after its last listener left, before the ${LINGER_MS} ms linger`);
}

test('an SSE listener subscribes its room only; the channel goes after the linger', async () => {
  const room = uniqueRoom('sub');
  const busy = uniqueRoom('busy');
  await sendOk(d.url, busy, alice, 'busy room, nobody listens');
  assert.equal(await numsub(room), 0, 'subscribed before any listener');
  const s = await sse(room);
  let left;
  try {
    assert.equal(s.status, 200, s.text);
    await waitNumsub(room, 1, 'an SSE listener arrived');
    // The other room's traffic reaches no daemon: PUBLISH counts receivers.
    for (let i = 0; i < 20; i++) await sendOk(d2.url, busy, alice, `busy ${i}`);
    assert.equal(await numsub(busy), 0, 'a room nobody listens to is subscribed');
    assert.equal(Number(await redis.cmd('PUBLISH', chan(busy), 'x')), 0, 'a PUBLISH to a room nobody listens to has receivers');
    const chans = await channels();
    assert.ok(chans.includes(chan(room)) && !chans.includes(chan(busy)), `PUBSUB CHANNELS: ${chans}`);
    const m = await sendOk(d2.url, room, alice, 'live');
    await s.waitEvents(1, { filter: (e) => e.event === 'message', what: 'the live message' });
    assert.deepEqual(s.messages().map((e) => e.id), [m.id]);
  } finally {
    s.close();
    left = Date.now();
  }
  await sleep(LINGER_MS / 2);
  assert.equal(await numsub(room), 1, 'the channel went before the linger was over');
  await waitUnsubscribed(room, left, 'the SSE listener left');
});

test('a WebSocket listener and a long poll each subscribe their room, and unsubscribe after the linger', async () => {
  const room = uniqueRoom('ws');
  const c = await wsListen(room);
  await waitNumsub(room, 1, 'a WebSocket listener arrived');
  const m = await sendOk(d2.url, room, alice, 'to ws');
  await waitFor(() => c.messages().length >= 1, { what: 'the message on the WebSocket' });
  assert.deepEqual(c.messages().map((e) => e.id), [m.id]);
  c.close();
  await waitUnsubscribed(room, Date.now(), 'the WebSocket listener left');

  const room2 = uniqueRoom('lp');
  const m0 = await sendOk(d2.url, room2, alice, 'before the poll');
  const poll = http('GET', `${d.url}/api/rooms/${room2}/poll?since=${m0.id}&timeout=10`, { headers: bearer(bob.token), timeout: 20000 });
  await waitNumsub(room2, 1, 'a long poll is waiting');
  const m1 = await sendOk(d2.url, room2, alice, 'wakes the poll');
  const r = await poll;
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.events.map((e) => e.id), [m1.id]);
  await waitUnsubscribed(room2, Date.now(), 'the long poll was answered');
});

test('sends racing the first listener of a room are all delivered, once each (bounded loop)', async () => {
  const ROUNDS = 25;
  const t0 = Date.now();
  for (let i = 0; i < ROUNDS && Date.now() - t0 < 60000; i++) {
    const room = uniqueRoom(`race${i}`);
    const m0 = await sendOk(d2.url, room, alice, 'before');
    // The listener's resume read and its SUBSCRIBE race these sends.
    const sends = [0, 1, 2].map((k) => sleep(k * (i % 4)).then(() => sendOk(d2.url, room, alice, `race ${k}`)));
    const listener = i % 2 === 0 ? await sse(room, m0.id) : await wsListen(room, m0.id);
    const ids = (await Promise.all(sends)).map((m) => m.id).sort(compareIds);
    const got = () => (listener.messages().map((e) => e.id));
    await waitFor(() => got().length >= 3, { timeout: 5000, what: `round ${i}: the 3 racing messages (have ${got()})` });
    // after the 3: a live one, then nothing twice
    const m4 = await sendOk(d2.url, room, alice, 'after');
    await waitFor(() => got().length >= 4, { timeout: 5000, what: `round ${i}: the message after the race` });
    await sleep(50);
    assert.deepEqual(got(), [...ids, m4.id], `round ${i} (${i % 2 === 0 ? 'SSE' : 'WebSocket'})`);
    listener.close();
  }
});

// A stream without since starts at the room's newest message when its read
// of it answers; the stream's headers go before that read (in main too), so
// "connected" here is the first event it is given: its presence.
test('a listener from its newest message (no since) gets everything sent once it is given its first event', async () => {
  for (let i = 0; i < 20; i++) {
    const room = uniqueRoom(`tail${i}`);
    await sendOk(d2.url, room, alice, 'history');
    const s = await sse(room);
    await s.waitEvents(1, { filter: (e) => e.event === 'presence', timeout: 5000, what: `round ${i}: the first presence event` });
    const m = await sendOk(d2.url, room, alice, 'after the first event');
    await s.waitEvents(1, { filter: (e) => e.event === 'message', timeout: 5000, what: `round ${i}: the message sent after the first event` });
    await sleep(50);
    assert.deepEqual(s.messages().map((e) => e.id), [m.id]);
    s.close();
  }
});

test('leaving and coming back within the linger keeps the channel; after it, resubscribes and fills', async () => {
  const room = uniqueRoom('back');
  let s = await sse(room);
  await waitNumsub(room, 1, 'the first listener');
  const m1 = await sendOk(d2.url, room, alice, 'one');
  await s.waitEvents(1, { filter: (e) => e.event === 'message' });
  s.close();
  const m2 = await sendOk(d2.url, room, alice, 'two, while nobody listens');
  s = await sse(room, m1.id);
  const m3 = await sendOk(d2.url, room, alice, 'three');
  await s.waitEvents(2, { filter: (e) => e.event === 'message', what: 'two and three after coming back within the linger' });
  assert.equal(await numsub(room), 1);
  await sleep(100);
  assert.deepEqual(s.messages().map((e) => e.id), [m2.id, m3.id]);
  s.close();
  const left = Date.now();
  await waitUnsubscribed(room, left, 'the listener left again');
  const m4 = await sendOk(d2.url, room, alice, 'four, while unsubscribed');
  s = await sse(room, m3.id);
  try {
    const m5 = await sendOk(d2.url, room, alice, 'five');
    await s.waitEvents(2, { filter: (e) => e.event === 'message', what: 'four and five after resubscribing' });
    await waitNumsub(room, 1, 'resubscribed');
    await sleep(100);
    assert.deepEqual(s.messages().map((e) => e.id), [m4.id, m5.id]);
  } finally {
    s.close();
  }
});

/** The ids a short poll of the room on d answers after `since`. */
async function shortPoll(room, since) {
  const r = await http('GET', `${d.url}/api/rooms/${room}/messages?since=${since}`, { headers: bearer(bob.token) });
  assert.equal(r.status, 200, r.text);
  return r.json.events.map((e) => e.id);
}

// A room followed by short polls is subscribed too (the daemon answers an
// up-to-date poll from the bus): what another daemon stores shows up in
// this one's short polls, right after the send when it is this daemon's.
test('short polls: the room is subscribed, and every stored message shows up', async () => {
  const room = uniqueRoom('short');
  let last = (await sendOk(d2.url, room, alice, 'first')).id;
  const poll = (since) => shortPoll(room, since);
  assert.deepEqual(await poll(last), [], 'nothing was sent');
  await waitNumsub(room, 1, 'a room followed by short polls');
  for (let i = 0; i < 20; i++) {
    const m = await sendOk(i % 2 ? d.url : d2.url, room, alice, `poll ${i}`);
    if (i % 2) {
      assert.deepEqual(await poll(last), [m.id], `poll ${i} right after a send on this daemon`);
    } else {
      // the other daemon's send reaches this one's bus a moment later
      await waitFor(async () => (await poll(last)).includes(m.id), { timeout: 2000, what: `poll ${i}: ${m.id} sent on the other daemon` });
    }
    last = m.id;
  }
});

// The daemon answers an up-to-date short poll from memory, and the bus sees
// a message a moment after Redis acknowledged it to the sender. A client
// that sends and then polls the same daemon must still see its message:
// here the bus connection also carries another room's flood, so the own
// message's bus copy is often still behind it when the poll arrives.
test('a poll right after one\'s own send sees it, while the bus carries another room\'s flood', async () => {
  const room = uniqueRoom('own');
  const busy = uniqueRoom('flood');
  const listener = await sse(busy);
  let flooding = true;
  const flood = Promise.all([0, 1, 2, 3].map(async (k) => {
    for (let i = 0; flooding; i++) await sendOk(d2.url, busy, alice, `flood ${k}.${i} ${'x'.repeat(200)}`);
  }));
  try {
    await waitNumsub(busy, 1, 'the flooded room, listened to on d');
    let last = (await sendOk(d.url, room, alice, 'first')).id;
    const poll = (since) => shortPoll(room, since);
    assert.deepEqual(await poll(last), [], 'nothing was sent');
    await waitNumsub(room, 1, 'a room followed by short polls');
    for (let i = 0; i < 300; i++) {
      const m = await sendOk(d.url, room, alice, `own ${i}`);
      assert.deepEqual(await poll(last), [m.id], `poll ${i}, right after its own send on the same daemon`);
      last = m.id;
    }
  } finally {
    flooding = false;
    await flood;
    listener.close();
  }
});

test('after a Redis restart the listened rooms are subscribed again, and only they', async () => {
  const room = uniqueRoom('restart');
  const rooms = async () => (await channels()).filter((x) => x !== 'ct:bus:{}').sort();
  const c = await wsListen(room);
  try {
    await waitNumsub(room, 1, 'before the restart');
    // those of the tests before linger, or are followed by short polls
    const before = await rooms();
    const m1 = await sendOk(d2.url, room, alice, 'before');
    await waitFor(() => c.messages().length >= 1, { what: 'the message before the restart' });
    await redis.restart();
    await waitNumsub(room, 1, 'after the restart', 20000);
    const now = await rooms();
    assert.ok(now.every((x) => before.includes(x)), `channels after the restart ${now}, before ${before}`);
    const m2 = await waitFor(async () => {
      const r = await http('POST', `${d2.url}/api/rooms/${room}/messages`, { headers: bearer(alice.token), body: { text: 'after' } });
      return r.status === 201 ? r.json : null;
    }, { timeout: 20000, what: 'a send accepted after the restart' });
    await waitFor(() => c.messages().length >= 2, { timeout: 10000, what: 'the message after the restart' });
    await sleep(100);
    assert.deepEqual(c.messages().map((e) => e.id), [m1.id, m2.id]);
  } finally {
    c.close();
  }
});
