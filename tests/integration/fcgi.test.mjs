// fcgi.test.mjs - crosstalk-fcgi against crosstalkd: every stateless REST
// call, good or bad, answers the same through the FastCGI pool (behind a real
// nginx, and over a raw FastCGI connection) as through crosstalkd; Redis
// going away gives 503 and stores nothing; SIGTERM finishes the request in
// hand. Real redis-server, crosstalkd, spawn-fcgi, nginx.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import {
  REPO, startRedis, startDaemon, startFcgi, startNginx, startFerret, http, cleanup, tmpDir, bin,
  waitFor, within, sleep, runSync, alive, compareIds,
} from './harness.mjs';

// High rate limits: these tests register and send far more than a person.
const CONFIG = { rate_register_per_min: 1000000, rate_send_per_sec: 1000000, log_level: 'debug' };

let redis, daemon, fcgi, nginx;

before(async () => {
  redis = await startRedis();
  daemon = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, trusted_proxies: '127.0.0.1,unix' } });
  fcgi = await startFcgi({ redisUrl: redis.url, children: 2, config: CONFIG });
  nginx = await startNginx({ daemons: [daemon.port], fcgiSocket: fcgi.socket });
});

after(async () => {
  await fcgi?.stop().catch(() => {});
  await cleanup();
});

// ------------------------------------------------------------ a FastCGI client

const FCGI = { BEGIN: 1, END: 3, PARAMS: 4, STDIN: 5, STDOUT: 6, STDERR: 7 };

function record(type, content = Buffer.alloc(0), id = 1) {
  const pad = (8 - (content.length % 8)) % 8;
  const h = Buffer.alloc(8);
  h.writeUInt8(1, 0);
  h.writeUInt8(type, 1);
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  h.writeUInt8(pad, 6);
  return Buffer.concat([h, content, Buffer.alloc(pad)]);
}

function nvLen(n) {
  if (n < 128) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

function paramsRecords(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    const kb = Buffer.from(k);
    const vb = Buffer.from(String(v));
    parts.push(nvLen(kb.length), nvLen(vb.length), kb, vb);
  }
  const all = Buffer.concat(parts);
  const out = [];
  for (let i = 0; i < all.length; i += 65535) out.push(record(FCGI.PARAMS, all.subarray(i, i + 65535)));
  out.push(record(FCGI.PARAMS));
  return Buffer.concat(out);
}

function stdinRecords(body) {
  const out = [];
  for (let i = 0; i < body.length; i += 65535) out.push(record(FCGI.STDIN, body.subarray(i, i + 65535)));
  return Buffer.concat(out);
}

// Parses the CGI answer a responder wrote on STDOUT.
function parseCgi(buf) {
  const sep = buf.indexOf('\r\n\r\n');
  assert.ok(sep >= 0, `the FastCGI answer has no end of headers: ${JSON.stringify(buf.toString())}`);
  const headers = {};
  for (const line of buf.subarray(0, sep).toString().split('\r\n')) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const body = buf.subarray(sep + 4);
  const text = body.toString('utf8');
  let json;
  try {
    json = text.length ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: Number((headers.status ?? '200').split(' ')[0]), headers, body, text, json };
}

/**
 * A FastCGI request over its own connection, sent in steps: open(), then
 * head() (BEGIN_REQUEST and the params), stdin(part)..., end(), and
 * answer() resolving with {status, headers, body, text, json, appStatus}.
 */
function fcgiConnection(socket) {
  const sock = net.connect(socket);
  let out = Buffer.alloc(0);
  let stdout = Buffer.alloc(0);
  let stderr = '';
  let done;
  const finished = new Promise((resolve, reject) => {
    done = { resolve, reject };
  });
  sock.on('data', (d) => {
    out = Buffer.concat([out, d]);
    while (out.length >= 8) {
      const type = out.readUInt8(1);
      const len = out.readUInt16BE(4);
      const pad = out.readUInt8(6);
      if (out.length < 8 + len + pad) break;
      const content = out.subarray(8, 8 + len);
      out = out.subarray(8 + len + pad);
      if (type === FCGI.STDOUT) stdout = Buffer.concat([stdout, content]);
      else if (type === FCGI.STDERR) stderr += content.toString();
      else if (type === FCGI.END) {
        const res = parseCgi(stdout);
        res.appStatus = content.readUInt32BE(0);
        res.stderr = stderr;
        sock.end();
        done.resolve(res);
      }
    }
  });
  sock.on('error', (e) => done.reject(new Error(`FastCGI connection to ${socket}: ${e.message}`)));
  sock.on('close', () => done.reject(new Error(`FastCGI connection to ${socket} closed before END_REQUEST; ` +
    `stdout so far: ${JSON.stringify(stdout.toString())}`)));
  const connected = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return {
    connected,
    head(params) {
      const begin = Buffer.alloc(8);
      begin.writeUInt16BE(1, 0); // RESPONDER
      sock.write(Buffer.concat([record(FCGI.BEGIN, begin), paramsRecords(params)]));
    },
    stdin(part) {
      if (part.length) sock.write(stdinRecords(Buffer.from(part)));
    },
    end() {
      sock.write(record(FCGI.STDIN));
    },
    answer: () => finished,
    destroy: () => sock.destroy(),
  };
}

/** One whole FastCGI request, as nginx would send it. */
async function fcgiRequest(socket, method, uri, { headers = {}, body } = {}) {
  const payload = body === undefined ? Buffer.alloc(0)
    : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const q = uri.indexOf('?');
  const params = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: method,
    REQUEST_URI: uri,
    QUERY_STRING: q >= 0 ? uri.slice(q + 1) : '',
    SCRIPT_NAME: q >= 0 ? uri.slice(0, q) : uri,
    CONTENT_LENGTH: payload.length ? String(payload.length) : '',
    CONTENT_TYPE: payload.length ? 'application/json' : '',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REMOTE_ADDR: '127.0.0.1',
  };
  for (const [k, v] of Object.entries(headers)) params[`HTTP_${k.toUpperCase().replaceAll('-', '_')}`] = v;
  const c = fcgiConnection(socket);
  await c.connected;
  c.head(params);
  c.stdin(payload);
  c.end();
  return within(10000, c.answer(), `the FastCGI answer to ${method} ${uri}`);
}

// ------------------------------------------------------------ helpers

let seq = 0;
const uniq = (p) => `${p}${process.pid % 10000}_${++seq}`;

async function register(base, name) {
  const r = await http('POST', `${base}/api/register`, { body: { name } });
  assert.equal(r.status, 201, `register ${name} at ${base}: ${r.status} ${r.text}`);
  return r.json.token;
}

const bearer = (t) => ({ Authorization: `Bearer ${t}` });

function describe(r) {
  return `${r.status} ${r.text.trim()}`;
}

/**
 * Sends one request to crosstalkd (its own port), to the FastCGI pool through
 * nginx (/f/ + path) and straight over FastCGI, and asserts the three agree
 * on the status and the error code; returns the answers.
 */
async function same(what, method, pathq, opts = {}) {
  const d = await http(method, daemon.url + pathq, opts);
  const f = await http(method, `${nginx.url}/f${pathq}`, opts);
  const raw = await fcgiRequest(fcgi.socket, method, pathq, opts);
  const ctx = `${what}: ${method} ${pathq}\n  crosstalkd:        ${describe(d)}\n` +
    `  fcgi via nginx:    ${describe(f)}\n  fcgi over FastCGI: ${describe(raw)}`;
  assert.equal(f.status, d.status, `status differs. ${ctx}`);
  assert.equal(raw.status, d.status, `status differs. ${ctx}`);
  if (d.status >= 400) {
    assert.equal(typeof d.json?.error, 'string', `crosstalkd's error is not {"error":...}. ${ctx}`);
    assert.equal(f.json?.error, d.json.error, `error code differs. ${ctx}`);
    assert.equal(raw.json?.error, d.json.error, `error code differs. ${ctx}`);
    assert.equal(typeof f.json?.message, 'string', `no "message" via FastCGI. ${ctx}`);
  }
  for (const r of [d, f]) {
    if (r.status !== 204) assert.match(r.headers['content-type'] ?? '', /^application\/json/, `content type. ${ctx}`);
  }
  assert.match(raw.headers['content-type'] ?? '', /^application\/json/, `content type over FastCGI. ${ctx}`);
  return { d, f, raw };
}

function xlen(room) {
  return redis.cmd('XLEN', `ct:room:{${room}}:log`);
}

// ------------------------------------------------------------ the tests

test('crosstalk-fcgi --help prints its usage and the configuration keys', () => {
  const r = runSync(bin('crosstalk-fcgi'), ['--help']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /spawn-fcgi/);
  assert.match(r.stdout, /redis[-_]url/);
  assert.match(r.stdout, /max[-_]body[-_]bytes/);
  // crosstalkd's keys it does not read are not offered as if it did
  assert.doesNotMatch(r.stdout, /--ws-ping-interval|--max-connections|--header-timeout/, r.stdout);
  assert.match(r.stdout, /other keys of a shared crosstalk\.conf \(crosstalkd's\) are accepted and\s+ignored/, r.stdout);
  assert.equal(r.stdout.match(/^ {2}--config /gm)?.length, 1, `--config listed once:\n${r.stdout}`);
});

test('a bad configuration stops crosstalk-fcgi with a message naming the key', () => {
  const r = runSync(bin('crosstalk-fcgi'), ['--max-body-bytes=12']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /max_body_bytes/);
  const u = runSync(bin('crosstalk-fcgi'), ['--redis-url=http://x']);
  assert.notEqual(u.status, 0, `a malformed redis_url must stop it: ${u.stdout}${u.stderr}`);
});

test('crosstalk.conf.example documents every key, and loads as it stands and uncommented', () => {
  const example = path.join(REPO, 'crosstalk.conf.example');
  const text = fs.readFileSync(example, 'utf8');
  const help = runSync(bin('crosstalkd'), ['--help']).stdout;
  const keys = [...help.matchAll(/^ {2}--([a-z][a-z-]*) /gm)].map((m) => m[1].replaceAll('-', '_'))
    .filter((k) => !['config', 'socket', 'help'].includes(k));
  assert.ok(keys.length >= 20, `keys from --help: ${keys}`);
  const documented = [...text.matchAll(/^# ([a-z_]+) =/gm)].map((m) => m[1]);
  assert.deepEqual(keys.filter((k) => !documented.includes(k)), [], 'keys missing from crosstalk.conf.example');
  const d = tmpDir('conf');
  const uncommented = path.join(d, 'all.conf');
  fs.writeFileSync(uncommented, text.split('\n').map((l) => l.replace(/^# ([a-z_]+ =.*)$/, '$1')).join('\n'));
  for (const f of [example, uncommented]) {
    // outside FastCGI it stops after loading the configuration: 1, not 2
    const r = runSync(bin('crosstalk-fcgi'), ['--config', f], { input: '' });
    assert.equal(r.status, 1, `--config ${f}: ${r.stderr}`);
    assert.match(r.stderr, /not a FastCGI listening socket/, r.stderr);
  }
});

test('crosstalk-fcgi outside FastCGI says how to run it', () => {
  const r = runSync(bin('crosstalk-fcgi'), [`--redis-url=${'redis://127.0.0.1:1/0'}`], { input: '' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /spawn-fcgi|--socket/);
});

test('register: the same answers through FastCGI as through crosstalkd', async () => {
  // good: a fresh name on each side
  const n = uniq('reg');
  const d = await http('POST', `${daemon.url}/api/register`, { body: { name: `${n}d` } });
  const f = await http('POST', `${nginx.url}/f/api/register`, { body: { name: `${n}f` } });
  const raw = await fcgiRequest(fcgi.socket, 'POST', '/api/register', { body: { name: `${n}r` } });
  for (const [who, r, name] of [['crosstalkd', d, `${n}d`], ['fcgi via nginx', f, `${n}f`], ['fcgi', raw, `${n}r`]]) {
    assert.equal(r.status, 201, `${who}: ${describe(r)}`);
    assert.deepEqual(Object.keys(r.json).sort(), ['name', 'token'], `${who}: ${r.text}`);
    assert.equal(r.json.name, name);
    assert.match(r.json.token, /^[A-Za-z0-9_-]{43}$/, `${who}: token shape`);
  }
  // a token made by one works on the other
  const room = uniq('x').toLowerCase();
  const viaD = await http('GET', `${daemon.url}/api/rooms/${room}/presence`, { headers: bearer(f.json.token) });
  assert.equal(viaD.status, 200, `crosstalkd with a token made by crosstalk-fcgi: ${describe(viaD)}`);
  const viaF = await http('GET', `${nginx.url}/f/api/rooms/${room}/presence`, { headers: bearer(d.json.token) });
  assert.equal(viaF.status, 200, `crosstalk-fcgi with a token made by crosstalkd: ${describe(viaF)}`);

  const taken = uniq('taken');
  await register(daemon.url, taken);
  const cases = [
    ['taken name', { name: taken }],
    ['malformed JSON', '{"name":'],
    ['JSON with trailing garbage', '{"name":"abc"} x'],
    ['not an object', '["abc"]'],
    ['a string', '"abc"'],
    ['name of the wrong type', { name: 5 }],
    ['name null', { name: null }],
    ['missing name', {}],
    ['empty name', { name: '' }],
    ['name with a space', { name: 'bad name' }],
    ['name of 33 characters', { name: 'a'.repeat(33) }],
    ['name not ASCII', { name: 'zoë' }],
    ['name with a slash', { name: 'a/b' }],
    ['empty body', ''],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
  ];
  for (const [what, body] of cases) {
    const { d: dd } = await same(what, 'POST', '/api/register', { body });
    assert.ok(dd.status === 400 || dd.status === 409, `${what}: crosstalkd answered ${describe(dd)}`);
  }
  await same('register, wrong method', 'GET', '/api/register');
  await same('register, wrong method', 'PUT', '/api/register', { body: { name: uniq('p') } });
});

test('sending: the same answers, and nothing stored for a refused message', async () => {
  const token = await register(daemon.url, uniq('snd'));
  const room = uniq('send').toLowerCase();
  const h = bearer(token);
  const big = 'é'.repeat(2049); // 4098 bytes > max_message_bytes 4096
  const cases = [
    ['malformed JSON', '{"text":'],
    ['not an object', '[1]'],
    ['text missing', { txt: 'hi' }],
    ['text a number', { text: 42 }],
    ['text an object', { text: { a: 1 } }],
    ['text null', { text: null }],
    ['empty text', { text: '' }],
    ['text over max_message_bytes', { text: big }],
    ['text of max_message_bytes + 1 ASCII bytes', { text: 'a'.repeat(4097) }],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')])],
    ['an escaped NUL', '{"text":"a\\u0000b"}'],
    ['empty body', ''],
  ];
  for (const [what, body] of cases) {
    const { d } = await same(what, 'POST', `/api/rooms/${room}/messages`, { headers: h, body });
    assert.ok([400, 413].includes(d.status), `${what}: crosstalkd answered ${describe(d)}`);
  }
  assert.equal(await xlen(room), 0, 'a refused message was stored');

  // auth
  await same('no token', 'POST', `/api/rooms/${room}/messages`, { body: { text: 'hi' } });
  await same('unknown token', 'POST', `/api/rooms/${room}/messages`,
    { headers: bearer('A'.repeat(43)), body: { text: 'hi' } });
  await same('malformed token', 'POST', `/api/rooms/${room}/messages`,
    { headers: bearer('nope'), body: { text: 'hi' } });
  await same('not a Bearer', 'POST', `/api/rooms/${room}/messages`,
    { headers: { Authorization: `Basic ${token}` }, body: { text: 'hi' } });
  await same('unknown token in the query', 'POST', `/api/rooms/${room}/messages?token=${'B'.repeat(43)}`,
    { body: { text: 'hi' } });
  // bad rooms
  for (const bad of ['Lobby', 'a.b', 'x'.repeat(65), '%61', '']) {
    await same(`room "${bad}"`, 'POST', `/api/rooms/${bad}/messages`, { headers: h, body: { text: 'hi' } });
  }
  assert.equal(await xlen(room), 0, 'a refused message was stored');

  // good: one through each, the same event shape
  const d = await http('POST', `${daemon.url}/api/rooms/${room}/messages`, { headers: h, body: { text: 'from d ✓' } });
  const f = await http('POST', `${nginx.url}/f/api/rooms/${room}/messages`, { headers: h, body: { text: 'from f ✓' } });
  const q = await http('POST', `${nginx.url}/f/api/rooms/${room}/messages?token=${token}`, { body: { text: 'via ?token=' } });
  for (const [who, r] of [['crosstalkd', d], ['fcgi', f], ['fcgi, ?token=', q]]) {
    assert.equal(r.status, 201, `${who}: ${describe(r)}`);
    assert.deepEqual(Object.keys(r.json).sort(), ['from', 'id', 'room', 'text', 'ts', 'type'], `${who}: ${r.text}`);
    assert.equal(r.json.type, 'message');
    assert.equal(r.json.room, room);
    assert.match(r.json.id, /^\d+-\d+$/);
    assert.equal(typeof r.json.ts, 'number');
  }
  assert.equal(f.json.text, 'from f ✓');
  assert.ok(f.json.id > d.json.id || f.json.id.length > d.json.id.length, 'ids ascend');
  assert.equal(await xlen(room), 3);
  // a text of exactly max_message_bytes is fine
  const exact = await http('POST', `${nginx.url}/f/api/rooms/${room}/messages`, { headers: h, body: { text: 'b'.repeat(4096) } });
  assert.equal(exact.status, 201, describe(exact));
});

test('a body over max_body_bytes: 413 from crosstalkd, nginx and crosstalk-fcgi', async () => {
  const token = await register(daemon.url, uniq('big'));
  const room = uniq('big').toLowerCase();
  const body = JSON.stringify({ text: 'x', pad: 'p'.repeat(70000) });
  const d = await http('POST', `${daemon.url}/api/rooms/${room}/messages`, { headers: bearer(token), body });
  const f = await http('POST', `${nginx.url}/f/api/rooms/${room}/messages`, { headers: bearer(token), body });
  const n = await http('POST', `${nginx.url}/api/rooms/${room}/messages`, { headers: bearer(token), body });
  const raw = await fcgiRequest(fcgi.socket, 'POST', `/api/rooms/${room}/messages`, { headers: bearer(token), body });
  for (const [who, r] of [['crosstalkd', d], ['nginx /f/', f], ['nginx', n], ['crosstalk-fcgi', raw]]) {
    assert.equal(r.status, 413, `${who}: ${describe(r)}`);
    assert.equal(r.json?.error, 'too_large', `${who}: ${describe(r)}`);
  }
  // on the register path too, and without a token: the size is checked first
  const reg = await fcgiRequest(fcgi.socket, 'POST', '/api/register', { body });
  const dreg = await http('POST', `${daemon.url}/api/register`, { body });
  assert.equal(reg.status, dreg.status, `fcgi ${describe(reg)} vs crosstalkd ${describe(dreg)}`);
  assert.equal(await xlen(room), 0);
});

test('history and short poll: the same events, the same errors', async () => {
  const token = await register(daemon.url, uniq('hist'));
  const room = uniq('hist').toLowerCase();
  const h = bearer(token);
  const ids = [];
  for (let i = 0; i < 7; i++) {
    const base = i % 2 ? `${nginx.url}/f` : daemon.url;
    const r = await http('POST', `${base}/api/rooms/${room}/messages`, { headers: h, body: { text: `m${i}` } });
    assert.equal(r.status, 201, describe(r));
    ids.push(r.json.id);
  }
  const good = [
    '', '?since=0', `?since=${ids[2]}`, `?since=${ids[2]}&limit=2`, `?since=${ids[6]}`, '?since=',
    `?before=${ids[5]}`, `?before=${ids[5]}&limit=2`, `?before=${ids[0]}`, '?limit=3', '?limit=500',
    `?since=${ids[0].split('-')[0]}`, '?since=99999999999999-0',
  ];
  // every disagreement at once: one look tells which side is wrong
  const problems = [];
  for (const q of good) {
    const { d, f, raw } = await same(`history ${q}`, 'GET', `/api/rooms/${room}/messages${q}`, { headers: h });
    assert.equal(d.status, 200, describe(d));
    assert.deepEqual(raw.json, f.json, `GET messages${q}: FastCGI direct and via nginx disagree`);
    for (const [who, r] of [['crosstalkd', d], ['crosstalk-fcgi', f]]) {
      const got = r.json.events.map((e) => e.id);
      // the whole id: two messages in one millisecond differ by sequence
      const sorted = [...got].sort(compareIds);
      if (JSON.stringify(sorted) !== JSON.stringify(got)) problems.push(`${who}: GET messages${q}: ids not ascending: ${got.join(' ')}`);
    }
    if (JSON.stringify(f.json) !== JSON.stringify(d.json)) {
      problems.push(`GET messages${q}: FastCGI and crosstalkd disagree\n    crosstalkd: ${d.text.trim()}\n    fcgi:       ${f.text.trim()}`);
    }
  }
  if (problems.length) assert.fail(`${problems.length} problem(s):\n${problems.join('\n')}`);
  const after2 = (await http('GET', `${nginx.url}/f/api/rooms/${room}/messages?since=${ids[2]}&limit=2`, { headers: h })).json;
  assert.deepEqual(after2.events.map((e) => e.text), ['m3', 'm4']);
  assert.equal(after2.last_id, ids[4]);
  const before5 = (await http('GET', `${nginx.url}/f/api/rooms/${room}/messages?before=${ids[5]}&limit=2`, { headers: h })).json;
  assert.deepEqual(before5.events.map((e) => e.text), ['m3', 'm4']);
  const nothing = (await http('GET', `${nginx.url}/f/api/rooms/${room}/messages?since=${ids[6]}`, { headers: h })).json;
  assert.deepEqual(nothing, { events: [], last_id: ids[6] });

  const bad = [
    '?since=abc', '?since=1-2-3', '?since=-1', '?since=1-x', '?before=x', `?since=${ids[1]}&before=${ids[3]}`,
    '?limit=0', '?limit=501', '?limit=-1', '?limit=x', '?limit=1.5', '?since=%zz', '?since=18446744073709551616-0',
  ];
  for (const q of bad) {
    const { d } = await same(`bogus ${q}`, 'GET', `/api/rooms/${room}/messages${q}`, { headers: h });
    assert.equal(d.status, 400, `${q}: crosstalkd answered ${describe(d)}`);
  }
  await same('history without a token', 'GET', `/api/rooms/${room}/messages`);
  await same('history in a bad room', 'GET', '/api/rooms/BAD/messages', { headers: h });
});

test('typing, presence, rooms, healthz: the same answers', async () => {
  const name = uniq('typ');
  const token = await register(daemon.url, name);
  const room = uniq('typ').toLowerCase();
  const h = bearer(token);
  const t = await same('typing', 'POST', `/api/rooms/${room}/typing`, { headers: h });
  assert.equal(t.d.status, 202, describe(t.d));
  assert.deepEqual(t.f.json, t.d.json);
  await same('typing without a token', 'POST', `/api/rooms/${room}/typing`);
  await same('typing, wrong method', 'GET', `/api/rooms/${room}/typing`, { headers: h });

  const p = await same('presence', 'GET', `/api/rooms/${room}/presence`, { headers: h });
  assert.equal(p.d.status, 200);
  assert.deepEqual(p.f.json, p.d.json);
  assert.ok(p.f.json.online.includes(name), `${name} typed, so is online: ${p.f.text}`);
  await same('presence, wrong method', 'POST', `/api/rooms/${room}/presence`, { headers: h });
  await same('presence without a token', 'GET', `/api/rooms/${room}/presence`);

  await http('POST', `${nginx.url}/f/api/rooms/${room}/messages`, { headers: h, body: { text: 'hi' } });
  const r = await same('rooms', 'GET', '/api/rooms', { headers: h });
  assert.equal(r.d.status, 200);
  assert.deepEqual(r.f.json, r.d.json);
  assert.equal(r.f.json.rooms[0].name, room, `the busiest room first: ${r.f.text}`);
  await same('rooms, wrong method', 'POST', '/api/rooms', { headers: h, body: {} });
  await same('rooms, wrong method', 'DELETE', '/api/rooms', { headers: h });

  const hz = await same('healthz', 'GET', '/healthz');
  assert.equal(hz.d.status, 200);
  assert.deepEqual(hz.f.json, hz.d.json);
  await same('healthz, wrong method', 'POST', '/healthz', { body: {} });
});

test('unknown paths and wrong methods: the same 404 and 405', async () => {
  const token = await register(daemon.url, uniq('nf'));
  const h = bearer(token);
  for (const p of ['/api/nope', '/api/rooms/x/nope', '/api/rooms/x/messages/y', '/api/rooms/x', '/api/room/x/messages',
    '/api/registerx', '/api/rooms/x/messages/']) {
    const { d } = await same(`unknown path ${p}`, 'GET', p, { headers: h });
    assert.equal(d.status, 404, `${p}: ${describe(d)}`);
  }
  for (const [m, p] of [['DELETE', '/api/rooms/x/messages'], ['PUT', '/api/rooms/x/messages'],
    ['PATCH', '/api/register'], ['DELETE', '/api/rooms/x/presence'], ['PUT', '/api/rooms/x/typing']]) {
    const { d, f } = await same(`wrong method ${m} ${p}`, m, p, { headers: h });
    assert.equal(d.status, 405, describe(d));
    assert.equal(f.headers.allow, d.headers.allow, 'the Allow header');
  }
});

test('the canonical REST paths reach the FastCGI pool through nginx', async () => {
  const name = uniq('canon');
  const r = await http('POST', `${nginx.url}/api/register`, { body: { name } });
  assert.equal(r.status, 201, describe(r));
  const room = uniq('canon').toLowerCase();
  const h = bearer(r.json.token);
  const calls = [
    ['POST', `/api/rooms/${room}/messages`, { text: 'canonical' }, 201],
    ['GET', `/api/rooms/${room}/messages?since=0`, undefined, 200],
    ['POST', `/api/rooms/${room}/typing`, undefined, 202],
    ['GET', `/api/rooms/${room}/presence`, undefined, 200],
    ['GET', '/api/rooms', undefined, 200],
    ['GET', '/healthz', undefined, 200],
  ];
  for (const [m, p, body, status] of calls) {
    const x = await http(m, nginx.url + p, { headers: h, body });
    assert.equal(x.status, status, `${m} ${p}: ${describe(x)}`);
    const line = `${m} ${p.split('?')[0]} ${status}`;
    await waitFor(() => fcgi.logs().includes(line), {
      timeout: 2000, what: `crosstalk-fcgi's log to show "${line}" (the call went to the pool)`,
    });
  }
  assert.ok(fcgi.logs().includes(`POST /api/register 201`), 'register went to the pool');
});

test('Redis down: 503 unavailable, nothing acknowledged; back up: served again', async () => {
  const token = await register(daemon.url, uniq('down'));
  const room = uniq('down').toLowerCase();
  const h = bearer(token);
  const ok = await http('POST', `${nginx.url}/f/api/rooms/${room}/messages`, { headers: h, body: { text: 'before' } });
  assert.equal(ok.status, 201);
  // SIGTERM, not SIGKILL: with appendfsync everysec a busy disk may hold
  // back the last acknowledged writes (the token above), which is Redis'
  // business, not this test's
  await redis.stop();
  try {
    for (const [m, p, body] of [['POST', `/api/rooms/${room}/messages`, { text: 'lost?' }],
      ['GET', `/api/rooms/${room}/messages`], ['POST', `/api/rooms/${room}/typing`],
      ['GET', `/api/rooms/${room}/presence`], ['GET', '/api/rooms'], ['POST', '/api/register', { name: uniq('dn') }],
      ['GET', '/healthz']]) {
      const t0 = Date.now();
      const f = await http(m, `${nginx.url}/f${p}`, { headers: h, body });
      assert.equal(f.status, 503, `${m} ${p} with Redis down, via FastCGI: ${describe(f)}`);
      assert.equal(f.json?.error, 'unavailable');
      assert.ok(Date.now() - t0 < 3000, `answered within redis_timeout_ms (took ${Date.now() - t0} ms)`);
      const d = await http(m, daemon.url + p, { headers: h, body });
      assert.equal(d.status, 503, `${m} ${p} with Redis down, via crosstalkd: ${describe(d)}`);
      assert.equal(d.json?.error, 'unavailable');
    }
  } finally {
    await redis.restart();
  }
  // the first call after the restart already works: a connection Redis
  // closed is noticed before it is used
  for (let i = 0; i < 2; i++) {
    const again = await http('POST', `${nginx.url}/f/api/rooms/${room}/messages`, { headers: h, body: { text: `after ${i}` } });
    assert.equal(again.status, 201, `child ${i}, first call after Redis came back: ${describe(again)}`);
  }
  const texts = (await http('GET', `${nginx.url}/f/api/rooms/${room}/messages?since=0`, { headers: h })).json.events.map((e) => e.text);
  assert.deepEqual(texts, ['before', 'after 0', 'after 1'], 'nothing stored while Redis was down');
  // the next tests need crosstalkd back on Redis too (it reconnects with backoff)
  await waitFor(async () => (await http('GET', `${daemon.url}/healthz`)).status === 200, {
    timeout: 10000, what: 'crosstalkd to answer /healthz 200 after Redis came back',
  });
});

// crosstalk-fcgi run straight (--socket), so its exit status is ours to see.
async function startOwnFcgi(extra = []) {
  const d = tmpDir('fcgi-own');
  const socket = path.join(d, 'own.sock');
  let log = '';
  const proc = spawn(bin('crosstalk-fcgi'), ['--socket', socket, `--redis-url=${redis.url}`, '--log-level=debug', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (b) => { log += b; });
  proc.stderr.on('data', (b) => { log += b; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  await waitFor(() => fs.existsSync(socket) && new Promise((resolve) => {
    const s = net.connect(socket, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { timeout: 5000, what: `crosstalk-fcgi --socket ${socket} to accept connections`, proc });
  return { proc, socket, exited, logs: () => log };
}

test('SIGTERM while idle: crosstalk-fcgi exits 0 at once', async (t) => {
  const own = await startOwnFcgi();
  t.after(() => own.proc.kill('SIGKILL'));
  const t0 = Date.now();
  own.proc.kill('SIGTERM');
  const res = await within(3000, own.exited, 'crosstalk-fcgi to exit after SIGTERM while idle');
  assert.deepEqual(res, { code: 0, signal: null }, own.logs());
  assert.ok(Date.now() - t0 < 1500, `exited ${Date.now() - t0} ms after SIGTERM`);
});

test('SIGTERM during a request: the request is finished, then exit 0', async (t) => {
  const own = await startOwnFcgi();
  t.after(() => own.proc.kill('SIGKILL'));
  const token = await register(daemon.url, uniq('term'));
  const room = uniq('term').toLowerCase();
  const body = Buffer.from(JSON.stringify({ text: 'finished after SIGTERM' }));
  const c = fcgiConnection(own.socket);
  await c.connected;
  c.head({
    REQUEST_METHOD: 'POST', REQUEST_URI: `/api/rooms/${room}/messages`, CONTENT_LENGTH: String(body.length),
    HTTP_AUTHORIZATION: `Bearer ${token}`, SERVER_PROTOCOL: 'HTTP/1.1',
  });
  c.stdin(body.subarray(0, 5));
  await sleep(300); // the request is in hand: its body is being read
  own.proc.kill('SIGTERM');
  await sleep(300);
  assert.ok(alive(own.proc.pid), `crosstalk-fcgi exited with a request in hand:\n${own.logs()}`);
  c.stdin(body.subarray(5));
  c.end();
  const res = await within(5000, c.answer(), 'the answer to the request in hand at SIGTERM');
  assert.equal(res.status, 201, `${res.status} ${res.text}`);
  assert.equal(res.json.text, 'finished after SIGTERM');
  const ex = await within(3000, own.exited, 'crosstalk-fcgi to exit after finishing the request');
  assert.deepEqual(ex, { code: 0, signal: null }, own.logs());
  assert.equal(await xlen(room), 1);
});

test('the spawn-fcgi pool stops on SIGTERM and leaves nothing in /dev/shm', async () => {
  const pool = await startFcgi({ redisUrl: redis.url, children: 3 });
  const r = await fcgiRequest(pool.socket, 'GET', '/healthz');
  assert.equal(r.status, 200, r.text);
  // The driver's counters file, named while a child runs, would outlive a
  // child that is killed: a running child has none.
  const named = pool.pids.filter((pid) => fs.existsSync(`/dev/shm/mongoc-${pid}`));
  assert.deepEqual(named, [], 'children with a MongoDB counters file in /dev/shm, which a SIGKILL would leave behind');
  const t0 = Date.now();
  await pool.stop();
  assert.ok(Date.now() - t0 < 3000, `the pool took ${Date.now() - t0} ms to stop`);
});

test('history older than Redis holds comes from the MongoDB archive (FerretDB)', async (t) => {
  const ferret = await startFerret();
  t.after(() => ferret.stop());
  const pool = await startFcgi({ redisUrl: redis.url, mongoUri: ferret.uri, children: 1, config: CONFIG });
  t.after(() => pool.stop());
  const token = await register(daemon.url, uniq('arch'));
  const rm = uniq('arch').toLowerCase();
  const h = bearer(token);
  const ids = [];
  for (let i = 0; i < 10; i++) {
    const r = await fcgiRequest(pool.socket, 'POST', `/api/rooms/${rm}/messages`, { headers: h, body: { text: `a${i}` } });
    assert.equal(r.status, 201, `${r.status} ${r.text}`);
    ids.push(r.json.id);
  }
  // copy to MongoDB, then keep only the newest 3 in Redis
  const b = runSync(bin('crosstalk-backup'), [`--redis-url=${redis.url}`, `--mongo-uri=${ferret.uri}`, '--retain', '3'],
    { timeout: 30000 });
  assert.equal(b.status, 0, `crosstalk-backup --retain 3: ${b.stdout}${b.stderr}`);
  assert.equal(await xlen(rm), 3, 'Redis keeps the newest 3');

  const page = async (q) => {
    const r = await fcgiRequest(pool.socket, 'GET', `/api/rooms/${rm}/messages${q}`, { headers: h });
    assert.equal(r.status, 200, `${q}: ${r.status} ${r.text}\n${pool.logs()}`);
    return r.json;
  };
  // all from the archive
  let p = await page(`?before=${ids[7]}&limit=4`);
  assert.deepEqual(p.events.map((e) => e.text), ['a3', 'a4', 'a5', 'a6'], JSON.stringify(p));
  assert.equal(p.last_id, ids[6]);
  // Redis' two older ones, the rest from the archive, in one ascending page
  p = await page(`?before=${ids[9]}&limit=6`);
  assert.deepEqual(p.events.map((e) => e.text), ['a3', 'a4', 'a5', 'a6', 'a7', 'a8'], JSON.stringify(p));
  // the start of history: fewer than asked, none twice
  p = await page(`?before=${ids[2]}&limit=50`);
  assert.deepEqual(p.events.map((e) => e.text), ['a0', 'a1'], JSON.stringify(p));
  // the same event shape as Redis gives
  const fromRedis = (await page(`?since=${ids[7]}`)).events[0];
  assert.deepEqual(Object.keys(p.events[0]).sort(), Object.keys(fromRedis).sort());
  // crosstalkd pages Redis only
  const d = await http('GET', `${daemon.url}/api/rooms/${rm}/messages?before=${ids[9]}&limit=6`, { headers: h });
  assert.deepEqual(d.json.events.map((e) => e.text), ['a7', 'a8']);

  // MongoDB gone: the page is what Redis has, still 200
  await ferret.stop();
  const t0 = Date.now();
  p = await page(`?before=${ids[9]}&limit=6`);
  assert.deepEqual(p.events.map((e) => e.text), ['a7', 'a8']);
  assert.ok(Date.now() - t0 < 5000, `a page with MongoDB down took ${Date.now() - t0} ms`);
});

test('rate limits: 429 with Retry-After, as crosstalkd', async (t) => {
  const limits = { rate_register_per_min: 2, rate_send_per_sec: 1 };
  const strict = await startDaemon({ redisUrl: redis.url, config: limits });
  t.after(() => strict.stop());
  const pool = await startFcgi({ redisUrl: redis.url, children: 1, config: limits });
  t.after(() => pool.stop());
  const run = async (who, call) => {
    const out = [];
    for (let i = 0; i < 3; i++) out.push(await call(i));
    return out.map((r) => ({ who, status: r.status, error: r.json?.error, retry: r.headers['retry-after'] }));
  };
  const n = uniq('rl');
  const regD = await run('crosstalkd', (i) => http('POST', `${strict.url}/api/register`, { body: { name: `${n}d${i}` } }));
  const regF = await run('fcgi', (i) => fcgiRequest(pool.socket, 'POST', '/api/register', { body: { name: `${n}f${i}` } }));
  for (const regs of [regD, regF]) {
    assert.deepEqual(regs.map((r) => r.status), [201, 201, 429], JSON.stringify(regs));
    assert.equal(regs[2].error, 'rate_limited');
    assert.match(regs[2].retry ?? '', /^[1-9]\d*$/, `Retry-After: ${JSON.stringify(regs)}`);
  }
  // sends: per user, a burst of twice the rate
  const token = await register(daemon.url, uniq('rls'));
  const rm = uniq('rl').toLowerCase();
  const sendD = await run('crosstalkd', (i) => http('POST', `${strict.url}/api/rooms/${rm}/messages`,
    { headers: bearer(token), body: { text: `d${i}` } }));
  const sendF = await run('fcgi', (i) => fcgiRequest(pool.socket, 'POST', `/api/rooms/${rm}/messages`,
    { headers: bearer(token), body: { text: `f${i}` } }));
  for (const sends of [sendD, sendF]) {
    assert.deepEqual(sends.map((r) => r.status), [201, 201, 429], JSON.stringify(sends));
    assert.equal(sends[2].error, 'rate_limited');
    assert.match(sends[2].retry ?? '', /^[1-9]\d*$/);
  }
  assert.equal(await xlen(rm), 4, 'a rate-limited message is not stored');
});
