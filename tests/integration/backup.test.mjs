// backup.test.mjs - crosstalk-backup against a real redis-server and a real
// MongoDB-wire server (FerretDB): several rooms copied exactly once, runs
// SIGKILLed between an acknowledged insert and its checkpoints and at other
// moments of 20,000 messages, MongoDB down, --retain never trimming what
// MongoDB lacks, --restore into an empty Redis (ids, ct:rooms, a client
// resuming with an old `since`), concurrent runs, --verify finding a
// missing and a changed message, the progress line and --quiet, and the
// archive read path paging back past what Redis holds (directly, and
// through nginx and the FastCGI pool).
//
// Messages are written with the real append script, read from
// src/common/keys.c and run with EVAL, so the streams look exactly as the
// daemon leaves them. MongoDB is read back with ct-archive-tool (the same
// mongo_archive module crosstalk-backup and crosstalk-fcgi use).
//
// Each test has its own redis-server and its own MongoDB database on one
// shared FerretDB (the MongoDB-down test starts its own FerretDB).
// Throughput is not timed here: scripts/bench/backup.mjs measures it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import {
  REPO, startRedis, startFerret, startDaemon, startFcgi, startNginx, cleanup, tmpDir, bin, runSync, waitFor, alive,
  compareIds, roomKey, APPEND_LUA, register, sendOk, history, RELAXED, RedisError,
} from './harness.mjs';

const BACKUP = bin('crosstalk-backup');
const TOOL = bin('ct-archive-tool');

let ferret;
let dbSeq = 0;
const running = new Set(); // crosstalk-backup processes started with spawn()

before(async () => {
  for (const p of [BACKUP, TOOL]) {
    if (!fs.existsSync(p)) throw new Error(`${p} does not exist: build it first (make, or scripts/test)`);
  }
  ferret = await startFerret();
});

after(async () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await cleanup();
});

// ------------------------------------------------------------ the append script


/** Appends messages [{from, text}] to `room` with the append script, in one pipeline; resolves with their ids. */
async function append(redis, room, msgs) {
  const replies = await redis.pipeline(msgs.map((m) => [
    'EVAL', APPEND_LUA, 2, roomKey(room), 'ct:rooms', room, m.from, m.text, `ct:bus:{${room}}`,
  ]));
  return replies.map((r, i) => {
    if (r instanceof RedisError || !Array.isArray(r)) {
      throw new Error(`append script for message ${i} of room ${room} answered ${r?.message ?? JSON.stringify(r)}`);
    }
    return r[0];
  });
}

/** n messages of `room`, with texts that need care in JSON and BSON. */
function messages(room, n, tag = 'm') {
  const texts = ['plain', 'héllo wörld ✓ 🎉', 'quote " backslash \\ tab \t', 'two\nlines', '{"json":"inside"}'];
  return Array.from({ length: n }, (_, i) => ({
    from: ['alice', 'bob', 'carol.d', 'eve_9'][i % 4],
    text: `${tag} ${room} #${i}: ${texts[i % texts.length]}`,
  }));
}

/** The stream as [{id, from, text, ts}] in id order. */
async function stream(redis, room) {
  const r = await redis.cmd('XRANGE', roomKey(room), '-', '+');
  return r.map(([id, f]) => {
    const o = { id };
    for (let i = 0; i < f.length; i += 2) o[f[i]] = f[i + 1];
    o.ts = Number(o.ts);
    return o;
  });
}

// ------------------------------------------------------------ running the program

/** A config file naming this Redis and a fresh MongoDB database; returns {file, uri}. */
function setup(redis, { mongoUri, batch = 500, extra = '' } = {}) {
  const uri = mongoUri ?? ferret.uri.replace(/\/crosstalk$/, `/ct_backup_${process.pid}_${++dbSeq}`);
  const d = tmpDir('backup');
  const file = path.join(d, 'crosstalk.conf');
  fs.writeFileSync(file, `# written by backup.test.mjs\nredis_url = ${redis.url}\nmongo_uri = ${uri}\n` +
    `backup_batch = ${batch}\nlog_level = info\n${extra}`);
  return { file, uri };
}

/** Runs crosstalk-backup to completion; returns {status, stdout, stderr}. */
function backup(cfg, args = [], env = {}) {
  const r = runSync(BACKUP, ['--config', cfg.file, ...args], { env, timeout: 60000 });
  if (r.timedOut) throw new Error(`crosstalk-backup ${args.join(' ')} did not finish within 60 s:\n${r.stdout}${r.stderr}`);
  assert.ok(!fs.existsSync(`/dev/shm/mongoc-${r.pid}`),
    `crosstalk-backup ${args.join(' ')} left the MongoDB driver's counters file in /dev/shm`);
  return r;
}

function show(r) {
  return `exit ${r.status ?? r.signal}\n--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}`;
}

/** Like backup() but asserts exit 0 and one summary line matching `re`. */
function backupOk(cfg, args, re, env = {}) {
  const r = backup(cfg, args, env);
  assert.equal(r.status, 0, `crosstalk-backup ${args.join(' ')}: expected exit 0\n${show(r)}`);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('crosstalk-backup: '));
  assert.equal(lines.length, 1, `expected exactly one summary line on stdout\n${show(r)}`);
  if (re) assert.match(lines[0], re, show(r));
  return r;
}

/** Starts crosstalk-backup without waiting; resolves {child, out(), exited} . */
function spawnBackup(cfg, args = [], env = {}) {
  const envAll = { ...process.env, ...env };
  for (const k of Object.keys(envAll)) if (k.startsWith('CROSSTALK_')) delete envAll[k];
  const child = spawn(BACKUP, ['--config', cfg.file, ...args], { env: envAll, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => { stdout += b; });
  child.stderr.on('data', (b) => { stderr += b; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => {
    running.delete(child);
    resolve({ status: code, signal, stdout, stderr });
  }));
  return { child, out: () => `--- stdout ---\n${stdout}--- stderr ---\n${stderr}`, exited };
}

/** Every archived document, as objects, in room/id order. */
function dump(uri, room) {
  // spawnSync directly: 20,000 documents are more than runSync's default buffer.
  const r = spawnSync(TOOL, ['dump', uri, ...(room ? [room] : [])], { encoding: 'utf8', timeout: 60000, maxBuffer: 256 << 20 });
  if (r.error) throw new Error(`ct-archive-tool dump ${uri}: ${r.error.message}`);
  assert.equal(r.status, 0, `ct-archive-tool dump ${uri}: ${show(r)}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** The archive read path: ct-archive-tool before|after URI ROOM ID LIMIT. */
function page(uri, dir, room, id, limit) {
  const r = runSync(TOOL, [dir, uri, room, id ?? '-', limit], { timeout: 30000 });
  assert.equal(r.status, 0, `ct-archive-tool ${dir} ${room} ${id} ${limit}: ${show(r)}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** Asserts each message is in the archive exactly once with the same fields, and nothing else of the room is. */
function assertArchived(docs, room, msgs) {
  const mine = docs.filter((d) => d.room === room);
  const byId = new Map();
  for (const d of mine) {
    assert.ok(!byId.has(d.id), `room ${room}: message ${d.id} is in MongoDB more than once`);
    byId.set(d.id, d);
  }
  for (const m of msgs) {
    const d = byId.get(m.id);
    assert.ok(d, `room ${room}: message ${m.id} (${JSON.stringify(m.text)}) is not in MongoDB`);
    const [ms, seq] = m.id.split('-').map(Number);
    assert.deepEqual(
      { id: d.id, from: d.from, text: d.text, ts: d.ts, ms: d.ms, seq: d.seq },
      { id: m.id, from: m.from, text: m.text, ts: m.ts, ms, seq },
      `room ${room}: the archived copy of ${m.id} differs`,
    );
  }
  assert.equal(mine.length, msgs.length, `room ${room}: expected ${msgs.length} archived messages, found ${mine.length}`);
}

const room = (tag) => `bk-${tag}-${process.pid % 100000}-${++dbSeq}`;

// ------------------------------------------------------------ tests

test('--help names the modes and the exit codes; a bad flag exits 2', () => {
  const h = runSync(BACKUP, ['--help']);
  assert.equal(h.status, 0, show(h));
  for (const s of ['--retain', '--restore', '--room', '--verify', '--lock-ttl', '--quiet', '--progress', 'Exit status', 'mongo_uri', 'redis_url', 'CT_BACKUP_BATCH_DELAY_MS']) {
    assert.ok(h.stdout.includes(s), `--help should mention ${s}:\n${h.stdout}`);
  }
  for (const args of [['--bogus'], ['--retain'], ['--retain', 'x'], ['--room', 'lobby'], ['--restore', '--verify'], ['--restore', '--room', 'Bad Room']]) {
    const r = runSync(BACKUP, ['--config', '/dev/null', ...args]);
    assert.equal(r.status, 2, `crosstalk-backup ${args.join(' ')}: expected exit 2 (usage)\n${show(r)}`);
  }
  // one bad name among several: nothing printed (a caller would take the
  // good ones' lines for the whole answer), exit 2 naming it
  const pl = runSync(BACKUP, ['--placement', 'lobby,a{b},hall', '--shards', '3']);
  assert.equal(pl.status, 2, show(pl));
  assert.equal(pl.stdout, '', `no placement printed when a name is bad\n${show(pl)}`);
  assert.match(pl.stderr, /'a\{b\}' is not a room name/, show(pl));
  const good = runSync(BACKUP, ['--placement', 'lobby,hall', '--shards', '3']);
  assert.equal(good.status, 0, show(good));
  assert.match(good.stdout, /^lobby [0-2]\nhall [0-2]\n$/, show(good));
  const bad = runSync(BACKUP, ['--config', '/dev/null', '--mongo-uri=http://x/']);
  assert.equal(bad.status, 2, `a mongo_uri that is not mongodb:// is a configuration error\n${show(bad)}`);
  const wc = runSync(BACKUP, ['--config', '/dev/null', '--mongo-write-concern=0']);
  assert.equal(wc.status, 2, `write concern 0 cannot acknowledge: a configuration error\n${show(wc)}`);
});

test('backs up several rooms: every message once with its id, sender, text and time; again copies nothing', async () => {
  const redis = await startRedis();
  const cfg = setup(redis, { batch: 5 });
  const rooms = [room('a'), room('b'), room('c')];
  const counts = [7, 12, 1];
  for (let i = 0; i < rooms.length; i++) await append(redis, rooms[i], messages(rooms[i], counts[i]));

  backupOk(cfg, [], /^crosstalk-backup: backup ok: 3 rooms, 20 messages copied, 0 trimmed, \d+ ms$/);
  let docs = dump(cfg.uri);
  for (const r of rooms) {
    const s = await stream(redis, r);
    assertArchived(docs, r, s);
    assert.equal(await redis.cmd('GET', `ct:backup:{${r}}`), s.at(-1).id, `room ${r}: the checkpoint should be its last id`);
  }
  assert.equal(await redis.cmd('EXISTS', 'ct:backup:lock'), 0, 'the lock should be released after the run');

  backupOk(cfg, [], /backup ok: 3 rooms, 0 messages copied/);
  assert.equal(dump(cfg.uri).length, 20, 'a second run must not add documents');

  await append(redis, rooms[1], messages(rooms[1], 3, 'later'));
  backupOk(cfg, [], /backup ok: 3 rooms, 3 messages copied/);
  docs = dump(cfg.uri);
  for (const r of rooms) assertArchived(docs, r, await stream(redis, r));

  const v = backupOk(cfg, ['--verify'], /verify ok: 3 rooms, 0 different/);
  for (const r of rooms) assert.match(v.stdout, new RegExp(`verify: room ${r}: .*: ok`), show(v));
});

test('a run SIGKILLed between batches: the next run completes it and every message is in MongoDB exactly once', async () => {
  const redis = await startRedis();
  const cfg = setup(redis, { batch: 5 });
  const r = room('kill');
  await append(redis, r, messages(r, 40));
  const all = await stream(redis, r);

  // Each batch waits 600 ms after MongoDB acknowledged it, before the
  // checkpoint moves. Right after a checkpoint moved, wait until MongoDB
  // holds the next batch (which the checkpoint does not cover yet) and kill
  // then: the crash lands between an acknowledgement and its checkpoint.
  const run = spawnBackup(cfg, ['--lock-ttl', '2'], { CT_BACKUP_BATCH_DELAY_MS: '600' });
  const first = await waitFor(async () => await redis.cmd('GET', `ct:backup:{${r}}`), {
    timeout: 15000, what: `the first checkpoint of room ${r} (batches of 5, 600 ms apart)`, proc: run.child,
  });
  const t0 = Date.now();
  const ck = await waitFor(async () => {
    const c = await redis.cmd('GET', `ct:backup:{${r}}`);
    return c !== first ? c : null;
  }, { timeout: 15000, what: `the checkpoint to move past ${first}`, proc: run.child });
  const coveredAtCk = all.filter((m) => compareIds(m.id, ck) <= 0).length;
  await waitFor(() => dump(cfg.uri, r).length > coveredAtCk, {
    timeout: 500, interval: 10, what: `MongoDB to hold the batch after checkpoint ${ck} (more than ${coveredAtCk})`, proc: run.child,
  });
  run.child.kill('SIGKILL');
  const res = await run.exited;
  assert.equal(res.signal, 'SIGKILL', `the run should still have been working ${Date.now() - t0} ms later\n${run.out()}`);
  assert.ok(!fs.existsSync(`/dev/shm/mongoc-${run.child.pid}`),
    'the killed run left the driver\'s counters file in /dev/shm, where it waits for a later run with its pid');

  const at = await redis.cmd('GET', `ct:backup:{${r}}`);
  assert.equal(at, ck, 'the checkpoint should not move after the kill');
  const covered = all.filter((m) => compareIds(m.id, at) <= 0);
  assert.ok(covered.length < all.length, `the kill came too late: checkpoint ${at} covers all ${all.length}`);
  const docs = dump(cfg.uri, r);
  assert.ok(docs.length > covered.length,
    `the kill should land after MongoDB acknowledged a batch and before its checkpoint: MongoDB holds ${docs.length}, checkpoint covers ${covered.length}`);
  assert.deepEqual(docs.slice(0, covered.length).map((d) => d.id), covered.map((m) => m.id),
    'everything the checkpoint covers must be in MongoDB');

  // The dead run's lock outlives it by its ttl; meanwhile a run leaves the work to it.
  const busy = backup(cfg);
  assert.equal(busy.status, 0, show(busy));
  assert.match(busy.stdout, /another run is in progress/, show(busy));
  await waitFor(async () => (await redis.cmd('EXISTS', 'ct:backup:lock')) === 0, {
    timeout: 5000, what: 'the dead run\'s lock (--lock-ttl 2) to expire',
  });
  backupOk(cfg, [], new RegExp(`backup ok: 1 rooms, ${all.length - covered.length} messages copied`));
  assertArchived(dump(cfg.uri), r, all);
  assert.equal(await redis.cmd('GET', `ct:backup:{${r}}`), all.at(-1).id);
});

test('with MongoDB down a run exits 1 and touches neither checkpoints nor streams, even with --retain 0', async () => {
  const redis = await startRedis();
  const own = await startFerret();
  const cfg = setup(redis, { mongoUri: own.uri.replace(/\/crosstalk$/, '/ct_down') });
  const r = room('down');
  await append(redis, r, messages(r, 5));
  backupOk(cfg, [], /backup ok: 1 rooms, 5 messages copied/);
  await append(redis, r, messages(r, 5, 'after'));
  const before = await stream(redis, r);
  const ck = await redis.cmd('GET', `ct:backup:{${r}}`);

  await own.stop();
  const t0 = Date.now();
  const res = backup(cfg, ['--retain', '0']);
  const took = Date.now() - t0;
  assert.equal(res.status, 1, `expected exit 1 with MongoDB down\n${show(res)}`);
  assert.match(res.stdout, /^crosstalk-backup: backup FAILED: 0 rooms, 0 messages copied, 0 trimmed/m, show(res));
  assert.match(res.stderr, /MongoDB/, `the log should say MongoDB failed\n${show(res)}`);
  assert.ok(took < 20000, `a run against a MongoDB that is down should give up quickly, took ${took} ms`);
  assert.equal(await redis.cmd('GET', `ct:backup:{${r}}`), ck, 'the checkpoint must not move');
  assert.deepEqual(await stream(redis, r), before, 'the stream must be untouched (nothing trimmed)');
  assert.equal(await redis.cmd('EXISTS', 'ct:backup:lock'), 0, 'a failed run releases its lock');

  const v = backup(cfg, ['--verify']);
  assert.equal(v.status, 1, `--verify with MongoDB down is a failure, not a difference\n${show(v)}`);
});

test('--retain keeps the newest N and never trims a message MongoDB does not hold yet', async () => {
  const redis = await startRedis();
  const cfg = setup(redis, { batch: 10 });
  const big = room('big');
  const small = room('small');
  await append(redis, big, messages(big, 30));
  await append(redis, small, messages(small, 3));
  const bigAll = await stream(redis, big);
  const smallAll = await stream(redis, small);

  backupOk(cfg, ['--retain', '10'], /backup ok: 2 rooms, 33 messages copied, 20 trimmed/);
  assert.deepEqual(await stream(redis, big), bigAll.slice(-10), `room ${big}: the 10 newest should remain`);
  assert.deepEqual(await stream(redis, small), smallAll, `room ${small}: fewer than 10, nothing trimmed`);
  const docs = dump(cfg.uri);
  assertArchived(docs, big, bigAll);
  assertArchived(docs, small, smallAll);

  // Messages appended to a room after its batches were copied, while the run
  // still works on another room, are not in MongoDB when --retain trims:
  // they must all stay, whatever N says.
  const p = room('p');
  const q = room('q');
  await append(redis, p, messages(p, 4)); // p comes first in ct:rooms
  await append(redis, q, messages(q, 15));
  const pOld = await stream(redis, p);
  const qAll = await stream(redis, q);
  const run = spawnBackup(cfg, ['--retain', '2'], { CT_BACKUP_BATCH_DELAY_MS: '400' });
  await waitFor(async () => await redis.cmd('GET', `ct:backup:{${q}}`), {
    timeout: 15000, what: `room ${q}'s first checkpoint (room ${p} done)`, proc: run.child,
  });
  const pNewIds = await append(redis, p, messages(p, 5, 'late'));
  const res = await run.exited;
  assert.equal(res.status, 0, `expected exit 0\n${run.out()}`);
  const pNow = await stream(redis, p);
  assert.deepEqual(pNow.map((m) => m.id), pNewIds,
    `room ${p}: the 4 archived messages may go, the 5 not yet archived must all stay (checkpoint ${await redis.cmd('GET', `ct:backup:{${p}}`)})`);
  assert.deepEqual(await stream(redis, q), qAll.slice(-2), `room ${q}: the 2 newest should remain`);
  const after2 = dump(cfg.uri);
  assertArchived(after2, p, pOld);
  assertArchived(after2, q, qAll);

  // The next run archives them; now they may be trimmed down to N.
  backupOk(cfg, ['--retain', '2'], /5 messages copied, 3 trimmed/);
  assert.deepEqual((await stream(redis, p)).map((m) => m.id), pNewIds.slice(-2));
  assertArchived(dump(cfg.uri), p, [...pOld, ...pNow]);
  backupOk(cfg, ['--verify'], /verify ok: 4 rooms, 0 different/);
});

test('restore into an empty Redis gives back the same ids, senders, texts and times; old `since` ids still work', async () => {
  const redis = await startRedis();
  const cfg = setup(redis, { batch: 4 });
  const rooms = [room('ra'), room('rb')];
  for (const r of rooms) await append(redis, r, messages(r, 9));
  const orig = {};
  for (const r of rooms) orig[r] = await stream(redis, r);
  backupOk(cfg, ['--retain', '3'], /18 messages copied, 12 trimmed/);

  // Into an empty Redis: everything comes back.
  const fresh = await startRedis();
  const cfg2 = { ...cfg, file: path.join(tmpDir('backup'), 'crosstalk.conf') };
  fs.writeFileSync(cfg2.file, fs.readFileSync(cfg.file, 'utf8').replace(redis.url, fresh.url));
  backupOk(cfg2, ['--restore'], /^crosstalk-backup: restore ok: 2 rooms, 18 messages restored, 0 older ones only in MongoDB, \d+ ms$/);
  for (const r of rooms) {
    assert.deepEqual(await stream(fresh, r), orig[r], `room ${r}: the restored stream differs`);
    assert.equal(await fresh.cmd('GET', `ct:backup:{${r}}`), orig[r].at(-1).id, `room ${r}: checkpoint after restore`);
    assert.equal(Number(await fresh.cmd('ZSCORE', 'ct:rooms', r)), orig[r].at(-1).ts, `room ${r}: ct:rooms score`);
  }
  backupOk(cfg2, ['--verify'], /verify ok: 2 rooms, 0 different/);
  backupOk(cfg2, [], /backup ok: 2 rooms, 0 messages copied/);
  backupOk(cfg2, ['--restore'], /restore ok: 2 rooms, 0 messages restored/);

  // A client resuming with an id it saw before the loss gets what followed.
  const daemon = await startDaemon({ redisUrl: fresh.url, config: RELAXED });
  const user = await register(daemon.url);
  const r0 = rooms[0];
  const h = await history(daemon.url, r0, user, { since: orig[r0][2].id, limit: 50 });
  assert.equal(h.status, 200, `GET messages?since=: ${h.status} ${h.text}`);
  assert.deepEqual(h.json.events.map((e) => [e.id, e.from, e.text, e.ts]),
    orig[r0].slice(3).map((m) => [m.id, m.from, m.text, m.ts]), 'history after an old id, from the restored stream');
  const sent = await sendOk(daemon.url, r0, user, 'after the restore');
  assert.ok(compareIds(sent.id, orig[r0].at(-1).id) > 0, `a new message's id ${sent.id} must follow the restored ones`);
  await daemon.stop();
  backupOk(cfg2, [], /backup ok: 2 rooms, 1 messages copied/);

  // Into the trimmed original: the stream's last id is already the archive's
  // last, so nothing can be added; the trimmed ones are counted.
  backupOk(cfg, ['--restore', '--room', rooms[1]], /restore ok: 1 rooms, 0 messages restored, 6 older ones only in MongoDB/);
  assert.deepEqual(await stream(redis, rooms[1]), orig[rooms[1]].slice(-3));

  // A stream that got a newer message meanwhile: XADD only appends, so the
  // archive's messages are reported, not forced in.
  const third = await startRedis();
  await append(third, rooms[1], [{ from: 'zed', text: 'written before the restore' }]);
  const cfg3 = { ...cfg, file: path.join(tmpDir('backup'), 'crosstalk.conf') };
  fs.writeFileSync(cfg3.file, fs.readFileSync(cfg.file, 'utf8').replace(redis.url, third.url));
  backupOk(cfg3, ['--restore', '--room', rooms[1]], /restore ok: 1 rooms, 0 messages restored, 9 older ones only in MongoDB/);
  assert.equal((await stream(third, rooms[1])).length, 1);
  assert.equal(await third.cmd('EXISTS', `ct:room:{${rooms[0]}}:log`), 0, '--room restores that room only');
});

test('two concurrent runs: one copies everything, the other exits 0 saying a run is in progress', async () => {
  const redis = await startRedis();
  const cfg = setup(redis, { batch: 5 });
  const r = room('two');
  await append(redis, r, messages(r, 20));
  const all = await stream(redis, r);

  const one = spawnBackup(cfg, [], { CT_BACKUP_BATCH_DELAY_MS: '300' });
  await waitFor(async () => (await redis.cmd('EXISTS', 'ct:backup:lock')) === 1, {
    timeout: 10000, what: 'the first run to take ct:backup:lock', proc: one.child,
  });
  const two = backup(cfg);
  assert.equal(two.status, 0, show(two));
  assert.match(two.stdout, /^crosstalk-backup: another run is in progress \(ct:backup:lock is held for \d+ ms more\)/, show(two));
  assert.doesNotMatch(two.stdout, /messages copied/, 'the second run must not copy anything');
  const v = backup(cfg, ['--verify']);
  assert.equal(v.status, 1, `--verify while a run holds the lock cannot verify: exit 1\n${show(v)}`);

  const res = await one.exited;
  assert.equal(res.status, 0, one.out());
  assert.match(res.stdout, /backup ok: 1 rooms, 20 messages copied/, one.out());
  assertArchived(dump(cfg.uri), r, all);
  assert.equal(await redis.cmd('EXISTS', 'ct:backup:lock'), 0, 'the lock is released at the end');
});

test('the archive read path pages back past what Redis still holds', async () => {
  const redis = await startRedis();
  const cfg = setup(redis, { batch: 7 });
  const r = room('page');
  await append(redis, r, messages(r, 30));
  const all = await stream(redis, r);
  backupOk(cfg, ['--retain', '10'], /30 messages copied, 20 trimmed/);
  const held = await stream(redis, r);
  assert.deepEqual(held, all.slice(-10));

  // Page back from the oldest id Redis holds, 8 at a time.
  const got = [];
  let cursor = held[0].id;
  for (let i = 0; i < 10; i++) {
    const p = page(cfg.uri, 'before', r, cursor, 8);
    if (p.length === 0) break;
    const expect = all.filter((m) => compareIds(m.id, cursor) < 0).slice(-8);
    assert.deepEqual(p.map((e) => e.id), expect.map((m) => m.id), `page before ${cursor}: the newest 8 older ones, ascending`);
    for (const e of p) assert.equal(e.type, 'message');
    got.unshift(...p);
    cursor = p[0].id;
  }
  assert.deepEqual(got.map((e) => [e.id, e.room, e.from, e.text, e.ts]),
    all.slice(0, 20).map((m) => [m.id, r, m.from, m.text, m.ts]), 'paging back yields every older message once, in order');

  // Newest-of-all, an id between two messages, and a room with no messages.
  assert.deepEqual(page(cfg.uri, 'before', r, null, 3).map((e) => e.id), all.slice(-3).map((m) => m.id));
  const [ms, seq] = all[5].id.split('-').map(Number);
  assert.deepEqual(page(cfg.uri, 'before', r, `${ms}-${seq + 1}`, 2).map((e) => e.id), all.slice(4, 6).map((m) => m.id));
  assert.deepEqual(page(cfg.uri, 'after', r, all[27].id, 5).map((e) => e.id), all.slice(28).map((m) => m.id));
  assert.deepEqual(page(cfg.uri, 'before', room('empty'), null, 5), []);
});

test('--verify reports a room that differs (exit 3), and a room only MongoDB holds', async () => {
  const redis = await startRedis();
  const cfg = setup(redis);
  const a = room('va');
  const b = room('vb');
  await append(redis, a, messages(a, 6));
  await append(redis, b, messages(b, 4));
  backupOk(cfg, [], /10 messages copied/);
  await append(redis, a, messages(a, 2, 'pending'));
  const ok = backupOk(cfg, ['--verify'], /verify ok: 2 rooms, 0 different/);
  assert.match(ok.stdout, new RegExp(`verify: room ${a}: .*2 pending: ok`), 'messages after the checkpoint are pending, not different');

  const sa = await stream(redis, a);
  await redis.cmd('XDEL', roomKey(a), sa[2].id);
  let v = backup(cfg, ['--verify']);
  assert.equal(v.status, 3, `a message missing from Redis inside the window: exit 3\n${show(v)}`);
  assert.match(v.stdout, new RegExp(`verify: room ${a}: .*redis 5 .*mongodb 6 .*DIFFERENT`), show(v));
  assert.match(v.stdout, /verify DIFFERENT: 2 rooms, 1 different/, show(v));

  await redis.cmd('DEL', roomKey(b));
  v = backup(cfg, ['--verify']);
  assert.equal(v.status, 3, show(v));
  assert.match(v.stdout, new RegExp(`verify: room ${b}: MongoDB holds 4 message\\(s\\) .* but Redis has no stream`), show(v));
  assert.ok(alive(ferret.pid), 'FerretDB should still run');
});

// ------------------------------------------------------------ at scale (issue 16)

/** Fills `rooms` rooms with `per` messages each through the append script; returns {names, all: {room: stream}}. */
async function fillRooms(redis, tag, rooms, per) {
  const names = Array.from({ length: rooms }, () => room(tag));
  for (const r of names) {
    for (let i = 0; i < per; i += 500) await append(redis, r, messages(r, Math.min(500, per - i), `m${i}`));
  }
  const all = {};
  for (const r of names) all[r] = await stream(redis, r);
  return { names, all };
}

/** How many messages the checkpoints cover, over every room. */
async function covered(redis, all) {
  let n = 0;
  for (const [r, s] of Object.entries(all)) {
    const ck = await redis.cmd('GET', `ct:backup:{${r}}`);
    if (ck) n += s.filter((m) => compareIds(m.id, ck) <= 0).length;
  }
  return n;
}

test('20,000 messages, the run SIGKILLed at several points: afterwards every message is in MongoDB exactly once', async () => {
  const redis = await startRedis();
  const cfg = setup(redis); // backup_batch 500, the shipped default
  const { names, all } = await fillRooms(redis, 'k20', 20, 1000);
  const total = Object.values(all).reduce((a, s) => a + s.length, 0);
  assert.equal(total, 20000);
  const kills = [];

  // 1. Right after MongoDB acknowledged a batch, before its checkpoints
  //    move: each batch waits 2 s there (the test hook). Kill 1.5 s after
  //    the first checkpoints moved: the second batch (500 messages) is then
  //    in MongoDB and no checkpoint says so.
  {
    const run = spawnBackup(cfg, [], { CT_BACKUP_BATCH_DELAY_MS: '2000' });
    const c0 = await waitFor(async () => (await covered(redis, all)) || null, {
      timeout: 20000, interval: 10, what: 'the first checkpoints to move', proc: run.child,
    });
    await new Promise((r) => setTimeout(r, 1500));
    run.child.kill('SIGKILL');
    const res = await run.exited;
    assert.equal(res.signal, 'SIGKILL', `the run should still be working\n${run.out()}`);
    const c1 = await covered(redis, all);
    assert.equal(c1, c0, 'no checkpoint should have moved during the 2 s wait');
    const held = dump(cfg.uri).length;
    assert.ok(held > c1, `MongoDB should hold the batch the checkpoints do not cover yet: holds ${held}, checkpoints cover ${c1}`);
    kills.push({ at: 'between an acknowledged insert and its checkpoints', covered: c1, held });
    await redis.cmd('DEL', 'ct:backup:lock'); // it would expire by itself; spare the wait
  }

  // 2. At moments of a full-speed run: right away, and twice while the
  //    inserts go on (once its checkpoints have moved 4,000 messages on, so
  //    the kill lands mid-run however fast the machine is). Each run must
  //    have been cut short, and the next one must go on from where the
  //    checkpoints are.
  let before = await covered(redis, all);
  for (const step of [0, 4000, 4000]) {
    const run = spawnBackup(cfg);
    if (step > 0) {
      const from = before;
      await waitFor(async () => run.child.exitCode !== null || (await covered(redis, all)) >= from + step, {
        timeout: 60000, interval: 5, what: `the checkpoints to move ${step} messages past ${from}`, proc: run.child,
      });
    }
    run.child.kill('SIGKILL');
    const res = await run.exited;
    const now = await covered(redis, all);
    assert.ok(now >= before, `checkpoints went back: ${before} -> ${now}`);
    kills.push({ at: step ? `${step} messages into a run` : 'at the start', covered: now, signal: res.signal, status: res.status });
    if (res.signal === 'SIGKILL') await redis.cmd('DEL', 'ct:backup:lock');
    before = now;
  }
  assert.ok(kills.filter((k) => k.signal === 'SIGKILL' || k.held).length >= 3,
    `most kills should land while a run works: ${JSON.stringify(kills)}`);
  assert.ok(before < total, `the kills came too late: checkpoints already cover everything (${JSON.stringify(kills)})`);

  // The next run completes the work; what the dead runs wrote is refused
  // as duplicates and counts as done.
  const done = backupOk(cfg, [], new RegExp(`^crosstalk-backup: backup ok: 20 rooms, ${total - before} messages copied, 0 trimmed, \\d+ ms$`));
  // Unless a later killed run got past it first (a slow build: the
  // sanitizers), the batch MongoDB acknowledged before the first kill is
  // still ahead of the checkpoints: this run meets it again.
  if (before < kills[0].held) {
    assert.match(done.stderr, /\d+ of the \d+ messages copied were already in MongoDB/,
      `the batch acknowledged before the first kill is in MongoDB already: the run should say so\n${show(done)}`);
  }
  const docs = dump(cfg.uri);
  assert.equal(docs.length, total, `MongoDB should hold exactly ${total} documents after the kills ${JSON.stringify(kills)}`);
  for (const r of names) {
    assertArchived(docs, r, all[r]);
    assert.equal(await redis.cmd('GET', `ct:backup:{${r}}`), all[r].at(-1).id, `room ${r}: checkpoint`);
  }
  backupOk(cfg, [], /backup ok: 20 rooms, 0 messages copied/);
  const v = backup(cfg, ['--verify', '--quiet']);
  assert.equal(v.status, 0, `--verify: every message of the 20 rooms the same on both sides\n${show(v)}`);
  assert.equal(v.stdout, '', `--verify --quiet prints nothing when all agree\n${show(v)}`);
});

test('runs started together: one does the work, the others exit 0 at once; every message exactly once', async () => {
  const redis = await startRedis();
  const cfg = setup(redis);
  const { names, all } = await fillRooms(redis, 'cc', 4, 1500);
  const runs = [0, 1, 2].map(() => spawnBackup(cfg));
  const res = await Promise.all(runs.map((r) => r.exited));
  const out = runs.map((r) => r.out()).join('\n');
  const workers = res.filter((r) => /backup ok: 4 rooms, 6000 messages copied/.test(r.stdout));
  const waiting = res.filter((r) => /another run is in progress/.test(r.stdout));
  for (const r of res) assert.equal(r.status, 0, out);
  assert.equal(workers.length, 1, `exactly one run should copy\n${out}`);
  assert.equal(waiting.length, 2, `the two others should leave the work to it\n${out}`);
  const docs = dump(cfg.uri);
  for (const r of names) assertArchived(docs, r, all[r]);
  assert.equal(docs.length, 6000);
});

test('Redis lost: --restore into an empty Redis brings every message back with its id, and ct:rooms; --verify finds changed content', async () => {
  const redis = await startRedis();
  const cfg = setup(redis);
  const { names, all } = await fillRooms(redis, 'rs', 8, 1250);
  backupOk(cfg, ['--retain', '100'], /backup ok: 8 rooms, 10000 messages copied, 9200 trimmed/);
  await redis.stop();

  const fresh = await startRedis();
  const cfg2 = { ...cfg, file: path.join(tmpDir('backup'), 'crosstalk.conf') };
  fs.writeFileSync(cfg2.file, fs.readFileSync(cfg.file, 'utf8').replace(redis.url, fresh.url));
  assert.equal(await fresh.cmd('DBSIZE'), 0);
  const v0 = backup(cfg2, ['--verify']);
  assert.equal(v0.status, 3, `an empty Redis against a full archive is a difference\n${show(v0)}`);
  assert.match(v0.stdout, /verify DIFFERENT: 8 rooms, 8 different/, show(v0));

  const rs = backupOk(cfg2, ['--restore', '--progress'], /^crosstalk-backup: restore ok: 8 rooms, 10000 messages restored, 0 older ones only in MongoDB, \d+ ms$/);
  assert.match(rs.stderr, /^restore: 8 rooms, 10000\/10000 messages restored, \d+ msg\/s, [\d.]+ s$/m, `the restore's progress: rooms, and messages of the archive's total\n${show(rs)}`);
  const listed = await fresh.cmd('ZRANGE', 'ct:rooms', '0', '-1', 'WITHSCORES');
  const scores = Object.fromEntries(listed.reduce((a, x, i) => (i % 2 ? a : [...a, [x, Number(listed[i + 1])]]), []));
  for (const r of names) {
    assert.deepEqual(await stream(fresh, r), all[r], `room ${r}: every message back with its id, sender, text and time`);
    assert.equal(scores[r], all[r].at(-1).ts, `room ${r}: in ct:rooms at its last message's time`);
    assert.equal(await fresh.cmd('GET', `ct:backup:{${r}}`), all[r].at(-1).id, `room ${r}: checkpoint`);
  }
  backupOk(cfg2, ['--verify'], /verify ok: 8 rooms, 0 different/);
  backupOk(cfg2, [], /backup ok: 8 rooms, 0 messages copied/);

  // A Redis holding the same ids with one text changed: counts and last
  // ids agree, the content does not.
  const odd = await startRedis();
  const r0 = names[3];
  const k = 617;
  for (const r of [r0]) {
    await odd.pipeline(all[r].map((m, i) => ['XADD', roomKey(r), m.id, 'from', m.from, 'text', i === k ? `${m.text}!` : m.text, 'ts', String(m.ts)]));
    await odd.cmd('ZADD', 'ct:rooms', String(all[r].at(-1).ts), r);
    await odd.cmd('SET', `ct:backup:{${r}}`, all[r].at(-1).id);
  }
  const cfg3 = { ...cfg, file: path.join(tmpDir('backup'), 'crosstalk.conf') };
  fs.writeFileSync(cfg3.file, fs.readFileSync(cfg.file, 'utf8').replace(redis.url, odd.url));
  const v = backup(cfg3, ['--verify']);
  assert.equal(v.status, 3, show(v));
  assert.match(v.stdout, new RegExp(`verify: room ${r0}: .*redis 1250 .*mongodb 1250 .*0 missing from MongoDB, 0 missing from Redis, 1 with other content, the first at ${all[r0][k].id}; 0 pending: DIFFERENT`), show(v));
  assert.match(v.stdout, /verify DIFFERENT: 8 rooms, 8 different/, `the 7 rooms this Redis lacks differ too\n${show(v)}`);
  const q = backup(cfg3, ['--verify', '--quiet']);
  assert.equal(q.status, 3, show(q));
  assert.doesNotMatch(q.stdout, /: ok$/m, `--quiet prints only the rooms that differ\n${show(q)}`);
  assert.match(q.stdout, /verify DIFFERENT/, show(q));
});

test('progress on stderr: on a terminal, with --progress, never under cron; --quiet prints nothing unless something fails', async () => {
  const redis = await startRedis();
  const cfg = setup(redis, { batch: 50 });
  await fillRooms(redis, 'pg', 3, 200);

  // No terminal (cron): one summary line on stdout, no progress.
  const plain = backupOk(cfg, ['--retain', '1000'], /backup ok: 3 rooms, 600 messages copied/);
  assert.doesNotMatch(plain.stderr, /rooms, \d+ messages/, `no progress line without a terminal\n${show(plain)}`);
  await fillRooms(redis, 'pg', 2, 100);

  const p = backupOk(cfg, ['--progress'], /backup ok: 5 rooms, 200 messages copied/);
  assert.match(p.stderr, /^backup: 5\/5 rooms, 200 messages copied, \d+ msg\/s, [\d.]+ s$/m, `the final progress line\n${show(p)}`);

  // A terminal: the line is rewritten in place.
  await fillRooms(redis, 'pg', 1, 100);
  const t = runSync('script', ['-qfec', `${BACKUP} --config ${cfg.file}`, '/dev/null'], { timeout: 60000 });
  assert.equal(t.status, 0, show(t));
  assert.match(t.stdout, /\rbackup: 6\/6 rooms, 100 messages copied, \d+ msg\/s, [\d.]+ s\x1b\[K\r?\n/, `a progress line rewritten with \\r on a terminal\n${JSON.stringify(t.stdout)}`);
  assert.match(t.stdout, /crosstalk-backup: backup ok: 6 rooms, 100 messages copied/, show(t));
  const tq = runSync('script', ['-qfec', `${BACKUP} --config ${cfg.file} --quiet`, '/dev/null'], { timeout: 60000 });
  assert.equal(tq.status, 0, show(tq));
  assert.equal(tq.stdout, '', `--quiet on a terminal prints nothing\n${JSON.stringify(tq.stdout)}`);

  // --quiet: nothing at all when it works (even another run holding the lock) ...
  const q = backup(cfg, ['--quiet']);
  assert.equal(q.status, 0, show(q));
  assert.equal(q.stdout + q.stderr, '', `--quiet prints nothing when all is well\n${show(q)}`);
  await redis.cmd('SET', 'ct:backup:lock', 'someone-else', 'PX', '5000');
  const busy = backup(cfg, ['--quiet']);
  assert.equal(busy.status, 0, show(busy));
  assert.equal(busy.stdout + busy.stderr, '', `--quiet, lock held by another run: nothing to say\n${show(busy)}`);
  await redis.cmd('DEL', 'ct:backup:lock');
  // ... and the error and the summary when it fails.
  const down = setup(redis, { mongoUri: 'mongodb://127.0.0.1:1/ct_down' });
  const f = backup(down, ['--quiet']);
  assert.equal(f.status, 1, show(f));
  assert.match(f.stdout, /^crosstalk-backup: backup FAILED/m, show(f));
  assert.match(f.stderr, /error: .*MongoDB/, show(f));
  const both = runSync(BACKUP, ['--config', '/dev/null', '--quiet', '--progress']);
  assert.equal(both.status, 2, show(both));
});

test('GET ?before= through nginx and the FastCGI pool pages from Redis into the archive, seamlessly, with --retain', async () => {
  const redis = await startRedis();
  const cfg = setup(redis);
  const daemon = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  const pool = await startFcgi({ redisUrl: redis.url, mongoUri: cfg.uri, children: 2, config: RELAXED });
  const front = await startNginx({ daemons: [daemon], fcgiSocket: pool.socket });
  const user = await register(front.url);
  const r = room('fc');
  const sent = [];
  const sendSome = async (k, tag) => {
    for (let i = 0; i < k; i++) sent.push(await sendOk(front.url, r, user, `${tag} ${i}`));
  };

  // Two backups with --retain 10, and 5 messages after the last one.
  await sendSome(45, 'first');
  backupOk(cfg, ['--retain', '10'], /backup ok: 1 rooms, 45 messages copied, 35 trimmed/);
  await sendSome(20, 'second');
  backupOk(cfg, ['--retain', '10'], /backup ok: 1 rooms, 20 messages copied, 20 trimmed/);
  await sendSome(5, 'third');
  assert.equal(await redis.cmd('XLEN', roomKey(r)), 15, 'Redis holds the newest 10 archived and the 5 newer ones');

  const shape = (e) => [e.id, e.room, e.type, e.from, e.text, e.ts];
  const want = sent.map(shape);
  const first = await history(front.url, r, user, { limit: 7 });
  assert.equal(first.status, 200, first.text);
  const got = [...first.json.events];
  assert.deepEqual(got.map(shape), want.slice(-7), 'the newest page');
  // Back 7 at a time: page 2 from Redis, page 3 across the Redis/archive
  // boundary, the rest from the archive; each ascending, older than the
  // cursor, and none twice.
  for (let i = 0; i < 20 && got.length < sent.length; i++) {
    const cursor = got[0].id;
    const p = await history(front.url, r, user, { before: cursor, limit: 7 });
    assert.equal(p.status, 200, `before=${cursor}: ${p.status} ${p.text}\n${pool.logs()}`);
    const ids = p.json.events.map((e) => e.id);
    assert.ok(ids.length > 0, `before=${cursor}: an empty page with ${sent.length - got.length} older messages left`);
    assert.deepEqual(ids, [...ids].sort(compareIds), `before=${cursor}: ascending`);
    assert.equal(p.json.last_id, ids.at(-1));
    got.unshift(...p.json.events);
  }
  assert.deepEqual(got.map(shape), want, 'paging back yields every message once, in order, whatever side holds it');
  const end = await history(front.url, r, user, { before: sent[0].id, limit: 7 });
  assert.deepEqual(end.json.events, [], 'nothing before the first message');
  // One page of 30 across the boundary.
  const wide = await history(front.url, r, user, { before: sent[40].id, limit: 30 });
  assert.deepEqual(wide.json.events.map(shape), want.slice(10, 40));
});

test('messages MongoDB already holds in the middle of one insert: they count as archived, the others go in, none twice', async () => {
  // The archive gets a few messages of a room out of order (through another
  // Redis holding only those, with the same ids): the first backup of the
  // full stream then sends them inside one insert of 250, between messages
  // MongoDB lacks; FerretDB answers such an insert in parts, so the
  // duplicates sit in different parts of it. A message between two rooms
  // is covered too: a whole room already archived sits between two new ones.
  const redis = await startRedis();
  const cfg = setup(redis);
  const [a, b, c] = [room('mid-a'), room('mid-b'), room('mid-c')];
  await append(redis, a, messages(a, 250));
  await append(redis, b, messages(b, 5));
  await append(redis, c, messages(c, 20));
  const all = { [a]: await stream(redis, a), [b]: await stream(redis, b), [c]: await stream(redis, c) };

  const pre = await startRedis();
  const early = { [a]: [1, 120, 121, 200, 248], [b]: [0, 1, 2, 3, 4], [c]: [] };
  for (const r of [a, b]) {
    const msgs = early[r].map((i) => all[r][i]);
    await pre.pipeline(msgs.map((m) => ['XADD', roomKey(r), m.id, 'from', m.from, 'text', m.text, 'ts', String(m.ts)]));
    await pre.cmd('ZADD', 'ct:rooms', String(msgs.at(-1).ts), r);
  }
  const cfgPre = { ...cfg, file: path.join(tmpDir('backup'), 'crosstalk.conf') };
  fs.writeFileSync(cfgPre.file, fs.readFileSync(cfg.file, 'utf8').replace(redis.url, pre.url));
  backupOk(cfgPre, [], /backup ok: 2 rooms, 10 messages copied/);
  assert.equal(dump(cfg.uri).length, 10, 'the archive should hold the 10 early messages');

  const r = backupOk(cfg, [], /backup ok: 3 rooms, 275 messages copied/);
  assert.match(r.stdout + r.stderr, /10 of the 275 messages copied were already in MongoDB/, show(r));
  const docs = dump(cfg.uri);
  for (const x of [a, b, c]) {
    assertArchived(docs, x, all[x]);
    assert.equal(await redis.cmd('GET', `ct:backup:{${x}}`), all[x].at(-1).id, `room ${x}: checkpoint`);
  }
  assert.equal(docs.length, 275, 'nothing else in the archive');
  backupOk(cfg, ['--verify'], /verify ok: 3 rooms, 0 different/);
});
