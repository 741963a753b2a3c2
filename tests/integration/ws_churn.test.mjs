// ws_churn.test.mjs - hundreds of concurrent WebSockets on one crosstalkd:
// one broadcast reaches them all, and waves of 300 sockets opened, used and
// closed every way a socket ends (close handshake, abrupt reset, protocol
// error, EOF half-way through the handshake) leave no file descriptor,
// subscriber or memory behind (/proc/<pid>/fd and VmRSS before and after).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import {
  RELAXED, cleanup, http, register, sleep, startDaemon, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const WAVE = 300;
const USERS = 30;

let redis;
let d;
let users;
const open = new Set();

before(async () => {
  redis = await startRedis();
  // 300 sockets of 30 users, and waves that close while the next opens:
  // streams_per_token is not what this file is about
  d = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, streams_per_token: 1000 } });
  users = [];
  for (let i = 0; i < USERS; i++) users.push(await register(d.url, uniqueName(`churn${i}_`)));
});
after(async () => {
  for (const ws of open) ws.terminate();
  await cleanup();
});

const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const wsStats = async () => (await http('GET', `${d.url}/api/stats?scope=process`)).json.transports.websocket;

/** Opens a socket and collects its JSON frames; resolves on open. */
function connect(room, user) {
  const ws = new WebSocket(`ws://127.0.0.1:${d.port}/api/rooms/${room}/ws?token=${user.token}`, { perMessageDeflate: false });
  open.add(ws);
  ws.events = [];
  ws.on('message', (data) => ws.events.push(JSON.parse(data.toString('utf8'))));
  ws.on('close', (code) => { ws.closeCode = code; open.delete(ws); });
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode} instead of 101 for ${room}`)));
    ws.once('error', (e) => reject(new Error(`WebSocket to ${room}: ${e.message}`)));
  });
}

const closed = (ws) => ws.readyState === WebSocket.CLOSED;

/** Waits until the daemon has no WebSocket open and its fd count is back to `fds` (or less). */
async function settled(fds, what) {
  await waitFor(async () => (await wsStats()).open === 0, { timeout: 10000 * SLOW, what: `no WebSocket open after ${what}` });
  await waitFor(() => fdCount(d.pid) <= fds, {
    timeout: 10000 * SLOW, what: `the daemon's fds back to ${fds} after ${what} (now ${fdCount(d.pid)})`,
  });
}

test(`${WAVE} concurrent sockets in one room: one broadcast reaches every one, once`, async () => {
  const room = uniqueRoom('bcast');
  const fds0 = fdCount(d.pid);
  const t0 = Date.now();
  const socks = await Promise.all(Array.from({ length: WAVE }, (_, i) => connect(room, users[i % USERS])));
  const openMs = Date.now() - t0;
  assert.equal((await wsStats()).open, WAVE);
  // (fds0 may have counted a connection of the registrations still closing)
  assert.ok(fdCount(d.pid) >= fds0 + WAVE - 2, `fds ${fdCount(d.pid)} with ${WAVE} sockets open (was ${fds0})`);
  const sender = socks[0];
  const t1 = Date.now();
  sender.send(JSON.stringify({ type: 'message', text: 'to all 300' }));
  await waitFor(() => socks.every((s) => s.events.some((e) => e.type === 'message')), {
    timeout: 5000 * SLOW, what: `the broadcast at all ${WAVE} sockets (have ${socks.filter((s) => s.events.some((e) => e.type === 'message')).length})`,
  });
  const fanMs = Date.now() - t1;
  const ids = new Set(socks.flatMap((s) => s.events.filter((e) => e.type === 'message').map((e) => e.id)));
  assert.equal(ids.size, 1);
  for (const s of socks) assert.equal(s.events.filter((e) => e.type === 'message').length, 1);
  for (const s of socks) s.close(1000);
  await waitFor(() => socks.every(closed), { timeout: 5000 * SLOW, what: 'every socket closed' });
  assert.ok(socks.every((s) => s.closeCode === 1000), `close codes ${[...new Set(socks.map((s) => s.closeCode))]}`);
  await settled(fds0, 'closing the broadcast sockets');
  process.stderr.write(`# ${WAVE} sockets opened in ${openMs} ms; one message reached all in ${fanMs} ms\n`);
});

/** One wave: WAVE sockets over 10 rooms, a third send a message, then they end four ways. */
async function wave(n) {
  const rooms = Array.from({ length: 10 }, () => uniqueRoom(`w${n}`));
  const socks = await Promise.all(Array.from({ length: WAVE }, (_, i) => connect(rooms[i % 10], users[i % USERS])));
  // half-open handshakes: a request cut off half-way, and a connection that says nothing
  const stubs = Array.from({ length: 20 }, (_, i) => {
    const s = net.connect({ host: '127.0.0.1', port: d.port });
    s.on('error', () => {});
    if (i % 2 === 0) s.on('connect', () => s.write(`GET /api/rooms/${rooms[0]}/ws?token=${users[0].token} HTTP/1.1\r\nUpgrade: webso`));
    return s;
  });
  const senders = socks.filter((_, i) => i % 3 === 0);
  for (const [i, s] of senders.entries()) s.send(JSON.stringify({ type: 'message', text: `wave ${n} #${i}` }));
  for (const s of socks.filter((_, i) => i % 3 === 1)) s.send(JSON.stringify({ type: 'typing' }));
  await waitFor(() => senders.every((s) => s.events.some((e) => e.type === 'ack')), {
    timeout: 10000 * SLOW, what: `acks for ${senders.length} senders in wave ${n}`,
  });
  await sleep(50);
  for (const [i, s] of socks.entries()) {
    if (i % 4 === 0) s.close(1000);                       // close handshake
    else if (i % 4 === 1) s.terminate();                  // reset, no close frame
    else if (i % 4 === 2) s._socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69])); // unmasked: 1002
    else s._socket.end();                                 // EOF without a close frame
  }
  for (const s of stubs) s.destroy();
  await waitFor(() => socks.every(closed), { timeout: 10000 * SLOW, what: `every socket of wave ${n} closed (${socks.filter((s) => !closed(s)).length} left)` });
  const codes = socks.filter((_, i) => i % 4 === 2).map((s) => s.closeCode);
  assert.ok(codes.every((c) => c === 1002), `unmasked frames got close codes ${[...new Set(codes)]}`);
}

test(`churn: waves of ${WAVE} sockets opened, used and closed four ways leak no fd and no memory`, async () => {
  const fds0 = fdCount(d.pid);
  // warm-up: the allocator, the Redis pipeline and the daemon's bounded
  // caches (tokens, presence, rate buckets) reach their working size; the
  // growth after it does not depend on the number of waves (3 or 12 waves
  // measured alike), as it would with a leak
  for (const n of [-4, -3, -2, -1]) {
    await wave(n);
    await settled(fds0, `warm-up wave ${n}`);
  }
  const rss0 = rssKb(d.pid);
  const waves = 6;
  const t0 = Date.now();
  const perWave = [];
  let before = rss0;
  for (let n = 1; n <= waves; n++) {
    await wave(n);
    await settled(fds0, `wave ${n}`);
    const now = rssKb(d.pid);
    perWave.push(now - before);
    before = now;
  }

  const rss1 = rssKb(d.pid);
  const fds1 = fdCount(d.pid);
  const s = await wsStats();
  process.stderr.write(`# churn: ${waves} waves x ${WAVE} sockets in ${Date.now() - t0} ms; fds ${fds0} -> ${fds1}; ` +
    `VmRSS ${rss0} -> ${rss1} kB (${rss1 - rss0 >= 0 ? '+' : ''}${rss1 - rss0}; waves ${perWave.join(', ')}); stats ${JSON.stringify(s)}\n`);
  assert.equal(s.open, 0);
  assert.ok(fds1 <= fds0, `fds ${fds0} -> ${fds1}`);
  if (fs.readFileSync(`/proc/${d.pid}/maps`, 'utf8').includes('libasan')) {
    // AddressSanitizer keeps freed memory in quarantine: RSS says nothing
    // there, and LeakSanitizer reports leaks when the daemon exits instead
    process.stderr.write('# churn: AddressSanitizer build, VmRSS not compared\n');
  } else {
    // The allocator moves RSS by up to 2 MB from one wave to the next
    // either way (seen: +2052 then -2112), so RSS catches only a leak of
    // more than 2.3 kB a socket (1800 sockets, 4 MB); the exact check of
    // this file is the sanitizer pass of CI, where LeakSanitizer reports
    // what the daemon still holds when it exits.
    assert.ok(rss1 - rss0 < 4096, `VmRSS grew ${rss1 - rss0} kB over ${waves} waves of ${WAVE} (waves: ${perWave.join(', ')} kB)`);
  }
  assert.equal(open.size, 0);
  // Last test of the file: stop the daemon and read its exit status, which
  // LeakSanitizer (the sanitizer pass) turns non-zero if anything leaked.
  const status = await d.stop();
  assert.equal(status, 0, `crosstalkd's exit after SIGTERM: ${status}${d.logs ? `\n${String(d.logs()).slice(-3000)}` : ''}`);
});
