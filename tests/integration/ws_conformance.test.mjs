// ws_conformance.test.mjs - RFC 6455 conformance of crosstalkd's WebSocket
// endpoint over raw sockets: the handshake, then the Autobahn testsuite's
// sections 1 (framing), 2 (ping/pong), 3 (reserved bits), 4 (opcodes),
// 5 (fragmentation), 6 (UTF-8), 7 (close handling) and 9 (limits, in small
// fast versions), adapted to a chat server that speaks JSON text: where
// Autobahn expects an echo we expect the server's answer to a JSON frame (an
// ack or an error frame), and we check the exact bytes of every close frame.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import {
  RELAXED, cleanup, history, rawHttp, register, sleep, startDaemon, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;
const OP = { CONT: 0, TEXT: 1, BIN: 2, CLOSE: 8, PING: 9, PONG: 10 };
// Large enough for 64-bit frame lengths both ways: a frame may carry
// 6 * 12000 + 1024 bytes.
const CONFIG = { ...RELAXED, max_message_bytes: 12000 };
// For section 9: frames over 6 * 100 + 1024 bytes are refused.
const SMALL = { ...RELAXED, max_message_bytes: 100 };
const SMALL_LIMIT = 6 * 100 + 1024;

let redis;
let d;
let small;
let alice;
const sockets = new Set();

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url, config: CONFIG });
  small = await startDaemon({ redisUrl: redis.url, config: SMALL });
  alice = await register(d.url, uniqueName('alice'));
});
after(async () => {
  for (const s of sockets) s.destroy();
  await cleanup();
});

// ------------------------------------------------------------- a raw client

/** One client frame; masked unless told otherwise. */
function frame(opcode, payload = '', { fin = true, rsv = 0, mask = true, len } = {}) {
  const p = Buffer.from(payload);
  const n = len ?? p.length;
  let head;
  if (n < 126) {
    head = Buffer.from([0, n]);
  } else if (n < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([head, p]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const m = Buffer.from(p);
  for (let i = 0; i < m.length; i++) m[i] ^= key[i % 4];
  return Buffer.concat([head, key, m]);
}

const text = (s, opts) => frame(OP.TEXT, s, opts);
const closeFrame = (code, reason = '') => {
  if (code === undefined) return frame(OP.CLOSE, '');
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return frame(OP.CLOSE, Buffer.concat([b, Buffer.from(reason)]));
};
/** {"type":"message","text":...} padded with blanks to exactly `size` bytes. */
function messageJson(t, size) {
  const j = JSON.stringify({ type: 'message', text: t });
  return size === undefined ? j : j + ' '.repeat(size - Buffer.byteLength(j));
}

const describe = (f) => `${f.opcode}${f.fin ? '' : '(more)'}:` +
  (f.opcode === OP.CLOSE ? f.payload.toString('hex') : JSON.stringify(f.payload.toString('utf8').slice(0, 80)));

/**
 * Opens a WebSocket on daemon `dm` by hand and parses what the server sends.
 * Resolves with {sock, head, frames, ended, send, chop, waitFrame, waitJson,
 * expectClose, expectAlive, destroy}.
 */
function open(dm = d, { room = uniqueRoom(), user = alice, headers = {}, key } = {}) {
  const wsKey = key ?? crypto.randomBytes(16).toString('base64');
  const path = `/api/rooms/${room}/ws?token=${user.token}`;
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const sock = net.connect({ host: '127.0.0.1', port: dm.port });
    sockets.add(sock);
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const c = {
      sock, room, head: '', frames: [], ended: false, raw: Buffer.alloc(0), listeners: new Set(),
    };
    const notify = () => { for (const f of [...c.listeners]) f(); };
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no 101 for ${path} within ${Date.now() - t0} ms; got ${JSON.stringify(buf.toString('latin1').slice(0, 300))}`));
    }, 5000 * SLOW);
    const parse = () => {
      for (;;) {
        if (buf.length < 2) return;
        let n = buf[1] & 0x7f;
        let off = 2;
        if (n === 126) {
          if (buf.length < 4) return;
          n = buf.readUInt16BE(2);
          off = 4;
        } else if (n === 127) {
          if (buf.length < 10) return;
          n = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        const masked = (buf[1] & 0x80) !== 0;
        if (masked) off += 4;
        if (buf.length < off + n) return;
        c.frames.push({
          fin: (buf[0] & 0x80) !== 0, rsv: (buf[0] >> 4) & 7, opcode: buf[0] & 0x0f, masked,
          lenField: buf[1] & 0x7f, payload: buf.subarray(off, off + n), raw: buf.subarray(0, off + n), at: Date.now(),
        });
        buf = buf.subarray(off + n);
      }
    };
    sock.on('connect', () => {
      const h = {
        Host: `127.0.0.1:${dm.port}`, Upgrade: 'websocket', Connection: 'Upgrade',
        'Sec-WebSocket-Key': wsKey, 'Sec-WebSocket-Version': '13', ...headers,
      };
      sock.write(`GET ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    });
    sock.on('data', (data) => {
      buf = Buffer.concat([buf, data]);
      if (!upgraded) {
        const he = buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        c.head = buf.toString('latin1', 0, he);
        buf = buf.subarray(he + 4);
        upgraded = true;
        clearTimeout(timer);
        if (!/^HTTP\/1\.1 101 /.test(c.head)) {
          sock.destroy();
          reject(new Error(`expected 101 for ${path}, got ${JSON.stringify(c.head + '\r\n\r\n' + buf.toString())}`));
          return;
        }
        resolve(c);
      }
      c.raw = Buffer.concat([c.raw, data]);
      parse();
      notify();
    });
    sock.on('end', () => { c.ended = true; notify(); });
    sock.on('close', () => { c.ended = true; notify(); });
    sock.on('error', () => { c.ended = true; notify(); });

    c.send = (...bufs) => new Promise((res) => sock.write(Buffer.concat(bufs), () => res()));
    /** Writes `data` in pieces of `size` bytes, each its own write. */
    c.chop = async (data, size) => {
      for (let i = 0; i < data.length; i += size) {
        await c.send(data.subarray(i, i + size));
        await new Promise((res) => setImmediate(res));
      }
    };
    c.until = (pred, what, ms = 3000 * SLOW) => new Promise((res, rej) => {
      const t1 = Date.now();
      const check = () => {
        const v = pred();
        if (v) { c.listeners.delete(check); clearTimeout(tm); res(v); }
      };
      const tm = setTimeout(() => {
        c.listeners.delete(check);
        rej(new Error(`timed out after ${Date.now() - t1} ms waiting for ${what}; frames so far: ` +
          `[${c.frames.map(describe).join(', ')}], ended=${c.ended}`));
      }, ms);
      c.listeners.add(check);
      check();
    });
    c.json = () => c.frames.filter((f) => f.opcode === OP.TEXT).map((f) => JSON.parse(f.payload.toString('utf8')));
    /** Waits for the n-th (1-based) JSON frame matching `pred`. */
    c.waitJson = (pred, what, n = 1) => c.until(() => c.json().filter(pred)[n - 1], what);
    c.acks = () => c.json().filter((j) => j.type === 'ack');
    c.errors = () => c.json().filter((j) => j.type === 'error');
    /**
     * Waits for the server's close frame and the end of the stream; asserts
     * the close code (and the exact frame bytes when `bytes` is given), that
     * the frame is the last one, final, unmasked and 125 bytes at most.
     */
    c.expectClose = async (code, { bytes, what = `close ${code}`, ms } = {}) => {
      const t1 = Date.now();
      const f = await c.until(() => c.frames.find((x) => x.opcode === OP.CLOSE), what, ms);
      await c.until(() => c.ended, `the server to end the TCP stream after its close frame (${what})`, ms);
      assert.ok(f.fin && f.rsv === 0 && !f.masked && f.payload.length <= 125, `malformed close frame ${f.raw.toString('hex')}`);
      assert.equal(c.frames.at(-1), f, `frames after the close frame: ${c.frames.map(describe).join(', ')}`);
      if (code === null) {
        assert.equal(f.payload.length, 0, `expected an empty close frame, got ${f.raw.toString('hex')}`);
      } else {
        assert.ok(f.payload.length >= 2, `close frame without a code: ${f.raw.toString('hex')}`);
        assert.equal(f.payload.readUInt16BE(0), code, `close frame ${f.raw.toString('hex')} (reason ${JSON.stringify(f.payload.subarray(2).toString())})`);
      }
      if (bytes) assert.equal(f.raw.toString('hex'), Buffer.from(bytes).toString('hex'));
      return { frame: f, ms: Date.now() - t1 };
    };
    /** Proves the connection still works: a ping with a fresh payload comes back as a pong. */
    c.expectAlive = async () => {
      const tag = crypto.randomBytes(8).toString('hex');
      await c.send(frame(OP.PING, tag));
      await c.until(() => c.frames.find((f) => f.opcode === OP.PONG && f.payload.toString() === tag), `the pong for ping ${tag}`);
      assert.ok(!c.frames.some((f) => f.opcode === OP.CLOSE), `unexpected close: ${c.frames.map(describe).join(', ')}`);
    };
    c.destroy = () => { sock.destroy(); sockets.delete(sock); };
  });
}

/** Opens, runs fn(c), and always destroys the socket. */
async function withWs(fn, opts) {
  const c = await open(opts?.dm, opts);
  try {
    return await fn(c);
  } finally {
    c.destroy();
  }
}

const closeBytes = (code, reason = '') => {
  const r = Buffer.from(reason);
  return Buffer.concat([Buffer.from([0x88, 2 + r.length, code >> 8, code & 0xff]), r]);
};

// ------------------------------------------------------------- handshake

test('handshake: 101 with the RFC 6455 accept value, no extension or subprotocol taken', async () => {
  await withWs(async (c) => {
    const lines = c.head.split('\r\n');
    assert.equal(lines[0], 'HTTP/1.1 101 Switching Protocols');
    const h = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    assert.equal(h['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    assert.match(h.upgrade, /^websocket$/i);
    assert.match(h.connection, /^upgrade$/i);
    assert.equal(h['sec-websocket-extensions'], undefined);
    assert.equal(h['sec-websocket-protocol'], undefined);
    await c.expectAlive();
  }, { key: 'dGhlIHNhbXBsZSBub25jZQ==', headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate', 'Sec-WebSocket-Protocol': 'chat' } });
});

test('handshake refusals: plain GET 426, version 8 426, bad key or two keys 400, no Connection: Upgrade 400, HTTP/1.0 400, no token 401', async () => {
  const room = uniqueRoom();
  const req = (headers, q = `?token=${alice.token}`, version = '1.1') => rawHttp(d.port,
    `GET /api/rooms/${room}/ws${q} HTTP/${version}\r\nHost: 127.0.0.1:${d.port}\r\n${headers}\r\n`);
  const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
  const up = 'Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n';
  const v13 = 'Sec-WebSocket-Version: 13\r\n';
  const cases = [
    [`${v13}${key}`, 426, 'no Upgrade header'],
    [`Upgrade: websocket\r\nConnection: keep-alive\r\n${v13}${key}`, 400, 'no upgrade in Connection'],
    [`${up}Sec-WebSocket-Version: 8\r\n${key}`, 426, 'version 8'],
    [`${up}${v13}Sec-WebSocket-Key: c2hvcnQ=\r\n`, 400, 'a key of 5 bytes'],
    [`${up}${v13}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!\r\n`, 400, 'a key that is not base64'],
    [`${up}${v13}`, 400, 'no key'],
    // which one would the accept answer? (found in a trial: it upgraded)
    [`${up}${v13}${key}Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n`, 400, 'two keys'],
    // RFC 6455 4.1 asks HTTP/1.1, and HTTP/1.0 has no Upgrade (RFC 9110 7.8)
    [`${up}${v13}${key}`, 400, 'HTTP/1.0', '1.0'],
  ];
  for (const [headers, status, what, version] of cases) {
    const r = await req(headers, undefined, version);
    assert.equal(r.status, status, `${what}: ${r.raw.slice(0, 300)}`);
    assert.equal(r.json?.error, 'bad_request', `${what}: ${r.text}`);
    assert.ok(!/sec-websocket-accept/i.test(r.raw), `${what}: an accept header in ${r.raw.slice(0, 300)}`);
    if (what === 'version 8') assert.equal(r.headers['sec-websocket-version'], '13');
    if (what === 'no Upgrade header') assert.match(r.headers.upgrade ?? '', /websocket/i);
    // the status line's reason (libevent's evhttp said "Client Error" for a 426)
    const line = r.raw.split('\r\n')[0];
    assert.equal(line, status === 426 ? 'HTTP/1.1 426 Upgrade Required' : 'HTTP/1.1 400 Bad Request', what);
  }
  for (const q of ['', '?token=nope']) {
    const r = await req(`${up}${v13}${key}`, q);
    assert.equal(r.status, 401, r.raw.slice(0, 300));
    assert.equal(r.json?.error, 'unauthorized');
  }
  const r = await req(`${up}${v13}${key}`, `?token=${alice.token}&since=banana`);
  assert.equal(r.status, 400, r.raw.slice(0, 300));
});

test('frames sent right behind the upgrade request, in the same write, are read', async () => {
  const room = uniqueRoom();
  const sock = net.connect({ host: '127.0.0.1', port: d.port });
  sockets.add(sock);
  let got = Buffer.alloc(0);
  sock.on('data', (x) => { got = Buffer.concat([got, x]); });
  sock.on('error', () => {});
  // a fresh user: its token is not in the daemon's cache, so the check goes to Redis first
  const u = await register(d.url, uniqueName('eager'));
  sock.write(Buffer.concat([
    Buffer.from(`GET /api/rooms/${room}/ws?token=${u.token} HTTP/1.1\r\nHost: 127.0.0.1:${d.port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`),
    frame(OP.PING, 'eager'),
  ]));
  try {
    await waitFor(() => got.includes(Buffer.from([0x8a, 5, ...Buffer.from('eager')])), {
      timeout: 3000 * SLOW, what: `the pong after the 101 (got ${JSON.stringify(got.toString('latin1').slice(-200))})`,
    });
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 101 /);
  } finally {
    sock.destroy();
  }
});

// ------------------------------------------------------------- 1 framing

test('1.1 text frames of 0, 125, 126, 127, 128, 65535 and 65536 bytes, and 65536 in chops of 997', async () => {
  await withWs(async (c) => {
    await c.send(text(''));
    await c.waitJson((j) => j.type === 'error' && j.error === 'bad_json', 'bad_json for an empty text frame');
    const sizes = [125, 126, 127, 128, 65535, 65536];
    for (const [i, n] of sizes.entries()) {
      await c.send(text(messageJson(`size ${n}`, n)));
      await c.waitJson((j) => j.type === 'ack', `the ack for a ${n} byte frame`, i + 1);
    }
    await c.chop(text(messageJson('chopped', 65536)), 997);
    await c.waitJson((j) => j.type === 'ack', 'the ack for a 65536 byte frame sent in chops of 997', sizes.length + 1);
    const got = c.json().filter((j) => j.type === 'message').map((j) => j.text);
    await c.until(() => c.json().filter((j) => j.type === 'message').length === sizes.length + 1, 'every message back from the bus');
    assert.deepEqual(c.json().filter((j) => j.type === 'message').map((j) => j.text),
      [...sizes.map((n) => `size ${n}`), 'chopped'], `got ${got}`);
  });
});

test('1.1 server frames: unmasked, final, 7-bit, 16-bit and 64-bit lengths in their shortest form', async () => {
  await withWs(async (c) => {
    const texts = ['x'.repeat(300), '\u0001'.repeat(12000)]; // the last is 72000+ bytes of JSON
    for (const t of texts) await c.send(text(messageJson(t)));
    await c.until(() => c.json().filter((j) => j.type === 'message').length === 2, 'two messages back');
    // an ack is short: a 7-bit length
    const ack = c.frames.find((f) => f.opcode === OP.TEXT && JSON.parse(f.payload).type === 'ack');
    const frames = [ack, ...c.frames.filter((f) => f.opcode === OP.TEXT && JSON.parse(f.payload).type === 'message')];
    assert.deepEqual(frames.map((f) => f.lenField), [ack.payload.length, 126, 127]);
    assert.ok(ack.payload.length < 126);
    for (const f of frames) {
      assert.ok(f.fin && !f.masked && f.rsv === 0, `frame header ${f.raw.subarray(0, 10).toString('hex')}`);
      assert.equal(f.raw[0], 0x81);
    }
    assert.equal(frames[1].raw.readUInt16BE(2), frames[1].payload.length);
    assert.equal(Number(frames[2].raw.readBigUInt64BE(2)), frames[2].payload.length);
    assert.ok(frames[2].payload.length > 65535);
    assert.equal(JSON.parse(frames[2].payload).text, texts[1]);
  });
});

test('1.2 a binary frame is refused with close 1003 (we speak JSON text)', async () => {
  await withWs(async (c) => {
    await c.send(frame(OP.BIN, Buffer.from([0, 1, 2, 0xff])));
    await c.expectClose(1003);
  });
});

// ------------------------------------------------------------- 2 ping/pong

test('2.1-2.4 pings with no, text, binary and 125-byte payloads get pongs with the same payload', async () => {
  await withWs(async (c) => {
    const payloads = [Buffer.alloc(0), Buffer.from('Hello, world!'), Buffer.from([0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0]), Buffer.alloc(125, 0xfe)];
    for (const p of payloads) await c.send(frame(OP.PING, p));
    const pongs = await c.until(() => {
      const ps = c.frames.filter((f) => f.opcode === OP.PONG);
      return ps.length === payloads.length && ps;
    }, `${payloads.length} pongs`);
    pongs.forEach((f, i) => {
      assert.equal(f.payload.toString('hex'), payloads[i].toString('hex'));
      assert.ok(f.fin && !f.masked);
    });
  });
});

test('2.5 a ping with 126 bytes is a protocol error: close 1002', async () => {
  await withWs(async (c) => {
    await c.send(frame(OP.PING, Buffer.alloc(126, 0xfe)));
    await c.expectClose(1002);
    assert.ok(!c.frames.some((f) => f.opcode === OP.PONG));
  });
});

test('2.6 a 125-byte ping sent one byte at a time is answered', async () => {
  await withWs(async (c) => {
    const p = Buffer.alloc(125, 0x61);
    await c.chop(frame(OP.PING, p), 1);
    await c.until(() => c.frames.find((f) => f.opcode === OP.PONG && f.payload.equals(p)), 'the pong');
  });
});

test('2.7-2.9 unsolicited pongs are ignored; a ping after one gets exactly one pong', async () => {
  await withWs(async (c) => {
    await c.send(frame(OP.PONG), frame(OP.PONG, 'unsolicited'), frame(OP.PING, 'solicited'));
    await c.until(() => c.frames.find((f) => f.opcode === OP.PONG), 'a pong');
    await sleep(100);
    const pongs = c.frames.filter((f) => f.opcode === OP.PONG);
    assert.deepEqual(pongs.map((f) => f.payload.toString()), ['solicited']);
    await c.expectAlive();
  });
});

test('2.10-2.11 ten pings in one write and ten chopped: ten pongs each, in order', async () => {
  await withWs(async (c) => {
    const batch = Array.from({ length: 10 }, (_, i) => frame(OP.PING, `p${i}`));
    await c.send(...batch);
    const chopped = Array.from({ length: 10 }, (_, i) => frame(OP.PING, `q${i}`));
    await c.chop(Buffer.concat(chopped), 3);
    const pongs = await c.until(() => {
      const ps = c.frames.filter((f) => f.opcode === OP.PONG);
      return ps.length === 20 && ps;
    }, '20 pongs');
    assert.deepEqual(pongs.map((f) => f.payload.toString()),
      [...Array.from({ length: 10 }, (_, i) => `p${i}`), ...Array.from({ length: 10 }, (_, i) => `q${i}`)]);
  });
});

// ------------------------------------------------------------- 3 reserved bits

test('3.1-3.7 any reserved bit (no extension was agreed) fails the connection with 1002, after what came before', async () => {
  const cases = [
    [1, () => text(messageJson('rsv')), 'text RSV=1'],
    [2, () => text(messageJson('rsv')), 'text RSV=2'],
    [3, () => text(messageJson('rsv')), 'text RSV=3'],
    [4, () => frame(OP.PING, 'x', { rsv: 4 }), 'ping RSV=4'],
    [5, () => frame(OP.BIN, 'x', { rsv: 5 }), 'binary RSV=5'],
    [6, () => frame(OP.PING, 'x', { rsv: 6 }), 'ping RSV=6'],
    [7, () => frame(OP.CLOSE, Buffer.from([3, 0xe8]), { rsv: 7 }), 'close RSV=7'],
  ];
  for (const [rsv, make, what] of cases) {
    await withWs(async (c) => {
      const bad = make();
      bad[0] = (bad[0] & 0x8f) | (rsv << 4);
      // a good frame, the bad one and a ping, all in one write: the good one is answered, the ping is not
      await c.send(text(messageJson(`before ${what}`)), bad, frame(OP.PING, 'after'));
      await c.expectClose(1002, { bytes: closeBytes(1002), what: `close 1002 for ${what}` });
      assert.ok(!c.frames.some((f) => f.opcode === OP.PONG), `${what}: a frame after the bad one was answered`);
      // the good frame was taken before the bad one failed the connection:
      // stored, though its ack (which waits for Redis) cannot follow the close
      await waitFor(async () => (await history(d.url, c.room, alice)).json?.events?.some((e) => e.text === `before ${what}`),
        { timeout: 3000 * SLOW, what: `the message sent before ${what} to be stored` });
    });
  }
});

// ------------------------------------------------------------- 4 opcodes

test('4.1-4.2 reserved opcodes 3-7 and 11-15 fail the connection with 1002', async () => {
  for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    await withWs(async (c) => {
      await c.send(frame(OP.PING, 'first'), frame(op, op < 8 ? 'reserved data' : ''), frame(OP.PING, 'after'));
      await c.expectClose(1002, { bytes: closeBytes(1002), what: `close 1002 for opcode ${op}` });
      assert.deepEqual(c.frames.filter((f) => f.opcode === OP.PONG).map((f) => f.payload.toString()), ['first']);
    });
  }
});

test('1002 for an unmasked client frame', async () => {
  await withWs(async (c) => {
    await c.send(text(messageJson('not masked'), { mask: false }));
    await c.expectClose(1002, { bytes: closeBytes(1002) });
    assert.equal(c.acks().length, 0);
  });
});

// ------------------------------------------------------------- 5 fragmentation

test('5.1-5.2 fragmented ping and pong are protocol errors: 1002', async () => {
  for (const op of [OP.PING, OP.PONG]) {
    await withWs(async (c) => {
      await c.send(frame(op, 'frag', { fin: false }), frame(OP.CONT, 'ment'));
      await c.expectClose(1002, { what: `close 1002 for a fragmented ${op === OP.PING ? 'ping' : 'pong'}` });
    });
  }
});

test('5.3-5.8 a text message in fragments (one write, separate writes, control frames between) is reassembled', async () => {
  await withWs(async (c) => {
    const j = messageJson('frag-one');
    await c.send(text(j.slice(0, 10), { fin: false }), frame(OP.CONT, j.slice(10)));
    await c.waitJson((x) => x.type === 'ack', 'the ack of 2 fragments in one write');
    const j2 = messageJson('frag-two');
    await c.send(text(j2.slice(0, 5), { fin: false }));
    await sleep(20);
    await c.send(frame(OP.PING, 'between'));
    await c.until(() => c.frames.find((f) => f.opcode === OP.PONG), 'the pong for a ping between fragments');
    await c.send(frame(OP.CONT, j2.slice(5, 9), { fin: false }));
    await c.send(frame(OP.PONG, 'unsolicited'), frame(OP.CONT, j2.slice(9)));
    await c.waitJson((x) => x.type === 'ack', 'the ack of fragments with control frames between', 2);
    // pong came before the ack: control frames are answered at once
    const pongAt = c.frames.findIndex((f) => f.opcode === OP.PONG);
    const ackAt = c.frames.findIndex((f) => f.opcode === OP.TEXT && JSON.parse(f.payload).type === 'ack' && c.frames.indexOf(f) > 0);
    assert.ok(pongAt >= 0 && ackAt >= 0);
    await c.until(() => c.json().filter((x) => x.type === 'message').length === 2, 'both messages from the bus');
    assert.deepEqual(c.json().filter((x) => x.type === 'message').map((x) => x.text), ['frag-one', 'frag-two']);
  });
});

test('5.9-5.18 continuations without a start, and a new text frame inside a message, fail with 1002', async () => {
  const j = messageJson('never');
  const cases = [
    [[frame(OP.CONT, j), text(messageJson('after'))], 'a final continuation without a message'],
    [[frame(OP.CONT, j.slice(0, 5), { fin: false }), frame(OP.CONT, j.slice(5))], 'a non-final continuation without a message'],
    [[text(j.slice(0, 5), { fin: false }), frame(OP.CONT, j.slice(5)), frame(OP.CONT, 'x')], 'a continuation after the message ended'],
    [[text(j.slice(0, 5), { fin: false }), text(j.slice(5))], 'a text frame where a continuation belongs'],
  ];
  for (const [frames, what] of cases) {
    await withWs(async (c) => {
      await c.send(...frames);
      await c.expectClose(1002, { bytes: closeBytes(1002), what: `close 1002 for ${what}` });
      if (what === 'a continuation after the message ended') {
        await c.until(() => c.acks().length === 1 || c.ended, 'the ack of the complete message');
      }
    });
  }
});

test('5.19-5.20 a message in 5 fragments with pings between, sent slowly, is acknowledged after every pong', async () => {
  await withWs(async (c) => {
    const j = messageJson('five fragments');
    const parts = [0, 4, 8, 12, 16].map((at, i, a) => j.slice(at, i + 1 < a.length ? a[i + 1] : undefined));
    for (const [i, p] of parts.entries()) {
      await c.send(i === 0 ? text(p, { fin: false }) : frame(OP.CONT, p, { fin: i === parts.length - 1 }));
      if (i < parts.length - 1) {
        await c.send(frame(OP.PING, `ping${i}`));
        await c.until(() => c.frames.filter((f) => f.opcode === OP.PONG).length === i + 1, `pong ${i}`);
        await sleep(30);
      }
    }
    await c.waitJson((x) => x.type === 'ack', 'the ack');
    const acked = c.frames.findIndex((f) => f.opcode === OP.TEXT && JSON.parse(f.payload).type === 'ack');
    const lastPong = c.frames.findLastIndex((f) => f.opcode === OP.PONG);
    assert.ok(lastPong < acked, 'the ack came before a pong');
  });
});

// ------------------------------------------------------------- 6 UTF-8

const KOSME = 'κόσμε'; // cf. Autobahn 6.5, 6.6

test('6.1 empty fragments make an empty message: a bad_json error frame, the socket stays open', async () => {
  await withWs(async (c) => {
    await c.send(text('', { fin: false }), frame(OP.CONT, '', { fin: false }), frame(OP.CONT, ''));
    await c.waitJson((j) => j.type === 'error' && j.error === 'bad_json', 'the error frame');
    await c.expectAlive();
  });
});

test('6.2/6.6 valid UTF-8 split into fragments at every byte, inside code points too, is accepted', async () => {
  await withWs(async (c) => {
    const t = `${KOSME} Hello-µ@ßöäüàá-UTF-8!! 𝄞 \u{10FFFF}`;
    const b = Buffer.from(messageJson(t));
    // one fragment per byte
    const frames = [...b].map((x, i) => (i === 0 ? frame(OP.TEXT, Buffer.from([x]), { fin: false })
      : frame(OP.CONT, Buffer.from([x]), { fin: i === b.length - 1 })));
    await c.send(...frames);
    await c.waitJson((j) => j.type === 'ack', 'the ack of a byte-per-fragment message');
    // every split point in two fragments, for the multi-byte part
    const start = b.indexOf(Buffer.from(KOSME));
    for (let at = start + 1; at < start + Buffer.byteLength(KOSME); at++) {
      await c.send(frame(OP.TEXT, b.subarray(0, at), { fin: false }), frame(OP.CONT, b.subarray(at)));
    }
    const n = Buffer.byteLength(KOSME) - 1;
    await c.waitJson((j) => j.type === 'ack', `${n + 1} acks`, n + 1);
    await c.until(() => c.json().filter((j) => j.type === 'message').length === n + 1, 'the messages from the bus');
    for (const m of c.json().filter((j) => j.type === 'message')) assert.equal(m.text, t);
  });
});

test('6.5 boundary and special code points are valid (U+007F, U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF, noncharacters)', async () => {
  await withWs(async (c) => {
    const t = '\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\ufffe\uffff\u{10000}\u{10FFFF}\u{FDD0}';
    await c.send(text(messageJson(t)));
    await c.waitJson((j) => j.type === 'ack', 'the ack');
    await c.waitJson((j) => j.type === 'message', 'the message');
    assert.equal(c.json().find((j) => j.type === 'message').text, t);
  });
});

const INVALID = [
  ['lone continuation byte 0x80', [0x80]],
  ['lone continuation byte 0xbf', [0xbf]],
  ['lead byte without continuation at the end', [0xce]],
  ['lead byte followed by ASCII', [0xce, 0x41]],
  ['overlong "/" in 2 bytes', [0xc0, 0xaf]],
  ['overlong "/" in 3 bytes', [0xe0, 0x80, 0xaf]],
  ['overlong "/" in 4 bytes', [0xf0, 0x80, 0x80, 0xaf]],
  ['overlong NUL in 2 bytes', [0xc0, 0x80]],
  ['UTF-16 surrogate U+D800', [0xed, 0xa0, 0x80]],
  ['UTF-16 surrogate U+DFFF', [0xed, 0xbf, 0xbf]],
  ['surrogate pair as two code points', [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80]],
  ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['5-byte sequence', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ['6-byte sequence', [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80]],
  ['byte 0xfe', [0xfe]],
  ['byte 0xff', [0xff]],
];

test('6.3-6.22 invalid UTF-8 in a text message fails the connection with 1007', async () => {
  for (const [what, bytes] of INVALID) {
    await withWs(async (c) => {
      const pre = Buffer.from('{"type":"message","text":"' + KOSME);
      const payload = Buffer.concat([pre, Buffer.from(bytes), Buffer.from('edited"}')]);
      await c.send(frame(OP.TEXT, payload));
      await c.expectClose(1007, { bytes: closeBytes(1007), what: `close 1007 for ${what}` });
      assert.equal(c.acks().length, 0, `${what} was acknowledged`);
    });
  }
});

test('6.3.2 invalid UTF-8 sent one byte per fragment also fails with 1007', async () => {
  await withWs(async (c) => {
    const b = Buffer.concat([Buffer.from('{"type":"message","text":"' + KOSME), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]);
    const frames = [...b].map((x, i) => (i === 0 ? frame(OP.TEXT, Buffer.from([x]), { fin: false })
      : frame(OP.CONT, Buffer.from([x]), { fin: i === b.length - 1 })));
    await c.send(...frames);
    await c.expectClose(1007, { bytes: closeBytes(1007) });
  });
});

test('6.4 fail fast: invalid UTF-8 in a first fragment closes 1007 before the message is complete', async () => {
  for (const split of ['fragment', 'frame']) {
    await withWs(async (c) => {
      const good = Buffer.from('{"type":"message","text":"' + KOSME);
      const bad = Buffer.from([0xf4, 0x90, 0x80, 0x80]);
      const t0 = Date.now();
      if (split === 'fragment') {
        // first fragment with the bad bytes, the rest never sent
        await c.send(frame(OP.TEXT, Buffer.concat([good, bad]), { fin: false }));
      } else {
        // a frame announced with 200 bytes, of which only the bad part arrives
        const f = frame(OP.TEXT, Buffer.concat([good, bad, Buffer.alloc(200 - good.length - bad.length, 0x61)]));
        await c.send(f.subarray(0, f.length - 150));
      }
      const { ms } = await c.expectClose(1007, { bytes: closeBytes(1007), what: `close 1007 on an incomplete ${split}`, ms: 1500 * SLOW });
      assert.ok(Date.now() - t0 < 1500 * SLOW, `took ${Date.now() - t0} ms (close after ${ms} ms)`);
    });
  }
});

test('6.x a code point that ends a message unfinished fails with 1007 (fragments valid so far)', async () => {
  await withWs(async (c) => {
    await c.send(frame(OP.TEXT, Buffer.from([0x7b, 0xce]), { fin: false }), frame(OP.CONT, Buffer.from([0xba, 0xce])));
    await c.expectClose(1007, { bytes: closeBytes(1007) });
  });
});

// ------------------------------------------------------------- 7 close handling

test('7.1.1 a message, then the client closes 1000: the server echoes 1000 and ends the TCP stream', async () => {
  await withWs(async (c) => {
    await c.send(text(messageJson('bye soon')));
    await c.waitJson((j) => j.type === 'ack', 'the ack');
    await c.send(closeFrame(1000, 'bye'));
    await c.expectClose(1000, { bytes: closeBytes(1000, 'bye') });
  });
});

test('7.1.2-7.1.4 after a close, a second close, a ping and a text are not answered', async () => {
  await withWs(async (c) => {
    await c.send(closeFrame(1000), closeFrame(1000), frame(OP.PING, 'late'), text(messageJson('late')));
    await c.expectClose(1000, { bytes: closeBytes(1000) });
    await sleep(100);
    assert.equal(c.frames.length, 1 + c.json().filter((j) => j.type === 'presence').length,
      `frames: ${c.frames.map(describe).join(', ')}`);
    assert.equal(c.acks().length, 0);
  });
});

test('7.1.5 a fragment, a close, then the continuation: the message is dropped, the close echoed', async () => {
  await withWs(async (c) => {
    const j = messageJson('interrupted');
    await c.send(text(j.slice(0, 6), { fin: false }), closeFrame(1000), frame(OP.CONT, j.slice(6)));
    await c.expectClose(1000);
    await sleep(100);
    assert.equal(c.acks().length, 0);
  });
});

test('7.1.6 a large message then a close: both handled in order', async () => {
  await withWs(async (c) => {
    await c.send(text(messageJson('y'.repeat(11000))), closeFrame(1000));
    await c.expectClose(1000);
  });
});

test('7.3.1-7.3.6 close payloads: empty, 1 byte, code only, code + reason, 123-byte reason, 124-byte reason', async () => {
  const r123 = 'r'.repeat(123);
  const cases = [
    [frame(OP.CLOSE, ''), null, [0x88, 0x00], 'an empty close'],
    [frame(OP.CLOSE, Buffer.from([0x03])), 1002, null, 'a 1-byte close payload'],
    [closeFrame(1000), 1000, closeBytes(1000), 'close 1000'],
    [closeFrame(1000, 'Hello World!'), 1000, closeBytes(1000, 'Hello World!'), 'close 1000 with a reason'],
    [closeFrame(1000, r123), 1000, closeBytes(1000, r123), 'a 123-byte reason'],
    [closeFrame(1000, r123 + 'r'), 1002, null, 'a 124-byte reason (a 126-byte control frame)'],
  ];
  for (const [f, code, bytes, what] of cases) {
    await withWs(async (c) => {
      await c.send(f);
      await c.expectClose(code, { bytes: bytes ?? undefined, what: `the answer to ${what}` });
    });
  }
});

test('7.5.1 a close reason that is not UTF-8: 1007', async () => {
  await withWs(async (c) => {
    await c.send(frame(OP.CLOSE, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('κόσμε'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('edited')])));
    await c.expectClose(1007, { bytes: closeBytes(1007) });
  });
});

test('7.x a close frame split across reads: a valid UTF-8 reason is echoed, an invalid one still gets 1007', async () => {
  // wslay 1.1.1 checks the reason of a close read in pieces wrongly; the
  // server hands control frames to it whole
  const cases = [
    [Buffer.from('κόσμε: a valid reason'), 1000, 5],
    [Buffer.concat([Buffer.from('ab'), Buffer.from([0xff, 0xfe]), Buffer.from('cd')]), 1007, 4],
    [Buffer.concat([Buffer.from('κ'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('x')]), 1007, 3],
  ];
  for (const [reason, want, at] of cases) {
    await withWs(async (c) => {
      const payload = Buffer.concat([Buffer.from([0x03, 0xe8]), reason]);
      const f = frame(OP.CLOSE, payload);
      // header (2) + mask (4) + the first `at` payload bytes, then the rest
      await c.send(f.subarray(0, 6 + at));
      await sleep(50);
      await c.send(f.subarray(6 + at));
      await c.expectClose(want, {
        bytes: want === 1000 ? Buffer.concat([Buffer.from([0x88, payload.length]), payload]) : closeBytes(want),
        what: `close ${want} for the reason ${reason.toString('hex')} split after ${at} bytes`,
      });
    });
  }
});

test('7.7 valid close codes are echoed: 1000-1003, 1007-1011, 3000, 3999, 4000, 4999', async () => {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]) {
    await withWs(async (c) => {
      await c.send(closeFrame(code));
      await c.expectClose(code, { bytes: closeBytes(code), what: `the echo of close ${code}` });
    });
  }
});

test('7.9/7.13 invalid close codes get 1002: 0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535', async () => {
  for (const code of [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535]) {
    await withWs(async (c) => {
      await c.send(closeFrame(code));
      await c.expectClose(1002, { bytes: closeBytes(1002), what: `close 1002 for code ${code}` });
    });
  }
});

// ------------------------------------------------------------- 9 limits

test(`9.1 limits: a ${SMALL_LIMIT}-byte frame is read, one more byte closes 1009 on the payload's first byte`, async () => {
  await withWs(async (c) => {
    // exactly the limit: read and answered (the text itself is over max_message_bytes)
    await c.send(text(messageJson('z'.repeat(150), SMALL_LIMIT)));
    await c.waitJson((j) => j.type === 'error', 'the too_large error frame');
    assert.equal(c.errors()[0].error, 'too_large');
    // text at max_message_bytes with every byte escaped fits
    await c.send(text(messageJson('\u0001'.repeat(100))));
    await c.waitJson((j) => j.type === 'ack', 'the ack of 100 escaped bytes');
    await c.expectAlive();
    // one byte over: the header (2 + 2 + 4 bytes) and one byte of payload are sent, the close comes anyway
    const f = text(messageJson('z', SMALL_LIMIT + 1));
    await c.send(f.subarray(0, 9));
    await c.expectClose(1009, { bytes: closeBytes(1009), what: 'close 1009 before the payload', ms: 1500 * SLOW });
  }, { dm: small });
});

// wslay looks at a frame only once some of its payload is there: a header
// alone used to hold the connection open until the next ping went
// unanswered. Refused on the header now, wherever it falls in a read.
test('9.1 limits: a header alone announcing more than the limit closes 1009, also right after a whole ping', async () => {
  await withWs(async (c) => {
    const f = text(messageJson('z', SMALL_LIMIT + 1));
    await c.send(f.subarray(0, 8)); // 2 + 2 (length) + 4 (mask key)
    await c.expectClose(1009, { bytes: closeBytes(1009), what: 'close 1009 on the header alone', ms: 1500 * SLOW });
  }, { dm: small });
  await withWs(async (c) => {
    const huge = frame(OP.TEXT, '', { len: 2 ** 62 }); // the header of a 2^62-byte frame
    await c.send(frame(OP.PING, 'first'), huge.subarray(0, 14));
    await c.expectClose(1009, { bytes: closeBytes(1009), what: 'close 1009 on a 2^62-byte header', ms: 1500 * SLOW });
    // the whole frame before it was read: its ping answered first
    assert.deepEqual(c.frames.filter((f) => f.opcode === OP.PONG).map((f) => f.payload.toString()), ['first']);
  }, { dm: small });
});

test('a header alone of an unmasked frame closes 1002', async () => {
  await withWs(async (c) => {
    await c.send(text(messageJson('not masked'), { mask: false }).subarray(0, 2));
    await c.expectClose(1002, { bytes: closeBytes(1002), what: 'close 1002 on the unmasked header alone', ms: 1500 * SLOW });
  });
});

test('9.1 limits: fragments each under the limit but over it together close 1009', async () => {
  await withWs(async (c) => {
    const part = Math.floor(SMALL_LIMIT / 2) + 10;
    await c.send(text(' '.repeat(part), { fin: false }));
    await c.expectAlive();
    await c.send(frame(OP.CONT, ' '.repeat(part)));
    await c.expectClose(1009, { bytes: closeBytes(1009) });
  }, { dm: small });
});

test('9.3/9.5 a 60000-byte message in fragments of 64..16384 bytes, and messages in TCP chops of 1..4096 bytes', async () => {
  await withWs(async (c) => {
    let acks = 0;
    for (const size of [64, 256, 1024, 4096, 16384]) {
      const b = Buffer.from(messageJson(`fragments of ${size}`, 60000));
      const frames = [];
      for (let at = 0; at < b.length; at += size) {
        const p = b.subarray(at, at + size);
        frames.push(frame(at === 0 ? OP.TEXT : OP.CONT, p, { fin: at + size >= b.length }));
      }
      await c.send(...frames);
      await c.waitJson((j) => j.type === 'ack', `the ack for fragments of ${size}`, ++acks);
    }
    for (const [chop, size] of [[1, 600], [7, 3000], [64, 20000], [4096, 60000]]) {
      const b = text(messageJson(`chops of ${chop}`, size));
      await c.chop(b, chop);
      await c.waitJson((j) => j.type === 'ack', `the ack for chops of ${chop}`, ++acks);
    }
  });
});

test('9.7 1000 pings and 300 messages in one go: every answer, in order', async () => {
  await withWs(async (c) => {
    const t0 = Date.now();
    const pings = Array.from({ length: 1000 }, (_, i) => frame(OP.PING, String(i)));
    const msgs = Array.from({ length: 300 }, (_, i) => text(messageJson(`m${i}`)));
    await c.send(...pings, ...msgs);
    const pongs = await c.until(() => {
      const ps = c.frames.filter((f) => f.opcode === OP.PONG);
      return ps.length === 1000 && ps;
    }, '1000 pongs');
    assert.deepEqual(pongs.map((f) => Number(f.payload.toString())), [...Array(1000).keys()]);
    await c.until(() => c.acks().length === 300, '300 acks', 10000 * SLOW);
    await c.until(() => c.json().filter((j) => j.type === 'message').length === 300, '300 messages', 10000 * SLOW);
    const ids = c.acks().map((a) => a.id);
    assert.deepEqual(c.json().filter((j) => j.type === 'message').map((j) => j.id), ids, 'message order differs from ack order');
    assert.deepEqual(c.json().filter((j) => j.type === 'message').map((j) => j.text), msgs.map((_, i) => `m${i}`));
    process.stderr.write(`# 9.7: 1000 pings + 300 messages answered in ${Date.now() - t0} ms\n`);
  });
});
