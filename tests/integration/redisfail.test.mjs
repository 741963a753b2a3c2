// redisfail.test.mjs - crosstalkd when Redis goes away: /healthz says 503,
// sends get 503 and nothing is acknowledged or stored, open SSE streams stay
// open (heartbeats go on), the daemon neither crashes nor spins, and after
// Redis is back it reconnects, re-subscribes and fills gaps with XRANGE.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAXED, assertError, bearer, cleanup, cpuSeconds, freePort, history, http, register, roomKey,
  send, sendOk, sleep, sseOpen, startDaemon, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const CONFIG = { ...RELAXED, sse_heartbeat: 1 };

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

const healthz = async (dd = d) => (await http('GET', `${dd.url}/healthz`)).status;

test('/healthz: 200, then 503 with Redis stopped, then 200 again after it is back', async () => {
  assert.equal(await healthz(), 200);
  await redis.stop();
  await waitFor(async () => (await healthz()) === 503, { timeout: 5000, what: '/healthz to say 503 with Redis stopped' });
  await redis.restart();
  await waitFor(async () => (await healthz()) === 200, { timeout: 15000, what: '/healthz back to 200 after Redis restarted' });
});

test('Redis killed under an open SSE stream: the stream survives, sends get 503, later messages arrive', async () => {
  const room = uniqueRoom();
  const s = await sseOpen(`${d.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  try {
    assert.equal(s.status, 200, s.text);
    await sleep(100);
    const m1 = await sendOk(d.url, room, alice, 'before the crash');
    await s.waitEvents(1, { filter: (e) => e.event === 'message' });

    await redis.kill();
    await waitFor(async () => (await healthz()) === 503, { timeout: 5000, what: '/healthz 503 after Redis was killed' });

    const during = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const r = await send(d.url, room, alice, `during ${i}`);
      during.push(r);
      assert.ok(Date.now() - t0 < 5000, `a send during the outage took ${Date.now() - t0} ms`);
    }
    for (const r of during) assertError(r, 503, 'unavailable', 'send while Redis is down');
    // a read writes nothing: its 503 says so, and to try again (docs/api.md)
    const READ_FAILED = 'the message store did not answer (unreachable, or slower than redis_timeout_ms); try again';
    const h = await history(d.url, room, alice, { since: '0-0' });
    assertError(h, 503, 'unavailable', 'history while Redis is down');
    assert.equal(h.json.message, READ_FAILED, 'history while Redis is down');
    // a room this daemon does not follow yet: its long poll and its stream
    // need Redis, and say when to come back as every 503 does
    const other = uniqueRoom();
    const lp = await http('GET', `${d.url}/api/rooms/${other}/poll?since=0-0&timeout=5`, { headers: bearer(alice.token) });
    assertError(lp, 503, 'unavailable', 'a long poll while Redis is down');
    assert.equal(lp.json.message, READ_FAILED, 'a long poll while Redis is down');
    const s2 = await sseOpen(`${d.url}/api/rooms/${other}/events`, { headers: bearer(alice.token) });
    s2.close();
    assert.equal(s2.status, 503, `an event stream while Redis is down: ${s2.text}`);
    assert.equal(JSON.parse(s2.text).message, READ_FAILED, 'an event stream while Redis is down');
    assert.equal(s2.headers['retry-after'], '1', 'an event stream refused 503 while Redis is down');

    // The stream stays open and keeps its heartbeat; the daemon does not spin.
    const c0 = s.comments.length;
    const cpu0 = cpuSeconds(d.pid);
    await sleep(2500);
    const cpu = cpuSeconds(d.pid) - cpu0;
    assert.ok(cpu < 0.5, `crosstalkd used ${cpu.toFixed(2)} s of CPU in 2.5 s with Redis down (spinning?)`);
    assert.equal(s.ended, false, 'the SSE stream was closed when Redis went away');
    assert.ok(s.comments.length >= c0 + 1, `no heartbeat during the outage (${s.comments.length - c0} in 2.5 s)`);

    await redis.restart();
    await waitFor(async () => (await healthz()) === 200, { timeout: 15000, what: '/healthz 200 after Redis came back' });
    assert.equal(await redis.cmd('XLEN', roomKey(room)), 1, 'a send answered 503 was stored after all');

    const m2 = await sendOk(d.url, room, alice, 'after the restart');
    await s.waitEvents(2, { filter: (e) => e.event === 'message', timeout: 5000, what: 'the message sent after Redis came back' });
    await sleep(300);
    assert.equal(s.ended, false);
    assert.deepEqual(s.messages().map((e) => e.id), [m1.id, m2.id], 'messages on the surviving stream');
  } finally {
    s.close();
  }
  assert.equal(d.proc.exitCode, null, d.logs().slice(-2000));
});

test('after a lost pub/sub connection the daemon fills the gap from the stream, once each', async () => {
  const room = uniqueRoom();
  const s = await sseOpen(`${d.url}/api/rooms/${room}/events`, { headers: bearer(bob.token) });
  try {
    await sleep(100);
    const m1 = await sendOk(d.url, room, alice, 'first');
    await s.waitEvents(1, { filter: (e) => e.event === 'message' });
    // In one go, with no other client served in between: drop every
    // pub/sub connection, then store a message with no PUBLISH. Only a
    // daemon that re-reads the stream after re-subscribing can deliver it.
    const ts = String(Date.now());
    const [killed, gapId] = await redis.pipeline([
      ['CLIENT', 'KILL', 'TYPE', 'pubsub'],
      ['XADD', roomKey(room), '*', 'from', alice.name, 'text', 'in the gap', 'ts', ts],
    ]);
    assert.ok(killed >= 1, `no pub/sub client to kill (CLIENT KILL said ${killed}): does the daemon PSUBSCRIBE?`);
    await s.waitEvents(2, { filter: (e) => e.event === 'message', timeout: 10000, what: 'the message stored during the gap' });
    const m3 = await sendOk(d.url, room, alice, 'after the gap');
    await s.waitEvents(3, { filter: (e) => e.event === 'message', timeout: 5000, what: 'the live message after the gap' });
    await sleep(300);
    assert.deepEqual(s.messages().map((e) => e.id), [m1.id, gapId, m3.id]);
    assert.equal(s.messages()[1].json.text, 'in the gap');
  } finally {
    s.close();
  }
});

test('a daemon started while Redis is down comes up, says 503, and works once Redis appears', async () => {
  const port = await freePort();
  const dd = await startDaemon({ redisUrl: `redis://127.0.0.1:${port}/0`, config: CONFIG });
  assert.equal(await healthz(dd), 503);
  const r = await http('POST', `${dd.url}/api/register`, { body: { name: uniqueName('early') } });
  assertError(r, 503, 'unavailable', 'register while Redis is down');
  const cpu0 = cpuSeconds(dd.pid);
  await sleep(1500);
  const cpu = cpuSeconds(dd.pid) - cpu0;
  assert.ok(cpu < 0.4, `crosstalkd used ${cpu.toFixed(2)} s of CPU in 1.5 s retrying Redis`);
  const late = await startRedis({ port });
  await waitFor(async () => (await healthz(dd)) === 200, { timeout: 15000, what: '/healthz 200 once Redis is up' });
  const u = await register(dd.url);
  await sendOk(dd.url, uniqueRoom(), u, 'works');
  assert.equal(await dd.stop(), 0);
  await late.stop();
});
