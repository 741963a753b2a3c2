// demo_shards.test.mjs - scripts/demo --shards 3: three redis-servers, one
// comma-separated redis_url for crosstalkd and the pool, messages sent
// through nginx landing on their room's shard only (the placement of
// crosstalk-backup --placement), a killed shard brought back with
// --restart redis-2, and a second run that builds nothing and keeps each
// shard's data. Bad --shards values start nothing.
//
// Until crosstalkd and crosstalk-fcgi take a redis_url list (issue 15,
// item 2, on another branch), the stack cannot come up: the test checks
// that the three Redis were started and stopped again, that the daemon's
// refusal is what stopped it, and then skips the rest, saying so.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  REPO, alive, bin, cleanup, freePort, http, redisCommand, register, runSync, sendOk, tmpDir, uniqueRoom, waitFor, roomKey,
} from './harness.mjs';

const DEMO = path.join(REPO, 'scripts', 'demo');
let dir;
let ports;
let args;

before(async () => {
  dir = tmpDir('demo-shards');
  ports = { http: await freePort(), d1: await freePort(), d2: await freePort(), redis: await freePort() };
  // --shards 3 takes redis, redis+1, redis+2: three free in a row, apart
  // from the other ports
  const canBind = (port) => new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
  for (let tries = 0; ; tries++) {
    const p = ports.redis;
    const others = [ports.http, ports.d1, ports.d2];
    if (p + 2 < 65536 && !others.some((o) => o >= p && o <= p + 2) && (await canBind(p + 1)) && (await canBind(p + 2))) break;
    assert.ok(tries < 50, 'no three free ports in a row for the shards');
    ports.redis = await freePort();
  }
  args = ['--no-bootstrap', '--no-tls', '--dir', dir, '--port', ports.http, '--daemon-ports', `${ports.d1} ${ports.d2}`,
    '--redis-port', ports.redis, '--fcgi-children', 2, '--shards', 3];
});

after(async () => {
  runSync(DEMO, ['--stop', '--dir', dir], { timeout: 60000 });
  await cleanup();
});

const pidOf = (file) => (fs.existsSync(path.join(dir, file)) ? Number(fs.readFileSync(path.join(dir, file), 'utf8').trim()) : 0);

test('bad --shards values are refused before anything starts', () => {
  for (const v of ['0', '17', 'x', '']) {
    const r = runSync(DEMO, ['--no-bootstrap', '--dir', tmpDir('demo-bad'), '--shards', v], { timeout: 30000 });
    assert.equal(r.status, 1, `--shards '${v}': ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, v === '' ? /--shards needs a value/ : /--shards must be 1\.\.16/, r.stderr);
  }
});

test('--shards 3: three Redis, the comma list, each room on its shard only, a shard restarted, a quiet second run', async (t) => {
  const r = runSync(DEMO, [...args, '--background'], { timeout: 180000 });
  const out = r.stdout + r.stderr;
  const conf = fs.readFileSync(path.join(dir, 'crosstalk.conf'), 'utf8');
  const urls = [0, 1, 2].map((i) => `redis://127.0.0.1:${ports.redis + i}/0`);
  assert.match(conf, new RegExp(`^redis_url = ${urls.join(',')}$`, 'm'), conf);
  for (const d of ['redis', 'redis-1', 'redis-2']) assert.ok(fs.existsSync(path.join(dir, d)), `${d}/ was made`);
  if (r.status !== 0) {
    // the demo prints the end of the daemon's log
    assert.match(out, /crosstalkd on port \d+ did not come up[^]*redis_url/, `the demo failed for another reason than the redis_url list:\n${out}`);
    for (const i of [0, 1, 2]) {
      await assert.rejects(redisCommand(ports.redis + i, 'PING'), `shard ${i} was stopped after the failed start`);
    }
    t.skip('crosstalkd does not take a comma-separated redis_url yet (issue 15 item 2): the sharded stack cannot start');
    return;
  }
  for (const [i, name] of ['redis', 'redis-1', 'redis-2'].entries()) {
    assert.ok(alive(pidOf(`${name}.pid`)), `${name}.pid runs`);
    assert.equal(await redisCommand(ports.redis + i, 'PING'), 'PONG');
    assert.match(out, new RegExp(`redis shard ${i} +127\\.0\\.0\\.1:${ports.redis + i}`), out);
  }

  const base = `http://127.0.0.1:${ports.http}/d`;
  const user = await register(base);
  const rooms = Array.from({ length: 24 }, () => uniqueRoom('sh'));
  const ids = {};
  for (const room of rooms) ids[room] = (await sendOk(base, room, user, `hello ${room}`)).id;
  const place = runSync(bin('crosstalk-backup'), ['--placement', rooms.join(','), '--shards', '3']);
  assert.equal(place.status, 0, place.stderr);
  const shardOf = Object.fromEntries(place.stdout.trim().split('\n').map((l) => l.split(' ')).map(([n, s]) => [n, Number(s)]));
  const used = new Set();
  for (const room of rooms) {
    for (const i of [0, 1, 2]) {
      const x = await redisCommand(ports.redis + i, 'XRANGE', roomKey(room), '-', '+');
      assert.deepEqual(x.map((e) => e[0]), i === shardOf[room] ? [ids[room]] : [], `room ${room} on shard ${shardOf[room]} only (looked at ${i})`);
    }
    used.add(shardOf[room]);
  }
  assert.equal(used.size, 3, '24 rooms use all three shards');

  // A shard killed and brought back.
  const pid = pidOf('redis-2.pid');
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !alive(pid), { timeout: 10000, what: 'shard 2 to die' });
  let s = runSync(DEMO, ['--dir', dir, '--restart', 'redis-2'], { timeout: 60000 });
  assert.equal(s.status, 0, s.stdout + s.stderr);
  assert.match(s.stdout, new RegExp(`redis-server is back on port ${ports.redis + 2}`));
  s = runSync(DEMO, ['--dir', dir, '--restart', 'redis'], { timeout: 60000 });
  assert.match(s.stdout, /nothing to restart/, s.stdout);
  s = runSync(DEMO, ['--dir', dir, '--restart', 'redis-3'], { timeout: 60000 });
  assert.notEqual(s.status, 0);
  assert.match(s.stderr, /no Redis shard 3/);

  // Stop and start again: nothing built, the data still there.
  assert.equal(runSync(DEMO, ['--stop', '--dir', dir], { timeout: 60000 }).status, 0);
  for (const i of [0, 1, 2]) await assert.rejects(redisCommand(ports.redis + i, 'PING'), `shard ${i} stopped`);
  const again = runSync(DEMO, [...args, '--background'], { timeout: 180000 });
  assert.equal(again.status, 0, again.stdout + again.stderr);
  assert.doesNotMatch(again.stdout, /built crosstalkd/, 'a second run built again');
  for (const room of rooms) {
    const x = await redisCommand(ports.redis + shardOf[room], 'XRANGE', roomKey(room), '-', '+');
    assert.deepEqual(x.map((e) => e[0]), [ids[room]], `room ${room} kept on shard ${shardOf[room]}`);
  }
  assert.equal((await http('GET', `http://127.0.0.1:${ports.http}/healthz`)).status, 200);
});
