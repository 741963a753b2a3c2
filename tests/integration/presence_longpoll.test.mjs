// presence_longpoll.test.mjs - a long poll keeps its user online while it
// waits, however long its timeout: streams refreshed presence and polls did
// not, so a poll held past presence_ttl (timeout=50 against the shipped 30 s)
// dropped its user from GET .../presence while the user was listening.
// Once the poll is answered and none follows, the user goes offline
// within presence_ttl (an expiry is rewritten every third of it), as after
// any poll, and a stream in the room hears it: a presence event without
// the poller (before, an expiry was announced to nobody).
// Twice: presence_ttl = 2 s with an 8 s poll, and the shipped default
// (30 s) with a 50 s poll (longpoll_max_timeout is 60).
// Real redis-server and crosstalkd.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  RELAXED, bearer, cleanup, http, onlineIn, register, sleep, sseOpen, startDaemon, startRedis, uniqueName, uniqueRoom,
} from './harness.mjs';

function suite(label, presenceTtl, pollSeconds) {
  describe(label, () => {
    let daemon;
    const ttlMs = (presenceTtl ?? 30) * 1000;

    before(async () => {
      const redis = await startRedis();
      daemon = await startDaemon({
        redisUrl: redis.url,
        config: presenceTtl === undefined ? RELAXED : { ...RELAXED, presence_ttl: presenceTtl },
      });
    });
    after(cleanup);

    test(`a poll waiting ${pollSeconds} s keeps its user online past presence_ttl (${ttlMs / 1000} s)`, { timeout: pollSeconds * 1000 + ttlMs + 60000 }, async () => {
      const room = uniqueRoom('plp');
      const poller = await register(daemon.url, uniqueName('poller'));
      const watcher = await register(daemon.url, uniqueName('watcher'));
      const online = () => onlineIn(daemon.url, room, watcher.token);
      // the watcher listens on SSE, as a browser would, for presence events
      const sse = await sseOpen(`${daemon.url}/api/rooms/${room}/events`, { headers: bearer(watcher.token) });
      assert.equal(sse.status, 200, sse.text);
      const t0 = Date.now();
      const poll = http('GET', `${daemon.url}/api/rooms/${room}/poll?timeout=${pollSeconds}`, {
        headers: bearer(poller.token), timeout: pollSeconds * 1000 + 10000,
      });
      await sleep(500);
      assert.ok((await online()).includes(poller.name), 'the poller is online once its poll waits');
      // past presence_ttl, the poll still waiting
      await sleep(ttlMs + 2000 - (Date.now() - t0));
      assert.ok(Date.now() - t0 < pollSeconds * 1000 - 1000, 'the check came while the poll still waits');
      const list = await online();
      assert.ok(list.includes(poller.name), `${Date.now() - t0} ms into a ${pollSeconds} s poll (presence_ttl ${ttlMs} ms) the poller is not online: ${JSON.stringify(list)}`);
      // a message answers the poll; no poll follows
      const sent = await http('POST', `${daemon.url}/api/rooms/${room}/messages`, { headers: bearer(watcher.token), body: { text: 'wake' } });
      assert.equal(sent.status, 201, sent.text);
      const res = await poll;
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json.events.map((e) => e.text), ['wake']);
      const ended = Date.now();
      const presences = () => sse.events.filter((e) => e.event === 'presence');
      assert.ok(presences().some((e) => e.json.online.includes(poller.name)), `the stream heard the poller come online: ${JSON.stringify(presences())}`);
      // offline within presence_ttl of its poll's end (with a margin of a
      // refresh period), on the shipped 30 s as on the short one
      await sleep(ttlMs + ttlMs / 3 + 1000);
      const later = await online();
      assert.ok(!later.includes(poller.name), `the poller is online ${ttlMs + ttlMs / 3 + 1000} ms after its poll ended: ${JSON.stringify(later)}`);
      const heard = presences().filter((e) => e.at > ended);
      assert.ok(heard.length > 0 && !heard.at(-1).json.online.includes(poller.name),
        `the stream heard no presence event without the poller after its poll ended: ${JSON.stringify(heard.map((e) => e.json.online))}`);
      assert.ok(heard.at(-1).json.online.includes(watcher.name), 'the watcher, on its stream, is still online');
      sse.close();
    });
  });
}

suite('presence_ttl = 2', 2, 8);
suite('the shipped default presence_ttl (30)', undefined, 50);
