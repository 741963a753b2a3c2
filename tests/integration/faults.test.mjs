// faults.test.mjs - faults under load: 200 clients of all four transports
// (loadgen.mjs) in one room behind nginx with two crosstalkd, the FastCGI
// pool and one Redis, while senders post over REST and WebSocket. Each test
// injects one fault and then asserts the promises of docs/reliability.md:
//   - every message acknowledged (201, or a WebSocket ack) is in the stream;
//   - every client, resuming as a browser does (EventSource Last-Event-ID,
//     long/short poll since=last_id, WebSocket ?since=last_id), ends up
//     with exactly the stored messages after its start: none missing, none
//     twice, in Redis order.
// Faults: Redis SIGKILLed and restarted; one daemon SIGKILLed; nginx
// reloaded (as shipped, and with worker_shutdown_timeout so that streams
// are cut); crosstalk-backup SIGKILLed mid-run and run again.
//
// The summary of each run goes out as a test diagnostic (the table of
// docs/reliability.md comes from these lines).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import {
  RELAXED, bin, childrenOf, alive, cleanup, compareIds, http, register, roomKey, runSync, sendOk, sleep,
  startDaemon, startFcgi, startFerret, startNginx, startRedis, tmpDir, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';
import { startLoad } from './loadgen.mjs';

const CLIENTS = { short: 50, long: 50, sse: 50, ws: 50 };
const CONFIG = { ...RELAXED, sse_retry_ms: 200, log_level: 'info' };

let redis;
let d1;
let d2;
let fcgi;
let nginx;
let users;
const loads = new Set();
const spawned = new Set();

before(async () => {
  redis = await startRedis();
  d1 = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, trusted_proxies: '127.0.0.1,unix' } });
  d2 = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, trusted_proxies: '127.0.0.1,unix' } });
  fcgi = await startFcgi({ redisUrl: redis.url, children: 4, config: CONFIG });
  nginx = await startNginx({ daemons: [d1, d2], fcgiSocket: fcgi.socket });
  users = [];
  for (let i = 0; i < 40; i++) users.push(await register(nginx.url, uniqueName('ld')));
});

after(async () => {
  for (const l of loads) await l.close();
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fcgi?.stop().catch(() => {});
  await cleanup();
});

// ------------------------------------------------------------ helpers

async function storedIds(room) {
  return (await redis.cmd('XRANGE', roomKey(room), '-', '+')).map((e) => e[0]);
}

/** A fresh room with one seed message; clients start after it. */
async function seededRoom(tag) {
  const room = uniqueRoom(tag);
  const seed = await sendOk(nginx.url, room, users[0], `seed of ${room}`);
  return { room, seed: seed.id };
}

async function load(base, room, since, opts = {}) {
  const l = startLoad({
    base, room, users, since, clients: CLIENTS,
    shortPrefixes: ['', '/d'], restPrefixes: ['', '/d'], restSenders: 2, wsSenders: 1, sendIntervalMs: 60,
    ...opts,
  });
  loads.add(l);
  await l.ready({ timeout: 20000 });
  return l;
}

/**
 * Stops the senders, then checks: every acknowledged message is stored;
 * every client holds exactly the stored messages after the seed, each once,
 * in order. Closes the load. Returns a one-line summary.
 */
async function verify(t, l, room, seed, what, { minSent = 20 } = {}) {
  await l.stopSending();
  const stored = await storedIds(room);
  const want = stored.filter((id) => compareIds(id, seed) > 0);
  const storedSet = new Set(stored);
  const lost = l.sent.filter((s) => !storedSet.has(s.id));
  const ackTwice = l.sent.length - new Set(l.sent.map((s) => s.id)).size;
  const ms = await l.settle(want, { timeout: 25000 });
  const problems = l.check(want);
  const sum = l.summary();
  await l.close();
  loads.delete(l);
  const line = `${what}: ${sum.sent.acknowledged} acknowledged (${sum.sent.refused} refused), ${want.length} stored, ` +
    `${lost.length} acknowledged but lost, ${ackTwice} acknowledged twice; ` +
    `${l.clients.length} clients settled ${ms < 0 ? 'NEVER (25 s)' : `in ${ms} ms`}; ` +
    `reconnects sse ${sum.sse?.reconnects ?? 0}, ws ${sum.ws?.reconnects ?? 0}; client errors short ${sum.short?.errors ?? 0}, ` +
    `long ${sum.long?.errors ?? 0}, sse ${sum.sse?.errors ?? 0}, ws ${sum.ws?.errors ?? 0}; duplicates ${Object.values(sum).reduce((n, s) => n + (s.dups ?? 0), 0)}`;
  t.diagnostic(line);
  assert.equal(lost.length, 0, `acknowledged messages missing from ${roomKey(room)}: ${lost.slice(0, 5).map((s) => `${s.id} (${s.via})`).join(', ')}`);
  assert.equal(ackTwice, 0, 'an id was acknowledged twice');
  assert.deepEqual(problems, [], `${problems.length} of ${l.clients.length} clients do not hold exactly the ${want.length} stored messages:\n  ` +
    problems.slice(0, 15).join('\n  '));
  assert.ok(sum.sent.acknowledged >= minSent, `only ${sum.sent.acknowledged} sends were acknowledged: the load did not run (${JSON.stringify(l.failedSends.slice(-3))})`);
  return { line, sum };
}

async function healthy(d) {
  return (await http('GET', `${d.url}/healthz`, { timeout: 2000 }).catch(() => ({ status: 0 }))).status === 200;
}

// ------------------------------------------------------------ the faults

test('crosstalk-backup SIGKILLed mid-run under load, then run again: MongoDB holds every stored message once', async (t) => {
  const BACKUP = bin('crosstalk-backup');
  const TOOL = bin('ct-archive-tool');
  for (const p of [BACKUP, TOOL]) assert.ok(fs.existsSync(p), `${p} does not exist: build it first`);
  const ferret = await startFerret();
  const d = tmpDir('bkload');
  const uri = ferret.uri.replace(/\/crosstalk$/, `/ct_faults_${process.pid}`);
  const cfgFile = path.join(d, 'crosstalk.conf');
  fs.writeFileSync(cfgFile, `redis_url = ${redis.url}\nmongo_uri = ${uri}\nbackup_batch = 10\n`);
  const run = (args = [], env = {}) => {
    const child = spawn(BACKUP, ['--config', cfgFile, ...args], {
      env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CROSSTALK_'))), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    spawned.add(child);
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { out += b; });
    const exited = new Promise((resolve) => child.on('close', (code, signal) => { spawned.delete(child); resolve({ code, signal, out }); }));
    return { child, exited, out: () => out };
  };
  const runToEnd = async (args = []) => {
    // A run finding the dead run's lock exits 0 without copying; wait for the lock to expire first.
    await waitFor(async () => (await redis.cmd('EXISTS', 'ct:backup:lock')) === 0, { timeout: 6000, what: 'the backup lock to be free' });
    const r = run(['--lock-ttl', '60', '--backup-batch=100', ...args]);
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 60000);
    const res = await r.exited;
    clearTimeout(timer);
    assert.equal(res.code, 0, `crosstalk-backup ${args.join(' ')} exited ${res.code ?? res.signal}:\n${res.out}`);
    return res.out;
  };

  // Whatever Redis holds already (this test runs first: next to nothing)
  // first, so that the run to kill below works on this test's room only.
  await runToEnd();
  const { room, seed } = await seededRoom('backup');
  const l = await load(nginx.url, room, seed);
  l.startSending();
  await sleep(1500);
  // Batches of 10 with 300 ms after each acknowledged batch: kill while it works.
  // Its lock lives 3 s (a batch here takes well under that), so that the
  // next run need not wait long for the dead run's lock to expire.
  const r1 = run(['--lock-ttl', '3'], { CT_BACKUP_BATCH_DELAY_MS: '300' });
  const ck = `ct:backup:{${room}}`;
  await waitFor(async () => (await redis.cmd('GET', ck)) !== null, { timeout: 15000, what: `the first checkpoint of ${room}`, proc: r1.child })
    .catch((e) => { throw new Error(`${e.message}\n--- crosstalk-backup's output ---\n${r1.out()}`); });
  await sleep(450);
  r1.child.kill('SIGKILL');
  const res1 = await r1.exited;
  assert.equal(res1.signal, 'SIGKILL', `the first run ended before the kill:\n${res1.out}`);
  const killedAt = await redis.cmd('GET', ck);
  await sleep(1000);
  await verify(t, l, room, seed, 'crosstalk-backup SIGKILLed mid-run');
  await runToEnd(); // the run after the dead one: everything stored so far
  const stored = await storedIds(room);
  const dump = runSync(TOOL, ['dump', uri, room], { timeout: 30000 });
  assert.equal(dump.status, 0, `ct-archive-tool dump: ${dump.stdout}${dump.stderr}`);
  const archived = dump.stdout.split('\n').filter(Boolean).map((x) => JSON.parse(x).id);
  const dup = archived.filter((id, i) => archived.indexOf(id) !== i);
  assert.deepEqual(dup, [], 'messages archived twice');
  assert.deepEqual(archived, stored, `MongoDB should hold exactly the ${stored.length} stored messages (it holds ${archived.length})`);
  assert.equal(await redis.cmd('GET', ck), stored.at(-1));
  const v = runSync(BACKUP, ['--config', cfgFile, '--verify'], { timeout: 30000 });
  assert.equal(v.status, 0, `--verify: ${v.stdout}${v.stderr}`);
  t.diagnostic(`backup: killed with checkpoint at ${killedAt}; MongoDB holds all ${stored.length} once; --verify ok`);
  await ferret.stop();
});

test('Redis SIGKILLed and restarted under load: nothing acknowledged is lost, daemons recover alone, clients get every message once', async (t) => {
  const { room, seed } = await seededRoom('redis');
  const l = await load(nginx.url, room, seed);
  l.startSending();
  await sleep(2000);
  const ackedBefore = l.sent.length;
  assert.ok(ackedBefore > 10, `only ${ackedBefore} sends acknowledged in 2 s before the kill`);
  const lastAckedBefore = [...l.sent];

  await redis.kill(); // SIGKILL: no shutdown, no final fsync
  const tKill = Date.now();
  await sleep(1000);
  const downAcked = l.sent.length;
  await redis.restart(); // same port and dir: the AOF is replayed
  const tUp = Date.now();

  // Every send acknowledged before the kill is in the reloaded stream.
  const afterRestart = new Set(await storedIds(room));
  const missing = lastAckedBefore.filter((s) => !afterRestart.has(s.id));
  assert.deepEqual(missing.map((s) => s.id), [], 'sends acknowledged before the SIGKILL are missing after the restart');

  // The daemons reconnect by themselves.
  for (const d of [d1, d2]) {
    await waitFor(() => healthy(d), { timeout: 10000, interval: 100, what: `crosstalkd ${d.port} to report Redis healthy again after the restart` });
  }
  await waitFor(() => l.sent.length > downAcked + 10, {
    timeout: 10000, interval: 100, what: `sends to be acknowledged again after Redis came back (${l.sent.length - downAcked} so far)`,
  });
  const recoverMs = Date.now() - tUp;
  await sleep(1500);
  const { sum } = await verify(t, l, room, seed, 'Redis SIGKILL + restart');
  t.diagnostic(`Redis was down ${tUp - tKill} ms; sends acknowledged again ${recoverMs} ms after it was back; ${ackedBefore} acknowledged before the kill, all present after`);
  assert.ok(sum.sent.refused > 0 || tUp - tKill < 1500, 'no send was refused while Redis was down: were the senders running?');
});

test('a daemon SIGKILLed under load: its clients resume on the other daemon through nginx, every message once', async (t) => {
  const { room, seed } = await seededRoom('dkill');
  const l = await load(nginx.url, room, seed);
  // nginx spreads the streams over both daemons; kill the one that holds more.
  const open = async (d) => {
    const s = (await http('GET', `${d.url}/api/stats?scope=process`)).json?.transports ?? {};
    return (s.sse?.open ?? 0) + (s.websocket?.open ?? s.ws?.open ?? 0);
  };
  const [o1, o2] = [await open(d1), await open(d2)];
  const victim = o1 >= o2 ? d1 : d2;
  const heldByVictim = Math.max(o1, o2);
  assert.ok(heldByVictim >= 10, `the daemon to kill holds only ${heldByVictim} SSE/WebSocket streams (d1 ${o1}, d2 ${o2})`);
  l.startSending();
  await sleep(2000);
  await victim.kill();
  await sleep(3000);
  try {
    const { sum } = await verify(t, l, room, seed, `crosstalkd SIGKILL (held ${heldByVictim} streams)`);
    assert.ok(sum.sse.reconnects + sum.ws.reconnects >= heldByVictim / 2,
      `only ${sum.sse.reconnects} SSE and ${sum.ws.reconnects} WebSocket reconnects though the killed daemon held ${heldByVictim} streams`);
  } finally {
    await victim.restart();
  }
});

test('nginx reloaded under load (as shipped): new workers take new requests, streams stay, every message once', async (t) => {
  const { room, seed } = await seededRoom('reload');
  const l = await load(nginx.url, room, seed);
  l.startSending();
  await sleep(1500);
  const old = childrenOf(nginx.pid);
  process.kill(nginx.pid, 'SIGHUP');
  await waitFor(() => childrenOf(nginx.pid).some((p) => !old.includes(p) && alive(p)), {
    timeout: 10000, what: 'new nginx workers after SIGHUP',
  });
  await sleep(1500);
  process.kill(nginx.pid, 'SIGHUP');
  await sleep(2000);
  const lingering = old.filter(alive).length;
  await verify(t, l, room, seed, 'nginx reload x2 (shipped config)');
  t.diagnostic(`${lingering} of ${old.length} old workers were still running 2 s after the second reload (they keep their SSE/WebSocket streams)`);
  // With the load closed the old workers have nothing left and go.
  await waitFor(() => !old.some(alive), { timeout: 10000, what: 'the old nginx workers to exit once their streams closed' });
});

test('nginx reloaded under load with worker_shutdown_timeout: streams are cut and resume, every message once', async (t) => {
  // The test's own copy of the config gets worker_shutdown_timeout 1s (the
  // shipped 10 s would outlast the harness's wait for a reload), so that a
  // reload soon closes the old workers' streams.
  const conf = fs.readFileSync(nginx.conf, 'utf8');
  fs.writeFileSync(nginx.conf, /worker_shutdown_timeout\s/.test(conf)
    ? conf.replace(/worker_shutdown_timeout\s+[^;]*;/, 'worker_shutdown_timeout 1s;')
    : `worker_shutdown_timeout 1s;\n${conf}`);
  await nginx.reload();
  const { room, seed } = await seededRoom('reload2');
  const l = await load(nginx.url, room, seed);
  l.startSending();
  await sleep(1500);
  await nginx.reload(); // resolves once the old workers are gone
  await sleep(1500);
  await nginx.reload();
  await sleep(1500);
  const { sum } = await verify(t, l, room, seed, 'nginx reload x2 (worker_shutdown_timeout 1s)');
  assert.ok(sum.sse.reconnects >= CLIENTS.sse && sum.ws.reconnects >= CLIENTS.ws,
    `every stream should have been cut and resumed at least once: ${sum.sse.reconnects} SSE, ${sum.ws.reconnects} WebSocket reconnects`);
});

