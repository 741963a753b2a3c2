// flush.test.mjs - issue 14, item 1: SSE and WebSocket events are written
// once per loop turn straight to the socket, and a socket's write event is
// armed only when the socket would block. A reader that stops long enough
// for the kernel's buffers to fill (so the daemon met EAGAIN and holds
// bytes itself, checked with `ss`) still gets every message once, in
// order, when it reads again; a reader beside it is not held up.
// client_buffer_limit is raised (64 MiB) so the stalled readers are not
// dropped: the drop at the shipped limit is limits.test.mjs's and
// ws.test.mjs's. Bounded: at most 400 messages of 48 KiB.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import {
  RELAXED, bearer, cleanup, compareIds, register, sendOk, sseOpen, startDaemon, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const LIMIT = 64 * 1024 * 1024;
const TEXT = 48 * 1024;

let d;
let user;
before(async () => {
  const redis = await startRedis();
  d = await startDaemon({
    redisUrl: redis.url,
    config: { ...RELAXED, client_buffer_limit: LIMIT, max_message_bytes: 65536, max_body_bytes: 262144 },
  });
  user = await register(d.url, uniqueName('flush'));
});
after(cleanup);

/** A raw client that stops reading once the head is in; `bytes` counts the body received. */
function stalled(port, request) {
  const sock = net.connect({ host: '127.0.0.1', port });
  const c = { sock, raw: Buffer.alloc(0), ended: false, paused: false };
  sock.on('connect', () => sock.write(request));
  sock.on('data', (b) => {
    c.raw = Buffer.concat([c.raw, b]);
    if (!c.paused && c.raw.includes('\r\n\r\n')) {
      c.paused = true;
      sock.pause();
    }
  });
  for (const e of ['end', 'close', 'error']) sock.on(e, () => { c.ended = true; });
  c.body = () => c.raw.subarray(c.raw.indexOf('\r\n\r\n') + 4);
  return c;
}

/** Message ids in an HTTP/1.0 (not chunked) SSE body. */
function sseIds(body) {
  return body.toString('utf8').split('\n\n').filter((b) => /^event: message$/m.test(b)).map((b) => /^id: (.*)$/m.exec(b)[1]);
}

/** Message ids in the server's WebSocket frames (unmasked). */
function wsIds(body) {
  const ids = [];
  for (let p = 0; p + 2 <= body.length;) {
    let n = body[p + 1] & 0x7f;
    let off = 2;
    if (n === 126) { n = body.readUInt16BE(p + 2); off = 4; } else if (n === 127) { n = Number(body.readBigUInt64BE(p + 2)); off = 10; }
    if (body.length < p + off + n) break;
    if ((body[p] & 0x0f) === 1) {
      const e = JSON.parse(body.subarray(p + off, p + off + n));
      if (e.type === 'message') ids.push(e.id);
    }
    p += off + n;
  }
  return ids;
}

/** Bytes the kernel holds on the way to the client at `clientPort`: the daemon's send queue and the client's receive queue. */
function kernelHeld(daemonPort, clientPort) {
  const q = (filter) => {
    const r = spawnSync('ss', ['-tnH', 'state', 'established', filter], { encoding: 'utf8' });
    assert.equal(r.status, 0, `ss ${filter}: ${r.stderr}`);
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/).map(Number));
  };
  const [srv] = q(`( sport = :${daemonPort} and dport = :${clientPort} )`);
  const [cli] = q(`( sport = :${clientPort} and dport = :${daemonPort} )`);
  assert.ok(srv && cli, `ss lists no connection between ${daemonPort} and ${clientPort}`);
  return srv[1] + cli[0]; // Send-Q, Recv-Q
}

test('readers that stall past the kernel buffers (EAGAIN) get every message once and in order when they read again', async () => {
  const room = uniqueRoom('flush');
  const sse = stalled(d.port, `GET /api/rooms/${room}/events HTTP/1.0\r\nAccept: text/event-stream\r\n` +
    `Authorization: Bearer ${user.token}\r\n\r\n`);
  const ws = stalled(d.port, `GET /api/rooms/${room}/ws?token=${user.token} HTTP/1.1\r\nHost: 127.0.0.1:${d.port}\r\n` +
    `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
    `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
  const live = await sseOpen(`${d.url}/api/rooms/${room}/events`, { headers: bearer(user.token), timeout: 10000 * SLOW });
  await waitFor(() => sse.raw.includes('\r\n\r\n') && ws.raw.includes('\r\n\r\n'),
    { timeout: 5000 * SLOW, what: 'the heads of both stalled readers' });
  assert.match(sse.raw.toString('latin1'), /^HTTP\/1\.[01] 200/);
  assert.match(ws.raw.toString('latin1'), /^HTTP\/1\.1 101/);
  // the live reader sees what the others are sent (they joined before it)
  await sendOk(d.url, room, user, 'first');
  await live.waitEvents(1, { filter: (e) => e.event === 'message', what: 'the first message on the live reader' });

  // eight at a time, so that one Redis read fans several events out; on
  // until each stalled reader has at least 2 MB in the daemon's own buffer
  // past what the kernel holds for it (at most 400 messages, 19 MB)
  const ids = [];
  const t0 = Date.now();
  let heldSse = 0;
  let heldWs = 0;
  let total = 0;
  while (ids.length < 400) {
    const batch = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      sendOk(d.url, room, user, `${String(ids.length + i).padStart(4, '0')} ${'x'.repeat(TEXT)}`)));
    ids.push(...batch.map((m) => m.id));
    total += 8 * TEXT;
    await live.waitEvents(ids.length + 1, { filter: (e) => e.event === 'message', timeout: 10000 * SLOW, what: `${ids.length + 1} messages on the live reader` });
    heldSse = total - kernelHeld(d.port, sse.sock.localPort) - sse.body().length;
    heldWs = total - kernelHeld(d.port, ws.sock.localPort) - ws.body().length;
    if (heldSse > 2e6 && heldWs > 2e6) break;
  }
  const sendMs = Date.now() - t0;
  assert.ok(heldSse > 2e6 && heldWs > 2e6,
    `after ${ids.length} messages (${total} bytes of text) the kernel still took nearly everything: ` +
    `the daemon holds about ${heldSse} bytes for SSE, ${heldWs} for WebSocket; no EAGAIN was met`);
  assert.equal(sse.ended || ws.ended, false, 'a stalled reader was dropped under a 64 MiB client_buffer_limit');
  ids.sort(compareIds);

  sse.sock.resume();
  ws.sock.resume();
  const want = [...live.messages().map((e) => e.id)];
  assert.deepEqual(want.slice(1), ids, 'the live reader got the messages in the order of their ids');
  const t1 = Date.now();
  await waitFor(() => sseIds(sse.body()).length >= want.length && wsIds(ws.body()).length >= want.length,
    { timeout: 30000 * SLOW, what: `${want.length} messages on both stalled readers (SSE ${sseIds(sse.body()).length}, WebSocket ${wsIds(ws.body()).length})` });
  assert.deepEqual(sseIds(sse.body()), want, 'SSE: every message once, in order');
  assert.deepEqual(wsIds(ws.body()), want, 'WebSocket: every message once, in order');
  process.stderr.write(`# flush: ${ids.length} messages of ${TEXT} bytes in ${sendMs} ms; the daemon held ` +
    `${heldSse} (SSE) and ${heldWs} (WebSocket) bytes past the kernel; drained in ${Date.now() - t1} ms\n`);
  sse.sock.destroy();
  ws.sock.destroy();
  live.close();
});
