// badinput.test.mjs - every bad input of issue 2 against a real crosstalkd:
// each is answered with the JSON error of DESIGN.md, stores nothing (checked
// in Redis), and leaves the daemon serving.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAXED, assertError, bearer, cleanup, history, http, rawHttp, register, roomKey, send, sendOk,
  sseOpen, startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

const MAX_MESSAGE = 64;
const MAX_BODY = 1024;
const MAX_HEADER = 2048;

let redis;
let d;
let alice;
let room;
let storedBefore;

before(async () => {
  redis = await startRedis();
  d = await startDaemon({
    redisUrl: redis.url,
    config: { ...RELAXED, max_message_bytes: MAX_MESSAGE, max_body_bytes: MAX_BODY, max_header_bytes: MAX_HEADER },
  });
  alice = await register(d.url, uniqueName('alice'));
  room = uniqueRoom('bad');
  await sendOk(d.url, room, alice, 'the one good message');
});
after(cleanup);

// After every test: the daemon still runs and serves others, and the room
// holds exactly what the test meant to store.
afterEach(async () => {
  assert.equal(d.proc.exitCode, null, `crosstalkd exited (${d.proc.exitCode}); log:\n${d.logs().slice(-3000)}`);
  assert.equal(d.proc.signalCode, null, `crosstalkd died of ${d.proc.signalCode}; log:\n${d.logs().slice(-3000)}`);
  const h = await http('GET', `${d.url}/healthz`);
  assert.equal(h.status, 200, `healthz after the test: ${h.status} ${h.text}`);
});

async function roomLen() {
  return redis.cmd('XLEN', roomKey(room));
}

/** Runs `fn` (which sends something bad) and checks that the room stream did not grow. */
async function storesNothing(fn) {
  const n0 = await roomLen();
  await fn();
  assert.equal(await roomLen(), n0, `a rejected request stored a message in ${roomKey(room)}`);
}

const post = (body, headers = {}) =>
  http('POST', `${d.url}/api/rooms/${room}/messages`, { headers: { ...bearer(alice.token), 'Content-Type': 'application/json', ...headers }, body });

describe('register', () => {
  test('malformed JSON → 400 bad_json', async () => {
    for (const body of ['{"name":', 'not json', '{"name":"x",}', "{'name':'x'}", '']) {
      const r = await http('POST', `${d.url}/api/register`, { headers: { 'Content-Type': 'application/json' }, body });
      assertError(r, 400, 'bad_json', `register body ${JSON.stringify(body)}`);
    }
  });

  test('JSON that is not an object → 400 bad_json', async () => {
    for (const body of ['[]', '"alice"', 'null', '42', '["alice"]']) {
      const r = await http('POST', `${d.url}/api/register`, { headers: { 'Content-Type': 'application/json' }, body });
      assertError(r, 400, 'bad_json', `register body ${body}`);
    }
  });

  test('wrong type or missing name → 400 bad_request, no user created', async () => {
    for (const body of [{ name: 5 }, { name: null }, { name: ['a'] }, { name: { n: 'a' } }, { name: true }, {}, { nom: 'x' }]) {
      const r = await http('POST', `${d.url}/api/register`, { body });
      assertError(r, 400, 'bad_request', `register ${JSON.stringify(body)}`);
    }
    assert.equal(await redis.cmd('EXISTS', 'ct:user:5'), 0);
    assert.equal(await redis.cmd('EXISTS', 'ct:user:true'), 0);
  });

  test('bad user names → 400 bad_name, no user created', async () => {
    const bad = ['', 'a b', 'x'.repeat(33), 'ä', 'a/b', 'a\u0000b', 'tab\t', 'quote"', 'semi;colon', '<script>', 'émile', 'a:b'];
    for (const name of bad) {
      const r = await http('POST', `${d.url}/api/register`, { body: { name } });
      assertError(r, 400, 'bad_name', `register ${JSON.stringify(name)}`);
      assert.equal(await redis.cmd('EXISTS', `ct:user:${name}`), 0, `ct:user:${name} exists after a rejected register`);
    }
  });

  test('a second register of a taken name → 409 name_taken; the first token still works', async () => {
    const name = uniqueName('taken');
    const first = await register(d.url, name);
    const hash0 = await redis.cmd('HGET', `ct:user:${name}`, 'token_sha256');
    const r = await http('POST', `${d.url}/api/register`, { body: { name } });
    assertError(r, 409, 'name_taken', 'second register');
    assert.equal(await redis.cmd('HGET', `ct:user:${name}`, 'token_sha256'), hash0, 'the second register changed the stored token');
    const ok = await send(d.url, uniqueRoom(), first, 'still me');
    assert.equal(ok.status, 201, ok.text);
  });
});

describe('send', () => {
  test('malformed JSON → 400 bad_json, nothing stored', async () => {
    await storesNothing(async () => {
      for (const body of ['{"text":', 'hello', '{"text":"a"', '{"text":"a"}}', '', '{"text":"\\x41"}']) {
        assertError(await post(body), 400, 'bad_json', `send body ${JSON.stringify(body)}`);
      }
    });
  });

  test('JSON that is not an object → 400 bad_json, nothing stored', async () => {
    await storesNothing(async () => {
      for (const body of ['[]', '"hi"', 'null', '7']) assertError(await post(body), 400, 'bad_json', `send body ${body}`);
    });
  });

  test('wrong type or missing text → 400 bad_request, nothing stored', async () => {
    await storesNothing(async () => {
      for (const body of [{ text: 5 }, { text: null }, { text: ['hi'] }, { text: { t: 'hi' } }, { text: false }, {}, { txt: 'hi' }]) {
        assertError(await post(body), 400, 'bad_request', `send ${JSON.stringify(body)}`);
      }
    });
  });

  test('empty text → 400 empty_text, nothing stored', async () => {
    await storesNothing(async () => assertError(await post({ text: '' }), 400, 'empty_text', 'empty text'));
  });

  test(`text over max_message_bytes (${MAX_MESSAGE}) → 413 too_large; exactly the limit is stored`, async () => {
    await storesNothing(async () => {
      assertError(await post({ text: 'a'.repeat(MAX_MESSAGE + 1) }), 413, 'too_large', `${MAX_MESSAGE + 1} ASCII bytes`);
      // 33 two-byte characters: 66 bytes but only 33 characters
      assertError(await post({ text: 'é'.repeat(MAX_MESSAGE / 2 + 1) }), 413, 'too_large', `${MAX_MESSAGE + 2} bytes of é`);
      // escaped in JSON, still 66 bytes of text
      assertError(await post(`{"text":"${'\\u00e9'.repeat(MAX_MESSAGE / 2 + 1)}"}`), 413, 'too_large', 'escaped é');
    });
    const n0 = await roomLen();
    const ok = await post({ text: 'é'.repeat(MAX_MESSAGE / 2) });
    assert.equal(ok.status, 201, `exactly ${MAX_MESSAGE} bytes must be accepted: ${ok.text}`);
    const ok2 = await post({ text: 'b'.repeat(MAX_MESSAGE) });
    assert.equal(ok2.status, 201, ok2.text);
    assert.equal(await roomLen(), n0 + 2);
  });

  test('invalid UTF-8 in the text → 400 bad_utf8, nothing stored', async () => {
    const cases = {
      'lone 0xff': [0xff],
      'continuation byte first': [0x80, 0x41],
      'overlong "/"': [0xc0, 0xaf],
      'overlong NUL': [0xc0, 0x80],
      'UTF-16 surrogate': [0xed, 0xa0, 0x80],
      'truncated 3-byte': [0xe2, 0x82],
      'above U+10FFFF': [0xf4, 0x90, 0x80, 0x80],
      '0xf5 lead byte': [0xf5, 0x80, 0x80, 0x80],
      'truncated at the end': [0x41, 0xe2],
    };
    await storesNothing(async () => {
      for (const [what, bytes] of Object.entries(cases)) {
        const body = Buffer.concat([Buffer.from('{"text":"ok '), Buffer.from(bytes), Buffer.from(' x"}')]);
        assertError(await post(body), 400, 'bad_utf8', what);
      }
    });
  });

  // json-c decodes an escaped surrogate without its pair to U+FFFD: what
  // would be stored is not what was sent. A pair is one character.
  test('an escaped lone surrogate (\\ud800, \\udc00) → 400 bad_json, nothing stored; an escaped pair is stored as its character', async () => {
    const cases = ['a\\ud800b', 'a\\udc00b', 'end \\ud83d', 'reversed \\ude00\\ud83d', 'then A \\ud800\\u0041'];
    await storesNothing(async () => {
      for (const t of cases) {
        const r = await post(Buffer.from(`{"text":"${t}"}`));
        assertError(r, 400, 'bad_json', t);
        assert.match(r.json.message, /lone surrogate/, t);
      }
    });
    const r = await post(Buffer.from('{"text":"a\\ud83d\\ude00b"}'));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.text, 'a\u{1F600}b');
  });

  test('an invalid UTF-8 user name → 400 (bad_utf8 or bad_name), no user', async () => {
    const body = Buffer.concat([Buffer.from('{"name":"ab'), Buffer.from([0xff]), Buffer.from('"}')]);
    const r = await http('POST', `${d.url}/api/register`, { headers: { 'Content-Type': 'application/json' }, body });
    assertError(r, 400, ['bad_utf8', 'bad_name'], 'register with 0xff in the name');
  });

  test('a NUL inside the text is either refused with 400 or kept whole', async () => {
    const n0 = await roomLen();
    const r = await post('{"text":"a\\u0000b"}');
    if (r.status === 201) {
      const h = await history(d.url, room, alice, { since: '0-0', limit: 500 });
      const ev = h.json.events.find((e) => e.id === r.json.id);
      assert.equal(ev.text, 'a\u0000b', 'the text was cut at the NUL');
    } else {
      assertError(r, 400, ['bad_request', 'bad_utf8', 'bad_json'], 'text with NUL');
      assert.equal(await roomLen(), n0);
    }
  });

  test('bad room names → 400 bad_name, nothing stored anywhere', async () => {
    const keys0 = await redis.cmd('KEYS', 'ct:room:*');
    for (const r of ['Lobby', 'a.b', 'x'.repeat(65), '%C3%A9t%C3%A9', 'a%20b', 'a%2Fb', 'UPPER', 'a+b', '%00']) {
      const res = await http('POST', `${d.url}/api/rooms/${r}/messages`, { headers: bearer(alice.token), body: { text: 'x' } });
      assertError(res, [400, 404], ['bad_name', 'not_found'], `POST to room ${r}`);
      if (!r.includes('%2F')) assertError(res, 400, 'bad_name', `POST to room ${r}`);
      const g = await http('GET', `${d.url}/api/rooms/${r}/messages?since=0-0`, { headers: bearer(alice.token) });
      assertError(g, [400, 404], ['bad_name', 'not_found'], `GET room ${r}`);
    }
    const keys1 = await redis.cmd('KEYS', 'ct:room:*');
    assert.deepEqual(keys1.sort(), keys0.sort(), 'a rejected room name created keys');
  });
});

describe('auth', () => {
  const urls = () => [
    ['POST', `/api/rooms/${room}/messages`, { text: 'x' }],
    ['GET', `/api/rooms/${room}/messages?since=0-0`],
    ['GET', `/api/rooms/${room}/messages?before=9999999999999-0`],
    ['GET', `/api/rooms/${room}/poll?since=0-0&timeout=1`],
    ['POST', `/api/rooms/${room}/typing`],
    ['GET', `/api/rooms/${room}/presence`],
  ];

  test('missing token → 401 unauthorized on every room call, nothing stored', async () => {
    await storesNothing(async () => {
      for (const [m, u, body] of urls()) assertError(await http(m, d.url + u, { body }), 401, 'unauthorized', `${m} ${u}`);
    });
  });

  test('unknown, malformed or wrongly presented token → 401 unauthorized', async () => {
    const bad = [
      { Authorization: 'Bearer nope' },
      { Authorization: `Bearer ${alice.token}x` },
      { Authorization: `Bearer ${alice.token.slice(0, -1)}` },
      { Authorization: 'Bearer ' },
      { Authorization: `Basic ${alice.token}` },
      { Authorization: alice.token },
      { Authorization: `Bearer  ${'a'.repeat(1000)}` },
    ];
    await storesNothing(async () => {
      for (const h of bad) {
        for (const [m, u, body] of urls()) assertError(await http(m, d.url + u, { headers: h, body }), 401, 'unauthorized', `${m} ${u} with ${JSON.stringify(h).slice(0, 60)}`);
      }
      const q = await http('GET', `${d.url}/api/rooms/${room}/messages?since=0-0&token=nope`);
      assertError(q, 401, 'unauthorized', '?token=nope');
    });
  });

  test('SSE without a valid token → 401 JSON, not a stream', async () => {
    const s = await sseOpen(`${d.url}/api/rooms/${room}/events?token=nope`);
    s.close();
    assert.equal(s.status, 401, s.raw.slice(0, 200));
    assertError({ status: s.status, headers: s.headers, text: s.text, json: JSON.parse(s.text || 'null') }, 401, 'unauthorized', 'SSE');
  });
});

describe('HTTP limits', () => {
  test(`a body over max_body_bytes (${MAX_BODY}) → 413 too_large, nothing stored`, async () => {
    await storesNothing(async () => {
      const big = JSON.stringify({ text: 'a'.repeat(MAX_BODY * 2) });
      assertError(await post(big), 413, 'too_large', 'send with a big body');
      const bigReg = JSON.stringify({ name: 'a', pad: 'p'.repeat(MAX_BODY * 2) });
      assertError(await http('POST', `${d.url}/api/register`, { headers: { 'Content-Type': 'application/json' }, body: bigReg }), 413, 'too_large', 'register with a big body');
    });
  });

  test('a chunked body over the limit → 413 too_large, nothing stored', async () => {
    await storesNothing(async () => {
      const chunk = 'a'.repeat(500);
      let body = `${(9).toString(16)}\r\n{"text":"\r\n`;
      for (let i = 0; i < 6; i++) body += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
      body += '2\r\n"}\r\n0\r\n\r\n';
      const r = await rawHttp(d.port, `POST /api/rooms/${room}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n` +
        `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`);
      assertError(r, 413, 'too_large', 'chunked send over the limit');
    });
  });

  test('a huge Content-Length is refused up front → 413 too_large', async () => {
    await storesNothing(async () => {
      const r = await rawHttp(d.port, `POST /api/rooms/${room}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n` +
        `Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"text":"x"}`, { timeout: 3000 });
      // crosstalkd reads bodies up to 4x max_body_bytes; a declared length
      // past that is refused before a byte of it is read, and the
      // connection closed.
      assertError(r, 413, 'too_large', `Content-Length: 1e9 with 12 bytes sent: ${r.raw?.slice(0, 200)}`);
      assert.match(r.raw, /\r\nConnection: close\r\n/i, 'the 413 closes the connection');
    });
  });

  test(`headers over max_header_bytes (${MAX_HEADER}) → 431 or 400 with a JSON error`, async () => {
    await storesNothing(async () => {
      const one = await rawHttp(d.port, `POST /api/rooms/${room}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n` +
        `X-Big: ${'b'.repeat(MAX_HEADER * 2)}\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"text":"x"}`);
      assertError(one, [431, 400], ['too_large', 'bad_request'], 'one big header');
      let many = '';
      for (let i = 0; i < 100; i++) many += `X-H${i}: ${'v'.repeat(40)}\r\n`;
      const r2 = await rawHttp(d.port, `GET /api/rooms/${room}/messages?since=0-0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n${many}Connection: close\r\n\r\n`);
      assertError(r2, [431, 400], ['too_large', 'bad_request'], '100 headers');
      // Short lines: every byte of the head counts, line ends included.
      const short = 'a:b\r\n'.repeat(Math.floor((MAX_HEADER * 4 - 200) / 3));
      const r3 = await rawHttp(d.port, `GET /api/rooms/${room}/messages?since=0-0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.token}\r\n${short}Connection: close\r\n\r\n`);
      assertError(r3, 431, 'too_large', `${short.length / 5} short header lines`);
      const longUrl = await rawHttp(d.port, `GET /api/rooms/${room}/messages?since=0-0&pad=${'p'.repeat(MAX_HEADER * 2)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.ok([400, 414, 431].includes(longUrl.status), `a ${MAX_HEADER * 2}-byte request line: got ${longUrl.status} ${longUrl.raw.slice(0, 200)}`);
    });
  });

  test('a garbage request line gets 400 (or a closed connection) and nothing else', async () => {
    for (const junk of ['GARBAGE\r\n\r\n', 'GET\r\n\r\n', '\x00\x01\x02\x03\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n']) {
      const r = await rawHttp(d.port, junk, { timeout: 3000 });
      assert.ok(r.status === 0 || (r.status >= 400 && r.status < 600), `${JSON.stringify(junk)}: ${r.raw.slice(0, 200)}`);
    }
  });
});

describe('query parameters', () => {
  test('bogus since/before/limit → 400 bad_request', async () => {
    const q = [
      'since=abc', 'since=1-2-3', 'since=-1', 'since=1-', 'since=-', 'since=99999999999999999999999-0', 'since=1-x',
      'before=abc', 'before=1-2-3', 'before=%20',
      'since=0-0&limit=abc', 'since=0-0&limit=-1', 'since=0-0&limit=0', 'since=0-0&limit=1.5', 'since=0-0&limit=1e2',
      'since=0-0&limit=99999999999999999999',
    ];
    for (const s of q) {
      const r = await http('GET', `${d.url}/api/rooms/${room}/messages?${s}`, { headers: bearer(alice.token) });
      assertError(r, 400, 'bad_request', `messages?${s}`);
    }
  });

  test('bogus since/timeout on the long poll → 400 bad_request, at once', async () => {
    for (const s of ['since=abc&timeout=1', 'since=0-0&timeout=abc', 'since=0-0&timeout=-1', 'since=0-0&timeout=1.5', 'since=0-0&timeout=1e1']) {
      const t0 = Date.now();
      const r = await http('GET', `${d.url}/api/rooms/${room}/poll?${s}`, { headers: bearer(alice.token) });
      assertError(r, 400, 'bad_request', `poll?${s}`);
      assert.ok(Date.now() - t0 < 1000, `poll?${s} took ${Date.now() - t0} ms to be refused`);
    }
  });

  test('a bogus Last-Event-ID or since on SSE → 400 bad_request, not a stream', async () => {
    const a = await sseOpen(`${d.url}/api/rooms/${room}/events?since=abc`, { headers: bearer(alice.token) });
    a.close();
    assert.equal(a.status, 400, a.raw.slice(0, 200));
    assert.equal(JSON.parse(a.text).error, 'bad_request');
    const b = await sseOpen(`${d.url}/api/rooms/${room}/events`, { headers: { ...bearer(alice.token), 'Last-Event-ID': 'garbage' } });
    b.close();
    assert.equal(b.status, 400, b.raw.slice(0, 200));
    assert.equal(JSON.parse(b.text).error, 'bad_request');
  });
});

describe('routing', () => {
  test('unknown paths → 404 not_found', async () => {
    for (const p of ['/api/nope', '/api', '/api/', `/api/rooms/${room}/nope`, `/api/rooms/${room}/messages/extra`, `/api/rooms/${room}`,
      '/api/register/extra', '/api/stats/x', '/healthz/x']) {
      const r = await http('GET', d.url + p, { headers: bearer(alice.token) });
      assertError(r, 404, 'not_found', `GET ${p}`);
    }
  });

  test('wrong methods → 405 method_not_allowed with an Allow header', async () => {
    const cases = [
      ['GET', '/api/register'], ['PUT', '/api/register'], ['DELETE', `/api/rooms/${room}/messages`],
      ['PUT', `/api/rooms/${room}/messages`], ['POST', `/api/rooms/${room}/poll?since=0-0`], ['POST', `/api/rooms/${room}/events`],
      ['GET', `/api/rooms/${room}/typing`], ['POST', `/api/rooms/${room}/presence`], ['POST', '/api/rooms'],
      ['POST', '/api/stats'], ['POST', '/healthz'], ['DELETE', '/metrics'], ['PATCH', '/api/register'],
    ];
    await storesNothing(async () => {
      for (const [m, p] of cases) {
        const r = await http(m, d.url + p, { headers: bearer(alice.token), body: m === 'GET' ? undefined : { text: 'x', name: 'x' } });
        assertError(r, 405, 'method_not_allowed', `${m} ${p}`);
        assert.ok(r.headers.allow, `${m} ${p}: no Allow header`);
        const allow = r.headers.allow.split(/,\s*/);
        assert.ok(!allow.includes(m), `${m} ${p}: Allow "${r.headers.allow}" lists ${m}`);
        // what it lists is so: a GET answered whole is also a HEAD, a
        // stream's is not (a long poll or a stream is not opened here)
        const stream = /\/(poll|events|ws)(\?|$)/.test(p);
        assert.equal(allow.includes('HEAD'), allow.includes('GET') && !stream, `${m} ${p}: Allow "${r.headers.allow}"`);
        for (const ok of stream ? [] : allow.filter((x) => x === 'GET' || x === 'HEAD')) {
          const g = await http(ok, d.url + p, { headers: bearer(alice.token) });
          assert.ok(g.status !== 405 && g.status !== 501, `${ok} ${p} (Allow: ${r.headers.allow}) → ${g.status}`);
        }
      }
    });
  });
});

describe('rate limits', () => {
  // Their own Redis, in case the counters live there.
  let lredis;
  let ld;
  let relaxed;
  before(async () => {
    lredis = await startRedis();
    ld = await startDaemon({ redisUrl: lredis.url, config: { rate_register_per_min: 3, rate_send_per_sec: 1 } });
    relaxed = await startDaemon({ redisUrl: lredis.url, config: RELAXED });
  });

  test('registering past rate_register_per_min → 429 with a JSON error, no user', async () => {
    const codes = [];
    let name;
    for (let i = 0; i < 6; i++) {
      name = uniqueName('rl');
      const r = await http('POST', `${ld.url}/api/register`, { body: { name } });
      codes.push(r.status);
      if (r.status === 429) {
        assertError(r, 429, 'rate_limited', `register #${i + 1}`);
        assert.equal(await lredis.cmd('EXISTS', `ct:user:${name}`), 0);
      }
    }
    assert.deepEqual(codes.slice(0, 3), [201, 201, 201], `codes: ${codes}`);
    assert.ok(codes.slice(3).every((c) => c === 429), `after 3 registrations/min: ${codes}`);
  });

  test('sending past rate_send_per_sec (burst 2x) → 429; exactly the accepted ones are stored', async () => {
    const u = await register(relaxed.url);
    const r0 = uniqueRoom('rl');
    const res = [];
    for (let i = 0; i < 8; i++) res.push(await send(ld.url, r0, u, `burst ${i}`));
    const ok = res.filter((r) => r.status === 201).length;
    for (const r of res.filter((x) => x.status !== 201)) assertError(r, 429, 'rate_limited', 'send over the rate');
    assert.ok(ok >= 1 && ok <= 4, `${ok} of 8 immediate sends accepted at 1/s with burst 2`);
    assert.equal(await lredis.cmd('XLEN', roomKey(r0)), ok);
  });
});
