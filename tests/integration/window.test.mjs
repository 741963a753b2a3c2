// window.test.mjs - polls answered from memory (the bus's window of recent
// messages, src/daemon/window.c) carry exactly what Redis holds, and do not
// read Redis: a short poll and a long poll on crosstalkd A, after an id
// inside the span A has seen live, are compared with the answer of
// crosstalkd B, on the same Redis, which has never followed the room and so
// reads it from Redis. Redis' own counters (INFO commandstats: XRANGE,
// XREVRANGE, XINFO) tell whether a poll touched the stream. At the window's
// edges (the first message it saw, eviction past WINDOW_EVENTS, a lost
// subscription) the answer is the same, from Redis when it must be.
// Shipped defaults but the rate limits (RELAXED), which a run of 300 sends
// from one user would hit.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAXED, bearer, cleanup, history, http, register, sendOk, sleep, startDaemon, startRedis, uniqueName, uniqueRoom, waitFor,
  streamReads as readsOf,
} from './harness.mjs';

const WINDOW_EVENTS = 256; // src/daemon/window.h

let redis;
let a; // the daemon whose window is tested
let b; // the reference: reads every room from Redis
let alice;

before(async () => {
  redis = await startRedis();
  a = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  b = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  alice = await register(a.url, uniqueName('alice'));
});
after(cleanup);

const streamReads = () => readsOf(redis);
// B follows a room from its first poll too, and reads it once after its
// SUBSCRIBE (as A does): wait for Redis to be quiet, so that read is not
// counted as A's.
async function quiet() {
  let last = await streamReads();
  for (let i = 0; i < 40; i++) {
    await sleep(50);
    const now = await streamReads();
    if (now === last) return;
    last = now;
  }
}

const shortPoll = (d, room, q) => history(d.url, room, alice, q);
const longPoll = (d, room, q) =>
  http('GET', `${d.url}/api/rooms/${room}/poll?${new URLSearchParams(q)}`, { headers: bearer(alice.token), timeout: 30000 });

// A room A follows from its first message on (a short poll makes A keep the
// room), then `n` messages: resolves with [first, ...rest] as stored.
async function followedRoom(n) {
  const room = uniqueRoom('w');
  const r = await shortPoll(a, room, { since: '0-0' });
  assert.equal(r.status, 200, r.text);
  const msgs = [];
  for (let i = 0; i <= n; i++) msgs.push(await sendOk(b.url, room, alice, `m${i} ${'x'.repeat(i % 7)}`));
  return { room, msgs };
}

// Asserts that A's answer for `q` is B's (from Redis), and whether A read
// the stream for it.
async function sameAsRedis(room, q, { fromMemory, what, poll = shortPoll }) {
  const before = await streamReads();
  const mine = await poll(a, room, q);
  const reads = (await streamReads()) - before;
  const ref = await shortPoll(b, room, q);
  await quiet();
  assert.equal(mine.status, 200, `${what}: A answered ${mine.status} ${mine.text}`);
  assert.equal(ref.status, 200, `${what}: B answered ${ref.status} ${ref.text}`);
  assert.deepEqual(mine.json, ref.json, `${what}: A's answer differs from Redis'`);
  if (fromMemory) assert.equal(reads, 0, `${what}: A read the stream ${reads} times`);
  else assert.ok(reads > 0, `${what}: A did not read the stream (answered from memory)`);
  return mine.json;
}

test('short polls inside the window: what Redis holds, without reading it', async () => {
  const { room, msgs } = await followedRoom(6);
  const ids = msgs.map((m) => m.id);
  let j = await sameAsRedis(room, { since: ids[0] }, { fromMemory: true, what: 'since = the first message seen' });
  assert.deepEqual(j.events.map((e) => e.id), ids.slice(1));
  j = await sameAsRedis(room, { since: ids[3] }, { fromMemory: true, what: 'a few behind' });
  assert.deepEqual(j.events.map((e) => e.text), msgs.slice(4).map((m) => m.text));
  j = await sameAsRedis(room, { since: ids[6] }, { fromMemory: true, what: 'up to date' });
  assert.deepEqual(j, { events: [], last_id: ids[6] });
  j = await sameAsRedis(room, { since: ids[1], limit: 2 }, { fromMemory: true, what: 'a limit below what is held' });
  assert.deepEqual(j.events.map((e) => e.id), ids.slice(2, 4));
  assert.equal(j.last_id, ids[3]);
  const [ms, seq] = ids[2].split('-').map(Number);
  await sameAsRedis(room, { since: `${ms}-${seq + 1}` }, { fromMemory: true, what: 'since between two ids' });
  // before the first message A saw live: A cannot know what came before
  await sameAsRedis(room, { since: '0-0' }, { fromMemory: false, what: 'since older than the window' });
  // after the newest: Redis judges it (here a reset, an id from the future)
  const future = `${ms + 3600000}-0`;
  j = await sameAsRedis(room, { since: future }, { fromMemory: false, what: 'since beyond the newest' });
  assert.equal(j.reset, true, JSON.stringify(j));
});

test('long polls inside the window: answered at once, same events, no stream read', async () => {
  const { room, msgs } = await followedRoom(5);
  const ids = msgs.map((m) => m.id);
  let j = await sameAsRedis(room, { since: ids[2], timeout: 10 }, { fromMemory: true, what: 'a long poll a few behind', poll: longPoll });
  assert.deepEqual(j.events.map((e) => e.id), ids.slice(3));
  j = await sameAsRedis(room, { since: ids[0], limit: 3, timeout: 10 }, { fromMemory: true, what: 'a long poll with a limit', poll: longPoll });
  assert.deepEqual(j.events.map((e) => e.id), ids.slice(1, 4));
  // up to date: it waits, and the next message answers it, still no read
  const before = await streamReads();
  const waiting = longPoll(a, room, { since: ids[5], timeout: 20 });
  await sleep(300); // waiting or not, the poll must be answered from memory
  const m6 = await sendOk(b.url, room, alice, 'six');
  const r = await waiting;
  assert.equal((await streamReads()) - before, 0, 'a waiting long poll read the stream');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.events.map((e) => e.id), [m6.id]);
  const after6 = await sameAsRedis(room, { since: ids[5], timeout: 10 }, { fromMemory: true, what: 'the same poll again', poll: longPoll });
  assert.deepEqual(after6.events, r.json.events);
});

test('eviction: since at the edge answered from memory, one older from Redis, both right', async () => {
  const extra = 40;
  const { room, msgs } = await followedRoom(WINDOW_EVENTS + extra);
  const ids = msgs.map((m) => m.id);
  // ids[0] started the span; ids[1..] were held; the oldest `extra` of them
  // were evicted, the newest evicted bounds the span now
  const edge = ids[extra];
  let j = await sameAsRedis(room, { since: edge, limit: 10 }, { fromMemory: true, what: 'since = the newest evicted' });
  assert.equal(j.events[0].id, ids[extra + 1]);
  j = await sameAsRedis(room, { since: ids[extra - 1], limit: 10 }, { fromMemory: false, what: 'since = one older' });
  assert.equal(j.events[0].id, edge);
  await sameAsRedis(room, { since: ids[ids.length - 3] }, { fromMemory: true, what: 'near the newest' });
});

test('a lost subscription: the window starts again, Redis answers meanwhile', async () => {
  const { room, msgs } = await followedRoom(3);
  const ids = msgs.map((m) => m.id);
  await sameAsRedis(room, { since: ids[1] }, { fromMemory: true, what: 'before the break' });
  const killed = await redis.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
  assert.ok(Number(killed) >= 2, `CLIENT KILL TYPE pubsub killed ${killed}`);
  // sent while A may not be subscribed: A must not claim to know it
  const gone = await sendOk(b.url, room, alice, 'while A was away');
  await sameAsRedis(room, { since: ids[1] }, { fromMemory: false, what: 'after the break, the old span' });
  await sameAsRedis(room, { since: ids[3] }, { fromMemory: false, what: 'after the break, the old newest' });
  // once A is subscribed again, a new message starts a new span
  let next;
  await waitFor(async () => {
    next = await sendOk(b.url, room, alice, 'after');
    const before = await streamReads();
    const r = await shortPoll(a, room, { since: next.id });
    return r.status === 200 && (await streamReads()) === before;
  }, { timeout: 15000, interval: 200, what: 'A to answer a poll at its newest message from memory again' });
  const last = await sendOk(b.url, room, alice, 'last');
  const j = await sameAsRedis(room, { since: next.id }, { fromMemory: true, what: 'the new span' });
  assert.deepEqual(j.events.map((e) => e.id), [last.id]);
  const all = await shortPoll(b, room, { since: ids[0], limit: 100 });
  assert.ok(all.json.events.some((e) => e.id === gone.id), 'the message sent during the break is stored');
});

// A quiet room: no message comes by on the bus, so the bus cannot learn the
// room's newest from one. Once A follows the room, one read of the stream
// after its subscription tells it; every poll at the newest after that is
// answered from memory, the same as Redis answers it.
test('a quiet room: polls at the newest answered from memory, no message needed', async () => {
  const room = uniqueRoom('q');
  const old = [];
  for (let i = 0; i < 3; i++) old.push(await sendOk(b.url, room, alice, `before A ${i}`));
  const newest = old[2].id;
  const r = await shortPoll(a, room, { since: newest }); // A starts following
  assert.equal(r.status, 200, r.text);
  await waitFor(async () => {
    const before = await streamReads();
    const p = await shortPoll(a, room, { since: newest });
    return p.status === 200 && (await streamReads()) === before;
  }, { timeout: 10000, interval: 100, what: 'A to answer a poll at the newest of a quiet room from memory' });
  for (let i = 0; i < 5; i++) {
    const j = await sameAsRedis(room, { since: newest }, { fromMemory: true, what: `quiet poll ${i}` });
    assert.deepEqual(j, { events: [], last_id: newest });
  }
  await sameAsRedis(room, { since: old[0].id }, { fromMemory: false, what: 'behind, before anything A saw' });
  // a long poll there waits from memory too, and times out with nothing
  const before = await streamReads();
  const lp = await longPoll(a, room, { since: newest, timeout: 1 });
  assert.equal(lp.status, 204, lp.text);
  assert.equal((await streamReads()) - before, 0, 'a long poll at the newest of a quiet room read the stream');
  // the next message: stored through A itself, polled at once on A
  const mine = await sendOk(a.url, room, alice, 'mine');
  const got = await shortPoll(a, room, { since: newest });
  assert.deepEqual(got.json.events.map((e) => e.id), [mine.id], 'a poll right after its own send sees it');
});

test('a room never written to: since=0-0 from memory, a made-up id from Redis', async () => {
  const room = uniqueRoom('e');
  await shortPoll(a, room, { since: '0-0' });
  await waitFor(async () => {
    const before = await streamReads();
    const p = await shortPoll(a, room, { since: '0-0' });
    return p.status === 200 && (await streamReads()) === before;
  }, { timeout: 10000, interval: 100, what: 'A to answer since=0-0 of an empty room from memory' });
  const j = await sameAsRedis(room, { since: '0-0' }, { fromMemory: true, what: 'empty room, 0-0' });
  assert.deepEqual(j, { events: [], last_id: '0-0' });
  const bogus = await sameAsRedis(room, { since: '1-0' }, { fromMemory: false, what: 'empty room, an id from nowhere' });
  assert.equal(bogus.reset, true, JSON.stringify(bogus));
  // the first message, sent elsewhere, is seen
  const first = await sendOk(b.url, room, alice, 'first');
  await waitFor(async () => {
    const p = await shortPoll(a, room, { since: '0-0' });
    return p.json?.events?.some((e) => e.id === first.id);
  }, { timeout: 5000, interval: 50, what: 'the first message in a poll on A' });
});
