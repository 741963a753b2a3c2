// parity.test.mjs - crosstalkd and crosstalk-fcgi answer every REST call they
// both serve with the SAME WHOLE ANSWER: status, the headers that matter
// (Content-Type, Allow, Retry-After, WWW-Authenticate, Cache-Control, Vary,
// Access-Control-*), and the body byte for byte once what must differ (stream
// ids, timestamps, tokens) is replaced by placeholders. fcgi.test.mjs only
// compares status and error code; this file is the parity proof for the one
// REST core of issue 13.
//
// Two stores, one per side: crosstalkd runs on its own redis-server, the
// FastCGI pool on another. Each case is sent to both sides in the same order,
// so both stores see the same sequence of writes and the same names can be
// used on both sides (a room list, a taken name, a repeated Idempotency-Key
// answer alike); only ids, timestamps and tokens differ, and the placeholders
// cover those. The seed messages' ids become <seed1>..<seed4>, any other id
// <id1>, <id2>... in order of appearance within one case on one side, so
// "the same id" and "a later id" still compare. Each send case writes to a
// room of its own, so one side storing what the other refuses shifts no
// later case.
//
// Every case is sent over two paths:
//   direct: crosstalkd on its own port  vs  crosstalk-fcgi over a raw FastCGI
//           connection, with the parameters nginx sends (REQUEST_URI raw);
//   nginx:  nginx /d/ (proxy to crosstalkd)  vs  nginx /f/ (fastcgi_pass), so
//           the proxy is the same on both sides. Cases whose path nginx's
//           proxy_pass would rewrite (`//`, %XX) run direct only: /d/ hands
//           crosstalkd a normalised path while /f/ hands the pool the raw one;
//           HEAD runs through nginx only (the web server drops its body).
// Then Redis hangs (CLIENT PAUSE WRITE past redis_timeout_ms: typing, send,
// and when each side answers) and Redis is down (both stopped: every call
// 503 alike, with Retry-After). About 5 s in all.
// Set CT_PARITY_VERBOSE=1 to print every answer; the file's `after` prints
// all divergences in one list.
// Real redis-server (2), crosstalkd, spawn-fcgi + crosstalk-fcgi, nginx.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import {
  startRedis, startDaemon, startFcgi, startNginx, http, cleanup, within, waitFor, RELAXED,
} from './harness.mjs';

// The shipped defaults, except rate limits a table of requests would trip
// (each case is sent twice per side) and an allowed origin so the CORS
// headers have something to say.
const ORIGIN = 'http://chat.example';
const CONFIG = { ...RELAXED, rate_typing_per_sec: 1000000, allowed_origins: ORIGIN };

let redisD, redisF, daemon, fcgi, nginx;

before(async () => {
  [redisD, redisF] = await Promise.all([startRedis(), startRedis()]);
  daemon = await startDaemon({ redisUrl: redisD.url, config: CONFIG });
  fcgi = await startFcgi({ redisUrl: redisF.url, children: 2, config: CONFIG });
  nginx = await startNginx({ daemons: [daemon.port], fcgiSocket: fcgi.socket });
});

after(async () => {
  await fcgi?.stop().catch(() => {});
  await cleanup();
  printSummary();
});

// ------------------------------------------------------------ raw FastCGI
// A minimal responder client: the parameters nginx's standalone config sends
// (REQUEST_URI is the raw request URI; each header line is its own HTTP_*
// parameter, as nginx 1.22 sends them, so a repeated header appears twice).

function fcgiRecord(type, content = Buffer.alloc(0)) {
  const pad = (8 - (content.length % 8)) % 8;
  const h = Buffer.from([1, type, 0, 1, content.length >> 8, content.length & 255, pad, 0]);
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}

function fcgiLen(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

function fcgiStream(type, data) {
  const out = [];
  for (let i = 0; i < data.length; i += 65535) out.push(fcgiRecord(type, data.subarray(i, i + 65535)));
  out.push(fcgiRecord(type));
  return out;
}

function fcgiHttp(socket, method, uri, { headers = {}, body } = {}) {
  const payload = body === undefined ? Buffer.alloc(0)
    : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const q = uri.indexOf('?');
  let scriptName = q >= 0 ? uri.slice(0, q) : uri;
  try { scriptName = decodeURIComponent(scriptName).replace(/\/{2,}/g, '/'); } catch { /* as is */ }
  const params = [
    ['GATEWAY_INTERFACE', 'CGI/1.1'], ['SERVER_SOFTWARE', 'nginx'],
    ['REQUEST_METHOD', method], ['REQUEST_URI', uri], ['QUERY_STRING', q >= 0 ? uri.slice(q + 1) : ''],
    ['CONTENT_TYPE', payload.length && typeof body === 'object' && !Buffer.isBuffer(body) ? 'application/json' : ''],
    ['CONTENT_LENGTH', payload.length ? String(payload.length) : ''],
    ['SCRIPT_NAME', scriptName], ['DOCUMENT_URI', scriptName], ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REMOTE_ADDR', '127.0.0.1'], ['REMOTE_PORT', '40000'], ['SERVER_ADDR', '127.0.0.1'],
    ['SERVER_PORT', '80'], ['SERVER_NAME', 'localhost'], ['HTTP_HOST', 'localhost'],
  ];
  for (const [k, v] of Object.entries(headers)) {
    for (const one of [].concat(v)) params.push([`HTTP_${k.toUpperCase().replaceAll('-', '_')}`, String(one)]);
  }
  const nv = Buffer.concat(params.flatMap(([k, v]) => {
    const kb = Buffer.from(k);
    const vb = Buffer.from(v);
    return [fcgiLen(kb.length), fcgiLen(vb.length), kb, vb];
  }));
  const begin = fcgiRecord(1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])); // RESPONDER, no keep-conn
  const wire = Buffer.concat([begin, ...fcgiStream(4, nv), ...fcgiStream(5, payload)]);
  return within(10000, new Promise((resolve, reject) => {
    const sock = net.connect(socket);
    let inb = Buffer.alloc(0);
    let stdout = Buffer.alloc(0);
    sock.on('connect', () => sock.write(wire));
    sock.on('data', (d) => {
      inb = Buffer.concat([inb, d]);
      while (inb.length >= 8) {
        const len = inb.readUInt16BE(4);
        const pad = inb.readUInt8(6);
        if (inb.length < 8 + len + pad) break;
        const type = inb.readUInt8(1);
        if (type === 6) stdout = Buffer.concat([stdout, inb.subarray(8, 8 + len)]);
        inb = inb.subarray(8 + len + pad);
        if (type === 3) {
          sock.end();
          resolve(parseCgi(stdout));
          return;
        }
      }
    });
    sock.on('error', (e) => reject(new Error(`FastCGI ${method} ${uri}: ${e.message}`)));
    sock.on('close', () => reject(new Error(`FastCGI ${method} ${uri}: closed before END_REQUEST; ` +
      `stdout: ${JSON.stringify(stdout.toString())}`)));
  }), `the FastCGI answer to ${method} ${uri}`);
}

function parseCgi(buf) {
  const sep = buf.indexOf('\r\n\r\n');
  if (sep < 0) return { status: 0, headers: {}, text: `(no end of CGI headers) ${buf.toString()}` };
  const headers = {};
  for (const line of buf.subarray(0, sep).toString('latin1').split('\r\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  const status = Number((headers.status ?? '200').split(' ')[0]);
  delete headers.status;
  return { status, headers, text: buf.subarray(sep + 4).toString('utf8') };
}

// ------------------------------------------------------------ sides, paths

// Per-side state: the tokens and ids a case's request may need.
const side = { d: { ids: [] }, f: { ids: [] } };

// One request on one channel; resolves with {status, headers, text}.
function send(channel, method, pathq, opts) {
  switch (channel) {
    case 'crosstalkd': return http(method, daemon.url + pathq, opts);
    case 'pool': return fcgiHttp(fcgi.socket, method, pathq, opts);
    case 'nginx /d/': return http(method, `${nginx.url}/d${pathq}`, opts);
    case 'nginx /f/': return http(method, `${nginx.url}/f${pathq}`, opts);
    default: throw new Error(channel);
  }
}

const PAIRS = {
  direct: [['crosstalkd', 'd'], ['pool', 'f']],
  nginx: [['nginx /d/', 'd'], ['nginx /f/', 'f']],
};

// Headers that carry meaning for a client; the rest (Date, Server,
// Content-Length, Connection...) may differ.
const MATTER = /^(content-type|allow|retry-after|www-authenticate|cache-control|vary|access-control-.*)$/;

function mattering(headers) {
  const out = {};
  for (const k of Object.keys(headers).sort()) {
    if (MATTER.test(k)) out[k] = [].concat(headers[k]).join(', ');
  }
  return out;
}

// Replaces what must differ between two stores by placeholders; keeps every
// other byte. The seed messages' ids are <seed1>..<seed4> on both sides; any
// other stream id is <id1>, <id2>... in order of first appearance within one
// case on one side (so a divergence in one case does not shift the next).
function normalise(text, st, ids) {
  return text
    .replace(/\b\d{12,}-\d+\b/g, (id) => {
      const seed = st.ids.indexOf(id);
      if (seed >= 0) return `<seed${seed + 1}>`;
      if (!ids.has(id)) ids.set(id, `<id${ids.size + 1}>`);
      return ids.get(id);
    })
    .replace(/"token"(\s*):(\s*)"[A-Za-z0-9_-]{43}"/g, '"token"$1:$2"<token>"')
    .replace(/\b1\d{12}\b/g, '<ms>');
}

// ------------------------------------------------------------ the comparison

const divergences = []; // {name, pair, lines}

// The request line of a case as the report shows it (crosstalkd side, token hidden).
const label = (c) => {
  const l = `${c.method} ${c.path(side.d)}`;
  return side.d.token ? l.replaceAll(side.d.token, '<token>') : l;
};

const show = (v) => (v === undefined ? '(none)' : JSON.stringify(v));

// Sends a case's request on one channel; the answer with what must differ replaced.
async function answer(ch, s, c, pairName, ids, t0 = Date.now()) {
  const st = side[s];
  const r = await send(ch, c.method, c.path(st), { headers: c.headers?.(st) ?? {}, body: c.body?.(st, pairName) });
  c.after?.(st, r);
  return { ch, ms: Date.now() - t0, status: r.status, headers: mattering(r.headers), body: normalise(r.text, st, ids) };
}

// The differences between two answers, one line each ([] when they agree).
function differences(name, c, pairName, a, b) {
  if (process.env.CT_PARITY_VERBOSE) {
    for (const x of [a, b]) process.stdout.write(`# ${name} [${pairName}] ${x.ch}: ${x.status} ${JSON.stringify(x.headers)} ${x.body.trim().slice(0, 300)}\n`);
  }
  const lines = [];
  if (a.status !== b.status) lines.push(`status: ${a.ch} ${a.status}, ${b.ch} ${b.status}`);
  for (const k of [...new Set([...Object.keys(a.headers), ...Object.keys(b.headers)])].sort()) {
    if (a.headers[k] !== b.headers[k]) lines.push(`${k}: ${a.ch} ${show(a.headers[k])}, ${b.ch} ${show(b.headers[k])}`);
  }
  if (a.body !== b.body) lines.push(`body:\n      ${a.ch}: ${show(a.body)}\n      ${b.ch}: ${show(b.body)}`);
  return lines;
}

function record(name, c, pairName, a, b, lines) {
  if (lines.length) divergences.push({ name, pair: pairName, request: label(c), status: [a.status, b.status], lines });
}

async function compare(name, c, pairName) {
  const [[chA, sA], [chB, sB]] = PAIRS[pairName];
  const a = await answer(chA, sA, c, pairName, new Map());
  const b = await answer(chB, sB, c, pairName, new Map());
  const lines = differences(name, c, pairName, a, b);
  record(name, c, pairName, a, b, lines);
  return { a, b, lines };
}

/** One subtest per case: the direct pair, then (unless rawPath) the nginx pair; every divergence in one message. */
function parity(name, c) {
  test(name, async () => {
    const out = [];
    for (const pairName of c.rawPath ? ['direct'] : c.nginxOnly ? ['nginx'] : ['direct', 'nginx']) {
      const { a, lines } = await compare(name, c, pairName);
      // The case must exercise what it names: crosstalkd's status is the
      // contract's (docs/design.md), else two equal wrong answers would pass.
      const want = c.expect === undefined ? null : [].concat(c.expect);
      const off = want && !want.includes(a.status) ? [`${a.ch} answered ${a.status} ${a.body.trim()}; the case expects ${want.join('/')}`] : [];
      if (lines.length || off.length) out.push(`  [${pairName}] ${label(c)}\n    ${[...off, ...lines].join('\n    ')}`);
    }
    assert.ok(out.length === 0, `${name}: the two REST implementations answer differently (or not as the case expects)\n${out.join('\n')}`);
  });
}

function printSummary() {
  if (!divergences.length) return;
  const lines = [`\n===== parity: ${divergences.length} divergence(s) (request -> crosstalkd side vs pool side) =====`];
  for (const d of divergences) lines.push(`* ${d.name} [${d.pair}] ${d.request}\n    ${d.lines.join('\n    ')}`);
  process.stdout.write(lines.join('\n') + '\n');
}

// ------------------------------------------------------------ the cases

const J = (o) => () => o; // a fixed body
const auth = (st) => ({ Authorization: `Bearer ${st.token}` });
const ROOM = 'parity';
const MSG = `/api/rooms/${ROOM}/messages`;

test('setup: a user, a room with messages, on each side (direct)', async () => {
  for (const [ch, s] of PAIRS.direct) {
    const st = side[s];
    const r = await send(ch, 'POST', '/api/register', { body: { name: 'alice' } });
    assert.equal(r.status, 201, `${ch}: register alice: ${r.status} ${r.text}`);
    st.token = JSON.parse(r.text).token;
    for (let i = 0; i < 4; i++) {
      const m = await send(ch, 'POST', MSG, { headers: auth(st), body: { text: `seed ${i}` } });
      assert.equal(m.status, 201, `${ch}: seed ${i}: ${m.status} ${m.text}`);
      const id = JSON.parse(m.text).id;
      st.ids.push(id);
    }
    // a later millisecond than the seeds: rooms list by last_ts, and a tie
    // would order them by name instead, on one side and not the other
    await new Promise((r) => setTimeout(r, 5));
    const o = await send(ch, 'POST', '/api/rooms/other/messages', { headers: auth(st), body: { text: 'x' } });
    assert.equal(o.status, 201, `${ch}: other room: ${o.status} ${o.text}`);
  }
});

// POST /api/register
parity('register: a good name', { method: 'POST', path: () => '/api/register',
  body: (st, pair) => ({ name: `bob_${pair}` }), expect: 201 });
parity('register: the taken name in another case', { method: 'POST', path: () => '/api/register', body: J({ name: 'ALICE' }), expect: 409 });
parity('register: malformed JSON', { method: 'POST', path: () => '/api/register', body: J('{"name":'), expect: 400 });
parity('register: JSON not an object', { method: 'POST', path: () => '/api/register', body: J('["x"]'), expect: 400 });
parity('register: empty body', { method: 'POST', path: () => '/api/register', body: J(''), expect: 400 });
parity('register: name missing', { method: 'POST', path: () => '/api/register', body: J({}), expect: 400 });
parity('register: name a number', { method: 'POST', path: () => '/api/register', body: J({ name: 5 }), expect: 400 });
parity('register: empty name', { method: 'POST', path: () => '/api/register', body: J({ name: '' }), expect: 400 });
parity('register: name with a space', { method: 'POST', path: () => '/api/register', body: J({ name: 'a b' }), expect: 400 });
parity('register: name of 33 characters', { method: 'POST', path: () => '/api/register', body: J({ name: 'a'.repeat(33) }), expect: 400 });
parity('register: name not ASCII', { method: 'POST', path: () => '/api/register', body: J({ name: 'zoë' }), expect: 400 });
parity('register: invalid UTF-8', { method: 'POST', path: () => '/api/register',
  body: J(Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])), expect: 400 });
parity('register: body over max_body_bytes', { method: 'POST', path: () => '/api/register',
  body: J(JSON.stringify({ name: 'big', pad: 'p'.repeat(70000) })), expect: 413 });

// GET /api/rooms
parity('rooms: with a token', { method: 'GET', path: () => '/api/rooms', headers: auth, expect: 200 });
parity('rooms: without a token', { method: 'GET', path: () => '/api/rooms' });
parity('rooms: unknown token', { method: 'GET', path: () => '/api/rooms', headers: () => ({ Authorization: `Bearer ${'A'.repeat(43)}` }) });
parity('rooms: limit=1 (a page with next)', { method: 'GET', path: () => '/api/rooms?limit=1', headers: auth, expect: 200,
  after: (st, r) => { try { st.next = JSON.parse(r.text).next; } catch { /* compared as text */ } } });
parity('rooms: limit=1&after=<next of page 1>', { method: 'GET', path: (st) => `/api/rooms?limit=1&after=${encodeURIComponent(st.next ?? '')}`,
  headers: auth, expect: 200 });
parity('rooms: limit=0', { method: 'GET', path: () => '/api/rooms?limit=0', headers: auth, expect: 400 });
parity('rooms: limit=1001', { method: 'GET', path: () => '/api/rooms?limit=1001', headers: auth, expect: 400 });
parity('rooms: limit=abc', { method: 'GET', path: () => '/api/rooms?limit=abc', headers: auth, expect: 400 });
parity('rooms: limit empty', { method: 'GET', path: () => '/api/rooms?limit=', headers: auth });
parity('rooms: after=garbage', { method: 'GET', path: () => '/api/rooms?after=%%%zz', headers: auth, expect: 400 });
parity('rooms: after=123', { method: 'GET', path: () => '/api/rooms?after=123', headers: auth });

// POST /api/rooms/{room}/messages
// Each send case writes to a room of its own, so a message one side stores
// and the other refuses changes no later case's answer.
let sendRooms = 0;
const post = (name, extra) => {
  const room = `send-${++sendRooms}`;
  parity(`send: ${name}`, { method: 'POST', path: () => `/api/rooms/${room}/messages`, headers: auth, ...extra });
};
const IDEM = '/api/rooms/idem/messages';
post('a good message', { body: J({ text: 'hello ✓' }), expect: 201 });
post('Idempotency-Key, first', { path: () => IDEM, headers: (st) => ({ ...auth(st), 'Idempotency-Key': 'k-1' }), body: J({ text: 'once' }), expect: [200, 201] });
post('Idempotency-Key, repeat', { path: () => IDEM, headers: (st) => ({ ...auth(st), 'Idempotency-Key': 'k-1' }), body: J({ text: 'once' }), expect: 200 });
post('Idempotency-Key, repeat with another text', { path: () => IDEM, headers: (st) => ({ ...auth(st), 'Idempotency-Key': 'k-1' }), body: J({ text: 'twice' }) });
post('Idempotency-Key with a space', { headers: (st) => ({ ...auth(st), 'Idempotency-Key': 'a b' }), body: J({ text: 'x' }), expect: 400 });
post('Idempotency-Key too long', { headers: (st) => ({ ...auth(st), 'Idempotency-Key': 'k'.repeat(300) }), body: J({ text: 'x' }), expect: 400 });
post('Idempotency-Key empty', { headers: (st) => ({ ...auth(st), 'Idempotency-Key': '' }), body: J({ text: 'x' }) });
post('two Authorization headers', { headers: (st) => ({ Authorization: [`Bearer ${st.token}`, `Bearer ${st.token}`] }), body: J({ text: 'x' }) });
post('no token', { headers: () => ({}), body: J({ text: 'x' }), expect: 401 });
post('unknown token', { headers: () => ({ Authorization: `Bearer ${'A'.repeat(43)}` }), body: J({ text: 'x' }), expect: 401 });
post('malformed token', { headers: () => ({ Authorization: 'Bearer nope' }), body: J({ text: 'x' }), expect: 401 });
post('Basic instead of Bearer', { headers: () => ({ Authorization: 'Basic YTpi' }), body: J({ text: 'x' }), expect: 401 });
post('token in the query', { path: (st) => `/api/rooms/send-q/messages?token=${st.token}`, headers: () => ({}), body: J({ text: 'q' }), expect: 201 });
post('empty text', { body: J({ text: '' }), expect: 400 });
post('whitespace text', { body: J({ text: ' \t\n ' }) });
post('text missing', { body: J({ txt: 'x' }), expect: 400 });
post('text a number', { body: J({ text: 42 }), expect: 400 });
post('text null', { body: J({ text: null }), expect: 400 });
post('malformed JSON', { body: J('{"text":'), expect: 400 });
post('JSON with trailing garbage', { body: J('{"text":"a"} x'), expect: 400 });
post('empty body', { body: J(''), expect: 400 });
post('an escaped NUL', { body: J('{"text":"a\\u0000b"}') });
// each header line under nginx's 8 KiB buffers, the whole head over
// max_header_bytes (8192): the FastCGI pool read no head size at all
post('a head over max_header_bytes', { headers: (st) => ({ ...auth(st), 'X-Big': 'b'.repeat(5000), 'X-Big-2': 'c'.repeat(4000) }), body: J({ text: 'x' }), expect: 431 });
post('a head just under max_header_bytes', { headers: (st) => ({ ...auth(st), 'X-Big': 'b'.repeat(3000), 'X-Big-2': 'c'.repeat(3000) }), body: J({ text: 'x' }), expect: 201 });
post('an escaped lone surrogate', { body: J('{"text":"a\\ud800b"}'), expect: 400 });
post('an escaped surrogate pair', { body: J('{"text":"a\\ud83d\\ude00b"}'), expect: 201 });
post('invalid UTF-8', { body: J(Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')])), expect: 400 });
post('text over max_message_bytes', { body: J({ text: 'a'.repeat(4097) }), expect: [400, 413] });
post('body over max_body_bytes', { body: J(JSON.stringify({ text: 'x', pad: 'p'.repeat(70000) })), expect: 413 });

// GET /api/rooms/{room}/messages
const hist = (name, q, extra = {}) => parity(`history: ${name}`, { method: 'GET', path: (st) => `${MSG}${q(st)}`, headers: auth, ...extra });
hist('no query', () => '', { expect: 200 });
hist('since=0', () => '?since=0', { expect: 200 });
hist('since=<id2>', (st) => `?since=${st.ids[1]}`, { expect: 200 });
hist('since=<id2>&limit=1', (st) => `?since=${st.ids[1]}&limit=1`, { expect: 200 });
hist('since=<ms part only>', (st) => `?since=${st.ids[0].split('-')[0]}`, { expect: 200 });
hist('since empty', () => '?since=');
hist('since in the future', () => '?since=99999999999999-0', { expect: 200 });
hist('before=<id4>', (st) => `?before=${st.ids[3]}`, { expect: 200 });
hist('before=<id4>&limit=2', (st) => `?before=${st.ids[3]}&limit=2`, { expect: 200 });
hist('before=<id1>', (st) => `?before=${st.ids[0]}`, { expect: 200 });
hist('since and before together', (st) => `?since=${st.ids[0]}&before=${st.ids[3]}`);
hist('limit=1', () => '?limit=1', { expect: 200 });
hist('limit=500', () => '?limit=500', { expect: 200 });
hist('limit=501', () => '?limit=501');
hist('limit=0', () => '?limit=0');
hist('limit=-1', () => '?limit=-1');
hist('limit=abc', () => '?limit=abc');
hist('since=abc', () => '?since=abc', { expect: 400 });
hist('since=1-2-3', () => '?since=1-2-3', { expect: 400 });
hist('since=-1', () => '?since=-1', { expect: 400 });
hist('since=1-', () => '?since=1-', { expect: 400 });
hist('since overflowing u64', () => '?since=99999999999999999999999-0', { expect: 400 });
hist('before=abc', () => '?before=xyz', { expect: 400 });
hist('unknown parameter', () => '?foo=bar');
hist('no token', () => '', { headers: () => ({}), expect: 401 });
hist('an empty room', () => '', { path: () => '/api/rooms/nobody-here/messages', expect: 200 });

// typing, presence, healthz
parity('typing: POST', { method: 'POST', path: () => `/api/rooms/${ROOM}/typing`, headers: auth });
parity('typing: POST with a body', { method: 'POST', path: () => `/api/rooms/${ROOM}/typing`, headers: auth, body: J({}) });
parity('typing: no token', { method: 'POST', path: () => `/api/rooms/${ROOM}/typing`, expect: 401 });
parity('typing: GET', { method: 'GET', path: () => `/api/rooms/${ROOM}/typing`, headers: auth, expect: 405 });
parity('presence: GET', { method: 'GET', path: () => `/api/rooms/${ROOM}/presence`, headers: auth, expect: 200 });
parity('presence: no token', { method: 'GET', path: () => `/api/rooms/${ROOM}/presence`, expect: 401 });
parity('presence: POST', { method: 'POST', path: () => `/api/rooms/${ROOM}/presence`, headers: auth, expect: 405 });
parity('healthz: GET', { method: 'GET', path: () => '/healthz', expect: 200 });
parity('healthz: POST', { method: 'POST', path: () => '/healthz' });

// paths, room names, methods
const p = (name, method, path, extra = {}) => parity(name, { method, path: () => path, headers: auth, ...extra });
p('unknown path under /api/', 'GET', '/api/nope', { expect: 404 });
p('unknown path under a room', 'GET', `/api/rooms/${ROOM}/nope`, { expect: 404 });
p('trailing slash', 'GET', `${MSG}/`);
p('/api/rooms/ (no room)', 'GET', '/api/rooms/');
p('empty room name', 'GET', '/api/rooms//messages', { rawPath: true });
p('leading //', 'GET', `/${MSG}`, { rawPath: true });
p('// inside', 'GET', `/api//rooms/${ROOM}/messages`, { rawPath: true });
p('percent-encoded room a%62c', 'GET', '/api/rooms/a%62c/messages', { rawPath: true });
p('percent-encoded room, POST', 'POST', '/api/rooms/a%63d/messages', { rawPath: true, body: J({ text: 'x' }) });
p('percent-encoded slash in room', 'GET', '/api/rooms/a%2Fb/messages', { rawPath: true });
p('room with an upper-case letter', 'GET', '/api/rooms/Lobby/messages', { expect: 400 });
p('room with a dot', 'GET', '/api/rooms/a.b/messages', { expect: 400 });
p('room of 65 characters', 'GET', `/api/rooms/${'x'.repeat(65)}/messages`, { expect: 400 });
p('room of 64 characters', 'GET', `/api/rooms/${'x'.repeat(64)}/messages`, { expect: 200 });
p('room with a bad character, POST', 'POST', '/api/rooms/a!b/messages', { body: J({ text: 'x' }), expect: 400 });
for (const m of ['PUT', 'DELETE', 'PATCH']) {
  p(`${m} messages`, m, MSG, { body: J({ text: 'x' }), expect: 405 });
  p(`${m} /api/register`, m, '/api/register', { body: J({ name: 'x' }), expect: 405 });
  p(`${m} /api/rooms`, m, '/api/rooms', { expect: 405 });
}
p('GET /api/register', 'GET', '/api/register', { expect: 405 });
// HEAD through nginx only: over raw FastCGI the web server, not the
// responder, drops a HEAD answer's body.
p('HEAD messages', 'HEAD', MSG, { nginxOnly: true });
p('HEAD /api/rooms', 'HEAD', '/api/rooms', { nginxOnly: true });
p('unknown method FROB', 'FROB', MSG);
p('OPTIONS preflight, allowed origin', 'OPTIONS', MSG, {
  headers: () => ({ Origin: ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' }) });
p('OPTIONS preflight, other origin', 'OPTIONS', MSG, {
  headers: () => ({ Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' }) });
p('OPTIONS without Origin', 'OPTIONS', MSG, { headers: () => ({}) });
p('GET with an allowed Origin', 'GET', MSG, { headers: (st) => ({ ...auth(st), Origin: ORIGIN }), expect: 200 });
p('POST with an allowed Origin', 'POST', '/api/rooms/origin/messages', { headers: (st) => ({ ...auth(st), Origin: ORIGIN }), body: J({ text: 'o' }), expect: 201 });

// Redis hangs: CLIENT PAUSE WRITE on both stores for longer than the shipped
// redis_timeout_ms (2000 ms), then a typing and a send on each side at once
// (direct pair). Compared as above, and also when each side answered: an
// acknowledgement given while Redis had not taken the PUBLISH (under 1 s) on
// one side and only after the pause (over 2 s) on the other is a divergence.
const PAUSE_MS = 3000;
test('Redis hangs (CLIENT PAUSE WRITE 3 s > redis_timeout_ms): typing and send answer alike', async () => {
  const cases = [
    ['typing while Redis hangs', { method: 'POST', path: () => `/api/rooms/${ROOM}/typing`, headers: auth }],
    ['send while Redis hangs', { method: 'POST', path: () => '/api/rooms/hang/messages', headers: auth, body: J({ text: 'hang' }) }],
  ];
  await Promise.all([redisD, redisF].map((r) => r.cmd('CLIENT', 'PAUSE', PAUSE_MS, 'WRITE')));
  const t0 = Date.now();
  const answers = await Promise.all(cases.flatMap(([, c]) =>
    PAIRS.direct.map(([ch, s]) => answer(ch, s, c, 'direct', new Map(), t0))));
  const out = [];
  cases.forEach(([name, c], i) => {
    const [a, b] = answers.slice(2 * i, 2 * i + 2);
    const lines = differences(name, c, 'direct', a, b);
    const [fast, slow] = a.ms < b.ms ? [a, b] : [b, a];
    if (fast.ms < 1000 && slow.ms > 2000) {
      lines.push(`answered after: ${a.ch} ${a.ms} ms, ${b.ch} ${b.ms} ms (Redis paused for ${PAUSE_MS} ms)`);
    }
    record(name, c, 'direct', a, b, lines);
    if (lines.length) out.push(`  [direct] ${name}: ${label(c)}\n    ${lines.join('\n    ')}`);
  });
  // Both sides serve again before the next case.
  await waitFor(async () => (await http('GET', `${daemon.url}/healthz`)).status === 200 &&
    (await fcgiHttp(fcgi.socket, 'GET', '/healthz')).status === 200,
  { timeout: 15000, what: 'crosstalkd and the pool to answer /healthz 200 after the pause' });
  assert.ok(out.length === 0, `Redis hangs: the two REST implementations answer differently\n${out.join('\n')}`);
});

// Redis down: both stores stop; both sides must say the same and send Retry-After.
test('setup: stop both redis-servers', async () => {
  await Promise.all([redisD.stop(), redisF.stop()]);
});
const down = (name, c) => {
  const cc = { ...c, expect: 503 };
  parity(`Redis down: ${name}`, cc);
  test(`Redis down: ${name}: both send Retry-After`, async () => {
    for (const [ch, s] of [...PAIRS.direct, ...PAIRS.nginx]) {
      const r = await send(ch, c.method, c.path(side[s]), { headers: c.headers?.(side[s]) ?? {}, body: c.body?.(side[s]) });
      assert.ok(r.status !== 503 || /^\d+$/.test([].concat(r.headers['retry-after'] ?? '').join()),
        `${name} via ${ch}: 503 without a Retry-After (headers ${JSON.stringify(r.headers)})`);
    }
  });
};
down('register', { method: 'POST', path: () => '/api/register', body: J({ name: 'carol' }) });
down('send', { method: 'POST', path: () => '/api/rooms/down/messages', headers: auth, body: J({ text: 'lost?' }) });
down('history', { method: 'GET', path: () => MSG, headers: auth });
down('rooms', { method: 'GET', path: () => '/api/rooms', headers: auth });
down('typing', { method: 'POST', path: () => `/api/rooms/${ROOM}/typing`, headers: auth });
down('presence', { method: 'GET', path: () => `/api/rooms/${ROOM}/presence`, headers: auth });
down('healthz', { method: 'GET', path: () => '/healthz' });
