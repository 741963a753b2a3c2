// sse.test.mjs - Server-Sent Events on a real crosstalkd, read both raw off
// the wire and through the npm `eventsource` client: id/event/retry fields,
// heartbeats, typing and presence events, resume by Last-Event-ID and
// ?since= with nothing lost or repeated, also across a daemon restart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAXED, alive, bearer, cleanup, eventSource, history, http, register, sendOk, sleep, sseOpen,
  startDaemon, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const CONFIG = { ...RELAXED, sse_heartbeat: 1, sse_retry_ms: 300, presence_ttl: 2 };

let redis;
let d;
let alice;
let bob;

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url, config: CONFIG });
  alice = await register(d.url, uniqueName('alice'));
  bob = await register(d.url, uniqueName('bob'));
});
after(cleanup);

const eventsUrl = (room, q = {}) => `${d.url}/api/rooms/${room}/events${Object.keys(q).length ? '?' + new URLSearchParams(q) : ''}`;
const open = (room, user, { q = {}, headers = {} } = {}) => sseOpen(eventsUrl(room, q), { headers: { ...bearer(user.token), ...headers } });

test('the stream: 200 text/event-stream, no caching, a retry: field first', async () => {
  const s = await open(uniqueRoom(), alice);
  try {
    assert.equal(s.status, 200, s.text);
    assert.match(s.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.match(s.headers['cache-control'] ?? '', /no-cache|no-store/);
    await waitFor(() => s.retries.length > 0, { timeout: 2000, what: 'a retry: field' });
    assert.equal(s.retries[0], CONFIG.sse_retry_ms);
    assert.equal(s.messages().length, 0, `messages before anything was sent: ${JSON.stringify(s.events)}`);
  } finally {
    s.close();
  }
});

test('a ":" heartbeat every sse_heartbeat seconds (1 s here)', async () => {
  const s = await open(uniqueRoom(), alice);
  try {
    await s.waitComments(3, { timeout: 4500 });
    const gaps = s.comments.slice(1).map((c, i) => c.at - s.comments[i].at);
    for (const g of gaps) assert.ok(g > 500 && g < 2000, `heartbeat gaps ${gaps} ms, expected about 1000`);
  } finally {
    s.close();
  }
});

test('a stored message arrives with id: = its id, event: message, data: the event JSON', async () => {
  const room = uniqueRoom();
  const s = await open(room, bob);
  try {
    await sleep(100);
    const m = await sendOk(d.url, room, alice, 'hello "sse"\nsecond line');
    const [ev] = await s.waitEvents(1, { filter: (e) => e.event === 'message', what: 'the message' });
    assert.equal(ev.id, m.id);
    assert.equal(ev.event, 'message');
    assert.deepEqual(ev.json, m);
    assert.ok(!ev.data.includes('\n'), 'data: spans lines; the event JSON should be one line');
    assert.match(s.raw, new RegExp(`(^|\\n)id: ?${m.id}\\r?\\n`));
    assert.match(s.raw, /(^|\n)event: ?message\r?\n/);
  } finally {
    s.close();
  }
});

test('only the room\'s own events arrive, in send order', async () => {
  const room = uniqueRoom();
  const other = uniqueRoom('other');
  const s = await open(room, bob);
  try {
    await sleep(100);
    const ids = [];
    for (let i = 0; i < 10; i++) {
      ids.push((await sendOk(d.url, room, alice, `o${i}`)).id);
      await sendOk(d.url, other, alice, `elsewhere ${i}`);
    }
    await s.waitEvents(10, { filter: (e) => e.event === 'message' });
    await sleep(200);
    assert.deepEqual(s.messages().map((e) => e.id), ids);
  } finally {
    s.close();
  }
});

test('typing events reach SSE clients of the room, without an id', async () => {
  const room = uniqueRoom();
  const s = await open(room, alice);
  try {
    await sleep(100);
    const r = await http('POST', `${d.url}/api/rooms/${room}/typing`, { headers: bearer(bob.token) });
    assert.equal(r.status, 202, r.text);
    const [ev] = await s.waitEvents(1, { filter: (e) => e.event === 'typing', what: 'a typing event' });
    assert.equal(ev.json.type, 'typing');
    assert.equal(ev.json.from, bob.name);
    assert.equal(ev.json.room, room);
    assert.equal(typeof ev.json.ts, 'number');
    assert.equal(ev.id, undefined, 'a typing event carries an id:');
    assert.equal(ev.json.id, undefined);
  } finally {
    s.close();
  }
});

async function sendMany(room, n, prefix) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await sendOk(d.url, room, alice, `${prefix}${i}`));
  return out;
}

test('resume after Last-Event-ID: the missed messages, then live ones; nothing lost or repeated', async () => {
  const room = uniqueRoom();
  const m = await sendMany(room, 5, 'r');
  const s = await open(room, bob, { headers: { 'Last-Event-ID': m[1].id } });
  try {
    await s.waitEvents(3, { filter: (e) => e.event === 'message', what: 'the 3 messages after Last-Event-ID' });
    const m6 = await sendOk(d.url, room, alice, 'live');
    await s.waitEvents(4, { filter: (e) => e.event === 'message', what: 'the live message' });
    await sleep(300);
    assert.deepEqual(s.messages().map((e) => e.id), [m[2].id, m[3].id, m[4].id, m6.id]);
  } finally {
    s.close();
  }
});

test('resume with ?since= works the same', async () => {
  const room = uniqueRoom();
  const m = await sendMany(room, 4, 's');
  const s = await open(room, bob, { q: { since: m[0].id } });
  try {
    await s.waitEvents(3, { filter: (e) => e.event === 'message' });
    const m5 = await sendOk(d.url, room, alice, 'live');
    await s.waitEvents(4, { filter: (e) => e.event === 'message' });
    await sleep(300);
    assert.deepEqual(s.messages().map((e) => e.id), [m[1].id, m[2].id, m[3].id, m5.id]);
  } finally {
    s.close();
  }
});

test('resume while messages keep coming: the catch-up and the live feed join without a gap or a duplicate', async () => {
  const room = uniqueRoom();
  const first = await sendMany(room, 3, 'pre');
  let stop = false;
  const sent = [];
  const sender = (async () => {
    for (let i = 0; i < 40 && !stop; i++) sent.push((await sendOk(d.url, room, alice, `race${i}`)).id);
  })();
  await sleep(20);
  const s = await open(room, bob, { q: { since: first[2].id } });
  try {
    await sender;
    stop = true;
    await s.waitEvents(sent.length, { filter: (e) => e.event === 'message', timeout: 5000, what: `all ${sent.length} messages` });
    await sleep(300);
    assert.deepEqual(s.messages().map((e) => e.id), sent);
  } finally {
    s.close();
  }
});

test('the eventsource package: messages and typing, lastEventId set', async () => {
  const room = uniqueRoom();
  const es = await eventSource(eventsUrl(room, { token: bob.token }));
  try {
    await es.waitOpen();
    await sleep(100);
    const m = await sendOk(d.url, room, alice, 'via eventsource');
    await http('POST', `${d.url}/api/rooms/${room}/typing`, { headers: bearer(alice.token) });
    await es.waitEvents(1, { filter: (e) => e.type === 'message' });
    await es.waitEvents(1, { filter: (e) => e.type === 'typing' });
    const msg = es.messages()[0];
    assert.equal(msg.id, m.id);
    assert.deepEqual(msg.json, m);
  } finally {
    es.close();
  }
});

test('resume after a daemon restart: EventSource reconnects by itself and misses nothing', async () => {
  const room = uniqueRoom();
  // A second daemon on the same Redis takes the messages while the first is down.
  const b = await startDaemon({ redisUrl: redis.url, config: CONFIG });
  const es = await eventSource(eventsUrl(room, { token: bob.token }));
  try {
    await es.waitOpen();
    await sleep(100);
    const m1 = await sendOk(d.url, room, alice, 'before restart');
    await es.waitEvents(1, { filter: (e) => e.type === 'message' });

    const code = await d.stop();
    assert.equal(code, 0, `crosstalkd exit status after SIGTERM; log:\n${d.logs().slice(-2000)}`);
    const down = [];
    for (let i = 0; i < 3; i++) down.push(await sendOk(b.url, room, alice, `while down ${i}`));
    await d.restart();
    await es.waitOpen({ count: 2, timeout: 10000 });
    const m5 = await sendOk(d.url, room, alice, 'after restart');
    await es.waitEvents(5, { filter: (e) => e.type === 'message', timeout: 5000 });
    await sleep(300);
    assert.deepEqual(es.messages().map((e) => e.id), [m1.id, ...down.map((x) => x.id), m5.id]);
  } finally {
    es.close();
    await b.stop();
    // Leave a running daemon to the tests after this one, whatever happened.
    if (!alive(d.pid)) await d.restart();
  }
});

test('presence across transports: SSE and long-poll users are online, presence events flow, then expire', async () => {
  const room = uniqueRoom();
  const carol = await register(d.url, uniqueName('carol'));
  const online = async () => {
    const r = await http('GET', `${d.url}/api/rooms/${room}/presence`, { headers: bearer(carol.token) });
    assert.equal(r.status, 200, r.text);
    return r.json.online;
  };
  const s = await open(room, alice);
  try {
    await waitFor(async () => (await online()).includes(alice.name), { timeout: 3000, what: `${alice.name} (SSE) online` });
    const lastId = (await history(d.url, room, bob, { since: '0-0' })).json.last_id;
    const lp = http('GET', `${d.url}/api/rooms/${room}/poll?since=${lastId}&timeout=3`, { headers: bearer(bob.token) });
    await waitFor(async () => (await online()).includes(bob.name), { timeout: 2000, what: `${bob.name} (long poll) online` });
    await s.waitEvents(1, {
      filter: (e) => e.event === 'presence' && Array.isArray(e.json?.online) && e.json.online.includes(bob.name),
      timeout: 3000, what: `a presence event listing ${bob.name}`,
    });
    const pres = s.events.filter((e) => e.event === 'presence');
    assert.equal(pres.at(-1).json.room, room);
    assert.equal(pres.at(-1).id, undefined, 'presence events carry no id:');
    // Held streams keep alice online past presence_ttl (2 s).
    await lp;
    await sleep(2500);
    assert.ok((await online()).includes(alice.name), `${alice.name} dropped out while her stream is open`);
    await waitFor(async () => !(await online()).includes(bob.name), { timeout: 4000, what: `${bob.name} to expire after his poll ended` });
  } finally {
    s.close();
  }
  await waitFor(async () => !(await online()).includes(alice.name), { timeout: 4000, what: `${alice.name} offline after her stream closed` });
});

test('a quiet stream outlives header_timeout: it is not cut while nothing is sent', async () => {
  const quiet = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, header_timeout: 1, sse_heartbeat: 30 } });
  const room = uniqueRoom();
  const s = await sseOpen(`${quiet.url}/api/rooms/${room}/events`, { headers: bearer(alice.token) });
  try {
    await sleep(2500);
    assert.equal(s.ended, false, `the stream ended after ${2500} ms of quiet with header_timeout 1 s`);
    const m = await sendOk(quiet.url, room, bob, 'after the quiet');
    const [ev] = await s.waitEvents(1, { filter: (e) => e.event === 'message', timeout: 2000, what: 'the message after 2.5 s of quiet' });
    assert.equal(ev.id, m.id);
  } finally {
    s.close();
    await quiet.stop();
  }
});

test('stats: sse open count follows the streams, delivered and bytes_out grow', async () => {
  const stats = async () => {
    const r = await http('GET', `${d.url}/api/stats?scope=process`);
    return (r.json.transports ?? r.json).sse;
  };
  const room = uniqueRoom();
  const before0 = await stats();
  const s1 = await open(room, alice);
  const s2 = await open(room, bob);
  try {
    await waitFor(async () => (await stats()).open === before0.open + 2, { timeout: 2000, what: 'sse.open to rise by 2' });
    await sendOk(d.url, room, alice, 'count me');
    await s1.waitEvents(1, { filter: (e) => e.event === 'message' });
    await s2.waitEvents(1, { filter: (e) => e.event === 'message' });
    const mid = await stats();
    assert.ok(mid.delivered >= before0.delivered + 2, `sse.delivered ${before0.delivered} -> ${mid.delivered}`);
    assert.ok(mid.bytes_out > before0.bytes_out, `sse.bytes_out ${before0.bytes_out} -> ${mid.bytes_out}`);
  } finally {
    s1.close();
    s2.close();
  }
  await waitFor(async () => (await stats()).open === before0.open, { timeout: 3000, what: 'sse.open to fall back after both streams closed' });
});

test('without since, a message sent once the head is seen reaches the stream (two daemons, 30 rooms)', async () => {
  // The stream starts at the room's newest message: that point must be
  // fixed before the head goes out, or a message sent on seeing the head
  // (through another daemon, so Redis may order it first) could be taken
  // for history and never delivered.
  const other = await startDaemon({ redisUrl: redis.url, config: CONFIG });
  try {
    const lost = [];
    for (let i = 0; i < 30; i++) {
      const room = uniqueRoom();
      if (i % 2) await sendOk(other.url, room, alice, 'before');
      const s = await open(room, bob);
      try {
        assert.equal(s.status, 200, s.text);
        const m = await sendOk(other.url, room, alice, `round ${i}`);
        try {
          await s.waitEvents(1, { filter: (e) => e.event === 'message', timeout: 3000, what: `the message of round ${i}` });
        } catch {
          lost.push(i);
          continue;
        }
        const got = s.messages().map((e) => e.json.id);
        assert.deepEqual(got, [m.id], `round ${i}: only the message sent after the head`);
      } finally {
        s.close();
      }
    }
    assert.deepEqual(lost, [], 'rounds whose message never reached the stream');
  } finally {
    await other.stop();
  }
});
