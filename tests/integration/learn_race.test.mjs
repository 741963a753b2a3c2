// learn_race.test.mjs - the bus behind what Redis told the daemon. A daemon
// learns a quiet room's newest message from one read of the stream after
// its SUBSCRIBE (bus_room_learn), and that read travels on the command
// connection while the room's events travel on the subscription: under
// load the read can be answered before events published earlier have come
// by. Daemon A reaches Redis through a TCP proxy that delays what Redis
// sends on the subscription connection (any connection that sent SUBSCRIBE)
// by `lag.ms`, so the bus lags as it may under load. Daemon B talks to Redis
// directly. The contract checked: a client sees its own message in the next
// answer of the daemon that stored it (docs/design.md, "Resuming").
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  RELAXED, cleanup, freePort, history, register, sendOk, sleep, startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

let redis, proxy, a, b, alice;
const lag = { ms: 0 };

async function startProxy(target) {
  const port = await freePort();
  const socks = new Set();
  const srv = net.createServer((c) => {
    const s = net.connect(target, '127.0.0.1');
    socks.add(c); socks.add(s);
    let sub = false, lastAt = 0;
    c.on('data', (d) => { if (!sub && /SUBSCRIBE/i.test(d.toString('latin1'))) sub = true; s.write(d); });
    s.on('data', (d) => {
      if (!sub || lag.ms === 0) { c.write(d); return; }
      const at = Math.max(Date.now() + lag.ms, lastAt); lastAt = at; // in order
      setTimeout(() => { if (!c.destroyed) c.write(d); }, at - Date.now());
    });
    const end = () => { c.destroy(); s.destroy(); };
    c.on('error', end); s.on('error', end); c.on('close', end); s.on('close', end);
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return { url: `redis://127.0.0.1:${port}/0`, close: () => { for (const x of socks) x.destroy(); srv.close(); } };
}

before(async () => {
  redis = await startRedis();
  proxy = await startProxy(redis.port);
  a = await startDaemon({ redisUrl: proxy.url, config: RELAXED });
  b = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  alice = await register(b.url, uniqueName('alice'));
});
after(async () => { proxy?.close(); await cleanup(); });

const shortPoll = (d, room, q) => history(d.url, room, alice, q);

test('a poll after its own 201 sees the message while the bus lags the read that taught the newest', async () => {
  const room = uniqueRoom('ryw');
  const m0 = await sendOk(b.url, room, alice, 'm0');
  lag.ms = 1200;
  const t0 = Date.now();
  let r = await shortPoll(a, room, { since: m0.id }); // A follows: its SUBSCRIBE's answer lags
  assert.equal(r.status, 200, r.text);
  await sleep(100);
  const m1 = await sendOk(b.url, room, alice, 'm1'); // after the SUBSCRIBE took effect
  r = await shortPoll(a, room, { since: m0.id }); // from Redis: not live yet
  assert.deepEqual(r.json.events.map((e) => e.id), [m1.id]);
  await sleep(500);
  const m2 = await sendOk(a.url, room, alice, 'mine'); // through A: 201
  const bad = [];
  let polls = 0;
  while (Date.now() - t0 < 3500) {
    const p = await shortPoll(a, room, { since: m1.id });
    const ids = p.json?.events?.map((e) => e.id) ?? [];
    polls++;
    if (!ids.includes(m2.id)) bad.push(`${Date.now() - t0} ms: ${p.status} ${p.text}`);
    await sleep(15);
  }
  lag.ms = 0;
  assert.ok(polls > 20, `only ${polls} polls`);
  assert.deepEqual(bad, [], `polls since m1 on A after the 201 of ${m2.id} that lacked it`);
});
