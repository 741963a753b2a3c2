// presence_pool.test.mjs - a user seen only by the FastCGI pool (short
// polls and sends through nginx, as the page's REST panes make them) goes
// offline within presence_ttl of its last request, and a stream in the room
// hears it: a presence event without the user. The pool holds nothing
// between requests and runs no timer, so the expiry is dropped and announced
// by the crosstalkd that serves the room's stream (before, it was announced
// by nobody, and the stream listed the user until the room's next presence
// event). Each expiry is announced once, by whoever drops it.
// Twice: presence_ttl = 2 s, and the shipped default (30 s).
// Real redis-server, crosstalkd, the crosstalk-fcgi pool under spawn-fcgi,
// and nginx.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  RELAXED, bearer, cleanup, http, onlineIn, register, sleep, sseOpen, startDaemon, startFcgi, startNginx, startRedis,
  uniqueName, uniqueRoom,
} from './harness.mjs';

function suite(label, presenceTtl) {
  describe(label, () => {
    let nginx;
    const ttlMs = (presenceTtl ?? 30) * 1000;
    const config = presenceTtl === undefined ? RELAXED : { ...RELAXED, presence_ttl: presenceTtl };

    before(async () => {
      const redis = await startRedis();
      const daemon = await startDaemon({ redisUrl: redis.url, config });
      const fcgi = await startFcgi({ redisUrl: redis.url, children: 2, config });
      nginx = await startNginx({ daemons: [daemon.port], fcgiSocket: fcgi.socket });
    });
    after(cleanup);

    test(`a user only the pool saw is announced offline (presence_ttl ${ttlMs / 1000} s)`, { timeout: 2 * ttlMs + 60000 }, async () => {
      const room = uniqueRoom('ppl');
      const poller = await register(nginx.url, uniqueName('poller'));
      const watcher = await register(nginx.url, uniqueName('watcher'));
      const online = () => onlineIn(nginx.url, room, watcher.token);
      const sse = await sseOpen(`${nginx.url}/api/rooms/${room}/events`, { headers: bearer(watcher.token) });
      assert.equal(sse.status, 200, sse.text);
      const presences = () => sse.events.filter((e) => e.event === 'presence');
      // the poller's one short poll and one send, both answered by the pool
      const polled = await http('GET', `${nginx.url}/api/rooms/${room}/messages`, { headers: bearer(poller.token) });
      assert.equal(polled.status, 200, polled.text);
      const sent = await http('POST', `${nginx.url}/api/rooms/${room}/messages`, {
        headers: bearer(poller.token), body: { text: 'hello from the pool' },
      });
      assert.equal(sent.status, 201, sent.text);
      const last = Date.now();
      assert.ok((await online()).includes(poller.name), 'the poller is online after its requests');
      // the pool announced the poller as it came
      for (let i = 0; i < 40 && !presences().some((e) => e.json.online.includes(poller.name)); i++) await sleep(50);
      assert.ok(presences().some((e) => e.json.online.includes(poller.name)),
        `the stream heard the poller come online: ${JSON.stringify(presences().map((e) => e.json.online))}`);
      // within presence_ttl of the last request and a refresh period (a
      // third of it), with a margin
      await sleep(ttlMs + ttlMs / 3 + 1500 - (Date.now() - last));
      const later = await online();
      assert.ok(!later.includes(poller.name), `the poller is online ${Date.now() - last} ms after its last request: ${JSON.stringify(later)}`);
      const heard = presences().filter((e) => e.at > last + ttlMs - 1000);
      assert.equal(heard.length, 1,
        `one presence event after the poller's expiry, not ${heard.length}: ${JSON.stringify(heard.map((e) => e.json.online))}`);
      assert.ok(!heard[0].json.online.includes(poller.name), `the stream still lists the poller: ${JSON.stringify(heard[0].json.online)}`);
      assert.ok(heard[0].json.online.includes(watcher.name), 'the watcher, on its stream, is still online');
      sse.close();
    });
  });
}

suite('presence_ttl = 2', 2);
suite('the shipped default presence_ttl (30)', undefined);
