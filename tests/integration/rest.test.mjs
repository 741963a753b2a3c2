// rest.test.mjs - every REST endpoint of DESIGN.md on a real crosstalkd and
// redis-server: register, rooms, send, history (since/before/limit), typing,
// presence, stats, metrics, healthz, static files.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  REPO, RELAXED, bearer, cleanup, history, http, rawHttp, register, roomKey, send, sendOk,
  startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

const ID_RE = /^\d+-\d+$/;

let redis;
let d;
let alice;

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  alice = await register(d.url, uniqueName('alice'));
});
after(cleanup);

describe('register', () => {
  test('answers 201 {name, token} and keeps only a SHA-256 of the token in Redis', async () => {
    const name = uniqueName('reg');
    const r = await http('POST', `${d.url}/api/register`, { body: { name } });
    assert.equal(r.status, 201, r.text);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/);
    assert.equal(r.json.name, name);
    assert.equal(typeof r.json.token, 'string');
    assert.ok(r.json.token.length >= 16, `token too short to be unguessable: ${r.json.token}`);
    const h = await redis.cmd('HGETALL', `ct:user:${name}`);
    const fields = Object.fromEntries(h.reduce((a, v, i) => (i % 2 ? a : [...a, [v, h[i + 1]]]), []));
    assert.ok(fields.token_sha256, `ct:user:${name} has no token_sha256: ${JSON.stringify(fields)}`);
    assert.equal(fields.token_sha256, crypto.createHash('sha256').update(r.json.token).digest('hex'));
    assert.ok(!JSON.stringify(h).includes(r.json.token), 'the token itself is stored in Redis');
    assert.ok(Number(fields.created) > 0, `created: ${fields.created}`);
  });

  test('two users get different tokens, and each token acts as its own user', async () => {
    const a = await register(d.url);
    const b = await register(d.url);
    assert.notEqual(a.token, b.token);
    const room = uniqueRoom();
    assert.equal((await sendOk(d.url, room, a, 'from a')).from, a.name);
    assert.equal((await sendOk(d.url, room, b, 'from b')).from, b.name);
  });

  test('names at the edge of the rule are accepted: 32 chars, and . _ -', async () => {
    for (const name of [(uniqueName('e') + 'x'.repeat(32)).slice(0, 32), `a.b_c-${Date.now() % 100000}`, `Z9.${uniqueName('_')}`]) {
      const r = await http('POST', `${d.url}/api/register`, { body: { name } });
      assert.equal(r.status, 201, `${name}: ${r.text}`);
    }
  });
});

describe('send and history', () => {
  test('send answers 201 with the stored event, which is in the room stream', async () => {
    const room = uniqueRoom();
    const t0 = Date.now();
    const r = await send(d.url, room, alice, 'hello');
    assert.equal(r.status, 201, r.text);
    const ev = r.json;
    assert.match(ev.id, ID_RE);
    assert.equal(ev.room, room);
    assert.equal(ev.type, 'message');
    assert.equal(ev.from, alice.name);
    assert.equal(ev.text, 'hello');
    assert.equal(typeof ev.ts, 'number');
    assert.ok(Math.abs(ev.ts - t0) < 10000, `ts ${ev.ts} far from now ${t0}`);
    const x = await redis.cmd('XRANGE', roomKey(room), ev.id, ev.id);
    assert.equal(x.length, 1, `message ${ev.id} not in ${roomKey(room)}`);
    const f = Object.fromEntries([[x[0][1][0], x[0][1][1]], [x[0][1][2], x[0][1][3]], [x[0][1][4], x[0][1][5]]]);
    assert.deepEqual({ from: f.from, text: f.text, ts: Number(f.ts) }, { from: alice.name, text: 'hello', ts: ev.ts });
  });

  test('text round-trips byte for byte (non-ASCII, emoji, quotes, backslashes, newlines)', async () => {
    const room = uniqueRoom();
    const text = 'héllo 世界 🎉 "quoted" back\\slash\nnew line\ttab </script> \u2028 ∑';
    const ev = await sendOk(d.url, room, alice, text);
    assert.equal(ev.text, text);
    const h = await history(d.url, room, alice, { since: '0-0' });
    assert.equal(h.status, 200, h.text);
    assert.equal(h.json.events.length, 1);
    assert.equal(h.json.events[0].text, text);
  });

  test('since: ascending order, pages by limit, last_id, empty when nothing new', async () => {
    const room = uniqueRoom();
    const sent = [];
    for (let i = 1; i <= 7; i++) sent.push(await sendOk(d.url, room, alice, `m${i}`));
    const ids = sent.map((e) => e.id);

    const all = await history(d.url, room, alice, { since: '0-0' });
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(all.json.events.map((e) => e.id), ids);
    assert.deepEqual(all.json.events.map((e) => e.text), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    assert.equal(all.json.last_id, ids[6]);

    const pages = [];
    let since = '0-0';
    for (let i = 0; i < 3; i++) {
      const p = await history(d.url, room, alice, { since, limit: 3 });
      assert.equal(p.status, 200, p.text);
      pages.push(p.json.events.map((e) => e.text));
      since = p.json.last_id;
    }
    assert.deepEqual(pages, [['m1', 'm2', 'm3'], ['m4', 'm5', 'm6'], ['m7']]);
    assert.equal(since, ids[6]);

    const empty = await history(d.url, room, alice, { since: ids[6] });
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(empty.json.events, []);
    assert.equal(empty.json.last_id, ids[6], 'last_id of an empty answer is the since the client sent');

    const mid = await history(d.url, room, alice, { since: ids[3], limit: 2 });
    assert.deepEqual(mid.json.events.map((e) => e.id), ids.slice(4, 6));
  });

  test('before: the newest limit events older than the id, in ascending order', async () => {
    const room = uniqueRoom();
    const ids = [];
    for (let i = 1; i <= 7; i++) ids.push((await sendOk(d.url, room, alice, `b${i}`)).id);
    const p1 = await history(d.url, room, alice, { before: ids[6], limit: 3 });
    assert.equal(p1.status, 200, p1.text);
    assert.deepEqual(p1.json.events.map((e) => e.text), ['b4', 'b5', 'b6']);
    const p2 = await history(d.url, room, alice, { before: ids[3], limit: 3 });
    assert.deepEqual(p2.json.events.map((e) => e.text), ['b1', 'b2', 'b3']);
    const p3 = await history(d.url, room, alice, { before: ids[0], limit: 3 });
    assert.deepEqual(p3.json.events, []);
  });

  test('limit defaults to 50 and is at most 500; Redis is the source of truth', async () => {
    const room = uniqueRoom();
    // 520 stored messages, written straight into the stream as the Lua
    // script would: the daemon must read them from Redis.
    const now = Date.now();
    for (let i = 0; i < 520; i++) {
      await redis.cmd('XADD', roomKey(room), '*', 'from', alice.name, 'text', `s${i}`, 'ts', String(now + i));
    }
    const def = await history(d.url, room, alice, { since: '0-0' });
    assert.equal(def.status, 200, def.text);
    assert.equal(def.json.events.length, 50);
    assert.equal(def.json.events[0].text, 's0');
    assert.equal(def.json.events[49].text, 's49');
    const big = await history(d.url, room, alice, { since: '0-0', limit: 500 });
    assert.equal(big.status, 200, big.text.slice(0, 200));
    assert.equal(big.json.events.length, 500);
    assert.equal(big.json.events[499].text, 's499');
    const before = await history(d.url, room, alice, { before: big.json.events[499].id });
    assert.deepEqual(before.json.events.map((e) => e.text), Array.from({ length: 50 }, (_, i) => `s${449 + i}`));
  });

  test('the token may come as ?token= (for EventSource and WebSocket)', async () => {
    const room = uniqueRoom();
    await sendOk(d.url, room, alice, 'q');
    const r = await http('GET', `${d.url}/api/rooms/${room}/messages?since=0-0&token=${encodeURIComponent(alice.token)}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.events[0].text, 'q');
  });
});

describe('rooms, typing, presence', () => {
  test('GET /api/rooms lists rooms by recent activity with last_ts', async () => {
    const r1 = uniqueRoom('ra');
    const r2 = uniqueRoom('rb');
    const e1 = await sendOk(d.url, r1, alice, 'x');
    await new Promise((r) => setTimeout(r, 5));
    await sendOk(d.url, r2, alice, 'y');
    await new Promise((r) => setTimeout(r, 5));
    const e3 = await sendOk(d.url, r1, alice, 'z');
    const res = await http('GET', `${d.url}/api/rooms`, { headers: bearer(alice.token) });
    assert.equal(res.status, 200, res.text);
    const names = res.json.rooms.map((x) => x.name);
    assert.ok(names.includes(r1) && names.includes(r2), `rooms: ${names}`);
    assert.ok(names.indexOf(r1) < names.indexOf(r2), `${r1} was active last, so it comes before ${r2}: ${names}`);
    const row = res.json.rooms.find((x) => x.name === r1);
    assert.equal(typeof row.last_ts, 'number');
    assert.ok(row.last_ts >= e1.ts && Math.abs(row.last_ts - e3.ts) < 5000, `last_ts ${row.last_ts} vs ${e3.ts}`);
    const ts = res.json.rooms.map((x) => x.last_ts);
    assert.deepEqual(ts, [...ts].sort((a, b) => b - a), 'rooms sorted by last_ts descending');
  });

  test('POST typing answers 202 and stores nothing', async () => {
    const room = uniqueRoom();
    const r = await http('POST', `${d.url}/api/rooms/${room}/typing`, { headers: bearer(alice.token) });
    assert.equal(r.status, 202, r.text);
    assert.equal(await redis.cmd('XLEN', roomKey(room)), 0);
  });

  test('GET presence answers 200 {online: [...]}', async () => {
    const room = uniqueRoom();
    const r = await http('GET', `${d.url}/api/rooms/${room}/presence`, { headers: bearer(alice.token) });
    assert.equal(r.status, 200, r.text);
    assert.ok(Array.isArray(r.json.online), r.text);
  });
});

describe('operations endpoints', () => {
  test('GET /healthz answers 200 while Redis is up', async () => {
    const r = await http('GET', `${d.url}/healthz`);
    assert.equal(r.status, 200, r.text);
  });

  test('GET /api/stats: JSON counters per transport that move with traffic', async () => {
    const s0 = await http('GET', `${d.url}/api/stats`);
    assert.equal(s0.status, 200, s0.text);
    assert.match(s0.headers['content-type'] ?? '', /^application\/json/);
    const tr0 = s0.json.transports ?? s0.json;
    for (const t of ['short_poll', 'long_poll', 'sse', 'websocket']) {
      assert.equal(typeof tr0[t], 'object', `no "${t}" in stats: ${s0.text}`);
      for (const k of ['open', 'requests', 'delivered', 'bytes_out', 'empty']) {
        assert.equal(typeof tr0[t][k], 'number', `stats ${t}.${k} missing: ${s0.text}`);
      }
    }
    const room = uniqueRoom();
    await sendOk(d.url, room, alice, 'counted');
    const h = await history(d.url, room, alice, { since: '0-0' });
    const e = await history(d.url, room, alice, { since: h.json.last_id });
    assert.deepEqual(e.json.events, []);
    const s1 = await http('GET', `${d.url}/api/stats`);
    const tr1 = s1.json.transports ?? s1.json;
    assert.ok(tr1.short_poll.requests >= tr0.short_poll.requests + 2, `short_poll.requests ${tr0.short_poll.requests} -> ${tr1.short_poll.requests}`);
    assert.ok(tr1.short_poll.empty >= tr0.short_poll.empty + 1, `short_poll.empty ${tr0.short_poll.empty} -> ${tr1.short_poll.empty}`);
    assert.ok(tr1.short_poll.delivered >= tr0.short_poll.delivered + 1, `short_poll.delivered ${tr0.short_poll.delivered} -> ${tr1.short_poll.delivered}`);
    assert.ok(tr1.short_poll.bytes_out > tr0.short_poll.bytes_out, `short_poll.bytes_out ${tr0.short_poll.bytes_out} -> ${tr1.short_poll.bytes_out}`);
    // HEAD sends no body, and counts none
    const head = await http('HEAD', `${d.url}/api/rooms/${room}/messages?since=0-0`, { headers: bearer(alice.token) });
    assert.equal(head.status, 200);
    const tr2 = (await http('GET', `${d.url}/api/stats`)).json.transports;
    assert.equal(tr2.short_poll.requests, tr1.short_poll.requests + 1, 'the HEAD was not counted as a request');
    assert.equal(tr2.short_poll.bytes_out, tr1.short_poll.bytes_out, 'a HEAD counted the body it did not send');
  });

  test('GET /metrics is Prometheus text exposition', async () => {
    const r = await http('GET', `${d.url}/metrics`);
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'] ?? '', /^text\/plain/);
    const lines = r.text.split('\n').filter((l) => l.length);
    assert.ok(lines.length > 5, r.text);
    const typed = new Set();
    for (const l of lines) {
      if (l.startsWith('# TYPE ')) {
        const m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(l);
        assert.ok(m, `bad TYPE line: ${l}`);
        typed.add(m[1]);
        continue;
      }
      if (l.startsWith('#')) {
        assert.match(l, /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*/, `bad comment line: ${l}`);
        continue;
      }
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)( -?\d+)?$/.exec(l);
      assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(l)}`);
      const base = m[1].replace(/_(bucket|sum|count)$/, '');
      assert.ok(typed.has(m[1]) || typed.has(base), `sample ${m[1]} has no # TYPE line before it`);
    }
    assert.match(r.text, /transport="sse"/);
    assert.match(r.text, /transport="long_poll"/);
  });

  test('static files from www/: / is the page, a missing file is 404, nothing outside www/', async () => {
    const idx = await http('GET', `${d.url}/`);
    assert.equal(idx.status, 200, idx.text.slice(0, 200));
    assert.match(idx.headers['content-type'] ?? '', /^text\/html/);
    const onDisk = fs.readFileSync(path.join(REPO, 'www', 'index.html'), 'utf8');
    assert.equal(idx.text, onDisk);
    const missing = await http('GET', `${d.url}/no-such-file-${Date.now()}.html`);
    assert.equal(missing.status, 404);
    for (const p of ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2f..%2f..%2fetc%2fpasswd', '//etc/passwd']) {
      const r = await rawHttp(d.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.ok(r.status !== 200 || !r.text.includes('root:'), `${p} served /etc/passwd`);
    }
  });

  test('a JavaScript file of www/ is served with a JavaScript type', async () => {
    const js = fs.readdirSync(path.join(REPO, 'www')).find((f) => f.endsWith('.js'));
    assert.ok(js, 'www/ has no .js file');
    const r = await http('GET', `${d.url}/${js}`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] ?? '', /javascript/);
  });
});
