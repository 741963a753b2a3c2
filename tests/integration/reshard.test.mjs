// reshard.test.mjs - crosstalk-backup --reshard and --migrate-keys against
// real redis-servers: 200 rooms (streams written with the real append
// script, idempotency keys, presence, checkpoints) and 40 users with their
// tokens on two shards; a third shard is added and --reshard moves exactly
// the rooms and users the placement moves (about 1/3), ids and all, nothing
// lost or doubled, --verify passing; a run SIGKILLed while keys sit on both
// servers is finished by running it again; --dry-run writes nothing; a
// second run moves nothing; --migrate-keys renames old names, twice safely.
//
// The streams are written straight into Redis (the shard-aware daemon is
// not on main yet) with the append script read from src/common/keys.c, on
// the shard computed here by an independent FNV-1a 64 + jump hash, checked
// against crosstalk-backup --placement (shard.c) for every room.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import { startRedis, cleanup, bin, runSync, waitFor, roomKey, APPEND_LUA, RedisError } from './harness.mjs';

const BACKUP = bin('crosstalk-backup');
const running = new Set();

after(async () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await cleanup();
});

// ------------------------------------------------------------ placement

const MASK = (1n << 64n) - 1n;
function fnv1a64(s) {
  let h = 14695981039346656037n;
  for (const b of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(b)) * 1099511628211n) & MASK;
  return h;
}
function jump(key, buckets) {
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    key = (key * 2862933555777941757n + 1n) & MASK;
    j = Math.floor((b + 1) * (2 ** 31 / (Number(key >> 33n) + 1)));
  }
  return b;
}
const shardOf = (name, n) => (n <= 1 ? 0 : jump(fnv1a64(name.toLowerCase()), n));

// ------------------------------------------------------------ writing

const PER_ROOM = 5;

/** Writes room `room` on `redis` as the daemon would: 5 messages (the first with an idempotency key), presence, a checkpoint. */
async function writeRoom(redis, room) {
  const cmds = [];
  for (let i = 0; i < PER_ROOM; i++) {
    const idem = i === 0 ? [3, roomKey(room), 'ct:rooms', `ct:idem:{${room}}:alice:k${i}`] : [2, roomKey(room), 'ct:rooms'];
    cmds.push(['EVAL', APPEND_LUA, ...idem, room, 'alice', `${room} #${i}`, `ct:bus:{${room}}`]);
  }
  cmds.push(['ZADD', `ct:presence:{${room}}`, String(Date.now() + 3600e3), 'alice']);
  const r = await redis.pipeline(cmds);
  for (const x of r) if (x instanceof RedisError) throw new Error(`writing room ${room}: ${x.message}`);
  const ids = r.slice(0, PER_ROOM).map((x) => x[0]);
  await redis.cmd('SET', `ct:backup:{${room}}`, ids[2]);
  return ids;
}

/** Everything of `room` on `redis`: {ids, idem, presence, checkpoint, listed, pttlIdem}. */
async function roomOn(redis, room) {
  const [x, idem, pres, ck, score, pttl] = await redis.pipeline([
    ['XRANGE', roomKey(room), '-', '+'],
    ['GET', `ct:idem:{${room}}:alice:k0`],
    ['ZCARD', `ct:presence:{${room}}`],
    ['GET', `ct:backup:{${room}}`],
    ['ZSCORE', 'ct:rooms', room],
    ['PTTL', `ct:idem:{${room}}:alice:k0`],
  ]);
  return { ids: x.map((e) => e[0]), texts: x.map((e) => e[1][3]), idem, presence: pres, checkpoint: ck, listed: score !== null, pttl };
}

function run(args, env = {}) {
  const r = runSync(BACKUP, args, { env, timeout: 60000 });
  if (r.timedOut) throw new Error(`crosstalk-backup ${args.join(' ')} did not finish within 60 s:\n${r.stdout}${r.stderr}`);
  return r;
}
const show = (r) => `exit ${r.status ?? r.signal}\n--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}`;

// ------------------------------------------------------------ the test

test('adding a third shard moves only the rooms and users jump hash moves, ids kept, resumable after a kill', { timeout: 180000 }, async () => {
  const servers = [await startRedis(), await startRedis(), await startRedis()];
  const oldUrls = servers.slice(0, 2).map((s) => s.url).join(',');
  const newUrls = servers.map((s) => s.url).join(',');
  const rooms = Array.from({ length: 200 }, (_, i) => `rs${String(i).padStart(3, '0')}`);
  const users = Array.from({ length: 40 }, (_, i) => `User${i}`);

  // The test's placement is shard.c's.
  for (const n of [2, 3]) {
    const r = run(['--placement', rooms.join(','), '--shards', String(n)]);
    assert.equal(r.status, 0, show(r));
    const got = r.stdout.trim().split('\n').map((l) => l.split(' '));
    assert.deepEqual(got, rooms.map((rm) => [rm, String(shardOf(rm, n))]), `--placement --shards ${n} agrees with FNV-1a 64 + jump hash`);
  }

  const before = {};
  for (const room of rooms) before[room] = await writeRoom(servers[shardOf(room, 2)], room);
  for (const [i, u] of users.entries()) {
    const s = servers[shardOf(u, 2)];
    await s.cmd('HSET', `ct:user:${u.toLowerCase()}`, 'token_sha256', `tok${i}`, 'created', '1', 'name', u);
    await s.cmd('SET', `ct:token:tok${i}`, u);
  }
  // Keys of neither a room nor a user stay where they are.
  await servers[0].cmd('SET', 'ct:users:folded', '1');

  const moved = rooms.filter((r) => shardOf(r, 3) !== shardOf(r, 2));
  const movedUsers = users.filter((u) => shardOf(u, 3) !== shardOf(u, 2));
  assert.ok(moved.every((r) => shardOf(r, 3) === 2), 'jump hash moves rooms only to the new shard');
  assert.ok(moved.length > 200 / 3 - 25 && moved.length < 200 / 3 + 25, `about 1/3 of 200 rooms move: ${moved.length}`);

  const cfg = ['--redis-url', newUrls];

  // --verify before: the moved rooms are misplaced.
  let r = run([...cfg, '--reshard', oldUrls, '--verify']);
  assert.equal(r.status, 3, `--verify before resharding must find misplaced keys\n${show(r)}`);
  assert.match(r.stdout, new RegExp(`verify: room ${moved[0]} is listed in ct:rooms on 127\\.0\\.0\\.1:${servers[shardOf(moved[0], 2)].port}/0, its shard is 127\\.0\\.0\\.1:${servers[2].port}/0`));

  // --dry-run lists exactly the moving rooms and writes nothing.
  r = run([...cfg, '--reshard', oldUrls, '--dry-run', '--progress']);
  assert.equal(r.status, 0, show(r));
  assert.match(r.stderr, /^reshard: \d+ keys looked at, 0 moved, \d+ rooms moved, \d+\.\d s$/m, `the progress line\n${show(r)}`);
  const listed = [...r.stdout.matchAll(/^reshard: room (\S+) moves from \S+ to (\S+)$/gm)];
  assert.deepEqual(listed.map((m) => m[1]).sort(), [...moved].sort(), '--dry-run lists the rooms that move');
  assert.ok(listed.every((m) => m[2] === `127.0.0.1:${servers[2].port}/0`), 'all to the new shard');
  assert.match(r.stdout, new RegExp(`reshard --dry-run ok: 2 -> 3 shards, ${moved.length} of 200 rooms would move \\(\\d+\\.\\d%\\), ${movedUsers.length} users`));
  assert.equal(await servers[2].cmd('DBSIZE'), 0, '--dry-run wrote nothing');

  // A run killed between copying a key and deleting it leaves it on both,
  // identical: made here for one room (so that the state is certain), and
  // by the kill below for whichever keys it catches.
  const half = moved.at(-1);
  const from = servers[shardOf(half, 2)];
  assert.equal(await from.cmd('MIGRATE', '127.0.0.1', String(servers[2].port), roomKey(half), '0', '5000', 'COPY'), 'OK');
  assert.deepEqual((await roomOn(servers[2], half)).ids, before[half], `room ${half}: copied`);
  assert.deepEqual((await roomOn(from, half)).ids, before[half], `room ${half}: not deleted`);

  // A run killed while keys sit on both servers (the hook sleeps between RESTORE and DEL).
  const child = spawn(BACKUP, [...cfg, '--reshard', oldUrls], { env: { ...process.env, CT_RESHARD_DELAY_MS: '30' }, stdio: 'ignore' });
  running.add(child);
  await waitFor(async () => (await servers[2].cmd('DBSIZE')) >= 40, { timeout: 30000, what: 'the killed run to have copied 40 keys to the new shard' });
  child.kill('SIGKILL');
  await new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res() : child.once('exit', res)));
  // Nothing lost meanwhile: each room is whole on its old or its new shard.
  let both = 0;
  for (const room of moved) {
    const o = await roomOn(servers[shardOf(room, 2)], room);
    const n = await roomOn(servers[2], room);
    const have = o.ids.length > 0 ? o : n;
    assert.deepEqual(have.ids, before[room], `room ${room} after the kill: its stream on one of its shards`);
    for (const k of [roomKey(room), `ct:presence:{${room}}`, `ct:backup:{${room}}`, `ct:idem:{${room}}:alice:k0`]) {
      if ((await servers[shardOf(room, 2)].cmd('EXISTS', k)) + (await servers[2].cmd('EXISTS', k)) === 2) both++;
    }
  }
  const lockHeld = await Promise.all(servers.map((s) => s.cmd('EXISTS', 'ct:backup:lock')));
  assert.ok(lockHeld.some((x) => x === 1), 'the killed run left its lock (it expires after --lock-ttl)');
  for (const s of servers) await s.cmd('DEL', 'ct:backup:lock'); // the operator's step after a kill, documented

  // Rerun: finishes; a copy left on both is deleted from the old server, not doubled.
  r = run([...cfg, '--reshard', oldUrls]);
  assert.equal(r.status, 0, show(r));
  const m = /reshard ok: 2 -> 3 shards, (\d+) of 200 rooms moved \((\d+\.\d)%\)/.exec(r.stdout);
  assert.ok(m, `summary line:\n${show(r)}`);
  assert.ok(Number(m[1]) <= moved.length, 'the rerun moves no more than the moving rooms');

  for (const room of rooms) {
    const home = shardOf(room, 3);
    const got = await roomOn(servers[home], room);
    assert.deepEqual(got.ids, before[room], `room ${room}: ids kept on shard ${home}`);
    assert.deepEqual(got.texts, before[room].map((_, i) => `${room} #${i}`), `room ${room}: texts`);
    assert.equal(got.idem, before[room][0], `room ${room}: idempotency key`);
    assert.ok(got.pttl > 0 && got.pttl <= 86400e3, `room ${room}: idempotency key keeps its expiry (${got.pttl})`);
    assert.equal(got.presence, 1, `room ${room}: presence`);
    assert.equal(got.checkpoint, before[room][2], `room ${room}: checkpoint`);
    assert.ok(got.listed, `room ${room}: in its shard's ct:rooms`);
    for (const [i, s] of servers.entries()) {
      if (i === home) continue;
      const other = await roomOn(s, room);
      assert.deepEqual([other.ids.length, other.idem, other.presence, other.checkpoint, other.listed], [0, null, 0, null, false],
        `room ${room} must be on shard ${home} only, found on ${i}`);
    }
    if (shardOf(room, 3) === shardOf(room, 2)) {
      assert.notEqual(home, 2, `room ${room} did not move`);
    }
  }
  for (const [i, u] of users.entries()) {
    const home = shardOf(u, 3);
    for (const [j, s] of servers.entries()) {
      assert.equal(await s.cmd('EXISTS', `ct:user:${u.toLowerCase()}`, `ct:token:tok${i}`), j === home ? 2 : 0, `user ${u} and token: on shard ${home} only (shard ${j})`);
    }
  }
  assert.equal(await servers[0].cmd('GET', 'ct:users:folded'), '1', 'other keys stay');
  assert.equal(await servers[2].cmd('ZCARD', 'ct:rooms'), moved.length, 'the new shard lists the moved rooms');

  r = run([...cfg, '--reshard', oldUrls, '--verify']);
  assert.equal(r.status, 0, `--verify after resharding\n${show(r)}`);
  assert.match(r.stdout, /reshard verify ok: 3 shards, \d+ keys, 200 rooms, 0 misplaced/);

  // A second run has nothing to do.
  r = run([...cfg, '--reshard', oldUrls]);
  assert.equal(r.status, 0, show(r));
  assert.match(r.stdout, /reshard ok: 2 -> 3 shards, 0 of 200 rooms moved \(0\.0%\), 0 users, 0 keys/);
  console.log(`reshard: ${moved.length} of 200 rooms and ${movedUsers.length} of 40 users moved to the third shard; ${both} keys were on both shards after the kill`);
});

test('--reshard refuses while a backup holds the lock, a bad list changes nothing, a key different on both servers stays on both', async () => {
  const a = await startRedis();
  const b = await startRedis();
  await a.cmd('SET', 'ct:backup:lock', 'someone', 'PX', '60000');
  let r = run(['--redis-url', `${a.url},${b.url}`, '--reshard', a.url]);
  assert.equal(r.status, 1, show(r));
  assert.match(r.stdout, /another run is in progress \(ct:backup:lock on 127\.0\.0\.1:\d+\/0 is held/);
  r = run(['--redis-url', `${a.url},${a.url}`, '--reshard', a.url]);
  assert.equal(r.status, 2, show(r));
  r = run(['--redis-url', b.url, '--reshard', a.url, '--dry-run', '--verify']);
  assert.equal(r.status, 2, show(r));
  assert.equal(await a.cmd('GET', 'ct:backup:lock'), 'someone', 'the other run\'s lock is untouched');

  // A room on both servers with different streams (writers ran on both):
  // reported, left on both, exit 1; --verify names it.
  await a.cmd('DEL', 'ct:backup:lock');
  const room = Array.from({ length: 50 }, (_, i) => `cf${i}`).find((x) => shardOf(x, 2) === 1);
  await a.cmd('XADD', roomKey(room), '1-1', 'from', 'alice', 'text', 'on a', 'ts', '1');
  await b.cmd('XADD', roomKey(room), '2-1', 'from', 'bob', 'text', 'on b', 'ts', '2');
  r = run(['--redis-url', `${a.url},${b.url}`, '--reshard', a.url]);
  assert.equal(r.status, 1, show(r));
  assert.match(r.stderr, new RegExp(`ct:room:\\{${room}\\}:log is on 127\\.0\\.0\\.1:${a.port}/0 and, different, on 127\\.0\\.0\\.1:${b.port}/0: left on both`));
  assert.deepEqual((await a.cmd('XRANGE', roomKey(room), '-', '+')).map((e) => e[0]), ['1-1']);
  assert.deepEqual((await b.cmd('XRANGE', roomKey(room), '-', '+')).map((e) => e[0]), ['2-1']);
  r = run(['--redis-url', `${a.url},${b.url}`, '--reshard', a.url, '--verify']);
  assert.equal(r.status, 3, show(r));
  assert.match(r.stdout, new RegExp(`verify: ct:room:\\{${room}\\}:log is on 127\\.0\\.0\\.1:${a.port}/0, its shard is 127\\.0\\.0\\.1:${b.port}/0`));
});

test('--migrate-keys renames the keys of every room to the hash-tagged names, and a rerun does nothing', async () => {
  const redis = await startRedis();
  const rooms = ['lobby', 'lock', 'a-b_c'];
  for (const room of rooms) {
    await redis.cmd('XADD', `ct:room:${room}:log`, '1-1', 'from', 'alice', 'text', 'hi', 'ts', '1');
    await redis.cmd('ZADD', 'ct:rooms', '1', room);
    await redis.cmd('ZADD', `ct:presence:${room}`, '9999999999999', 'alice');
    await redis.cmd('SET', `ct:idem:${room}:alice:k1`, '1-1', 'EX', '86400');
    if (room !== 'lock') await redis.cmd('SET', `ct:backup:${room}`, '1-1');
  }
  await redis.cmd('HSET', 'ct:user:alice', 'token_sha256', 'x', 'name', 'alice');
  let r = run(['--redis-url', redis.url, '--migrate-keys', '--progress']);
  assert.equal(r.status, 0, show(r));
  assert.match(r.stderr, /^migrate-keys: 3\/3 rooms, 11 keys renamed, \d+\.\d s$/m, `the final progress line\n${show(r)}`);
  assert.match(r.stdout, /migrate-keys ok: 1 servers, 3 rooms, 11 keys renamed, 0 conflicts/);
  const keys = (await redis.cmd('KEYS', '*')).sort();
  assert.deepEqual(keys, [
    'ct:backup:{a-b_c}', 'ct:backup:{lobby}', 'ct:idem:{a-b_c}:alice:k1', 'ct:idem:{lobby}:alice:k1', 'ct:idem:{lock}:alice:k1',
    'ct:presence:{a-b_c}', 'ct:presence:{lobby}', 'ct:presence:{lock}',
    'ct:room:{a-b_c}:log', 'ct:room:{lobby}:log', 'ct:room:{lock}:log', 'ct:rooms', 'ct:user:alice',
  ].sort());
  assert.ok(await redis.cmd('TTL', 'ct:idem:{lobby}:alice:k1') > 86000, 'the expiry is kept');
  assert.deepEqual((await redis.cmd('XRANGE', 'ct:room:{lobby}:log', '-', '+')).map((e) => e[0]), ['1-1']);
  r = run(['--redis-url', redis.url, '--migrate-keys']);
  assert.equal(r.status, 0, show(r));
  assert.match(r.stdout, /migrate-keys ok: 1 servers, 3 rooms, 0 keys renamed, 0 conflicts/);
  // An old name next to a new one (writers of the new version ran first): reported, both kept.
  await redis.cmd('XADD', 'ct:room:lobby:log', '2-1', 'from', 'bob', 'text', 'old', 'ts', '2');
  r = run(['--redis-url', redis.url, '--migrate-keys']);
  assert.equal(r.status, 1, show(r));
  assert.match(r.stdout, /migrate-keys FAILED: .* 1 conflicts/);
  assert.match(r.stderr, /both ct:room:lobby:log and ct:room:\{lobby\}:log exist/);
  assert.equal(await redis.cmd('EXISTS', 'ct:room:lobby:log', 'ct:room:{lobby}:log'), 2);
});
