// floor.test.mjs - crosstalk-floor (src/bench/floor.c), the benchmark's
// floor: what it delivers over SSE and WebSocket to real clients (the npm
// eventsource and ws packages), that a subscriber who leaves does not stop
// the others, and that bad requests and arguments get a clear answer. Its
// speed is the benchmark's business (scripts/bench/run --at), not a test's.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { bin, cleanup, eventSource, http, rawHttp, runSync, startFloor, uniqueRoom, waitFor } from './harness.mjs';

after(cleanup);

const publish = (f, room, body) => http('POST', `${f.url}/pub?id=${room}`, { body, headers: { 'Content-Type': 'text/plain' } });

function wsOpen(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const got = [];
    ws.on('message', (d, isBinary) => got.push({ text: d.toString('utf8'), isBinary }));
    ws.once('open', () => resolve({ ws, got }));
    ws.once('error', reject);
  });
}

test('a publish reaches every SSE and WebSocket subscriber of its room, in order, and no other room', async () => {
  const f = await startFloor();
  const room = uniqueRoom('floor');
  const es = await eventSource(`${f.url}/sub/sse?id=${room}`, { types: ['message'] });
  await es.waitOpen();
  const a = await wsOpen(`ws://127.0.0.1:${f.port}/sub/ws?id=${room}`);
  const other = await wsOpen(`ws://127.0.0.1:${f.port}/sub/ws?id=${room}-other`);

  const bodies = ['one', 'two lines\nsecond', 'x'.repeat(300), 'cr\rcrlf\r\nend'];
  for (const b of bodies) {
    const r = await publish(f, room, b);
    assert.equal(r.status, 201, r.text);
  }
  const evs = await es.waitEvents(bodies.length);
  assert.deepEqual(evs.map((e) => e.data), bodies.map((b) => b.replace(/\r\n?/g, '\n')),
    'SSE: each body, a line per data: line (CR, LF and CRLF each end one)');
  await waitFor(() => a.got.length >= bodies.length, { what: 'every WebSocket message' });
  assert.deepEqual(a.got, bodies.map((text) => ({ text, isBinary: false })), 'WebSocket: one text frame each');
  assert.equal(other.got.length, 0, 'nothing for another room');
  // the close handshake: the floor answers a close frame and closes
  const closed = new Promise((resolve) => other.ws.once('close', (code) => resolve(code)));
  other.ws.close(1000);
  let timer;
  const code = await Promise.race([closed, new Promise((r) => { timer = setTimeout(() => r('no close within 3 s'), 3000); })]);
  clearTimeout(timer);
  assert.equal(code, 1005, 'the close was answered (a close frame without a status)');
  assert.equal((await publish(f, `${room}-nobody`, 'lost in space')).status, 201, 'a room nobody listens to');
  es.close();
  a.ws.close();
  other.ws.close();
});

test('a subscriber that leaves does not stop the others', async () => {
  const f = await startFloor();
  const room = uniqueRoom('floor');
  const stay = await wsOpen(`ws://127.0.0.1:${f.port}/sub/ws?id=${room}`);
  const leave = await wsOpen(`ws://127.0.0.1:${f.port}/sub/ws?id=${room}`);
  leave.ws.terminate();
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 20; i++) assert.equal((await publish(f, room, `m${i}`)).status, 201);
  await waitFor(() => stay.got.length >= 20, { what: 'twenty messages' });
  assert.deepEqual(stay.got.map((m) => m.text), Array.from({ length: 20 }, (_, i) => `m${i}`));
  assert.equal((await http('GET', `${f.url}/healthz`)).status, 200, 'still serving');
  stay.ws.close();
});

const wsReq = ({ key = 'dGhlIHNhbXBsZSBub25jZQ==', connection = 'Upgrade', version = '13' }) =>
  `GET /sub/ws?id=r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: ${connection}\r\n` +
  `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: ${version}\r\n\r\n`;

test('bad requests get a status that says why, and the connection closes', async () => {
  const f = await startFloor();
  const cases = [
    ['GET /sub/sse HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'no room id'],
    ['GET /sub/sse?id=a%20b HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'a room id outside [A-Za-z0-9._-]'],
    [`GET /sub/sse?id=${'r'.repeat(65)} HTTP/1.1\r\nHost: x\r\n\r\n`, 400, 'a room id over 64 characters'],
    ['GET /sub/ws?id=r HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'a WebSocket request without Upgrade or key'],
    [wsReq({ key: '!!!!!!!!!!!!!!!!!!!!!!!!' }), 400, 'a WebSocket key that is not base64 of 16 bytes'],
    [wsReq({ connection: 'keep-alive' }), 400, 'a WebSocket request without Connection: Upgrade'],
    [wsReq({ version: '8' }), 426, 'a WebSocket version other than 13'],
    ['GET / \r\n\r\n', 400, 'a request line cut short'],
    ['GET /pub?id=r HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'a publish with GET'],
    ['POST /sub/sse?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', 405, 'a subscribe with POST'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\n\r\nhello', 411, 'a publish without Content-Length'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 501, 'a chunked body'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400, 'a negative Content-Length'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc', 400, 'a signed Content-Length'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n', 413, 'a Content-Length past any body'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /healthz HTTP/1.1\r\n\r\n', 400, 'two Content-Lengths (a smuggled request)'],
    ['GET /sub/lp?id=r HTTP/1.1\r\nHost: x\r\n\r\n', 404, 'a long poll (the floor has none)'],
    ['PUT /pub?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', 405, 'a method other than GET or POST'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n', 400, 'a Content-Length that is not a number'],
    ['POST /pub?id=r HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n', 413, 'a body over 64 KiB'],
    [`GET /healthz HTTP/1.1\r\nX: ${'h'.repeat(9000)}\r\n\r\n`, 431, 'a head over 8 KiB'],
    ['HELLO\r\n\r\n', 400, 'no request line'],
  ];
  for (const [req, status, why] of cases) {
    const r = await rawHttp(f.port, req);
    assert.equal(r.status, status, `${why}: ${r.raw.slice(0, 200)}`);
    assert.equal((r.raw.match(/HTTP\/1\.1 /g) ?? []).length, 1, `${why}: one answer, nothing smuggled: ${r.raw}`);
    if (status === 426) assert.equal(r.headers['sec-websocket-version'], '13', why);
    assert.match(r.text, new RegExp(`^${status} `), `${why}: the body names the status`);
    assert.equal(r.headers.connection, 'close', why);
  }
  assert.equal((await http('GET', `${f.url}/healthz`)).status, 200, 'still serving');
});

test('publishes pipelined on one connection are each answered', async () => {
  const f = await startFloor();
  const room = uniqueRoom('floor');
  const es = await eventSource(`${f.url}/sub/sse?id=${room}`, { types: ['message'] });
  await es.waitOpen();
  const one = (b) => `POST /pub?id=${room} HTTP/1.1\r\nHost: x\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
  const r = await rawHttp(f.port, one('p1') + one('p2') + one('p3'), { timeout: 1000 });
  assert.equal((r.raw.match(/HTTP\/1\.1 201 Created/g) ?? []).length, 3, r.raw);
  const evs = await es.waitEvents(3);
  assert.deepEqual(evs.map((e) => e.data), ['p1', 'p2', 'p3']);
  es.close();
});

test('crosstalk-floor --help answers, and bad arguments are refused', async () => {
  const help = runSync(bin('crosstalk-floor'), ['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: crosstalk-floor --port PORT/);
  assert.match(help.stdout, /GET \/sub\/ws\?id=ROOM/);
  for (const [args, msg] of [
    [[], /--port is required/],
    [['--port=0'], /--port '0' is not a port/],
    [['--port=http'], /--port 'http' is not a port/],
    [['--port=80', '--bind=localhost'], /--bind localhost is not an IPv4 address/],
    [['--port=80', 'extra'], /unexpected argument 'extra'/],
  ]) {
    const r = runSync(bin('crosstalk-floor'), args);
    assert.ok(r.status === 1 || r.status === 2, `${args.join(' ')}: exit ${r.status}`);
    assert.match(r.stderr, msg, args.join(' '));
  }
  const f = await startFloor();
  const busy = runSync(bin('crosstalk-floor'), [`--port=${f.port}`]);
  assert.equal(busy.status, 1);
  assert.match(busy.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${f.port}: Address already in use`));
});
