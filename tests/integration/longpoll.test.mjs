// longpoll.test.mjs - the long poll on a real crosstalkd: answers at once
// when something is there, wakes on a new message, 204 on timeout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAXED, bearer, cleanup, http, register, sendOk, sleep, startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

let redis;
let d;
let alice;
let bob;

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, longpoll_timeout: 2 } });
  alice = await register(d.url, uniqueName('alice'));
  bob = await register(d.url, uniqueName('bob'));
});
after(cleanup);

const poll = (room, user, q, opts = {}) =>
  http('GET', `${d.url}/api/rooms/${room}/poll?${new URLSearchParams(q)}`, { headers: bearer(user.token), timeout: 70000, ...opts });

test('answers at once with what is already after since', async () => {
  const room = uniqueRoom();
  const m1 = await sendOk(d.url, room, alice, 'one');
  const m2 = await sendOk(d.url, room, alice, 'two');
  const t0 = Date.now();
  const r = await poll(room, bob, { since: '0-0', timeout: 10 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, r.text);
  assert.ok(ms < 1000, `a poll with events waiting took ${ms} ms`);
  assert.deepEqual(r.json.events.map((e) => e.id), [m1.id, m2.id]);
  assert.equal(r.json.last_id, m2.id);
  const r2 = await poll(room, bob, { since: m1.id, timeout: 10 });
  assert.deepEqual(r2.json.events.map((e) => e.text), ['two']);
});

test('wakes up on a new message', async () => {
  const room = uniqueRoom();
  const m0 = await sendOk(d.url, room, alice, 'before');
  const t0 = Date.now();
  const pending = poll(room, bob, { since: m0.id, timeout: 20 });
  await sleep(400);
  const m1 = await sendOk(d.url, room, alice, 'wake up');
  const tSend = Date.now();
  const r = await pending;
  const lag = Date.now() - tSend;
  assert.equal(r.status, 200, r.text);
  assert.ok(Date.now() - t0 >= 350, 'the poll answered before the message was sent');
  assert.ok(lag < 1000, `the poll answered ${lag} ms after the message was stored`);
  assert.deepEqual(r.json.events.map((e) => e.id), [m1.id]);
  assert.equal(r.json.events[0].text, 'wake up');
  assert.equal(r.json.events[0].from, alice.name);
  assert.equal(r.json.last_id, m1.id);
});

test('every waiting poller of the room wakes, pollers of other rooms do not', async () => {
  const room = uniqueRoom();
  const other = uniqueRoom('other');
  const m0 = await sendOk(d.url, room, alice, 'zero');
  const users = [bob, ...(await Promise.all([1, 2, 3].map(() => register(d.url))))];
  const polls = users.map((u) => poll(room, u, { since: m0.id, timeout: 15 }));
  const otherPoll = poll(other, bob, { since: '0-0', timeout: 2 });
  await sleep(400);
  const m1 = await sendOk(d.url, room, alice, 'all of you');
  const rs = await Promise.all(polls);
  for (const [i, r] of rs.entries()) {
    assert.equal(r.status, 200, `poller ${i}: ${r.status} ${r.text}`);
    assert.deepEqual(r.json.events.map((e) => e.id), [m1.id], `poller ${i}`);
  }
  const o = await otherPoll;
  assert.equal(o.status, 204, `a poll of another room got ${o.status} ${o.text}`);
});

test('204 with an empty body on timeout', async () => {
  const room = uniqueRoom();
  const m0 = await sendOk(d.url, room, alice, 'old');
  const t0 = Date.now();
  const r = await poll(room, bob, { since: m0.id, timeout: 1 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 204, r.text);
  assert.equal(r.body.length, 0);
  assert.ok(ms >= 900 && ms < 3000, `timeout=1 answered after ${ms} ms`);
});

test('the default timeout is longpoll_timeout (2 s here)', async () => {
  const room = uniqueRoom();
  const m0 = await sendOk(d.url, room, alice, 'old');
  const t0 = Date.now();
  const r = await poll(room, bob, { since: m0.id });
  const ms = Date.now() - t0;
  assert.equal(r.status, 204, r.text);
  assert.ok(ms >= 1800 && ms < 4500, `default timeout answered after ${ms} ms, expected about 2000`);
});

test('a poll without since waits for the next message, not the backlog', async () => {
  const room = uniqueRoom();
  await sendOk(d.url, room, alice, 'backlog');
  const pending = poll(room, bob, { timeout: 10 });
  await sleep(400);
  const m1 = await sendOk(d.url, room, alice, 'fresh');
  const r = await pending;
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.events.map((e) => e.text), ['fresh']);
  assert.equal(r.json.last_id, m1.id);
});

test('polling in a loop with last_id sees every message once, in order', async () => {
  const room = uniqueRoom();
  const sent = [];
  const sender = (async () => {
    for (let i = 0; i < 12; i++) {
      sent.push((await sendOk(d.url, room, alice, `n${i}`)).id);
      await sleep(i % 3 === 0 ? 60 : 5);
    }
  })();
  const got = [];
  let since = '0-0';
  const t0 = Date.now();
  while (got.length < 12 && Date.now() - t0 < 15000) {
    const r = await poll(room, bob, { since, timeout: 5 });
    if (r.status === 204) continue;
    assert.equal(r.status, 200, r.text);
    got.push(...r.json.events.map((e) => e.id));
    since = r.json.last_id;
  }
  await sender;
  assert.deepEqual(got, sent, 'messages seen by a long-poll loop (lost, repeated or out of order)');
});

test('a poller that goes away is not an error for the daemon; it still serves', async () => {
  const room = uniqueRoom();
  const m0 = await sendOk(d.url, room, alice, 'x');
  const p = poll(room, bob, { since: m0.id, timeout: 10 }, { timeout: 300 }).catch((e) => e);
  await p; // our side gives up after 300 ms and closes the socket
  await sendOk(d.url, room, alice, 'after the close');
  const h = await http('GET', `${d.url}/healthz`);
  assert.equal(h.status, 200);
  assert.equal(d.proc.exitCode, null, d.logs().slice(-2000));
  await waitOpenZero();
});

async function waitOpenZero() {
  const t0 = Date.now();
  let lp;
  while (Date.now() - t0 < 3000) {
    const s = await http('GET', `${d.url}/api/stats?scope=process`);
    lp = (s.json.transports ?? s.json).long_poll;
    if (lp.open === 0) return;
    await sleep(100);
  }
  assert.fail(`stats long_poll.open is ${lp?.open} 3 s after every poller left`);
}
