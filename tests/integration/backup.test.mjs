// backup.test.mjs - crosstalk-backup against a real redis-server and a real
// MongoDB-wire server (FerretDB): several rooms copied exactly once, a run
// SIGKILLed between batches, MongoDB down, --retain never trimming what
// MongoDB lacks, --restore into an empty Redis (and a client resuming with
// an old `since` through crosstalkd), two concurrent runs, --verify, and the
// archive read path paging back past what Redis holds.
//
// Messages are written with the real append script, read from
// src/common/keys.c and run with EVAL, so the streams look exactly as the
// daemon leaves them. MongoDB is read back with ct-archive-tool (the same
// mongo_archive module crosstalk-backup and crosstalk-fcgi use).
//
// Each test has its own redis-server and its own MongoDB database on one
// shared FerretDB (the MongoDB-down test starts its own FerretDB).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import {
  REPO, startRedis, startFerret, startDaemon, cleanup, tmpDir, bin, runSync, waitFor, alive,
  compareIds, roomKey, register, sendOk, history, RELAXED, RedisError,
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

// The body of keys.c's append_body[] C string, unescaped.
const APPEND_LUA = (() => {
  const src = fs.readFileSync(path.join(REPO, 'src/common/keys.c'), 'utf8');
  const m = /static const char append_body\[\]\s*=((?:\s*"(?:[^"\\]|\\.)*")+)\s*;/.exec(src);
  if (!m) throw new Error('src/common/keys.c: no `static const char append_body[] = "...";` to take the append script from');
  const body = [...m[1].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]).join('');
  return body.replace(/\\([nt"\\])/g, (_, c) => ({ n: '\n', t: '\t', '"': '"', '\\': '\\' })[c]);
})();

/** Appends messages [{from, text}] to `room` with the append script, in one pipeline; resolves with their ids. */
async function append(redis, room, msgs) {
  const replies = await redis.pipeline(msgs.map((m) => [
    'EVAL', APPEND_LUA, 2, roomKey(room), 'ct:rooms', room, m.from, m.text, `ct:bus:${room}`,
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
  const r = runSync(TOOL, ['dump', uri, ...(room ? [room] : [])], { timeout: 30000 });
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
  for (const s of ['--retain', '--restore', '--room', '--verify', '--lock-ttl', 'Exit status', 'mongo_uri', 'redis_url', 'CT_BACKUP_BATCH_DELAY_MS']) {
    assert.ok(h.stdout.includes(s), `--help should mention ${s}:\n${h.stdout}`);
  }
  for (const args of [['--bogus'], ['--retain'], ['--retain', 'x'], ['--room', 'lobby'], ['--restore', '--verify'], ['--restore', '--room', 'Bad Room']]) {
    const r = runSync(BACKUP, ['--config', '/dev/null', ...args]);
    assert.equal(r.status, 2, `crosstalk-backup ${args.join(' ')}: expected exit 2 (usage)\n${show(r)}`);
  }
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
    assert.equal(await redis.cmd('GET', `ct:backup:${r}`), s.at(-1).id, `room ${r}: the checkpoint should be its last id`);
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
  const first = await waitFor(async () => await redis.cmd('GET', `ct:backup:${r}`), {
    timeout: 15000, what: `the first checkpoint of room ${r} (batches of 5, 600 ms apart)`, proc: run.child,
  });
  const t0 = Date.now();
  const ck = await waitFor(async () => {
    const c = await redis.cmd('GET', `ct:backup:${r}`);
    return c !== first ? c : null;
  }, { timeout: 15000, what: `the checkpoint to move past ${first}`, proc: run.child });
  const coveredAtCk = all.filter((m) => compareIds(m.id, ck) <= 0).length;
  await waitFor(() => dump(cfg.uri, r).length > coveredAtCk, {
    timeout: 500, interval: 10, what: `MongoDB to hold the batch after checkpoint ${ck} (more than ${coveredAtCk})`, proc: run.child,
  });
  run.child.kill('SIGKILL');
  const res = await run.exited;
  assert.equal(res.signal, 'SIGKILL', `the run should still have been working ${Date.now() - t0} ms later\n${run.out()}`);

  const at = await redis.cmd('GET', `ct:backup:${r}`);
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
  assert.equal(await redis.cmd('GET', `ct:backup:${r}`), all.at(-1).id);
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
  const ck = await redis.cmd('GET', `ct:backup:${r}`);

  await own.stop();
  const t0 = Date.now();
  const res = backup(cfg, ['--retain', '0']);
  const took = Date.now() - t0;
  assert.equal(res.status, 1, `expected exit 1 with MongoDB down\n${show(res)}`);
  assert.match(res.stdout, /^crosstalk-backup: backup FAILED: 0 rooms, 0 messages copied, 0 trimmed/m, show(res));
  assert.match(res.stderr, /MongoDB/, `the log should say MongoDB failed\n${show(res)}`);
  assert.ok(took < 20000, `a run against a MongoDB that is down should give up quickly, took ${took} ms`);
  assert.equal(await redis.cmd('GET', `ct:backup:${r}`), ck, 'the checkpoint must not move');
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
  await waitFor(async () => await redis.cmd('GET', `ct:backup:${q}`), {
    timeout: 15000, what: `room ${q}'s first checkpoint (room ${p} done)`, proc: run.child,
  });
  const pNewIds = await append(redis, p, messages(p, 5, 'late'));
  const res = await run.exited;
  assert.equal(res.status, 0, `expected exit 0\n${run.out()}`);
  const pNow = await stream(redis, p);
  assert.deepEqual(pNow.map((m) => m.id), pNewIds,
    `room ${p}: the 4 archived messages may go, the 5 not yet archived must all stay (checkpoint ${await redis.cmd('GET', `ct:backup:${p}`)})`);
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
    assert.equal(await fresh.cmd('GET', `ct:backup:${r}`), orig[r].at(-1).id, `room ${r}: checkpoint after restore`);
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
  assert.equal(await third.cmd('EXISTS', `ct:room:${rooms[0]}:log`), 0, '--room restores that room only');
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
