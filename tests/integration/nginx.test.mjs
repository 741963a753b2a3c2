// nginx.test.mjs - crosstalk behind a real nginx: two crosstalkd, the
// crosstalk-fcgi pool under spawn-fcgi, one Redis. The configs pass nginx -t;
// nginx serves www/ itself; every transport works through it; SSE is not
// buffered; a message posted through FastCGI reaches every kind of
// subscriber on both daemons in the same order; killing a daemon moves its
// clients to the other without loss.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import nodeHttp from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

import {
  REPO, startRedis, startDaemon, startFcgi, startNginx, http, cleanup, tmpDir, which,
  waitFor, within, sleep, runSync, assertError, answersOf, childrenOf, connectBurst, rawHttp, skipUnlessBacklog, sseOpen,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const EventSource = require('eventsource');
const WebSocket = require('ws');

const CONFIG = {
  rate_register_per_min: 1000000, rate_send_per_sec: 1000000, sse_retry_ms: 200, log_level: 'debug',
};

let redis, d1, d2, fcgi, nginx, www;

before(async () => {
  redis = await startRedis();
  d1 = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, trusted_proxies: '127.0.0.1,unix' } });
  d2 = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, trusted_proxies: '127.0.0.1,unix' } });
  fcgi = await startFcgi({ redisUrl: redis.url, children: 3, config: CONFIG });
  // a www/ of our own, so what nginx serves can only have come from nginx
  www = tmpDir('www');
  fs.chmodSync(www, 0o755);
  fs.writeFileSync(path.join(www, 'index.html'), '<!doctype html><title>served by nginx</title>\n');
  fs.writeFileSync(path.join(www, 'app.css'), 'body { color: black }\n');
  fs.chmodSync(path.join(www, 'index.html'), 0o644);
  fs.chmodSync(path.join(www, 'app.css'), 0o644);
  fs.mkdirSync(path.join(www, 'js'), { mode: 0o755 });
  fs.writeFileSync(path.join(www, 'js', 'app.js'), 'export {};\n', { mode: 0o644 });
  nginx = await startNginx({ daemons: [d1.port, d2.port], fcgiSocket: fcgi.socket, wwwRoot: www });
});

after(async () => {
  for (const c of openClients) c.close();
  await fcgi?.stop().catch(() => {});
  await cleanup();
});

// ------------------------------------------------------------ helpers

const openClients = new Set();
let seq = 0;
const uniq = (p) => `${p}${process.pid % 10000}_${++seq}`;
const room = (p) => uniq(p).toLowerCase();
const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const describe = (r) => `${r.status} ${r.text.trim()}`;

async function register(base = nginx.url) {
  const name = uniq('u');
  const r = await http('POST', `${base}/api/register`, { body: { name } });
  assert.equal(r.status, 201, `register at ${base}: ${describe(r)}`);
  return { name, token: r.json.token };
}

async function send(token, rm, text, base = nginx.url) {
  const r = await http('POST', `${base}/api/rooms/${rm}/messages`, { headers: bearer(token), body: { text } });
  assert.equal(r.status, 201, `send "${text}" via ${base}: ${describe(r)}`);
  return r.json;
}

/**
 * A raw SSE reader (no reconnection): resolves `ready` on the first bytes
 * of the stream, records every event with the time it arrived.
 */
function sseRaw(url) {
  const u = new URL(url);
  const events = [];
  const waiters = [];
  let buf = '';
  let req;
  const ready = new Promise((resolve, reject) => {
    req = nodeHttp.get({ host: u.hostname, port: u.port, path: u.pathname + u.search, agent: false,
      headers: { Accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`SSE ${url}: status ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        resolve(res);
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = { at: performance.now() };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const k = c < 0 ? line : line.slice(0, c);
            const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (k === 'data') ev.data = ev.data === undefined ? v : `${ev.data}\n${v}`;
            else ev[k] = v;
          }
          if (ev.data === undefined) continue;
          events.push(ev);
          for (const w of waiters.splice(0)) w();
        }
      });
    });
    req.on('error', reject);
  });
  const c = {
    events,
    ready,
    /** Resolves with the first event that satisfies pred. */
    next(pred, ms, what) {
      return within(ms, new Promise((resolve) => {
        const check = () => {
          const e = events.find(pred);
          if (e) resolve(e);
          else waiters.push(check);
        };
        check();
      }), what);
    },
    close() {
      req.destroy();
      openClients.delete(c);
    },
  };
  openClients.add(c);
  return c;
}

/** What every subscriber records: the stored messages, in arrival order. */
function collector(name) {
  return { name, ids: [], texts: [], errors: 0, reconnects: 0 };
}

function pushMessage(col, ev) {
  if (ev.type !== 'message' || !ev.id) return;
  col.ids.push(ev.id);
  col.texts.push(ev.text);
}

/** EventSource (npm eventsource, as a browser would): reconnects with Last-Event-ID. */
function sseSubscriber(base, rm, token) {
  const col = collector(`SSE via ${base}`);
  const es = new EventSource(`${base}/api/rooms/${rm}/events?token=${token}`);
  es.addEventListener('message', (e) => pushMessage(col, JSON.parse(e.data)));
  es.onerror = () => { col.errors++; };
  col.close = () => es.close();
  openClients.add(col);
  return col;
}

/** A long-poll loop: asks again at once, and 100 ms after an error. */
function longPollSubscriber(base, rm, token, since) {
  const col = collector(`long poll via ${base}`);
  let stop = false;
  let cur = since;
  (async () => {
    while (!stop) {
      try {
        const r = await http('GET', `${base}/api/rooms/${rm}/poll?since=${cur}&timeout=5`,
          { headers: bearer(token), timeout: 15000 });
        if (r.status === 200) {
          for (const e of r.json.events) pushMessage(col, e);
          cur = r.json.last_id;
        } else if (r.status !== 204) {
          col.errors++;
          await sleep(100);
        }
      } catch {
        col.errors++;
        await sleep(100);
      }
    }
  })();
  col.close = () => { stop = true; };
  openClients.add(col);
  return col;
}

/** A short-poll loop: GET messages?since= every 50 ms. */
function shortPollSubscriber(base, rm, token, since) {
  const col = collector(`short poll via ${base}`);
  let stop = false;
  let cur = since;
  (async () => {
    while (!stop) {
      try {
        const r = await http('GET', `${base}/api/rooms/${rm}/messages?since=${cur}`, { headers: bearer(token) });
        if (r.status === 200) {
          for (const e of r.json.events) pushMessage(col, e);
          cur = r.json.last_id;
        } else {
          col.errors++;
        }
      } catch {
        col.errors++;
      }
      await sleep(50);
    }
  })();
  col.close = () => { stop = true; };
  openClients.add(col);
  return col;
}

/** A WebSocket client that reconnects with ?since= the last id it saw. */
function wsSubscriber(base, rm, token, since) {
  const col = collector(`WebSocket via ${base}`);
  let stop = false;
  let ws;
  let last = since;
  col.opened = 0;
  const connect = () => {
    ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/rooms/${rm}/ws?token=${token}&since=${last}`);
    ws.on('open', () => { col.opened++; });
    ws.on('message', (data) => {
      try {
        const ev = JSON.parse(data.toString());
        pushMessage(col, ev);
        if (ev.type === 'message' && ev.id) last = ev.id;
      } catch {
        col.errors++;
      }
    });
    ws.on('error', () => { col.errors++; });
    ws.on('close', () => {
      if (stop) return;
      col.reconnects++;
      setTimeout(connect, 100);
    });
  };
  connect();
  col.close = () => {
    stop = true;
    ws.terminate();
  };
  openClients.add(col);
  return col;
}

/** The room's messages in Redis order, as stored. */
async function storedIds(rm) {
  const entries = await redis.cmd('XRANGE', `ct:room:{${rm}}:log`, '-', '+');
  return entries.map((e) => e[0]);
}

/** Waits until every collector holds `want` (ids in order), then checks nothing is duplicated. */
async function expectAll(cols, want, timeout = 10000) {
  try {
    await waitFor(() => cols.every((c) => c.ids.length >= want.length), {
      timeout, what: `every subscriber to hold all ${want.length} messages`,
    });
  } catch (e) {
    const state = cols.map((c) => `  ${c.name}: ${c.ids.length} of ${want.length} (errors ${c.errors})`).join('\n');
    throw new Error(`${e.message}\n${state}`);
  }
  for (const c of cols) {
    assert.deepEqual(c.ids, want, `${c.name}: not the stored messages in Redis order, once each`);
  }
}


// ------------------------------------------------------------ the configs

function render(tpl, vals) {
  let s = tpl;
  for (const [k, v] of Object.entries(vals)) s = s.replaceAll(`@${k}@`, v);
  return s;
}

/** The text of the `server { ... }` block of an nginx config, normalised. */
function serverBlock(conf) {
  const i = conf.search(/^\s*server\s*\{/m);
  assert.ok(i >= 0, 'no server block');
  let depth = 0;
  let j = conf.indexOf('{', i);
  for (; j < conf.length; j++) {
    if (conf[j] === '{') depth++;
    else if (conf[j] === '}' && --depth === 0) break;
  }
  // access_log and error_log name paths of the installation, like the upstream's servers
  return conf.slice(i, j + 1).split('\n').map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('access_log ') && !l.startsWith('error_log ')).join('\n');
}

test('the standalone template and crosstalk.conf pass nginx -t, with the same server block', () => {
  const exe = which('nginx');
  assert.ok(exe, 'nginx is not installed');
  const tpl = fs.readFileSync(path.join(REPO, 'nginx', 'crosstalk.standalone.conf.in'), 'utf8');
  const inc = fs.readFileSync(path.join(REPO, 'nginx', 'crosstalk.conf'), 'utf8');
  const d = tmpDir('nginx-t');
  fs.writeFileSync(path.join(d, 'nginx.conf'), render(tpl, {
    PORT: '18080', PREFIX: d, UPSTREAMS: 'server 127.0.0.1:18081;\n        server 127.0.0.1:18082;',
    FCGI_SOCKET: path.join(d, 'fcgi.sock'), WWW_ROOT: www,
  }));
  let r = runSync(exe, ['-t', '-p', `${d}/`, '-c', path.join(d, 'nginx.conf'), '-e', path.join(d, 'error.log')]);
  assert.equal(r.status, 0, `nginx -t of the standalone config:\n${r.stderr}`);

  const d2dir = tmpDir('nginx-inc');
  fs.writeFileSync(path.join(d2dir, 'nginx.conf'), `pid ${d2dir}/nginx.pid;
events {}
http {
    client_body_temp_path ${d2dir}/cb; proxy_temp_path ${d2dir}/p; fastcgi_temp_path ${d2dir}/f;
    uwsgi_temp_path ${d2dir}/u; scgi_temp_path ${d2dir}/s; access_log off;
    include ${path.join(REPO, 'nginx', 'crosstalk.conf')};
}
`);
  r = runSync(exe, ['-t', '-p', `${d2dir}/`, '-c', path.join(d2dir, 'nginx.conf'), '-e', path.join(d2dir, 'error.log')]);
  assert.equal(r.status, 0, `nginx -t of crosstalk.conf included in an http block:\n${r.stderr}`);

  // the include-able file is the template's server block with its paths
  const asInstalled = render(tpl, {
    PORT: '8080', PREFIX: '/unused', UPSTREAMS: 'server unix:/run/crosstalkd-8081/http.sock;\nserver unix:/run/crosstalkd-8082/http.sock;',
    FCGI_SOCKET: '/run/crosstalk/fcgi.sock', WWW_ROOT: '/usr/share/crosstalk/www',
  });
  assert.equal(serverBlock(inc), serverBlock(asInstalled),
    'nginx/crosstalk.conf and nginx/crosstalk.standalone.conf.in differ in their server block');
  const upstream = (s) => s.slice(s.search(/^\s*upstream crosstalkd\s*\{/m)).split('}')[0].split('\n').map((l) => l.trim()).filter(Boolean);
  assert.deepEqual(upstream(inc), upstream(asInstalled), 'the upstream blocks differ');
});

// nginx listens with a backlog of 511 unless told: a burst of clients past
// it (everyone coming back after a restart) waits 1 s for the SYN's retry.
// The shipped configs ask for as long a queue as net.core.somaxconn allows.
test('600 connections while nginx\'s workers are stopped: every handshake completes at once, and each is answered after', async (t) => {
  const N = 600;
  if (skipUnlessBacklog(t, N)) return;
  const front = await startNginx({ daemons: [d1] });
  const workers = childrenOf(front.pid);
  assert.ok(workers.length > 0, 'nginx has no worker process');
  let burst;
  for (const w of workers) process.kill(w, 'SIGSTOP');
  try {
    burst = await connectBurst(front.port, N);
  } finally {
    for (const w of workers) process.kill(w, 'SIGCONT');
  }
  try {
    assert.equal(burst.connected, N, `${burst.connected} of ${N} handshakes completed within 700 ms while nginx's workers were stopped`);
    const answers = await answersOf(burst.sockets, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    const ok = answers.filter((a) => a.startsWith('HTTP/1.1 200 ')).length;
    assert.equal(ok, N, `${ok} of ${N} answered 200; one of the others: ${JSON.stringify(answers.find((a) => !a.startsWith('HTTP/1.1 200 ')))}`);
  } finally {
    for (const s of burst.sockets) s.destroy();
    await front.stop();
  }
});

test('the config gives long polls more than 60 s and streams far more', () => {
  const tpl = fs.readFileSync(path.join(REPO, 'nginx', 'crosstalk.standalone.conf.in'), 'utf8');
  const loc = (re) => {
    const i = tpl.search(re);
    assert.ok(i >= 0, `no location matching ${re}`);
    return tpl.slice(i, tpl.indexOf('}', i));
  };
  const secs = (block) => {
    const m = block.match(/proxy_read_timeout\s+(\d+)(s|m|h)?;/);
    assert.ok(m, `no proxy_read_timeout in\n${block}`);
    return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] ?? 's'];
  };
  assert.ok(secs(loc(/location [^\n]*\/poll\$/)) > 60, 'long poll read timeout must exceed 60 s');
  assert.ok(secs(loc(/location [^\n]*\/events\$/)) >= 600, 'SSE read timeout');
  assert.ok(secs(loc(/location [^\n]*\/ws\$/)) >= 600, 'WebSocket read timeout');
  assert.match(loc(/location [^\n]*\/events\$/), /proxy_buffering off;/);
  assert.match(loc(/location [^\n]*\/ws\$/), /proxy_set_header Upgrade \$http_upgrade;/);
  assert.match(tpl, /client_max_body_size 64k;/, 'client_max_body_size = max_body_bytes (65536)');
});

// ------------------------------------------------------------ through nginx

test('nginx serves www/ itself', async () => {
  const r = await http('GET', `${nginx.url}/`);
  assert.equal(r.status, 200, describe(r));
  assert.match(r.text, /served by nginx/);
  assert.match(r.headers['content-type'], /^text\/html/);
  const css = await http('GET', `${nginx.url}/app.css`);
  assert.equal(css.status, 200);
  assert.match(css.headers['content-type'], /^text\/css/);
  // a missing file is the API's JSON 404, as crosstalkd's www_root answers it
  const missing = await http('GET', `${nginx.url}/nope.html`);
  assertError(missing, 404, 'not_found', 'GET /nope.html through nginx');
  assert.equal(missing.json.message, 'no such file');
  // a file in a directory is served; the directory itself is no file (no
  // redirect to its slash, no listing or 403), as crosstalkd answers it
  const js = await http('GET', `${nginx.url}/js/app.js`);
  assert.equal(js.status, 200, describe(js));
  assert.match(js.headers['content-type'], /javascript/);
  for (const p of ['/js', '/js/', '/index.html/', '/.ct/bad-request', '/.ct/head-too-large']) {
    const r = await http('GET', `${nginx.url}${p}`);
    assertError(r, 404, 'not_found', `GET ${p} through nginx: ${describe(r)}`);
    assert.equal(r.json.message, 'no such file', p);
  }
  assert.equal((await http('GET', `${nginx.url}/index.html`)).status, 200);
  // a method a file does not take: the API's JSON, typed as JSON whatever the file's type
  for (const p of ['/js/app.js', '/app.css', '/']) {
    const r = await http('POST', `${nginx.url}${p}`, { body: '{}' });
    assertError(r, 405, 'method_not_allowed', `POST ${p} through nginx: ${describe(r)}`);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/, `POST ${p}: ${r.headers['content-type']}`);
  }
});

test('REST through nginx: FastCGI rows, /d/ to crosstalkd, stats and metrics', async () => {
  const a = await register(nginx.url);
  const b = await register(`${nginx.url}/d`);
  const rm = room('rest');
  const m1 = await send(a.token, rm, 'via fastcgi');
  const m2 = await send(b.token, rm, 'via crosstalkd', `${nginx.url}/d`);
  for (const base of [nginx.url, `${nginx.url}/d`, `${nginx.url}/f`]) {
    const h = await http('GET', `${base}/api/rooms/${rm}/messages?since=0`, { headers: bearer(a.token) });
    assert.equal(h.status, 200, `${base}: ${describe(h)}`);
    assert.deepEqual(h.json.events.map((e) => e.id), [m1.id, m2.id], `${base}: ${h.text}`);
    const p = await http('GET', `${base}/api/rooms/${rm}/presence`, { headers: bearer(b.token) });
    assert.equal(p.status, 200, `${base}: ${describe(p)}`);
    const t = await http('POST', `${base}/api/rooms/${rm}/typing`, { headers: bearer(b.token) });
    assert.equal(t.status, 202, `${base}: ${describe(t)}`);
    const rooms = await http('GET', `${base}/api/rooms`, { headers: bearer(b.token) });
    assert.equal(rooms.status, 200, `${base}: ${describe(rooms)}`);
    const hz = await http('GET', `${base}/healthz`);
    assert.equal(hz.status, 200, `${base}: ${describe(hz)}`);
  }
  const stats = await http('GET', `${nginx.url}/api/stats`);
  assert.equal(stats.status, 200, describe(stats));
  assert.ok(stats.json?.transports, `stats: ${stats.text}`);
  const metrics = await http('GET', `${nginx.url}/metrics`);
  assert.equal(metrics.status, 200, describe(metrics));
  assert.match(metrics.text, /crosstalk_/);
  // nginx's own errors speak the API's JSON
  const big = await http('POST', `${nginx.url}/d/api/rooms/${rm}/messages`,
    { headers: bearer(a.token), body: JSON.stringify({ text: 'x'.repeat(70000) }) });
  assert.equal(big.status, 413);
  assert.equal(big.json?.error, 'too_large', describe(big));
});

test('SSE through nginx: each event arrives within 100 ms of its send', async () => {
  const { token } = await register();
  for (const prefix of ['', '/d']) {
    const rm = room('lat');
    const s = sseRaw(`${nginx.url}${prefix}/api/rooms/${rm}/events?token=${token}`);
    await within(3000, s.ready, `the SSE stream via nginx${prefix} to start`);
    await sleep(100); // subscribed on the daemon's side
    for (let i = 0; i < 5; i++) {
      const text = `latency ${i}`;
      const t0 = performance.now();
      const sent = await send(token, rm, text);
      const ev = await s.next((e) => e.id === sent.id, 2000, `SSE event ${sent.id} via nginx${prefix}`);
      const ms = ev.at - t0;
      assert.ok(ms <= 100, `SSE event "${text}" via nginx${prefix} arrived ${ms.toFixed(1)} ms after the send began (limit 100 ms)`);
      assert.equal(ev.event, 'message');
      assert.equal(JSON.parse(ev.data).text, text);
    }
    s.close();
  }
});

test('long poll through nginx: answered at the message, 204 at its timeout', async () => {
  const { token } = await register();
  const rm = room('lp');
  const first = await send(token, rm, 'first');
  const t0 = Date.now();
  const pending = http('GET', `${nginx.url}/api/rooms/${rm}/poll?since=${first.id}&timeout=20`, { headers: bearer(token), timeout: 30000 });
  await sleep(300);
  const second = await send(token, rm, 'second');
  const r = await pending;
  assert.equal(r.status, 200, describe(r));
  assert.deepEqual(r.json.events.map((e) => e.id), [second.id]);
  assert.ok(Date.now() - t0 < 3000, `answered ${Date.now() - t0} ms after it was asked`);
  const t1 = Date.now();
  const empty = await http('GET', `${nginx.url}/api/rooms/${rm}/poll?since=${second.id}&timeout=2`, { headers: bearer(token) });
  assert.equal(empty.status, 204, describe(empty));
  assert.ok(Date.now() - t1 >= 1900, `a 2 s poll came back after ${Date.now() - t1} ms`);
});

test('WebSocket upgrade through nginx', async (t) => {
  const { token } = await register();
  const rm = room('ws');
  const ws = new WebSocket(`${nginx.url.replace('http', 'ws')}/api/rooms/${rm}/ws?token=${token}`);
  t.after(() => ws.terminate());
  await within(3000, new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  }), 'the WebSocket upgrade through nginx');
  const got = [];
  ws.on('message', (d) => got.push(JSON.parse(d.toString())));
  const sent = await send(token, rm, 'to the socket');
  await waitFor(() => got.some((e) => e.id === sent.id), { timeout: 2000, what: `message ${sent.id} on the WebSocket` });
  ws.send(JSON.stringify({ type: 'message', text: 'from the socket' }));
  await waitFor(() => got.some((e) => e.type === 'ack'), { timeout: 2000, what: 'the ack of a message sent on the WebSocket' });
  const ack = got.find((e) => e.type === 'ack');
  await waitFor(() => got.some((e) => e.id === ack.id && e.text === 'from the socket'), {
    timeout: 2000, what: 'our own message back on the WebSocket',
  });
});

test('a message posted through FastCGI reaches every subscriber on both daemons in the same order', async (t) => {
  const { token } = await register();
  const rm = room('fan');
  const seed = await send(token, rm, 'seed');
  const cols = [];
  for (const base of [d1.url, d2.url, nginx.url]) {
    cols.push(sseSubscriber(base, rm, token));
    cols.push(longPollSubscriber(base, rm, token, seed.id));
    cols.push(shortPollSubscriber(base, rm, token, seed.id));
    cols.push(wsSubscriber(base, rm, token, seed.id));
  }
  // SSE subscribers start from now: wait until both daemons hold them
  await waitFor(async () => {
    const s = await Promise.all([d1, d2].map((d) => http('GET', `${d.url}/api/stats?scope=process`)));
    return s.every((r) => r.json?.transports?.sse?.open >= 1) && s.reduce((n, r) => n + r.json.transports.sse.open, 0) >= 3;
  }, { timeout: 5000, what: 'the three SSE subscribers to be open on the two daemons (from /api/stats)' });
  await sleep(100);
  // three senders at once through the FastCGI pool, so Redis decides the order
  const users = await Promise.all([register(), register(), register()]);
  await Promise.all(users.map(async (u, k) => {
    for (let i = 0; i < 15; i++) await send(u.token, rm, `s${k}-${i}`);
  }));
  const want = (await storedIds(rm)).slice(1);
  assert.equal(want.length, 45);
  try {
    await expectAll(cols, want);
  } finally {
    for (const c of cols) c.close();
  }
});

test('killing one daemon moves its clients to the other; they resume without loss', async (t) => {
  const { token } = await register();
  const rm = room('fail');
  const seed = await send(token, rm, 'seed');
  const cols = [];
  for (let i = 0; i < 4; i++) cols.push(sseSubscriber(nginx.url, rm, token));
  for (let i = 0; i < 2; i++) cols.push(longPollSubscriber(nginx.url, rm, token, seed.id));
  for (let i = 0; i < 2; i++) cols.push(shortPollSubscriber(nginx.url, rm, token, seed.id));
  for (let i = 0; i < 2; i++) cols.push(wsSubscriber(nginx.url, rm, token, seed.id));
  let victim;
  await waitFor(async () => {
    const s = await Promise.all([d1, d2].map((d) => http('GET', `${d.url}/api/stats?scope=process`)));
    const open = s.map((r) => r.json?.transports?.sse?.open ?? 0);
    if (open[0] + open[1] < 4) return false;
    victim = open[0] > 0 ? d1 : d2;
    return true;
  }, { timeout: 5000, what: 'the four SSE subscribers to be open through nginx (from the daemons\' /api/stats)' });
  const victimSse = (await http('GET', `${victim.url}/api/stats?scope=process`)).json.transports.sse.open;
  assert.ok(victimSse >= 1, 'a daemon to kill that holds SSE subscribers');

  let sending = true;
  let n = 0;
  const sender = (async () => {
    while (sending) {
      await send(token, rm, `m${n++}`);
      await sleep(20);
    }
  })();
  await sleep(400);
  await victim.kill();
  await sleep(1500);
  sending = false;
  await sender;
  const want = (await storedIds(rm)).slice(1);
  assert.equal(want.length, n, 'every send was acknowledged and stored');
  try {
    await expectAll(cols, want, 15000);
  } finally {
    for (const c of cols) c.close();
  }
  const moved = cols.filter((c) => c.name.startsWith('SSE') && c.errors > 0).length;
  assert.ok(moved >= victimSse, `${victimSse} SSE subscriber(s) were on the killed daemon, ${moved} saw their stream end and came back`);
  await victim.restart();
});

test('with every daemon down, nginx answers 503 in the API\'s JSON', async () => {
  const { token } = await register();
  await d1.stop();
  await d2.stop();
  const logBefore = nginx.logs().length;
  try {
    const r = await http('GET', `${nginx.url}/api/rooms/x/poll?timeout=1`, { headers: bearer(token) });
    assert.equal(r.status, 503, describe(r));
    assert.equal(r.json?.error, 'unavailable');
    assert.equal(r.headers['retry-after'], '1');
    // a read is simply tried again; a write's outcome is unknown (nginx
    // cannot tell whether a server that failed had taken it)
    assert.equal(r.json.message, 'no crosstalk server could answer; try again', describe(r));
    const w = await http('POST', `${nginx.url}/d/api/rooms/x/messages`, { headers: bearer(token), body: { text: 'to nobody' } });
    assert.equal(w.status, 503, describe(w));
    assert.match(w.json?.message ?? '', /outcome is unknown; retry \(a send with the same Idempotency-Key\)/, describe(w));
    // the FastCGI rows do not need a daemon
    const m = await http('POST', `${nginx.url}/api/rooms/x/messages`, { headers: bearer(token), body: { text: 'still here' } });
    assert.equal(m.status, 201, describe(m));
    // EventSource and WebSocket clients carry their token in the URL, and
    // nginx writes the request line into its error-log entries: none of
    // theirs may reach the log (found in a trial: "upstream server
    // temporarily disabled ... request: GET /api/rooms/lg/events?token=...")
    for (const p of ['/api/rooms/x/events', '/d/api/rooms/x/events', '/api/rooms/x/ws']) {
      const h = p.endsWith('/ws') ? { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } : {};
      const r = await http('GET', `${nginx.url}${p}?token=${token}`, { headers: h });
      assert.equal(r.status, 503, `${p} with every daemon down: ${describe(r)}`);
    }
    await sleep(200);
    const logged = nginx.logs().slice(logBefore);
    assert.match(logged, /connect\(\) failed|no live upstreams/, `the poll above was logged as an upstream error:\n${logged}`);
    assert.ok(!nginx.logs().includes(token), `a token reached nginx's error log:\n${nginx.logs()}`);
  } finally {
    await d1.restart();
    await d2.restart();
  }
});

// nginx's own 400s (a header given twice, a path it cannot normalise) and
// 414 stay its HTML: a request it cannot parse cannot go to a named
// location (nginx answers 500 when asked to).
test('a method nginx itself refuses (TRACE) is answered in the API\'s JSON too', async () => {
  assertError(await http('TRACE', `${nginx.url}/healthz`), 405, 'method_not_allowed', 'TRACE through nginx');
});

// nginx answers these itself, before any location: they were its HTML pages.
test('requests nginx itself cannot read get the API\'s JSON: 400 bad_request, and 431 too_large for a header line over its buffers', async () => {
  const cases = [
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, 'bad_request'],
    ['no Host', 'GET /api/rooms HTTP/1.1\r\n\r\n', 400, 'bad_request'],
    ['two Authorization headers', 'GET /api/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n', 400, 'bad_request'],
    ['%00 in the path', 'GET /f/api/rooms/x/messages%00 HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'bad_request'],
    ['a 9,000-byte header line', `GET /api/rooms HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(9000)}\r\n\r\n`, 431, 'too_large'],
  ];
  for (const [what, raw, status, code] of cases) {
    const r = await rawHttp(nginx.port, raw);
    assertError(r, status, code, `${what} through nginx: ${r.raw.slice(0, 300)}`);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/, what);
  }
  // the error locations are not reachable from outside (the JSON 404 above)
  assert.equal((await http('GET', `${nginx.url}/.ct/bad-request`)).status, 404);
});

// A daemon draining after SIGTERM answers a new long poll at once, and
// closes each connection with its answer; a new stream's connection it
// closes unanswered. nginx's idle connections to it are still open and
// carry requests to it; no client may see a 503 for them while another
// daemon is up (a 503 would, as nginx does not retry one).
test('a daemon draining behind nginx: long polls and event streams on nginx\'s kept connections to it go to the other daemon, none answered 503', async () => {
  const r2 = await startRedis();
  const cfg = { rate_register_per_min: 1000000, rate_send_per_sec: 1000000, longpolls_per_token: 100 };
  const a = await startDaemon({ redisUrl: r2.url, config: cfg });
  const b = await startDaemon({ redisUrl: r2.url, config: cfg });
  const front = await startNginx({ daemons: [a, b] });
  try {
    const u = JSON.parse((await http('POST', `${a.url}/api/register`, { body: JSON.stringify({ name: `drain${process.pid}` }), headers: { 'Content-Type': 'application/json' } })).text);
    const auth = { Authorization: `Bearer ${u.token}` };
    const room = `drain-${process.pid}`;
    const m0 = (await http('POST', `${a.url}/api/rooms/${room}/messages`, { body: '{"text":"x"}', headers: { ...auth, 'Content-Type': 'application/json' } })).json;
    const poll = () => http('GET', `${front.url}/api/rooms/${room}/poll?since=${m0.id}&timeout=1`, { headers: auth });
    // nginx keeps idle connections to both daemons
    await Promise.all(Array.from({ length: 20 }, poll));
    // a send held in flight keeps daemon a draining for about 1.3 s
    await r2.cmd('CLIENT', 'PAUSE', '1500', 'WRITE');
    const held = http('POST', `${a.url}/api/rooms/${room}/messages`, { body: '{"text":"held"}', headers: { ...auth, 'Content-Type': 'application/json' } });
    await sleep(200);
    const exited = a.stop();
    await sleep(100);
    const stream = () => sseOpen(`${front.url}/api/rooms/${room}/events?since=${m0.id}&token=${u.token}`);
    const ss = await Promise.all(Array.from({ length: 10 }, stream));
    for (const s of ss) s.close();
    const rs = await Promise.all(Array.from({ length: 20 }, poll));
    assert.equal(await exited, 0, a.logs().slice(-2000));
    assert.equal((await held).status, 201);
    const tally = (xs) => {
      const t = {};
      for (const x of xs) t[x.status] = (t[x.status] ?? 0) + 1;
      return JSON.stringify(t);
    };
    assert.ok(rs.every((r) => r.status === 200 || r.status === 204), `long polls through nginx while one daemon drained: ${tally(rs)}`);
    // a new stream is closed unanswered by the draining daemon: nginx opens
    // it on the other
    assert.ok(ss.every((s) => s.status === 200), `event streams through nginx while one daemon drained: ${tally(ss)}`);
  } finally {
    await front.stop();
  }
});
