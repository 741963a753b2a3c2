// answers.test.mjs - crosstalkd writes a complete answer in the loop turn it
// is made (http_send_reply), and leaves what the socket does not take to
// the connection's write event. On the shipped defaults: pipelined requests on one
// keep-alive connection, to a client that does not read for a while, all
// come back whole and in order (static files, history, polls answered from
// memory and through Redis, errors), the connection stays usable, and a
// client that goes away with its answers unread costs the daemon nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import {
  REPO, bearer, cleanup, http, register, sendOk, sleep, startDaemon, startRedis, uniqueRoom, waitFor, within,
} from './harness.mjs';

const fds = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;
const APP_JS = fs.readFileSync(path.join(REPO, 'www', 'app.js'));

let redis;
let d;

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url });
});

after(cleanup);

/** Parses `n` HTTP/1.1 answers with Content-Length bodies (or none: 204,
 * HEAD) from `buf`; returns them, or null while incomplete. */
function parseAnswers(buf, heads) {
  const out = [];
  let at = 0;
  for (const isHead of heads) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) return null;
    const head = buf.subarray(at, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]);
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    const bodyLen = isHead || status === 204 ? 0 : len;
    if (buf.length < end + 4 + bodyLen) return null;
    out.push({ status, head, body: buf.subarray(end + 4, end + 4 + bodyLen) });
    at = end + 4 + bodyLen;
  }
  if (at !== buf.length) throw new Error(`${buf.length - at} bytes after the last answer: ${buf.subarray(at, at + 200)}`);
  return out;
}

test('pipelined requests to a client that reads late: every answer whole and in order, the connection kept', async () => {
  const user = await register(d.url);
  const room = uniqueRoom('ans');
  const sent = [];
  for (let i = 0; i < 3; i++) sent.push(await sendOk(d.url, room, user, `m${i}`));
  const last = sent[2].id;
  const auth = `Authorization: Bearer ${user.token}\r\n`;
  const kinds = [
    { req: 'GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n', status: 200 },
    { req: 'GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n', status: 200, body: APP_JS },
    { req: `GET /api/rooms/${room}/messages?since=0-0 HTTP/1.1\r\nHost: t\r\n${auth}\r\n`, status: 200, events: 3 },
    { req: `GET /api/rooms/${room}/poll?since=${sent[0].id}&timeout=5 HTTP/1.1\r\nHost: t\r\n${auth}\r\n`, status: 200, events: 2 },
    { req: `GET /api/rooms/${room}/poll?since=${last}&timeout=0 HTTP/1.1\r\nHost: t\r\n${auth}\r\n`, status: 204 },
    { req: 'GET /api/nowhere HTTP/1.1\r\nHost: t\r\n\r\n', status: 404 },
    { req: `GET /api/rooms/${room}/messages?since=nonsense HTTP/1.1\r\nHost: t\r\n${auth}\r\n`, status: 400 },
    { req: 'HEAD /index.html HTTP/1.1\r\nHost: t\r\n\r\n', status: 200, head: true },
    // HEAD on the API: no body either (it came with one, which a client
    // reads as the start of its next answer), its length as GET's
    { req: `HEAD /api/rooms/${room}/messages?since=0-0 HTTP/1.1\r\nHost: t\r\n${auth}\r\n`, status: 200, head: true },
    { req: 'HEAD /api/nowhere HTTP/1.1\r\nHost: t\r\n\r\n', status: 404, head: true },
    { req: `HEAD /api/rooms HTTP/1.1\r\nHost: t\r\n\r\n`, status: 401, head: true },
  ];
  const plan = [];
  for (let i = 0; i < 40; i++) plan.push(kinds[i % kinds.length]);

  const sock = net.connect(d.port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.pause(); // the answers pile up in the socket while we do not read
  sock.write(plan.map((k) => k.req).join(''));
  await sleep(700);
  const chunks = [];
  sock.on('data', (c) => chunks.push(c));
  sock.resume();
  const answers = await within(15000, (async () => {
    for (;;) {
      const got = parseAnswers(Buffer.concat(chunks), plan.map((k) => !!k.head));
      if (got) return got;
      await sleep(20);
    }
  })(), `${plan.length} pipelined answers`);
  answers.forEach((a, i) => {
    const k = plan[i];
    const what = `answer ${i} to ${k.req.split('\r\n')[0]}: ${a.head}\n${a.body.subarray(0, 300)}`;
    assert.equal(a.status, k.status, what);
    if (k.body) assert.ok(a.body.equals(k.body), `the whole file, byte for byte (${a.body.length} of ${k.body.length}): ${what}`);
    if (k.events !== undefined) {
      const j = JSON.parse(a.body.toString());
      assert.equal(j.events.length, k.events, what);
      assert.equal(j.events.at(-1).id, last, what);
    }
    if (k.head) assert.ok(Number(/\r\ncontent-length: *(\d+)/i.exec(a.head)?.[1]) > 0, `the length GET would answer: ${what}`);
    else if (k.status >= 400) assert.match(JSON.parse(a.body.toString()).error, /^[a-z_]+$/, what);
  });
  // the same connection takes one more request
  chunks.length = 0;
  sock.write('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n');
  const more = await within(5000, (async () => {
    for (;;) {
      const got = parseAnswers(Buffer.concat(chunks), [false]);
      if (got) return got;
      await sleep(20);
    }
  })(), 'an answer on the kept connection');
  assert.equal(more[0].status, 200, more[0].head);
  sock.destroy();
});

test('answers larger than the socket buffers, to a client that reads late: none cut short', async () => {
  // 1,200 x app.js (about 48 MB) is more than loopback's socket buffers hold (up to 32 MiB + 4 MiB here):
  // answers are written in part, and the rest must follow when the client
  // reads again, the last one included
  const n = 1200;
  const sock = net.connect(d.port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.pause();
  sock.write('GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n'.repeat(n));
  await sleep(1000);
  const chunks = [];
  let bytes = 0;
  sock.on('data', (c) => { chunks.push(c); bytes += c.length; });
  sock.resume();
  const answers = await within(20000, (async () => {
    for (;;) {
      if (bytes >= n * APP_JS.length) {
        const got = parseAnswers(Buffer.concat(chunks), new Array(n).fill(false));
        if (got) return got;
      }
      await sleep(20);
    }
  })(), `${n} answers of ${APP_JS.length} bytes (got ${bytes} bytes)`);
  answers.forEach((a, i) => {
    assert.equal(a.status, 200, `answer ${i}: ${a.head}`);
    assert.ok(a.body.equals(APP_JS), `answer ${i}: the whole file (${a.body.length} of ${APP_JS.length} bytes)`);
  });
  sock.destroy();
});

test('clients gone before their answers are read cost nothing: the daemon answers others, its descriptors come back', async () => {
  const before0 = fds(d.pid);
  const user = await register(d.url);
  const room = uniqueRoom('gone');
  await sendOk(d.url, room, user, 'x');
  const reqs = [];
  for (let i = 0; i < 20; i++) {
    reqs.push('GET /app.js HTTP/1.1\r\nHost: t\r\n\r\n');
    reqs.push(`GET /api/rooms/${room}/messages?since=0-0 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${user.token}\r\n\r\n`);
  }
  for (let c = 0; c < 30; c++) {
    const sock = net.connect(d.port, '127.0.0.1');
    await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    sock.write(reqs.join(''));
    if (c % 2) sock.resetAndDestroy(); else sock.destroy();
  }
  const h = await http('GET', `${d.url}/api/rooms/${room}/messages?since=0-0`, { headers: bearer(user.token) });
  assert.equal(h.status, 200, h.text);
  assert.equal(h.json.events.length, 1, h.text);
  await waitFor(() => fds(d.pid) <= before0 + 1, {
    timeout: 15000, what: `crosstalkd's descriptors back near ${before0} (now ${fds(d.pid)})`,
  });
  assert.equal((await http('GET', `${d.url}/healthz`)).status, 200);
});
