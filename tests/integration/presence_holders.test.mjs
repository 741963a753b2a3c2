// presence_holders.test.mjs - a user with streams on two daemons (two tabs
// behind nginx's two upstreams) stays online when one of them closes: each
// process writes and removes its own member of the room's presence set.
// Before, the daemon whose last local stream closed removed the user
// outright, so every watcher saw the user go offline and come back once the
// other daemon next refreshed (found in a trial). Shipped presence_ttl (30 s).
// Real redis-server, two crosstalkd, the npm `ws` WebSocket client.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import {
  RELAXED, bearer, cleanup, http, onlineIn, register, sleep, sseOpen, startDaemon, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

let d1, d2;

before(async () => {
  const redis = await startRedis();
  d1 = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  d2 = await startDaemon({ redisUrl: redis.url, config: RELAXED });
});
after(cleanup);

test('closing one of a user\'s streams on two daemons leaves the user online, with no flicker', { timeout: 60000 }, async () => {
  const room = uniqueRoom('phd');
  const pa = await register(d1.url, uniqueName('pa'));
  const watcher = await register(d1.url, uniqueName('pw'));
  const online = () => onlineIn(d1.url, room, watcher.token);
  const watch = await sseOpen(`${d1.url}/api/rooms/${room}/events`, { headers: bearer(watcher.token) });
  assert.equal(watch.status, 200, watch.text);
  const tab1 = await sseOpen(`${d2.url}/api/rooms/${room}/events`, { headers: bearer(pa.token) });
  assert.equal(tab1.status, 200, tab1.text);
  const tab2 = new WebSocket(`ws://127.0.0.1:${d1.port}/api/rooms/${room}/ws?token=${pa.token}`, { perMessageDeflate: false });
  await new Promise((resolve, reject) => { tab2.once('open', resolve); tab2.once('error', reject); });
  await waitFor(async () => (await online()).includes(pa.name), { timeout: 5000, what: 'pa online with both tabs' });
  await sleep(500); // the announcements of the joins (gathered for 250 ms) are out
  const closedAt = Date.now();
  tab2.close();
  // sampled for 3 s: never without pa, whose SSE on d2 is open
  const gaps = [];
  while (Date.now() - closedAt < 3000) {
    const list = await online();
    if (!list.includes(pa.name)) gaps.push(`${Date.now() - closedAt} ms: ${JSON.stringify(list)}`);
    await sleep(100);
  }
  assert.deepEqual(gaps, [], `pa was listed offline after closing one of two streams:\n  ${gaps.join('\n  ')}`);
  const heard = watch.events.filter((e) => e.event === 'presence' && e.at > closedAt);
  for (const e of heard) assert.ok(e.json.online.includes(pa.name), `the watcher heard pa go offline: ${JSON.stringify(heard.map((x) => x.json.online))}`);
  // the last stream closes: pa is gone at once, and the watcher hears it
  const lastAt = Date.now();
  tab1.close();
  await waitFor(async () => !(await online()).includes(pa.name), { timeout: 3000, what: 'pa offline once the last stream closed' });
  await waitFor(() => watch.events.some((e) => e.event === 'presence' && e.at > lastAt && !e.json.online.includes(pa.name)),
    { timeout: 3000, what: 'the watcher to hear pa go' });
  watch.close();
});
