// demo_reshape.test.mjs - a newcomer runs scripts/demo, registers and
// sends, stops it and runs `scripts/demo --shards 3` on the same directory
// (the README's next step). Started on three shards, the stack looked for
// the user and the rooms where jump hash puts them, not on the one server
// that held them: the token was "unknown", the rooms empty, and nothing
// said why. The demo now reshards a directory that holds data when the
// number of shards changes (crosstalk-backup --reshard, both ways) before
// anything serves: the token works, every message is there, each room's
// stream is on its shard, and the shards dropped are stopped.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { REPO, bearer, canBind, cleanup, freePort, freePortRun, http, redisCommand, roomKey, runSync, tmpDir, uniqueName } from './harness.mjs';

const DEMO = path.join(REPO, 'scripts', 'demo');
let dir;
let base;

before(async () => {
  dir = tmpDir('demo-reshape');
  const ports = { http: await freePort(), d1: await freePort(), d2: await freePort() };
  ports.redis = await freePortRun(3, [ports.http, ports.d1, ports.d2]);
  base = ['--no-bootstrap', '--no-tls', '--background', '--dir', dir, '--port', ports.http,
    '--daemon-ports', `${ports.d1} ${ports.d2}`, '--redis-port', ports.redis, '--fcgi-children', 2];
  base.url = `http://127.0.0.1:${ports.http}`;
  base.redisPorts = [ports.redis, ports.redis + 1, ports.redis + 2];
});

after(async () => {
  runSync(DEMO, ['--stop', '--dir', dir], { timeout: 60000 });
  await cleanup();
});

function demo(...extra) {
  const t0 = Date.now();
  const r = runSync(DEMO, [...base, ...extra], { timeout: 180000 });
  assert.ok(!r.timedOut, `scripts/demo ${extra.join(' ')}: still running after ${Date.now() - t0} ms`);
  return r;
}

async function historyIs(token, rooms, what) {
  for (const room of rooms) {
    const h = await http('GET', `${base.url}/api/rooms/${room}/messages`, { headers: bearer(token) });
    assert.equal(h.status, 200, `history of ${room} ${what}: ${h.status} ${h.body}`);
    assert.deepEqual(h.json.events.map((e) => e.text), ['before'], `history of ${room} ${what}`);
  }
}

test('a demo holding data started on another number of shards is resharded first, both ways; nothing is lost', async () => {
  let r = demo();
  assert.equal(r.status, 0, `scripts/demo exited ${r.status}:\n${r.stdout}${r.stderr}`);
  const name = uniqueName('newcomer');
  const reg = await http('POST', `${base.url}/api/register`, { body: { name } });
  assert.equal(reg.status, 201, `register: ${reg.status} ${reg.body}`);
  // a1 is on shard 1 and a8 on shard 2 of 3, a3 on shard 0 (crosstalk-backup --placement a1,a3,a8 --shards 3)
  const placed = { a1: 1, a3: 0, a8: 2 };
  const rooms = Object.keys(placed);
  for (const room of rooms) {
    const s = await http('POST', `${base.url}/api/rooms/${room}/messages`, { headers: bearer(reg.json.token), body: { text: 'before' } });
    assert.equal(s.status, 201, `send to ${room}: ${s.status} ${s.body}`);
  }
  r = runSync(DEMO, ['--stop', '--dir', dir], { timeout: 60000 });
  assert.equal(r.status, 0, `--stop: ${r.stdout}${r.stderr}`);

  r = demo('--shards', 3);
  assert.equal(r.status, 0, `--shards 3 on a one-shard demo's data exited ${r.status}:\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /holds a demo of 1 Redis shard\(s\): moving its rooms and users to 3/, r.stdout);
  assert.match(r.stdout, /reshard ok: 1 -> 3 shards/, r.stdout);
  const me = await http('GET', `${base.url}/api/rooms?limit=10`, { headers: bearer(reg.json.token) });
  assert.equal(me.status, 200, `the token after going to 3 shards: ${me.status} ${me.body}`);
  await historyIs(reg.json.token, rooms, 'after going to 3 shards');
  for (const [room, shard] of Object.entries(placed)) {
    for (let i = 0; i < 3; i++) {
      assert.equal(await redisCommand(base.redisPorts[i], 'EXISTS', roomKey(room)), i === shard ? 1 : 0,
        `${roomKey(room)} on shard ${i} (port ${base.redisPorts[i]}); its shard is ${shard}`);
    }
  }
  r = runSync(DEMO, ['--stop', '--dir', dir], { timeout: 60000 });
  assert.equal(r.status, 0, `--stop: ${r.stdout}${r.stderr}`);

  r = demo();
  assert.equal(r.status, 0, `back to one shard exited ${r.status}:\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /reshard ok: 3 -> 1 shards/, r.stdout);
  await historyIs(reg.json.token, rooms, 'after going back to 1 shard');
  for (const p of base.redisPorts.slice(1)) assert.ok(await canBind(p), `port ${p}: a dropped shard still runs`);

  r = runSync(DEMO, ['--stop', '--dir', dir], { timeout: 60000 });
  assert.equal(r.status, 0, `--stop: ${r.stdout}${r.stderr}`);
  r = demo();
  assert.equal(r.status, 0, `a third start exited ${r.status}:\n${r.stdout}${r.stderr}`);
  assert.doesNotMatch(r.stdout, /reshard/, 'the same number of shards again must not reshard');
});
