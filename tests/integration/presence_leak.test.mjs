// presence_leak.test.mjs - reading a room must not leave a key in Redis
// forever. Every authenticated GET of a room (short poll, presence) marks
// the reader online: ZADD ct:presence:{room} <expiry> <user>. Nothing gives
// that key an expiry and no process removes an expired member unless the
// same room is touched again (ZREMRANGEBYSCORE runs only before the next
// ZADD), so one token reading N made-up room names leaves N permanent keys
// (found in the trial: 1,500 names in 0.3 s, all still there minutes later).
//
// Expected: once presence_ttl has passed with no activity, the room's
// presence key is gone, on crosstalkd and on the FastCGI pool alike.
// Twice: presence_ttl = 1 s, and the shipped default (30 s).
// Real redis-server, crosstalkd, spawn-fcgi + crosstalk-fcgi, nginx.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  RELAXED, bearer, cleanup, http, register, sleep, startDaemon, startFcgi, startNginx, startRedis,
  uniqueName, uniqueRoom,
} from './harness.mjs';

function suite(label, presenceTtl) {
  describe(label, () => {
    let redis, daemon, fcgi, nginx, user;
    const config = presenceTtl === undefined ? RELAXED : { ...RELAXED, presence_ttl: presenceTtl };
    const ttlMs = (presenceTtl ?? 30) * 1000;

    before(async () => {
      redis = await startRedis();
      daemon = await startDaemon({ redisUrl: redis.url, config });
      fcgi = await startFcgi({ redisUrl: redis.url, children: 1, config });
      nginx = await startNginx({ daemons: [daemon.port], fcgiSocket: fcgi.socket });
      user = await register(daemon.url, uniqueName('leak'));
    });
    after(async () => {
      await fcgi?.stop().catch(() => {});
      await cleanup();
    });

    test(`a room read once has no presence key ${presenceTtl ?? 30} s later`, { timeout: ttlMs + 60000 }, async () => {
      const rooms = { daemon: uniqueRoom('leakd'), pool: uniqueRoom('leakf') };
      const bases = { daemon: daemon.url, pool: nginx.url }; // nginx's /api/rooms/R/messages is the pool's
      for (const who of Object.keys(rooms)) {
        const r = await http('GET', `${bases[who]}/api/rooms/${rooms[who]}/messages`, { headers: bearer(user.token) });
        assert.equal(r.status, 200, `${who}: GET messages of an empty room: ${r.status} ${r.text}`);
        assert.deepEqual(r.json.events, [], `${who}: the room is empty`);
      }
      const wait = ttlMs + Math.max(3000, ttlMs / 2); // past every refresh of the daemon's sweep
      await sleep(wait);
      const left = [];
      for (const who of Object.keys(rooms)) {
        const key = `ct:presence:{${rooms[who]}}`;
        const exists = await redis.cmd('EXISTS', key);
        const pttl = await redis.cmd('PTTL', key);
        if (exists !== 0) left.push(`${who}: ${key} (PTTL ${pttl}${pttl === -1 ? ': no expiry, it stays forever' : ''})`);
      }
      assert.deepEqual(left, [],
        `${wait} ms after one read of an empty room (presence_ttl ${ttlMs} ms) these presence keys are still in Redis:\n  ${left.join('\n  ')}`);
    });
  });
}

suite('presence_ttl = 1', 1);
suite('the shipped default presence_ttl (30)', undefined);
