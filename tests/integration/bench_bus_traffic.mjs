// bench_bus_traffic.mjs - the bus traffic one crosstalkd receives with a
// listener in 1 of 100 busy rooms (issue 15). A daemon D has one SSE
// listener in room 0; another daemon on the same Redis stores
// ROUNDS messages in each of 100 rooms. Measured: the bytes D's pub/sub
// connection received (the kernel's tcp_info bytes_received of that socket,
// by `ss -tin`, found by its port in CLIENT LIST), and the messages the
// listener got. Run: node tests/integration/bench_bus_traffic.mjs
// (CT_BUILDDIR=DIR to measure another build's crosstalkd, e.g. main's).
import { execFileSync } from 'node:child_process';
import {
  RELAXED, bearer, cleanup, register, sendOk, sleep, sseOpen, startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

const ROOMS = 100;
const ROUNDS = Number(process.env.ROUNDS || 20);

/** Bytes received so far by the daemon's side of its pub/sub connections. */
async function pubsubBytes(redis, pid) {
  const list = String(await redis.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).trim().split('\n').filter(Boolean);
  let total = 0;
  let conns = 0;
  for (const line of list) {
    const port = /addr=127\.0\.0\.1:(\d+)/.exec(line)[1];
    const out = execFileSync('ss', ['-tinpH', 'src', `127.0.0.1:${port}`], { encoding: 'utf8' });
    if (!out.includes(`pid=${pid},`)) continue;
    conns++;
    const m = /bytes_received:(\d+)/.exec(out);
    total += m ? Number(m[1]) : 0;
  }
  return { conns, bytes: total };
}

const redis = await startRedis();
try {
  const d = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  const sender = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  const alice = await register(sender.url, uniqueName('alice'));
  const bob = await register(d.url, uniqueName('bob'));
  const rooms = Array.from({ length: ROOMS }, (_, i) => uniqueRoom(`busy${i}`));
  const s = await sseOpen(`${d.url}/api/rooms/${rooms[0]}/events`, { headers: bearer(bob.token) });
  await sleep(500);
  const before = await pubsubBytes(redis, d.pid);
  const t0 = Date.now();
  for (let k = 0; k < ROUNDS; k++) {
    await Promise.all(rooms.map((room) => sendOk(sender.url, room, alice, `message ${k} in ${room}: ${'x'.repeat(60)}`)));
  }
  await s.waitEvents(ROUNDS, { filter: (e) => e.event === 'message', timeout: 30000 });
  await sleep(500);
  const after = await pubsubBytes(redis, d.pid);
  console.log(JSON.stringify({
    build: process.env.CT_BUILDDIR || 'this tree',
    rooms: ROOMS, messages_sent: ROOMS * ROUNDS, send_ms: Date.now() - t0,
    pubsub_connections: after.conns,
    pubsub_bytes_received: after.bytes - before.bytes,
    listener_messages: s.messages().length,
  }));
  s.close();
} finally {
  await cleanup();
}
