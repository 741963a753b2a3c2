// restore_reset.test.mjs - Redis lost entirely and rebuilt by
// `crosstalk-backup --restore`: the archived messages come back with their
// ids, and a client that holds an id newer than anything restored (a
// message sent after the last backup, lost with Redis) is told so with the
// `reset` signal of the delivery contract (DESIGN.md, "Additions to the
// contract"), on a long poll and on an SSE stream, instead of waiting for
// ids that will never come; delivery then goes on from the room's newest.
//
// Real parts: redis-server, crosstalkd, FerretDB, crosstalk-backup.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import {
  startRedis, startFerret, startDaemon, cleanup, tmpDir, bin, runSync, waitFor, http,
  compareIds, register, sendOk, bearer, sseOpen, uniqueRoom, RELAXED, streamReads as readsOf,
} from './harness.mjs';

after(() => cleanup());

function backup(file, args = []) {
  const r = runSync(bin('crosstalk-backup'), ['--config', file, ...args], { timeout: 60000 });
  assert.equal(r.status, 0, `crosstalk-backup ${args.join(' ')}: exit ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

// A FerretDB, a Redis, a crosstalkd on it, and a crosstalk-backup config
// for both (its own database, `db`).
async function stack(db) {
  const ferret = await startFerret();
  const redis = await startRedis();
  const daemon = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  const conf = path.join(tmpDir(db), 'crosstalk.conf');
  fs.writeFileSync(conf, `redis_url = ${redis.url}\nmongo_uri = ${ferret.uri.replace(/\/crosstalk$/, `/ct_${db}_${process.pid}`)}\n`);
  return { redis, daemon, conf };
}

test('after Redis is lost and restored, a long poll and an SSE client holding a lost id get `reset` with the newest id, then new messages', async () => {
  const { redis, daemon, conf } = await stack('reset');

  const room = uniqueRoom('rr');
  const alice = await register(daemon.url);
  const archived = [];
  for (let i = 0; i < 12; i++) archived.push(await sendOk(daemon.url, room, alice, `kept ${i}`));
  assert.match(backup(conf), /backup ok: 1 rooms, 12 messages copied/);
  const lost = [];
  for (let i = 0; i < 3; i++) lost.push(await sendOk(daemon.url, room, alice, `lost ${i}`));
  const held = lost.at(-1).id; // what a client saw last before the disaster

  // Redis lost entirely: killed, its files gone, started empty on the same port.
  await redis.kill();
  for (const f of fs.readdirSync(redis.dir)) fs.rmSync(path.join(redis.dir, f), { recursive: true, force: true });
  await redis.restart();
  assert.equal(await redis.cmd('DBSIZE'), 0, 'Redis should start empty');
  assert.match(backup(conf, ['--restore']), /restore ok: 1 rooms, 12 messages restored/);
  const newest = archived.at(-1).id;
  assert.ok(compareIds(held, newest) > 0);

  await waitFor(async () => (await http('GET', `${daemon.url}/healthz`)).status === 200, {
    timeout: 15000, what: 'crosstalkd to reconnect to the restarted Redis', proc: daemon,
  });
  const bob = await register(daemon.url); // users lived in the lost Redis too
  const h = await http('GET', `${daemon.url}/api/rooms/${room}/messages?since=${archived[8].id}`, { headers: bearer(bob.token) });
  assert.deepEqual(h.json?.events?.map((e) => e.id), archived.slice(9).map((e) => e.id), 'the restored messages, with their ids');

  // A long poll holding the lost id: answered at once with reset.
  const t0 = Date.now();
  const poll = await http('GET', `${daemon.url}/api/rooms/${room}/poll?since=${held}&timeout=10`, { headers: bearer(bob.token), timeout: 20000 });
  const took = Date.now() - t0;
  assert.equal(poll.status, 200, `long poll since=${held} (newer than the restored ${newest}): expected 200 with "reset", got ${poll.status} ${poll.text} after ${took} ms`);
  assert.equal(poll.json?.reset, true, `long poll: expected "reset": true, got ${poll.text}`);
  assert.equal(poll.json?.last_id, newest, `long poll: "last_id" should be the room's newest, ${newest}: ${poll.text}`);
  assert.ok(took < 5000, `the reset should come at once, not at the poll's timeout: ${took} ms`);

  // An SSE client holding the lost id: `event: reset`, then the next message.
  const sse = await sseOpen(`${daemon.url}/api/rooms/${room}/events?since=${held}&token=${bob.token}`);
  assert.equal(sse.status, 200, sse.text);
  const [reset] = await sse.waitEvents(1, { filter: (e) => e.event === 'reset', timeout: 5000, what: 'an `event: reset`' });
  if (reset.json && 'last_id' in reset.json) assert.equal(reset.json.last_id, newest, `SSE reset data: ${reset.data}`);
  const next = await sendOk(daemon.url, room, bob, 'after the restore');
  const got = await sse.waitEvents(1, { filter: (e) => e.event === 'message', timeout: 5000, what: 'the message sent after the restore' });
  assert.equal(got[0].json?.id, next.id);
  assert.ok(sse.events.indexOf(reset) < sse.events.indexOf(got[0]), 'reset comes before the messages that follow it');
  sse.close();
});

// A daemon that follows a room learns the room's newest message from the bus
// and from one read of the stream after its SUBSCRIBE, and answers polls at
// that id from memory. `--restore` appends to the stream without an event
// per message: it publishes a notice on the room's channel instead, and the
// daemon reads the room again. Here the daemon learnt the room as empty
// (its stream lost); after the restore, a poll at 0-0 gets the messages.
test('a daemon following a room through a restore sees the restored messages', async () => {
  const { redis, daemon: sender, conf } = await stack('follow');
  const room = uniqueRoom('rf');
  const alice = await register(sender.url);
  const archived = [];
  for (let i = 0; i < 5; i++) archived.push(await sendOk(sender.url, room, alice, `archived ${i}`));
  assert.match(backup(conf), /backup ok: 1 rooms, 5 messages copied/);
  assert.equal(await redis.cmd('DEL', `ct:room:{${room}}:log`), 1, 'the stream, lost');

  const follower = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  const poll = () => http('GET', `${follower.url}/api/rooms/${room}/messages?since=0-0`, { headers: bearer(alice.token) });
  const streamReads = () => readsOf(redis);
  assert.deepEqual((await poll()).json, { events: [], last_id: '0-0' });
  await waitFor(async () => {
    const before = await streamReads();
    const r = await poll();
    return r.status === 200 && (await streamReads()) === before;
  }, { timeout: 10000, interval: 100, what: 'the follower to answer the empty room from memory' });

  assert.match(backup(conf, ['--restore']), /restore ok: 1 rooms, 5 messages restored/);
  let got;
  await waitFor(async () => {
    got = await poll();
    return got.json?.events?.length === 5;
  }, { timeout: 5000, interval: 50, what: 'the restored messages in a poll at 0-0 on the follower' });
  assert.deepEqual(got.json.events.map((e) => e.id), archived.map((m) => m.id));
  // and it is up to date again from memory, at the restored newest
  await waitFor(async () => {
    const before = await streamReads();
    const r = await http('GET', `${follower.url}/api/rooms/${room}/messages?since=${archived[4].id}`, { headers: bearer(alice.token) });
    return r.status === 200 && r.json.events.length === 0 && (await streamReads()) === before;
  }, { timeout: 10000, interval: 100, what: 'the follower to answer at the restored newest from memory' });
});
