// window_trim.test.mjs - a poll answered from crosstalkd's window (a
// followed room's recent messages in memory, src/daemon/window.c) after the
// room's stream lost its oldest entries must give the gap signal Redis
// gives, as docs/api.md ("Delivery signals") promises on every transport.
// Found in a trial: after a trim, a daemon that follows the room answered a
// short poll and a long poll whose `since` lay inside its window with the
// messages Redis no longer holds and no `truncated`, while a daemon that
// does not follow the room (and the FastCGI pool) answered `truncated: true`
// with `first_id`: two answers to one call.
//
// Trims announce themselves on the room's bus channel (KEYS_BUS_TRIMMED):
// crosstalk-backup --retain does it in the script that trims, and an
// operator who XTRIMs by hand publishes the same notice (docs/operations.md).
// Daemon A follows the room (a short poll with since); B never does and
// reads Redis. Shipped defaults but the rate limits (RELAXED); a real
// FerretDB for the backup.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  RELAXED, bearer, bin, cleanup, history, http, register, roomKey, runSync, sendOk, sleep, startDaemon, startFerret,
  startRedis, tmpDir, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const NOTICE = '{"notice":"trimmed"}'; // KEYS_BUS_TRIMMED, src/common/keys.h

let redis, ferret, a, b, alice;

before(async () => {
  redis = await startRedis();
  ferret = await startFerret();
  a = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  b = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  alice = await register(a.url, uniqueName('alice'));
});
after(cleanup);

/** A room A follows, holding 20 messages A's window has seen; their ids. */
async function followedRoom(tag) {
  const room = uniqueRoom(tag);
  const f = await history(a.url, room, alice, { since: '0-0' }); // A follows the room from now
  assert.equal(f.status, 200, f.text);
  await waitFor(async () => (await redis.cmd('PUBSUB', 'NUMSUB', `ct:bus:{${room}}`))[1] >= 1,
    { what: `A's SUBSCRIBE to ct:bus:{${room}}` });
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push((await sendOk(b.url, room, alice, `m${i}`)).id);
  // A answers from its window once it has seen the newest message
  await waitFor(async () => {
    const r = await history(a.url, room, alice, { since: ids[18] });
    return r.status === 200 && r.json.events.length === 1 && r.json.events[0].id === ids[19];
  }, { what: `A's window to hold ${ids[19]}` });
  const before = await history(a.url, room, alice, { since: ids[2], limit: 3 });
  assert.deepEqual(before.json.events.map((e) => e.id), ids.slice(3, 6), `before the trim: ${before.text}`);
  return { room, ids };
}

/** After the trim, A (window) and B (Redis) give the same answer: the gap. */
async function assertGapEverywhere(room, ids, firstKept) {
  const q = { since: ids[2], limit: 3 };
  const ref = await history(b.url, room, alice, q);
  assert.equal(ref.status, 200, ref.text);
  assert.equal(ref.json.truncated, true, `B (from Redis) signals the gap: ${ref.text}`);
  assert.equal(ref.json.first_id, ids[firstKept], ref.text);

  await waitFor(async () => {
    const mine = await history(a.url, room, alice, q);
    return JSON.stringify(mine.json) === JSON.stringify(ref.json);
  }, { timeout: 5000, what: `A's short poll since=${q.since} to answer as Redis does: ${ref.text}` });

  const lp = await http('GET', `${a.url}/api/rooms/${room}/poll?${new URLSearchParams({ ...q, timeout: 0 })}`,
    { headers: bearer(alice.token) });
  assert.equal(lp.status, 200, lp.text);
  assert.deepEqual(lp.json, ref.json,
    `long poll since=${q.since} limit=3 timeout=0: A answered ${lp.text}\n  but Redis' answer is ${ref.text}`);
  // a poll after what is kept is still answered, and from A as from B
  const kept = { since: ids[17] };
  assert.deepEqual((await history(a.url, room, alice, kept)).json, (await history(b.url, room, alice, kept)).json);
}

test('crosstalk-backup --retain trims, and a poll from the window then signals the gap as Redis does', async () => {
  const { room, ids } = await followedRoom('wtb');
  const d = tmpDir('wt-backup');
  const file = path.join(d, 'crosstalk.conf');
  fs.writeFileSync(file, `redis_url = ${redis.url}\nmongo_uri = ${ferret.uri.replace(/\/crosstalk$/, `/ct_wt_${process.pid}`)}\n`);
  const r = runSync(bin('crosstalk-backup'), ['--config', file, '--retain', '5'], { timeout: 60000 });
  assert.equal(r.status, 0, `crosstalk-backup --retain 5:\n${r.stdout}${r.stderr}`);
  assert.equal(await redis.cmd('XLEN', roomKey(room)), 5, 'the stream keeps its newest 5');
  await assertGapEverywhere(room, ids, 15);
});

test('an operator\'s XTRIM followed by the trimmed notice: the same', async () => {
  const { room, ids } = await followedRoom('wto');
  assert.equal(await redis.cmd('XTRIM', roomKey(room), 'MAXLEN', '8'), 12);
  assert.ok(await redis.cmd('PUBLISH', `ct:bus:{${room}}`, NOTICE) >= 1, 'A hears the notice');
  await assertGapEverywhere(room, ids, 12);
  // the notice is no event: A's streams and polls carry nothing for it
  const lp = await http('GET', `${a.url}/api/rooms/${room}/poll?since=${ids[19]}&timeout=1`, { headers: bearer(alice.token) });
  assert.equal(lp.status, 204, `a poll up to date stays empty after the notice: ${lp.text}`);
});

test('the notice on a room A does not follow, or a malformed one, changes nothing', async () => {
  const room = uniqueRoom('wtn');
  assert.equal(await redis.cmd('PUBLISH', `ct:bus:{${room}}`, NOTICE), 0);
  for (const junk of ['{"notice":"trimmed"} ', '{"notice":"other"}', '']) {
    const { room: r2, ids } = await followedRoom('wtj');
    await redis.cmd('PUBLISH', `ct:bus:{${r2}}`, junk);
    await sleep(200);
    // the window still answers, with what it holds
    const p = await history(a.url, r2, alice, { since: ids[2], limit: 3 });
    assert.deepEqual(p.json.events.map((e) => e.id), ids.slice(3, 6), `after ${JSON.stringify(junk)}: ${p.text}`);
  }
  assert.equal((await http('GET', `${a.url}/healthz`)).status, 200);
});
