// fairness.test.mjs - issue 12, items 4, 5, 6 and 10: one user cannot take
// every stream slot (streams_per_token), typing is rate-limited per token and
// coalesced at fan-out, a resuming subscriber cannot make the daemon hold
// events without bound (client_buffer_limit), and names that differ only in
// case are one name; whitespace-only text is refused. Every attack is bounded
// in count and time, on loopback, against the shipped defaults, and checks
// that /healthz keeps answering within 1 s meanwhile.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import WebSocket from 'ws';
import {
  RELAXED, assertError, bearer, cleanup, http, register, sendOk, sleep, sseOpen, startDaemon, startRedis,
  uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const SLOW = process.env.CT_BUILDDIR ? 3 : 1;

let redis;
let d;
after(cleanup);

before(async () => {
  redis = await startRedis();
  // the shipped defaults but for the registration and send rates, which the
  // tests trip on purpose elsewhere
  d = await startDaemon({ redisUrl: redis.url, config: RELAXED });
});

const wsUrl = (room, user, q = {}) =>
  `ws://127.0.0.1:${d.port}/api/rooms/${room}/ws?${new URLSearchParams({ token: user.token, ...q })}`;
const sseUrl = (room, user, q = {}) =>
  `${d.url}/api/rooms/${room}/events?${new URLSearchParams({ token: user.token, ...q })}`;

const sockets = new Set();
after(() => { for (const ws of sockets) ws.terminate(); });

/**
 * Opens a WebSocket and collects what arrives. Resolves on open with
 * {ws, events, closed, until(pred, what, ms), of(type), send(obj), close()};
 * an answer other than 101 resolves with {refused: {status, json}}.
 */
function wsOpen(url, { onMessage } = {}) {
  const ws = new WebSocket(url, { maxPayload: 1 << 20 });
  sockets.add(ws);
  const c = { ws, url, events: [], closed: null };
  ws.on('message', (data) => {
    const ev = JSON.parse(data.toString('utf8'));
    c.events.push(ev);
    if (onMessage) onMessage(ev);
  });
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString(), at: Date.now() }; });
  ws.on('error', (e) => { c.error = e; });
  c.until = async (pred, what, ms = 10000 * SLOW) => {
    try {
      return await waitFor(pred, { timeout: ms, interval: 20, what: `${what} on a WebSocket` });
    } catch (e) {
      throw new Error(`${e.message}; it has ${c.events.length} events, closed=${JSON.stringify(c.closed)}`);
    }
  };
  c.of = (type) => c.events.filter((e) => e.type === type);
  c.send = (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  c.close = () => { sockets.delete(ws); ws.terminate(); };
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    ws.once('open', () => resolve(c));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s) => { body += s; });
      res.on('end', () => {
        sockets.delete(ws);
        let json;
        try { json = JSON.parse(body); } catch { json = undefined; }
        resolve({ refused: { status: res.statusCode, headers: res.headers, text: body, json } });
      });
    });
    ws.once('error', (e) => reject(new Error(`WebSocket ${url}: ${e.message} after ${Date.now() - t0} ms`)));
  });
}

/** GET /healthz; asserts 200 within 1 s (the bound), `what` naming the attack. */
async function healthyWithin1s(what) {
  const t0 = Date.now();
  const r = await http('GET', `${d.url}/healthz`, { timeout: 1000 * SLOW });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, `GET /healthz during ${what}: ${r.status} ${r.text}`);
  assert.ok(ms <= 1000 * SLOW, `GET /healthz during ${what} took ${ms} ms (bound 1000 ms)`);
  return ms;
}

const stats = async () => (await http('GET', `${d.url}/api/stats`)).json.transports;

// ------------------------------------------------------------ 12.4 streams

describe('12.4 streams_per_token', () => {
  test('one token holds 16 SSE+WebSocket streams; the 17th is refused with 429 too_many_streams; others are not starved; a close frees a slot', async () => {
    const room = uniqueRoom('streams');
    const greedy = await register(d.url, uniqueName('greedy'));
    const other = await register(d.url, uniqueName('other'));
    const sse = [];
    const ws = [];
    for (let i = 0; i < 8; i++) {
      const s = await sseOpen(sseUrl(room, greedy));
      assert.equal(s.status, 200, `SSE stream ${i + 1} of 16: ${s.status} ${s.text}`);
      sse.push(s);
      const w = await wsOpen(wsUrl(room, greedy));
      assert.ok(!w.refused, `WebSocket ${i + 1} of 16 refused: ${JSON.stringify(w.refused)}`);
      ws.push(w);
    }
    await healthyWithin1s('16 streams of one token');

    // the 17th, either way, on any room
    const s17 = await sseOpen(sseUrl(uniqueRoom('streams'), greedy));
    assertError({ ...s17, json: JSON.parse(s17.text) }, 429, 'too_many_streams', 'the 17th stream (SSE)');
    assert.match(JSON.parse(s17.text).message, /16/, 'the refusal names the limit');
    s17.close();
    const w17 = await wsOpen(wsUrl(room, greedy));
    assert.ok(w17.refused, 'the 17th stream (WebSocket) was upgraded');
    assertError(w17.refused, 429, 'too_many_streams', 'the 17th stream (WebSocket), before the upgrade');
    assert.match(w17.refused.json.message, /16/, 'the refusal names the limit');

    // long polls keep their own count
    const lp = await http('GET', `${d.url}/api/rooms/${room}/poll?timeout=0`, { headers: bearer(greedy.token) });
    assert.ok([200, 204].includes(lp.status), `a long poll of the same token: ${lp.status} ${lp.text}`);

    // another user still gets both kinds
    const os = await sseOpen(sseUrl(room, other));
    assert.equal(os.status, 200, `another user's SSE: ${os.status} ${os.text}`);
    const ow = await wsOpen(wsUrl(room, other));
    assert.ok(!ow.refused, `another user's WebSocket: ${JSON.stringify(ow.refused)}`);
    const sent = await sendOk(d.url, room, other, 'still served');
    await os.waitEvents(1, { filter: (e) => e.json?.id === sent.id, what: 'the message on the other user\'s SSE' });
    await ow.until(() => ow.of('message').some((e) => e.id === sent.id), 'the message on the other user\'s WebSocket');
    await sse[0].waitEvents(1, { filter: (e) => e.json?.id === sent.id, what: 'the message on a greedy SSE' });

    // closing one (either kind) frees one slot, once the server has seen it
    for (const [close, what] of [[() => sse[0].close(), 'an SSE stream'], [() => ws[0].close(), 'a WebSocket']]) {
      close();
      let got;
      await waitFor(async () => {
        got = await wsOpen(wsUrl(room, greedy));
        if (got.refused) assertError(got.refused, 429, 'too_many_streams', `after closing ${what}`);
        return !got.refused;
      }, { timeout: 5000 * SLOW, interval: 100, what: `a slot to come free after closing ${what}` });
      ws.push(got);
      const again = await wsOpen(wsUrl(room, greedy));
      assert.ok(again.refused, `after closing ${what} and opening one, a 17th is taken again`);
      assertError(again.refused, 429, 'too_many_streams');
    }
    for (const s of sse) s.close();
    for (const w of ws) w.close();
    os.close();
    ow.close();
    // all given back: the token opens streams again
    await waitFor(async () => {
      const s = await sseOpen(sseUrl(room, greedy));
      s.close();
      return s.status === 200;
    }, { timeout: 5000 * SLOW, interval: 100, what: 'the greedy token to get a stream once it closed all' });
  });
});
