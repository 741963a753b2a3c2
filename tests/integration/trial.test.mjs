// trial.test.mjs - what a trial of the shipped defaults (a new user's and
// an attacker's) found, each against a real crosstalkd and Redis with no
// configuration of our own.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertError, bearer, cleanup, history, http, register, roomKey, startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

let redis;
let d;

before(async () => {
  redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url });
});
after(cleanup);

// Two Authorization headers are two credentials: a proxy that reads the last
// and a daemon that read the first would each act for another user. nginx
// refuses them; crosstalkd took the first and stored as that user.
test('two Authorization headers: 400 bad_request on every token call, nothing stored', async () => {
  const alice = await register(d.url, uniqueName('alice'));
  const bob = await register(d.url, uniqueName('bob'));
  const room = uniqueRoom('twoauth');
  const both = { Authorization: [`Bearer ${alice.token}`, `Bearer ${bob.token}`] };

  const send = await http('POST', `${d.url}/api/rooms/${room}/messages`, { headers: both, body: { text: 'whose?' } });
  assertError(send, 400, 'bad_request', 'POST with two Authorization headers');
  assert.match(send.json.message, /Authorization/, 'the message names the header');
  assert.equal(await redis.cmd('EXISTS', roomKey(room)), 0, `a refused send stored into ${roomKey(room)}`);

  for (const [method, path] of [
    ['GET', `/api/rooms/${room}/messages`], ['GET', '/api/rooms'], ['GET', `/api/rooms/${room}/presence`],
    ['POST', `/api/rooms/${room}/typing`], ['GET', `/api/rooms/${room}/poll?timeout=0`],
    ['GET', `/api/rooms/${room}/events`],
  ]) {
    const r = await http(method, `${d.url}${path}`, { headers: both });
    assertError(r, 400, 'bad_request', `${method} ${path} with two Authorization headers`);
  }

  // one header (either) still works, and the daemon serves on
  const ok = await http('POST', `${d.url}/api/rooms/${room}/messages`, { headers: bearer(bob.token), body: { text: 'bob alone' } });
  assert.equal(ok.status, 201, `one Authorization header: ${ok.status} ${ok.text}`);
  const h = await history(d.url, room, alice);
  assert.deepEqual(h.json.events.map((e) => [e.from, e.text]), [[bob.name, 'bob alone']]);
  const hz = await http('GET', `${d.url}/healthz`, { timeout: 1000 });
  assert.equal(hz.status, 200, `healthz: ${hz.status} ${hz.text}`);
});

// docs/api.md and the contract: GET /api/rooms needs a token. The pool
// answered 401; crosstalkd (/d/api/rooms behind nginx) listed every room to
// anyone.
test('GET /api/rooms on crosstalkd needs a token, as on the pool', async () => {
  const carol = await register(d.url, uniqueName('carol'));
  const room = uniqueRoom('secret');
  const sent = await http('POST', `${d.url}/api/rooms/${room}/messages`, { headers: bearer(carol.token), body: { text: 'x' } });
  assert.equal(sent.status, 201, `send: ${sent.status} ${sent.text}`);

  for (const [what, headers, qs] of [
    ['no token', {}, ''], ['no token, with paging', {}, '?limit=1'], ['an unknown token', bearer('not-a-token'), ''],
    ['a Basic credential', { Authorization: 'Basic YTpi' }, ''], ['an empty ?token=', {}, '?token='],
  ]) {
    const r = await http('GET', `${d.url}/api/rooms${qs}`, { headers });
    assertError(r, 401, 'unauthorized', `GET /api/rooms with ${what}`);
    assert.equal(r.headers['www-authenticate'], 'Bearer', `WWW-Authenticate with ${what}: ${JSON.stringify(r.headers)}`);
    assert.ok(!r.text.includes(room), `the 401 with ${what} named the room: ${r.text}`);
  }
  for (const [what, headers, qs] of [['Authorization', bearer(carol.token), ''], ['?token=', {}, `?token=${carol.token}`]]) {
    const r = await http('GET', `${d.url}/api/rooms${qs}`, { headers });
    assert.equal(r.status, 200, `GET /api/rooms with the token as ${what}: ${r.status} ${r.text}`);
    assert.ok(r.json.rooms.some((x) => x.name === room), `${room} listed with the token as ${what}: ${r.text}`);
  }
  // a bad query is still a 400 once the token is good, and a 401 before
  assertError(await http('GET', `${d.url}/api/rooms?limit=0`, { headers: bearer(carol.token) }), 400, 'bad_request', 'limit=0 with a token');
  assertError(await http('GET', `${d.url}/api/rooms?limit=0`), 401, 'unauthorized', 'limit=0 without a token');
});
