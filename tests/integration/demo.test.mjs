// demo.test.mjs - scripts/demo as a newcomer runs it: the whole stack in the
// background on free ports, the page and the API over plain HTTP/1.1 and
// over HTTPS with HTTP/2 (SSE over HTTP/2, WebSocket over TLS), a daemon and
// the FastCGI pool killed and brought back with --restart, and a second run
// that keeps the certificate the first one made; a run in the foreground
// ends on Ctrl-C and when --stop stops its stack. The page itself runs in
// headless Chromium over both (tests/e2e/page.test.mjs tests it in depth).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { REPO, alive, cleanup, freePort, http, runSync, tmpDir, uniqueName, uniqueRoom, waitFor, within } from './harness.mjs';

const DEMO = path.join(REPO, 'scripts', 'demo');
let dir;
let ports;
let args;

function demo(...extra) {
  const t0 = Date.now();
  const r = runSync(DEMO, [...args, ...extra], { timeout: 180000 });
  assert.ok(!r.timedOut, `scripts/demo ${extra.join(' ')}: still running after ${Date.now() - t0} ms`);
  assert.equal(r.status, 0, `scripts/demo ${extra.join(' ')} exited ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

const pidsOf = (file) => fs.existsSync(path.join(dir, file))
  ? fs.readFileSync(path.join(dir, file), 'utf8').split(/\s+/).filter(Boolean).map(Number) : [];

/** One HTTP/2 request over TLS: resolves {status, body, alpn}. */
function h2(method, urlPath, { body, headers = {} } = {}) {
  return within(10000, new Promise((resolve, reject) => {
    const s = http2.connect(`https://127.0.0.1:${ports.tls}`, { rejectUnauthorized: false });
    s.on('error', reject);
    const req = s.request({ ':method': method, ':path': urlPath, ...headers });
    let data = '';
    let status;
    req.on('response', (h) => { status = h[':status']; });
    req.setEncoding('utf8');
    req.on('data', (c) => { data += c; });
    req.on('end', () => { resolve({ status, body: data, alpn: s.alpnProtocol }); s.close(); });
    req.on('error', reject);
    req.end(body);
  }), `HTTP/2 ${method} ${urlPath}`);
}

before(async () => {
  dir = tmpDir('demo');
  ports = { http: await freePort(), d1: await freePort(), d2: await freePort(), redis: await freePort(), tls: await freePort() };
  args = ['--no-bootstrap', '--dir', dir, '--port', ports.http, '--daemon-ports', `${ports.d1} ${ports.d2}`,
    '--redis-port', ports.redis, '--tls-port', ports.tls, '--fcgi-children', 2];
  const out = demo('--background');
  assert.match(out, new RegExp(`https://127\\.0\\.0\\.1:${ports.tls}/ +\\(HTTPS, HTTP/2;`), out);
});

after(async () => {
  runSync(DEMO, ['--stop', '--dir', dir], { timeout: 60000 });
  await cleanup();
});

test('the page and the API answer over HTTP/1.1 and over HTTP/2 with TLS', async () => {
  const plain = await http('GET', `http://127.0.0.1:${ports.http}/`);
  assert.equal(plain.status, 200);
  const page = await h2('GET', '/');
  assert.equal(page.alpn, 'h2', 'TLS did not negotiate HTTP/2');
  assert.equal(page.status, 200);
  assert.equal(page.body, plain.body.toString('utf8'), 'the page differs between HTTP and HTTPS');
  // GET /api/rooms goes to the FastCGI pool, and needs a token there
  assert.equal((await h2('GET', '/api/rooms')).status, 401);
});

test('over HTTP/2 an SSE stream gets a message sent over HTTP/2, and a wss WebSocket is acknowledged', async () => {
  const name = uniqueName('tls');
  const room = uniqueRoom('tls');
  const reg = await h2('POST', '/api/register', { body: JSON.stringify({ name }), headers: { 'content-type': 'application/json' } });
  assert.equal(reg.status, 201, reg.body);
  const { token } = JSON.parse(reg.body);

  const s = http2.connect(`https://127.0.0.1:${ports.tls}`, { rejectUnauthorized: false });
  let sse = '';
  try {
    const stream = s.request({ ':path': `/api/rooms/${room}/events?token=${token}` });
    stream.setEncoding('utf8');
    stream.on('data', (c) => { sse += c; });
    await waitFor(() => sse.includes('retry:'), { timeout: 10000, what: 'the SSE stream over HTTP/2 to open' });
    const sent = await h2('POST', `/api/rooms/${room}/messages`, {
      body: JSON.stringify({ text: 'over h2' }), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    assert.equal(sent.status, 201, sent.body);
    const { id } = JSON.parse(sent.body);
    await waitFor(() => sse.includes(`id: ${id}\n`), { timeout: 10000, what: `message ${id} on the SSE stream over HTTP/2 (got ${JSON.stringify(sse)})` });
  } finally {
    s.destroy();
  }

  const ws = new WebSocket(`wss://127.0.0.1:${ports.tls}/api/rooms/${room}/ws?token=${token}`, { rejectUnauthorized: false });
  try {
    await within(10000, new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }), 'the wss WebSocket to open');
    const ack = within(10000, new Promise((res) => {
      ws.on('message', (m) => { const f = JSON.parse(m); if (f.type === 'ack') res(f); });
    }), 'an ack on the wss WebSocket');
    ws.send(JSON.stringify({ type: 'message', text: 'over wss' }));
    assert.match((await ack).id, /^\d+-\d+$/);
  } finally {
    ws.terminate();
  }
});

for (const scheme of ['http', 'https']) {
  test(`the page over ${scheme === 'https' ? 'HTTPS (HTTP/2)' : 'HTTP/1.1'}: four panes open and a message reaches each`, { timeout: 90000 }, async () => {
    const url = scheme === 'https' ? `https://127.0.0.1:${ports.tls}/` : `http://127.0.0.1:${ports.http}/`;
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const errors = [];
    try {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(String(e)));
      const res = await page.goto(url);
      assert.equal(res.status(), 200, `GET ${url}`);
      const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
      assert.equal(proto, scheme === 'https' ? 'h2' : 'http/1.1', `the page came over ${proto}`);
      const wait = async (what, fn, arg, timeout = 20000) => {
        const t0 = Date.now();
        try {
          await page.waitForFunction(fn, arg, { timeout, polling: 100 });
        } catch (e) {
          const states = await page.evaluate(() => [...document.querySelectorAll('.pane')]
            .map((p) => `${p.dataset.transport}=${p.dataset.state}`).join(' ')).catch(() => '?');
          throw new Error(`timed out after ${Date.now() - t0} ms waiting for ${what} at ${url}; panes: ${states}; page errors: ${errors.join(' | ')}`);
        }
      };
      await page.fill('#name', uniqueName('pg'));
      await page.fill('#room', uniqueRoom('pg'));
      await page.click('#join-btn');
      await wait('all four panes to be open', () => document.querySelectorAll('.pane[data-state="open"]').length === 4);
      const text = `over ${scheme} ${Date.now()}`;
      await page.fill('#text', text);
      await page.click('#send-btn');
      await wait(`"${text}" in all four panes`, (t) => [...document.querySelectorAll('.pane')]
        .every((p) => [...p.querySelectorAll('.msg .text')].some((e) => e.textContent === t)), text);
      assert.deepEqual(errors, [], 'page errors');
      await context.close();
    } finally {
      await browser.close();
    }
  });
}

test('--restart brings back a killed daemon and the FastCGI pool', async () => {
  const [old] = pidsOf(`crosstalkd-${ports.d1}.pid`);
  process.kill(old, 'SIGKILL');
  await waitFor(() => !alive(old), { timeout: 10000, what: `crosstalkd ${old} to die` });
  let out = demo('--restart', String(ports.d1));
  assert.match(out, /is back/, out);
  const [now] = pidsOf(`crosstalkd-${ports.d1}.pid`);
  assert.notEqual(now, old);
  assert.equal((await http('GET', `http://127.0.0.1:${ports.d1}/healthz`)).status, 200);
  assert.match(demo('--restart', `crosstalkd-${ports.d1}`), /nothing to restart/);

  const pool = pidsOf('fcgi.pid');
  assert.equal(pool.length, 2, `fcgi.pid: ${pool}`);
  for (const pid of pool) process.kill(pid, 'SIGKILL');
  await waitFor(() => !pool.some(alive), { timeout: 10000, what: 'the FastCGI pool to die' });
  assert.notEqual((await http('GET', `http://127.0.0.1:${ports.http}/api/rooms`)).status, 401, 'the pool answered while dead');
  out = demo('--restart', 'fcgi');
  assert.match(out, /pool is back/, out);
  await waitFor(async () => (await http('GET', `http://127.0.0.1:${ports.http}/api/rooms`)).status === 401,
    { timeout: 10000, what: 'GET /api/rooms through nginx to reach the restarted pool (401 without a token)' });

  const bad = runSync(DEMO, ['--dir', dir, '--restart', 'nonsense']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /no part named 'nonsense'/);
});

test('a second run keeps the certificate and serves HTTPS again', async () => {
  const cert = fs.readFileSync(path.join(dir, 'tls', 'cert.pem'), 'utf8');
  demo('--stop');
  const out = demo('--background');
  assert.doesNotMatch(out, /making a self-signed certificate/, out);
  assert.equal(fs.readFileSync(path.join(dir, 'tls', 'cert.pem'), 'utf8'), cert, 'the certificate was made again');
  assert.equal((await h2('GET', '/healthz')).status, 200);
});

// A run in the foreground: Ctrl-C stops its stack; `--stop` from another
// terminal ends it too, quietly (no part reported as failed), and it stops
// nothing it did not start.
test('in the foreground: Ctrl-C stops the stack; --stop from outside ends the run, which then touches nothing', async () => {
  demo('--stop');
  const foreground = async () => {
    const p = spawn(DEMO, args.map(String), { stdio: ['ignore', 'pipe', 'pipe'] });
    const run = { p, out: '', code: undefined };
    p.stdout.on('data', (c) => { run.out += c; });
    p.stderr.on('data', (c) => { run.out += c; });
    p.on('exit', (code, sig) => { run.code = code ?? sig; });
    await waitFor(() => /Ctrl-C stops everything/.test(run.out) || run.code !== undefined,
      { timeout: 120000, what: 'the foreground demo to be up' });
    assert.equal(run.code, undefined, `the foreground demo exited at start:\n${run.out}`);
    return run;
  };
  const parts = () => ['nginx/nginx.pid', `crosstalkd-${ports.d1}.pid`, `crosstalkd-${ports.d2}.pid`, 'fcgi.pid', 'redis.pid'].flatMap(pidsOf);

  let run = await foreground();
  let pids = parts();
  assert.ok(pids.length >= 5, `pid files: ${pids}`);
  run.p.kill('SIGINT');
  await waitFor(() => run.code !== undefined, { timeout: 30000, what: 'Ctrl-C to end the foreground demo' });
  assert.equal(run.code, 0, run.out);
  await waitFor(() => !pids.some(alive), { timeout: 10000, what: `the stack (${pids}) to stop on Ctrl-C` });

  run = await foreground();
  pids = parts();
  demo('--stop');
  await waitFor(() => run.code !== undefined, { timeout: 10000, what: 'the foreground demo to end once its stack was stopped' });
  assert.equal(run.code, 0, run.out);
  assert.match(run.out, /was stopped from outside/, run.out);
  assert.doesNotMatch(run.out, /has exited/, `a part stopped on purpose was reported as failed:\n${run.out}`);
  assert.ok(!pids.some(alive), `left running: ${pids.filter(alive)}`);

  // The stack a later run starts is its own: nothing stops it.
  demo('--background');
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal((await http('GET', `http://127.0.0.1:${ports.http}/healthz`)).status, 200, 'the later stack is down');
});

// --stop and --restart act on a demo that exists: a mistyped --dir is
// refused and not made; a directory with no demo running is said so.
test('--stop on a directory with no demo says so; a missing --dir is refused, not created', () => {
  const missing = path.join(tmpDir('demo-none'), 'typo');
  for (const extra of [['--stop'], ['--restart', 'redis']]) {
    const r = runSync(DEMO, ['--dir', missing, ...extra], { timeout: 30000 });
    assert.equal(r.status, 1, `${extra}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`no demo in ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(no such directory\\)`), r.stderr);
    assert.ok(!fs.existsSync(missing), `${extra} made ${missing}`);
  }
  const empty = tmpDir('demo-empty');
  const r = runSync(DEMO, ['--dir', empty, '--stop'], { timeout: 30000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /no demo runs from .*; nothing to stop/, r.stdout);
});

// nginx reaches the daemons on DIR/crosstalkd-PORT.sock: a DIR too long for
// a socket's 107 bytes is refused before anything starts or is written.
test('a --dir too long for the daemons\' sockets is refused at once, naming the limit', () => {
  const long = path.join(tmpDir('demo-long'), 'd'.repeat(100));
  fs.mkdirSync(long);
  const r = runSync(DEMO, ['--no-bootstrap', '--dir', long, '--port', '9380', '--no-tls'], { timeout: 30000 });
  assert.equal(r.status, 1, `${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /is too long: the daemons' sockets in it \(.*crosstalkd-9381\.sock, \d+ bytes\) would be over the 107 bytes/, r.stderr);
  assert.deepEqual(fs.readdirSync(long), [], 'the demo wrote into the directory it refused');
});
