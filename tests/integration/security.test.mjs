// security.test.mjs - issue 8's security checks against the real parts:
// tokens are stored only as SHA-256 (nothing in any Redis key, value or the
// AOF on disk holds a token), tokens are never logged (crosstalkd,
// crosstalk-fcgi and nginx logs after requests carrying tokens in headers
// and in ?token=), static files refuse path traversal (crosstalkd and
// nginx, raw requests), CORS is off unless allowed_origins names the
// origin (and then a browser's preflight passes), and WebSocket upgrades
// through nginx from a foreign Origin are refused (ws.test.mjs checks
// crosstalkd alone).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

import {
  RELAXED, bearer, cleanup, http, rawHttp, register, sendOk, sleep, sseOpen, startDaemon, startFcgi, startNginx,
  startRedis, tmpDir, uniqueName, uniqueRoom, waitFor, within,
} from './harness.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const CONFIG = { ...RELAXED, log_level: 'debug' };

let redis;
let d;
let fcgi;
let nginx;
let www;
const SECRET = `secret-${crypto.randomBytes(8).toString('hex')}`;

before(async () => {
  redis = await startRedis();
  // A www/ of our own beside a secret file, and a symlink out of www/.
  const top = tmpDir('sec');
  fs.chmodSync(top, 0o755);
  www = path.join(top, 'www');
  fs.mkdirSync(www, { mode: 0o755 });
  fs.mkdirSync(path.join(www, 'sub'), { mode: 0o755 });
  fs.writeFileSync(path.join(www, 'index.html'), '<!doctype html><title>in www</title>\n', { mode: 0o644 });
  fs.writeFileSync(path.join(www, 'sub', 'a.txt'), 'in www/sub\n', { mode: 0o644 });
  fs.writeFileSync(path.join(top, 'secret.txt'), `${SECRET}\n`, { mode: 0o644 });
  fs.symlinkSync('../secret.txt', path.join(www, 'link.txt'));
  d = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, trusted_proxies: '127.0.0.1,unix' }, args: [`--www-root=${www}`] });
  fcgi = await startFcgi({ redisUrl: redis.url, config: CONFIG });
  nginx = await startNginx({ daemons: [d], fcgiSocket: fcgi.socket, wwwRoot: www });
});

after(async () => {
  await fcgi?.stop().catch(() => {});
  await cleanup();
});

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** Every key of the Redis with its value(s), as one string per key: "key\tvalues...". */
async function dumpRedis() {
  const out = [];
  let cursor = '0';
  let rounds = 0;
  do {
    const [next, keys] = await redis.cmd('SCAN', cursor, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const type = await redis.cmd('TYPE', k);
      let v;
      switch (type) {
        case 'string': v = [await redis.cmd('GET', k)]; break;
        case 'hash': v = await redis.cmd('HGETALL', k); break;
        case 'zset': v = await redis.cmd('ZRANGE', k, 0, -1, 'WITHSCORES'); break;
        case 'set': v = await redis.cmd('SMEMBERS', k); break;
        case 'list': v = await redis.cmd('LRANGE', k, 0, -1); break;
        case 'stream': v = (await redis.cmd('XRANGE', k, '-', '+')).flat(2); break;
        default: v = [`<${type}>`];
      }
      out.push(`${k}\t${v.join('\t')}`);
    }
  } while (cursor !== '0' && ++rounds < 1000);
  return out;
}

/** Every file under dir, recursively, as [path, content]. */
function filesUnder(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push([p, fs.readFileSync(p, 'latin1')]);
  }
  return out;
}

/** Requests carrying `token` every way a client can: header and ?token=, on every transport, good and bad. */
async function useToken(base, u, { ws = true } = {}) {
  const room = uniqueRoom('tok');
  const h = bearer(u.token);
  await http('POST', `${base}/api/rooms/${room}/messages`, { headers: h, body: { text: 'with the token in a header' } });
  await http('POST', `${base}/api/rooms/${room}/messages?token=${u.token}`, { body: { text: 'with the token in the query' } });
  await http('GET', `${base}/api/rooms/${room}/messages?since=0-0&token=${u.token}`);
  await http('GET', `${base}/api/rooms/${room}/messages?since=bogus&token=${u.token}`); // 400
  await http('GET', `${base}/api/rooms/Bad%20Room/messages?token=${u.token}`); // 400
  await http('GET', `${base}/api/nowhere?token=${u.token}`, { headers: h }); // 404
  await http('DELETE', `${base}/api/rooms/${room}/messages?token=${u.token}`, { headers: h }); // 405
  await http('GET', `${base}/api/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${u.token}x` } }); // 401, a near-token
  await http('GET', `${base}/api/rooms/${room}/poll?since=0-0&timeout=1&token=${u.token}`);
  await http('POST', `${base}/api/rooms/${room}/typing`, { headers: h });
  await http('GET', `${base}/api/rooms/${room}/presence?token=${u.token}`);
  const s = await sseOpen(`${base}/api/rooms/${room}/events?token=${u.token}`);
  await waitFor(() => s.raw.includes('retry:'), { timeout: 3000, what: 'the first bytes of an SSE stream opened with ?token=' });
  s.close();
  if (ws) {
    const sock = new WebSocket(`${base.replace(/^http/, 'ws')}/api/rooms/${room}/ws?token=${u.token}&since=0-0`);
    await within(5000, new Promise((resolve) => {
      sock.once('open', resolve);
      sock.once('error', resolve);
      sock.once('unexpected-response', resolve);
    }), 'a WebSocket with ?token= to open');
    sock.terminate();
  }
}

// ------------------------------------------------------------ tokens at rest

describe('tokens', () => {
  test('Redis holds only SHA-256 digests of tokens: no token in any key, value or AOF file', async () => {
    const users = [];
    for (let i = 0; i < 3; i++) users.push(await register(d.url, uniqueName('sd')));
    for (let i = 0; i < 3; i++) users.push(await register(nginx.url, uniqueName('sf'))); // through FastCGI
    for (const u of users) await useToken(nginx.url, u);
    await useToken(d.url, users[0]);
    const dump = await dumpRedis();
    assert.ok(dump.length > 5, `only ${dump.length} keys in Redis`);
    for (const u of users) {
      assert.equal(await redis.cmd('HGET', `ct:user:${u.name}`, 'token_sha256'), sha256(u.token), `ct:user:${u.name} token_sha256`);
      const hit = dump.find((line) => line.includes(u.token));
      assert.equal(hit, undefined, `the token of ${u.name} is stored in Redis: ${hit?.slice(0, 200)}`);
    }
    // Nor on disk: the append-only file under Redis's dir.
    await redis.cmd('BGREWRITEAOF').catch(() => {}); // whatever the AOF holds, old or rewritten
    await sleep(300);
    const files = filesUnder(redis.dir);
    assert.ok(files.length > 0, `no files under ${redis.dir}`);
    for (const [f, content] of files) {
      for (const u of users) assert.ok(!content.includes(u.token), `the token of ${u.name} is in ${f}`);
    }
  });

  test('tokens are never logged: crosstalkd and crosstalk-fcgi at debug level', async () => {
    const u = await register(nginx.url, uniqueName('lg'));
    const v = await register(d.url, uniqueName('lg'));
    await useToken(nginx.url, u);
    await useToken(d.url, v);
    await useToken(nginx.url, v);
    await sleep(200);
    const logs = {
      crosstalkd: d.logs(),
      'crosstalk-fcgi': fcgi.logs(),
    };
    assert.match(logs.crosstalkd, /registered user/, 'crosstalkd logged nothing at debug level?');
    for (const [who, text] of Object.entries(logs)) {
      for (const x of [u, v]) {
        assert.ok(!text.includes(x.token), `${who} logged the token of ${x.name}:\n${text.split('\n').filter((l) => l.includes(x.token)).slice(0, 3).join('\n')}`);
        assert.ok(!text.includes(x.token.slice(0, 16)), `${who} logged a part of the token of ${x.name}`);
      }
    }
  });

  test('nginx\'s access log does not keep ?token= (EventSource and WebSocket must put the token in the URL)', async () => {
    const u = await register(nginx.url, uniqueName('ng'));
    await useToken(nginx.url, u);
    const logFile = path.join(nginx.dir, 'access.log');
    await waitFor(() => fs.existsSync(logFile) && fs.statSync(logFile).size > 0, { timeout: 3000, what: `nginx's ${logFile}` });
    const text = fs.readFileSync(logFile, 'utf8') + fs.readFileSync(path.join(nginx.dir, 'error.log'), 'utf8');
    const lines = text.split('\n').filter((l) => l.includes(u.token));
    assert.deepEqual(lines.slice(0, 3), [], `nginx logged ${lines.length} line(s) holding the token of ${u.name}`);
  });
});

// ------------------------------------------------------------ static files

describe('static files', () => {
  const attempts = [
    '/../secret.txt',
    '/../../../../etc/passwd',
    '/%2e%2e/secret.txt',
    '/%2E%2E/secret.txt',
    '/.%2e/secret.txt',
    '/%2e./secret.txt',
    '/..%2fsecret.txt',
    '/..%2Fsecret.txt',
    '/%2e%2e%2fsecret.txt',
    '/sub/../../secret.txt',
    '/sub/%2e%2e/%2e%2e/secret.txt',
    '/sub%2f..%2f..%2fsecret.txt',
    '/%252e%252e/secret.txt',
    '/..\\secret.txt',
    '/%5c..%5csecret.txt',
    '/sub/..%5c..%5csecret.txt',
    '//etc/passwd',
    '/etc/passwd',
    '/sub%00/../../secret.txt',
    '/./../secret.txt',
    '/sub/./../../secret.txt',
  ];
  // crosstalkd also refuses a symlink that leads out of www/ (it compares
  // realpath()s); nginx follows symlinks as configured (disable_symlinks
  // off, its default), which only the owner of www/ can set up.
  test('crosstalkd: a %00 in a file name is no file (the decoded NUL would cut the name short)', async () => {
    for (const p of ['/index.html%00.txt', '/sub/a.txt%00', '/%00']) {
      const r = await rawHttp(d.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 404, `GET ${p}: ${r.raw.slice(0, 200)}`);
    }
  });

  for (const [who, port, more] of [['crosstalkd', () => d.port, ['/link.txt']], ['nginx', () => nginx.port, []]]) {
    test(`${who}: path traversal in every spelling gets no file from outside www/`, async () => {
      // The same files are served when asked for properly, so a 404 below means something.
      const ok = await rawHttp(port(), 'GET /sub/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal(ok.status, 200, `GET /sub/a.txt: ${ok.raw.slice(0, 200)}`);
      assert.equal(ok.text, 'in www/sub\n');
      const bad = [];
      for (const p of [...attempts, ...more]) {
        const r = await rawHttp(port(), `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        if (r.raw.includes(SECRET) || r.raw.includes('root:x:0:0') || ![400, 403, 404].includes(r.status)) {
          bad.push(`${p} → ${r.status} ${JSON.stringify(r.raw.slice(0, 160))}`);
        }
      }
      assert.deepEqual(bad, [], `requests outside www/ that were not refused with 400/403/404`);
      assert.equal((await http('GET', `http://127.0.0.1:${port()}/`)).status, 200, 'the page is still served');
    });
  }
});

// ------------------------------------------------------------ CORS

describe('CORS', () => {
  test('off by default: no Access-Control-Allow-Origin for a foreign Origin, on any answer', async () => {
    const u = await register(d.url, uniqueName('co'));
    const room = uniqueRoom('cors');
    await sendOk(d.url, room, u, 'hi');
    const O = { Origin: 'http://evil.example' };
    const answers = [
      await http('GET', `${d.url}/api/rooms`, { headers: O }),
      await http('GET', `${d.url}/api/rooms/${room}/messages?since=0-0`, { headers: { ...O, ...bearer(u.token) } }),
      await http('POST', `${d.url}/api/rooms/${room}/messages`, { headers: { ...O, ...bearer(u.token) }, body: { text: 'x' } }),
      await http('POST', `${d.url}/api/register`, { headers: O, body: { name: uniqueName('co') } }),
      await http('GET', `${d.url}/api/rooms/${room}/messages`, { headers: O }), // 401
      await http('OPTIONS', `${d.url}/api/rooms/${room}/messages`, {
        headers: { ...O, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
      }),
      await http('GET', `${d.url}/healthz`, { headers: O }),
    ];
    for (const r of answers) {
      assert.equal(r.headers['access-control-allow-origin'], undefined, `Access-Control-Allow-Origin on a ${r.status}: ${JSON.stringify(r.headers)}`);
      assert.equal(r.headers['access-control-allow-credentials'], undefined);
    }
    // Same host is no cross-origin request: still no CORS header needed or given.
    const same = await http('GET', `${d.url}/api/rooms`, { headers: { Origin: d.url, ...bearer(u.token) } });
    assert.equal(same.status, 200);
  });

  test('allowed_origins: that origin gets Access-Control-Allow-Origin (with Vary: Origin), another does not', async () => {
    const dd = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, allowed_origins: 'http://good.example, https://also.example' } });
    const u = await register(dd.url, uniqueName('co'));
    const room = uniqueRoom('cors');
    for (const origin of ['http://good.example', 'https://also.example']) {
      const r = await http('POST', `${dd.url}/api/rooms/${room}/messages`, { headers: { Origin: origin, ...bearer(u.token) }, body: { text: 'x' } });
      assert.equal(r.status, 201);
      assert.equal(r.headers['access-control-allow-origin'], origin, JSON.stringify(r.headers));
      assert.match(r.headers.vary ?? '', /origin/i);
    }
    for (const origin of ['http://evil.example', 'http://good.example.evil.example', 'http://good.example:8080', 'null']) {
      const r = await http('GET', `${dd.url}/api/rooms`, { headers: { Origin: origin } });
      assert.equal(r.headers['access-control-allow-origin'], undefined, `${origin} got ${JSON.stringify(r.headers)}`);
    }
    await dd.stop();
  });

  test('allowed_origins: a browser\'s preflight (OPTIONS) for a POST with Authorization and JSON passes', async () => {
    // fetch() from an allowed page sends Authorization and Content-Type:
    // application/json, so the browser asks first with OPTIONS and needs a
    // 2xx naming the origin, the method and those headers.
    const dd = await startDaemon({ redisUrl: redis.url, config: { ...CONFIG, allowed_origins: 'http://good.example' } });
    try {
      const room = uniqueRoom('pre');
      const r = await http('OPTIONS', `${dd.url}/api/rooms/${room}/messages`, {
        headers: { Origin: 'http://good.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
      });
      const ctx = `${r.status} ${JSON.stringify(r.headers)} ${r.text}`;
      assert.ok(r.status >= 200 && r.status < 300, `preflight status: ${ctx}`);
      assert.equal(r.headers['access-control-allow-origin'], 'http://good.example', ctx);
      assert.match(r.headers['access-control-allow-methods'] ?? '', /POST/, ctx);
      const allowH = (r.headers['access-control-allow-headers'] ?? '').toLowerCase();
      assert.ok(allowH.includes('authorization') && allowH.includes('content-type'), `Access-Control-Allow-Headers: ${ctx}`);
      // And not for a foreign origin.
      const evil = await http('OPTIONS', `${dd.url}/api/rooms/${room}/messages`, {
        headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' },
      });
      assert.equal(evil.headers['access-control-allow-origin'], undefined, JSON.stringify(evil.headers));
    } finally {
      await dd.stop();
    }
  });
});

// ------------------------------------------------------------ WebSocket Origin

function wsTry(url, headers = {}) {
  return within(5000, new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => { ws.terminate(); resolve({ status: 101 }); });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => { ws.terminate(); resolve({ status: res.statusCode, body }); });
    });
    ws.once('error', (e) => resolve({ status: 0, body: e.message }));
  }), `the WebSocket upgrade of ${url}`);
}

describe('WebSocket Origin', () => {
  // ws.test.mjs checks the Origin rule on crosstalkd itself; here it holds
  // through nginx, whose Host header crosstalkd compares the Origin with.
  test('through nginx: a foreign Origin is refused (403); the page\'s own origin and no Origin are let in', async () => {
    const u = await register(d.url, uniqueName('wo'));
    const room = uniqueRoom('wso');
    const url = `${nginx.url.replace(/^http/, 'ws')}/api/rooms/${room}/ws?token=${u.token}`;
    const host = `127.0.0.1:${nginx.port}`;
    for (const origin of ['http://evil.example', `http://${host}.evil.example`, 'null', `https://evil.example/${host}`, `http://127.0.0.1:${d.port}`]) {
      const r = await wsTry(url, { Origin: origin });
      assert.equal(r.status, 403, `Origin ${origin} through nginx: ${r.status} ${r.body}`);
    }
    assert.equal((await wsTry(url, { Origin: `http://${host}` })).status, 101, 'the origin of the page nginx serves');
    assert.equal((await wsTry(url)).status, 101, 'no Origin (not a browser)');
  });
});
