// defaults.test.mjs - a chat session as a user has it: the whole stack (two
// crosstalkd, the FastCGI pool, nginx, one Redis) on the shipped defaults,
// for longer than every timeout and interval involved: header_timeout (10 s),
// the long poll's timeout (25 s), presence_ttl (30 s), ws_ping_interval +
// ws_pong_timeout (30 + 10 s) and the SSE heartbeat (15 s). Nothing here
// shortens a timing knob: tests elsewhere that do so to run fast have this
// file as their twin.
//
// Clients of all four transports follow one room through nginx while
// messages are sent over REST and over one WebSocket with a quiet period of
// 45 s between them. At the end every client must hold exactly the stored
// messages, once each, in order; no stream may have been cut (no reconnect);
// every send must have been acknowledged; presence must still list the
// users whose streams stayed open.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import fs from 'node:fs';

import {
  bearer, cleanup, http, redisCommand, register, sleep, startDaemon, startFcgi, startNginx, startRedis,
  uniqueName, uniqueRoom, waitFor, within,
} from './harness.mjs';
import { startLoad } from './loadgen.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const QUIET_MS = 45000; // longer than header_timeout, the long poll and presence_ttl
const SESSION_MS = 90000; // longer than two pings and a pong timeout

let redis;
let d1;
let d2;
let fcgi;
let nginx;

before(async () => {
  redis = await startRedis();
  // only where to listen and where Redis is: every other key as shipped
  d1 = await startDaemon({ redisUrl: redis.url });
  d2 = await startDaemon({ redisUrl: redis.url });
  fcgi = await startFcgi({ redisUrl: redis.url, children: 2 });
  nginx = await startNginx({ daemons: [d1, d2], fcgiSocket: fcgi.socket });
});

after(async () => {
  await fcgi?.stop().catch(() => {});
  await cleanup();
});

const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

/** A WebSocket the test sends on by hand; resolves once open. */
async function openSocket(url) {
  const ws = new WebSocket(url);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  let closed = null;
  ws.on('close', (code, reason) => { closed = { code, reason: reason.toString() }; });
  await within(5000, new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  }), `the WebSocket upgrade of ${url}`);
  return { ws, frames, closed: () => closed };
}

test(`a ${SESSION_MS / 1000} s session on the shipped defaults: nothing lost, nothing cut, quiet sockets still send`, async () => {
  const rm = uniqueRoom('dflt');
  const users = [];
  for (let i = 0; i < 4; i++) users.push(await register(nginx.url, uniqueName('dflt')));
  const [alice, bob] = users;
  const seed = await http('POST', `${nginx.url}/api/rooms/${rm}/messages`, {
    headers: bearer(alice.token), body: { text: 'seed' },
  });
  assert.equal(seed.status, 201, `the seed message: ${seed.status} ${seed.text}`);
  const fdsBefore = [fds(d1.pid), fds(d2.pid)];

  // followers of every transport, through nginx (short polls through the
  // FastCGI pool and through crosstalkd under /d/), resuming as browsers do
  const load = startLoad({
    base: nginx.url, room: rm, users, since: seed.json.id,
    clients: { short: 3, long: 3, sse: 3, ws: 3 },
    shortPrefixes: ['', '/d'], shortIntervalMs: 1000, longTimeoutS: 25,
    restSenders: 0, wsSenders: 0,
  });
  let sock;
  try {
    // a long poll counts as connected once answered: 204 after its 25 s
    await load.ready({ timeout: 40000 });
    sock = await openSocket(`${nginx.url.replace('http', 'ws')}/api/rooms/${rm}/ws?token=${bob.token}`);

    const acked = [];
    const sendRest = async (text) => {
      const r = await http('POST', `${nginx.url}/api/rooms/${rm}/messages`, {
        headers: bearer(alice.token), body: { text },
      });
      assert.equal(r.status, 201, `REST send "${text}": ${r.status} ${r.text}`);
      acked.push(r.json.id);
    };
    const sendWs = async (text) => {
      const n = sock.frames.filter((f) => f.type === 'ack').length;
      sock.ws.send(JSON.stringify({ type: 'message', text }));
      await waitFor(() => sock.frames.filter((f) => f.type === 'ack').length > n || sock.closed(), {
        timeout: 5000, what: `the ack of "${text}" sent on a WebSocket quiet before it`,
      });
      assert.equal(sock.closed(), null, `the quiet WebSocket was closed: ${JSON.stringify(sock.closed())}`);
      acked.push(sock.frames.filter((f) => f.type === 'ack').at(-1).id);
    };

    const t0 = Date.now();
    await sleep(1000);
    await sendRest('rest at 1 s');
    await sendWs('ws at 1 s');
    await sleep(QUIET_MS);
    await sendRest(`rest after ${QUIET_MS / 1000} s of quiet`);
    await sendWs(`ws after ${QUIET_MS / 1000} s of quiet`);
    await sleep(Math.max(0, SESSION_MS - (Date.now() - t0)));
    await sendRest('rest at the end');
    await sendWs('ws at the end');

    const stored = (await redisCommand(redis.port, 'XRANGE', `ct:room:{${rm}}:log`, '-', '+')).map((e) => e[0]);
    const want = stored.slice(1);
    assert.deepEqual([...acked].sort(), [...want].sort(), 'every acknowledged send is stored, and only those');
    await load.settle(want, { timeout: 30000 });
    const problems = load.check(want);
    assert.deepEqual(problems, [], `clients after ${SESSION_MS / 1000} s on the defaults:\n${problems.join('\n')}`);
    const streams = load.clients.filter((c) => c.kind === 'sse' || c.kind === 'ws');
    const cut = streams.filter((c) => c.reconnects > 0);
    assert.deepEqual(cut.map((c) => `${c.name}: ${c.reconnects} reconnects (${c.lastError})`), [],
      'no SSE or WebSocket stream was cut during the session');
    assert.ok(sock.frames.some((f) => f.type === 'message' && f.text === 'rest at the end'),
      'the socket quiet for most of the session received the last message');

    // presence outlives presence_ttl for users whose streams stay open
    const online = await http('GET', `${nginx.url}/api/rooms/${rm}/presence`, { headers: bearer(bob.token) });
    assert.equal(online.status, 200, online.text);
    assert.ok(online.json.online.includes(bob.name),
      `${bob.name} (an open WebSocket) is online after ${SESSION_MS / 1000} s: ${JSON.stringify(online.json)}`);
  } finally {
    sock?.ws.terminate();
    await load.close();
  }
  for (const d of [d1, d2]) {
    const h = await http('GET', `${d.url}/healthz`);
    assert.equal(h.status, 200, `healthz of crosstalkd:${d.port} after the session: ${h.text}`);
  }
  // the clients are gone: so are their descriptors, once nginx has closed
  // the idle upstream connections it keeps (keepalive_timeout 5s)
  await waitFor(() => fds(d1.pid) <= fdsBefore[0] + 4 && fds(d2.pid) <= fdsBefore[1] + 4, {
    timeout: 15000, what: `crosstalkd descriptors back near ${fdsBefore.join(' / ')} (now ${fds(d1.pid)} / ${fds(d2.pid)})`,
  });
});
