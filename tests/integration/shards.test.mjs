// shards.test.mjs - three Redis shards behind one comma-separated redis_url,
// crosstalkd and the FastCGI pool (through nginx, /f/) on the same list:
// each room's stream and each user on the shard the placement names (cross-
// checked with the harness's JavaScript copy of FNV-1a 64 + jump hash, and with
// EXISTS on every shard), GET /api/rooms paged across the shards, then one
// shard killed: the rooms of the others still take sends (201) and deliver
// over SSE, the dead shard's rooms answer 503, /healthz names the shard, and
// once it is back its rooms recover by themselves with nothing acknowledged
// lost. Shipped defaults apart from the rate limits (RELAXED).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  RELAXED, assertError, bearer, bin, cleanup, history, http, register, roomKey, runSync, send, sendOk, shardOf, sseOpen,
  startDaemon, startFcgi, startFerret, startNginx, startRedis, tmpDir, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const N = 3;
const DEAD = 2; // the shard killed (crosstalkd's bus feed is on shard 0 until the feed branch lands)

// docs/sharding.md's placement (the harness's JavaScript copy of src/common/shard.c)
const shardOfRoom = (room) => shardOf(room, N);
const shardOfUser = (name) => shardOf(name.toLowerCase(), N);

let shards;
let d;
let fcgi;
let nginx;
let pool; // the FastCGI pool's base URL, through nginx
let alice;
const rooms = [[], [], []]; // rooms by shard
const acked = new Map(); // room -> ids answered 201

before(async () => {
  shards = [];
  for (let i = 0; i < N; i++) shards.push(await startRedis());
  const url = shards.map((s) => s.url).join(',');
  d = await startDaemon({ redisUrl: url, config: RELAXED });
  fcgi = await startFcgi({ redisUrl: url, children: 2, config: RELAXED });
  nginx = await startNginx({ daemons: [d.port], fcgiSocket: fcgi.socket });
  pool = `${nginx.url}/f`;
  // a user on each shard, so that token lookups cross shards
  alice = await register(d.url, uniqueName('alice'));
  for (let k = 0; rooms.some((r) => r.length < 3) && k < 500; k++) {
    const room = uniqueRoom('sh');
    if (rooms[shardOfRoom(room)].length < 3) rooms[shardOfRoom(room)].push(room);
  }
});
after(cleanup);

async function sendAcked(base, room, text) {
  const ev = await sendOk(base, room, alice, text);
  if (!acked.has(room)) acked.set(room, []);
  acked.get(room).push(ev.id);
  return ev;
}

async function holders(key) {
  const out = [];
  for (let i = 0; i < N; i++) if ((await shards[i].cmd('EXISTS', key)) === 1) out.push(i);
  return out;
}

test('each room lives on its shard only, whichever program stored it', async () => {
  let n = 0;
  for (let s = 0; s < N; s++) {
    assert.equal(rooms[s].length, 3, `3 rooms found for shard ${s}`);
    for (const room of rooms[s]) {
      await sendAcked(n++ % 2 ? pool : d.url, room, `hello ${room}`);
      assert.deepEqual(await holders(roomKey(room)), [s], `the stream of ${room} is on shard ${s} only`);
      const h = await history(n % 2 ? d.url : pool, room, alice, { since: '0-0' });
      assert.equal(h.status, 200, h.text);
      assert.deepEqual(h.json.events.map((m) => m.id), acked.get(room), `${room}: read back from the other program`);
    }
  }
});

test('a user lives on its shard; its token is found from either program', async () => {
  const seen = new Set();
  for (let k = 0; seen.size < N && k < 200; k++) {
    const u = await register(k % 2 ? pool : d.url, uniqueName('U'));
    const s = shardOfUser(u.name);
    const where = [];
    for (let i = 0; i < N; i++) {
      const keys = await shards[i].cmd('KEYS', `ct:user:*${u.name.toLowerCase()}*`);
      if (keys.length > 0) where.push(i);
    }
    assert.deepEqual(where, [s], `user ${u.name} is on shard ${s} only`);
    seen.add(s);
    for (const base of [d.url, pool]) {
      const r = await send(base, rooms[0][0], u, `from ${u.name}`);
      assert.equal(r.status, 201, `${u.name} (shard ${s}) sends through ${base}: ${r.text}`);
      acked.get(rooms[0][0]).push(r.json.id);
    }
  }
  assert.equal(seen.size, N, 'users on every shard');
});

test('GET /api/rooms pages across the shards: every room once, in the index order', async () => {
  // the truth: every shard's ct:rooms, merged
  const all = [];
  for (let i = 0; i < N; i++) {
    const z = await shards[i].cmd('ZRANGE', 'ct:rooms', '0', '-1', 'WITHSCORES');
    for (let k = 0; k < z.length; k += 2) all.push({ name: z[k], last_ts: Number(z[k + 1]) });
  }
  all.sort((a, b) => (b.last_ts - a.last_ts) || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  assert.ok(all.length >= 9, `at least our 9 rooms (${all.length})`);
  for (const base of [d.url, pool]) {
    const got = [];
    let next;
    for (let p = 0; p < 50; p++) {
      const r = await http('GET', `${base}/api/rooms?limit=2${next ? `&after=${encodeURIComponent(next)}` : ''}`, {
        headers: bearer(alice.token),
      });
      assert.equal(r.status, 200, r.text);
      got.push(...r.json.rooms.map((x) => ({ name: x.name, last_ts: x.last_ts })));
      if (!r.json.more) break;
      next = r.json.next;
    }
    assert.deepEqual(got, all, `${base}: pages of 2 equal the merged index`);
  }
});

test('one shard down: the others keep working, its rooms 503, /healthz names it; back, they recover', async () => {
  const live = rooms[0][1]; // shard 0: the bus feed's shard
  const live1 = rooms[1][1];
  const dead = rooms[DEAD][1];
  assert.deepEqual((await http('GET', `${d.url}/healthz`)).json, { status: 'ok' });
  const s = await sseOpen(`${d.url}/api/rooms/${live}/events`, { headers: bearer(alice.token) });
  try {
    assert.equal(s.status, 200, s.text);
    await shards[DEAD].kill();
    for (const [name, base] of [['crosstalkd', d.url], ['the pool', pool]]) {
      await waitFor(async () => (await http('GET', `${base}/healthz`)).status === 503, {
        timeout: 10000, what: `${name}'s /healthz to say 503 after shard ${DEAD} was killed`,
      });
      const h = await http('GET', `${base}/healthz`);
      assertError(h, 503, 'unavailable', `${name} /healthz`);
      assert.match(h.json.message, new RegExp(`^shard ${DEAD} of ${N} \\(127\\.0\\.0\\.1:${shards[DEAD].port}\\): `), h.text);
      assert.deepEqual(h.json.shards.map((x) => x.status), ['ok', 'ok', 'unavailable'], h.text);
      assert.equal(h.json.shards[DEAD].redis, `127.0.0.1:${shards[DEAD].port}`);
      assert.ok(h.headers['retry-after'], 'Retry-After on the 503');

      for (const room of [live, live1]) {
        const ev = await sendAcked(base, room, `during the outage via ${name}`);
        assert.ok(ev.id, `${room} takes sends through ${name}`);
      }
      const r = await send(base, dead, alice, 'lost?');
      assertError(r, 503, 'unavailable', `a send to ${dead} (shard ${DEAD}) through ${name}`);
      assertError(await history(base, dead, alice, { since: '0-0' }), 503, 'unavailable', `history of ${dead}`);
      // registering: 201 on a live shard, 503 on the dead one
      for (let k = 0; k < 6; k++) {
        const name = uniqueName('late');
        const r = await http('POST', `${base}/api/register`, { body: { name } });
        assert.equal(r.status, shardOfUser(name) === DEAD ? 503 : 201, `register ${name} (shard ${shardOfUser(name)}): ${r.text}`);
      }
    }
    // the SSE stream of a live room carries the sends made meanwhile
    await s.waitEvents(2, { filter: (e) => e.event === 'message', timeout: 10000 });
    const got = s.events.filter((e) => e.event === 'message').map((e) => e.json.id);
    assert.deepEqual(got, acked.get(live).slice(-2), 'SSE delivered the live room\'s messages');

    await shards[DEAD].restart();
    for (const [name, base] of [['crosstalkd', d.url], ['the pool', pool]]) {
      await waitFor(async () => (await send(base, dead, alice, `back via ${name}`)).status === 201, {
        timeout: 15000, what: `a send to ${dead} through ${name} to be 201 after shard ${DEAD} came back`,
      });
      await waitFor(async () => (await http('GET', `${base}/healthz`)).json?.status === 'ok', {
        timeout: 15000, what: `${name}'s /healthz back to 200 {"status":"ok"}`,
      });
    }
  } finally {
    s.close();
  }
  // nothing acknowledged is lost, anywhere
  for (const [room, ids] of acked) {
    const h = await history(d.url, room, alice, { since: '0-0', limit: 100 });
    assert.equal(h.status, 200, h.text);
    const have = new Set(h.json.events.map((m) => m.id));
    for (const id of ids) assert.ok(have.has(id), `${room}: acknowledged ${id} is stored`);
  }
});

test('a hanging shard (CLIENT PAUSE, shipped redis_timeout_ms 2000) delays neither the tokens nor the rooms of the others; /healthz names it', async () => {
  let u;
  for (let k = 0; !u && k < 200; k++) {
    const name = uniqueName('h');
    if (shardOfUser(name) === 1) u = await register(pool, name); // crosstalkd has not cached its token
  }
  assert.ok(u, 'a user on shard 1');
  const room = rooms[1][0];
  await shards[0].cmd('CLIENT', 'PAUSE', '5000', 'ALL');
  try {
    let t0 = Date.now();
    const ev = await sendAcked(d.url, room, 'while shard 0 hangs');
    const ms = Date.now() - t0;
    assert.ok(ev.id && ms < 1900, `a send by a shard-1 user to a shard-1 room took ${ms} ms with shard 0 hanging (bound 1900 ms, below redis_timeout_ms)`);
    t0 = Date.now();
    const h = await http('GET', `${d.url}/healthz`);
    assertError(h, 503, 'unavailable', '/healthz with shard 0 hanging');
    assert.match(h.json.message, /^shard 0 of 3 \(127\.0\.0\.1:\d+\): /, h.text);
    assert.deepEqual(h.json.shards.map((x) => x.status), ['unavailable', 'ok', 'ok'], h.text);
    assert.ok(Date.now() - t0 < 4500, `/healthz answered in ${Date.now() - t0} ms (redis_timeout_ms 2000 plus slack)`);
  } finally {
    await waitFor(async () => (await http('GET', `${d.url}/healthz`)).json?.status === 'ok', {
      timeout: 15000, what: 'crosstalkd /healthz back to 200 after the pause',
    });
  }
});

// Found in a trial: a pool process that met a hanging shard dropped its
// connection, reconnected for the request's next command and waited
// redis_timeout_ms again, so one request took twice the timeout and every
// request queued behind it in the same process did the same: the pool
// stopped for every room. Now a process that met a timeout rests the shard
// (REXEC_SYNC_REST_MS): until a new connection answers a PING within
// REXEC_SYNC_PROBE_MS (100 ms), its commands there are 503 after that
// probe. One timeout, then about 0.1-0.3 s per request.
test('a hanging shard costs a pool process one redis_timeout_ms (2000), not one per command; its other rooms go on', async () => {
  const f1 = await startFcgi({ redisUrl: shards.map((x) => x.url).join(','), children: 1, config: RELAXED });
  const n1 = await startNginx({ daemons: [d.port], fcgiSocket: f1.socket });
  const base = `${n1.url}/f`;
  const hung = rooms[1][1];
  const fine = rooms[0][1];
  // the one process learns alice's token now: a lookup asks every shard
  assert.equal((await history(base, fine, alice)).status, 200);
  await shards[1].cmd('CLIENT', 'PAUSE', '5000', 'ALL');
  try {
    const t0 = Date.now();
    const six = await Promise.all(Array.from({ length: 6 }, () => history(base, hung, alice)));
    const ms = Date.now() - t0;
    for (const r of six) {
      assertError(r, 503, 'unavailable', `GET of a room on the hanging shard through the pool`);
      assert.equal(r.headers['retry-after'], '1', r.text);
    }
    assert.ok(ms < 3500, `6 requests to the hanging shard through a one-process pool took ${ms} ms (bound 3500: one timeout of 2000, then a probe of 100 ms a command; it was about 4000 each)`);
    const t1 = Date.now();
    const ok = await history(base, fine, alice);
    assert.equal(ok.status, 200, ok.text);
    assert.ok(Date.now() - t1 < 1000, `a room on shard 0 took ${Date.now() - t1} ms right after`);
  } finally {
    await shards[1].cmd('CLIENT', 'UNPAUSE').catch(() => {});
  }
  // the shard back, the process asks it again once its rest is over
  await waitFor(async () => (await history(base, hung, alice)).status === 200, {
    timeout: 10000, what: 'the pool to read the room of shard 1 again',
  });
});

test('SSE delivers the rooms of every shard, not only shard 0', async () => {
  const room = rooms[1][2];
  const s = await sseOpen(`${d.url}/api/rooms/${room}/events`, { headers: bearer(alice.token) });
  try {
    assert.equal(s.status, 200, s.text);
    const ev = await sendAcked(d.url, room, 'on shard 1');
    await s.waitEvents(1, { filter: (e) => e.event === 'message' && e.json.id === ev.id, timeout: 5000 });
  } finally {
    s.close();
  }
});

test('crosstalk-backup over the shards: each room copied and checkpointed on its shard, verified, restored to its shard', async () => {
  const ferret = await startFerret();
  const file = path.join(tmpDir('shards-backup'), 'crosstalk.conf');
  fs.writeFileSync(file, `redis_url = ${shards.map((x) => x.url).join(', ')}\nmongo_uri = ${ferret.uri}\nlog_level = info\n`);
  const run = (...args) => {
    const r = runSync(bin('crosstalk-backup'), ['--config', file, ...args], { timeout: 60000 });
    return { ...r, show: `exit ${r.status ?? r.signal}\n${r.stdout}${r.stderr}` };
  };
  let r = run();
  assert.equal(r.status, 0, r.show);
  for (let s = 0; s < N; s++) {
    for (const room of rooms[s]) {
      const where = [];
      for (let i = 0; i < N; i++) if ((await shards[i].cmd('EXISTS', `ct:backup:{${room}}`)) === 1) where.push(i);
      assert.deepEqual(where, [s], `the checkpoint of ${room} is on shard ${s} only`);
      const last = (await shards[s].cmd('XREVRANGE', roomKey(room), '+', '-', 'COUNT', '1'))[0][0];
      assert.equal(await shards[s].cmd('GET', `ct:backup:{${room}}`), last, `${room}: checkpoint at its last message`);
    }
  }
  for (let i = 0; i < N; i++) assert.equal(await shards[i].cmd('EXISTS', 'ct:backup:lock'), 0, `lock released on shard ${i}`);
  r = run('--verify', '--quiet');
  assert.equal(r.status, 0, r.show);

  // a room lost from its shard comes back there, ids kept
  const room = rooms[1][0];
  const before = await shards[1].cmd('XRANGE', roomKey(room), '-', '+');
  await shards[1].cmd('DEL', roomKey(room));
  await shards[1].cmd('ZREM', 'ct:rooms', room);
  r = run('--restore', '--room', room);
  assert.equal(r.status, 0, r.show);
  assert.deepEqual(await shards[1].cmd('XRANGE', roomKey(room), '-', '+'), before, `${room} restored on shard 1, ids kept`);
  assert.notEqual(await shards[1].cmd('ZSCORE', 'ct:rooms', room), null, `${room} back in shard 1's ct:rooms`);
  for (const i of [0, 2]) assert.equal(await shards[i].cmd('EXISTS', roomKey(room)), 0, `nothing written to shard ${i}`);
  r = run('--verify', '--quiet');
  assert.equal(r.status, 0, r.show);
});
