// cluster.test.mjs - two crosstalkd on one Redis are one chat: what is sent
// to daemon A reaches the SSE, long-poll and short-poll clients of daemon B,
// in Redis order, and typing/presence cross over too.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAXED, bearer, cleanup, history, http, register, sendOk, sleep, sseOpen, startDaemon, startRedis,
  uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

let redis;
let a;
let b;
let alice;
let bob;

before(async () => {
  redis = await startRedis();
  a = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, presence_ttl: 5 } });
  b = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, presence_ttl: 5 } });
  alice = await register(a.url, uniqueName('alice'));
  bob = await register(b.url, uniqueName('bob'));
});
after(cleanup);

test('a message sent to A reaches SSE, long-poll and short-poll clients of B, in order', async () => {
  const room = uniqueRoom();
  const m0 = await sendOk(a.url, room, alice, 'start');
  const sse = await sseOpen(`${b.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  try {
    assert.equal(sse.status, 200, sse.text);
    const poll = http('GET', `${b.url}/api/rooms/${room}/poll?since=${m0.id}&timeout=10`, { headers: bearer(bob.token) });
    await sleep(300);
    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await sendOk(a.url, room, alice, `cross ${i}`));
    const ids = sent.map((m) => m.id);

    const lp = await poll;
    assert.equal(lp.status, 200, lp.text);
    assert.ok(lp.json.events.length >= 1, 'long poll on B woke with no event');
    assert.deepEqual(lp.json.events.map((e) => e.id), ids.slice(0, lp.json.events.length), 'long-poll events of B');

    await sse.waitEvents(5, { filter: (e) => e.event === 'message', what: '5 messages on B\'s SSE' });
    await sleep(200);
    assert.deepEqual(sse.messages().map((e) => e.id), ids, 'SSE events on B');
    assert.deepEqual(sse.messages().map((e) => e.json), sent, 'SSE event bodies on B equal what A acknowledged');

    const sp = await history(b.url, room, bob, { since: m0.id });
    assert.equal(sp.status, 200, sp.text);
    assert.deepEqual(sp.json.events.map((e) => e.id), ids, 'short poll on B');
  } finally {
    sse.close();
  }
});

test('interleaved senders on both daemons: every client sees one order, Redis order', async () => {
  const room = uniqueRoom();
  const onA = await sseOpen(`${a.url}/api/rooms/${room}/events`, { headers: bearer(alice.token) });
  const onB = await sseOpen(`${b.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  try {
    await sleep(200);
    await Promise.all([
      (async () => { for (let i = 0; i < 15; i++) await sendOk(a.url, room, alice, `a${i}`); })(),
      (async () => { for (let i = 0; i < 15; i++) await sendOk(b.url, room, bob, `b${i}`); })(),
    ]);
    const stored = (await redis.cmd('XRANGE', `ct:room:{${room}}:log`, '-', '+')).map((x) => x[0]);
    assert.equal(stored.length, 30);
    await onA.waitEvents(30, { filter: (e) => e.event === 'message', what: '30 messages on A' });
    await onB.waitEvents(30, { filter: (e) => e.event === 'message', what: '30 messages on B' });
    await sleep(200);
    assert.deepEqual(onA.messages().map((e) => e.id), stored, 'order on A');
    assert.deepEqual(onB.messages().map((e) => e.id), stored, 'order on B');
  } finally {
    onA.close();
    onB.close();
  }
});

test('typing on A reaches SSE on B; presence is the same from both daemons', async () => {
  const room = uniqueRoom();
  const sse = await sseOpen(`${b.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  const onA = await sseOpen(`${a.url}/api/rooms/${room}/events`, { headers: bearer(alice.token) });
  try {
    await sleep(200);
    const t = await http('POST', `${a.url}/api/rooms/${room}/typing`, { headers: bearer(alice.token) });
    assert.equal(t.status, 202, t.text);
    const [ev] = await sse.waitEvents(1, { filter: (e) => e.event === 'typing', what: 'typing from A on B' });
    assert.equal(ev.json.from, alice.name);
    for (const dd of [a, b]) {
      await waitFor(async () => {
        const r = await http('GET', `${dd.url}/api/rooms/${room}/presence`, { headers: bearer(bob.token) });
        return r.status === 200 && r.json.online.includes(alice.name) && r.json.online.includes(bob.name);
      }, { timeout: 3000, what: `presence on port ${dd.port} to list ${alice.name} (SSE on A) and ${bob.name} (SSE on B)` });
    }
  } finally {
    sse.close();
    onA.close();
  }
});

test('a user registered on A is known to B; a name taken on A is taken on B', async () => {
  const name = uniqueName('both');
  const u = await register(a.url, name);
  const r = await sendOk(b.url, uniqueRoom(), u, 'token from A works on B');
  assert.equal(r.from, name);
  const again = await http('POST', `${b.url}/api/register`, { body: { name } });
  assert.equal(again.status, 409, again.text);
});
