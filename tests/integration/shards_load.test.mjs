// shards_load.test.mjs - issue 15, item 5: three Redis shards, two
// crosstalkd behind nginx and the FastCGI pool, 200 clients (50 WebSocket,
// 50 SSE, 50 long poll, 50 short poll) in 50 rooms, senders over REST
// through nginx (the pool's POST and crosstalkd's under /d/) and over
// WebSocket, every send with an idempotency key. Mid-run one shard's
// redis-server is SIGKILLed; sending goes on; it is restarted on its port
// and dir. Then another shard hangs past redis_timeout_ms (CLIENT PAUSE),
// so that sends end in "the outcome is unknown" and are retried with their
// key. Then, for every room: the stream holds every acknowledged message
// exactly once and nothing else, and every client received exactly the
// stream, in order, resuming from its last id after any disconnect.
//
// "Nothing acknowledged is lost" with a killed Redis: harness.mjs starts
// redis-server with appendonly yes and appendfsync always, so a write is on
// disk before Redis answers it, and the restarted server loads all of it.
// (With appendfsync everysec a SIGKILL may lose up to a second of
// acknowledged writes: Redis's loss, which no crosstalk process can undo.)
//
// Send outcomes follow docs/design.md: 201/200 acknowledge; a 503 "nothing
// was stored" is a refusal (the message must then be in no stream); a 503
// "the outcome is unknown", a broken connection, or a WebSocket closed
// before its ack, is retried with the same key until it is acknowledged.
// A refusal after an unknown outcome answers only its own try (the first
// may still be stored: a paused Redis runs it when the pause ends), so it
// is retried too.
//
// Shipped defaults everywhere but the rate limits (RELAXED: 50 users
// register from one address). Each room has its own user, placed on the
// room's shard, so that the dead shard holds the tokens of its own rooms
// only; streams_per_token and longpolls_per_token stay at their defaults.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  RELAXED, bearer, cleanup, compareIds, http, register, roomKey, shardOf, sleep, sseOpen,
  startDaemon, startFcgi, startNginx, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const N = 3;
const ROOMS = 50;
const DEAD = 1;
const HUNG = 2; // the shard paused past redis_timeout_ms afterwards
const OUTAGE_MS = 4000;
const PACE_MS = 150; // between two sends of one room's sender
const T0 = Date.now();

let shards;
let daemons;
let fcgi;
let nginx;
const rooms = []; // {name, shard, user, sender, clients: [], acked: Map key->id, refused: [{text, key, why}], ...}
let stopping = false; // ends the clients
let sending = true; // ends the senders
let phase = 'before'; // 'before' | 'outage' | 'after' | 'pause' | 'end'
let killedAt = 0;
let restartedAt = 0;
const anomalies = []; // reset/truncated signals, unexpected statuses

before(async () => {
  shards = [];
  for (let i = 0; i < N; i++) shards.push(await startRedis());
  const url = shards.map((s) => s.url).join(',');
  daemons = [await startDaemon({ redisUrl: url, config: RELAXED }), await startDaemon({ redisUrl: url, config: RELAXED })];
  fcgi = await startFcgi({ redisUrl: url, children: 2, config: RELAXED });
  nginx = await startNginx({ daemons, fcgiSocket: fcgi.socket });
  const perShard = [0, 0, 0];
  for (let k = 0; rooms.length < ROOMS && k < 5000; k++) {
    const name = uniqueRoom('ld');
    const s = shardOf(name, N);
    if (perShard[s] >= Math.ceil(ROOMS / N)) continue; // an even spread: 17/17/16
    perShard[s]++;
    rooms.push({ name, shard: s, acked: new Map(), refused: [], status: {}, outageAcks: [], clients: [] });
  }
  assert.equal(rooms.length, ROOMS, `${ROOMS} rooms spread over ${N} shards (${perShard})`);
  for (const r of rooms) {
    let uname;
    for (let k = 0; k < 1000 && !uname; k++) {
      const n = uniqueName('ld');
      if (shardOf(n.toLowerCase(), N) === r.shard) uname = n;
    }
    r.user = await register(nginx.url, uname);
  }
});
after(async () => {
  stopping = true;
  sending = false;
  await cleanup();
});

const elapsed = () => `${((Date.now() - T0) / 1000).toFixed(1)} s`;
const is503Unknown = (res) => res.status === 503 && /outcome is unknown/.test(res.json?.message ?? '');

// ------------------------------------------------------------------ clients

/** Common bookkeeping: the ids a client received, in order. */
function newClient(room, kind) {
  const c = { room, kind, got: [], lastId: '0-0', connects: 0, errors: 0 };
  c.take = (ev) => {
    if (ev.type !== 'message') return;
    // a message stored after the kill, received before the restart
    if (phase === 'outage' && Number(ev.id.split('-')[0]) >= killedAt) c.outageSeen = true;
    c.got.push(ev.id);
    c.lastId = ev.id;
  };
  c.signal = (what, data) => anomalies.push(`${kind} client of ${room.name}: ${what} ${JSON.stringify(data)}`);
  room.clients.push(c);
  return c;
}

function runSse(room) {
  const c = newClient(room, 'sse');
  c.done = (async () => {
    while (!stopping) {
      let s;
      try {
        // alternately the plain path and /d/: both reach the daemons
        const pre = c.connects % 2 ? '/d' : '';
        s = await sseOpen(`${nginx.url}${pre}/api/rooms/${room.name}/events?since=${c.lastId}`, {
          headers: bearer(room.user.token), timeout: 10000,
        });
      } catch {
        c.errors++;
        await sleep(250);
        continue;
      }
      c.connects++;
      c.sse = s;
      if (s.status !== 200) {
        s.close();
        c.errors++;
        await sleep(250);
        continue;
      }
      let seen = 0;
      await new Promise((resolve) => {
        const tick = () => {
          for (; seen < s.events.length; seen++) {
            const e = s.events[seen];
            if (e.event === 'message') c.take(e.json);
            else if (e.event === 'reset' || e.event === 'truncated') c.signal(e.event, e.data);
          }
          if (s.ended || stopping) { clearInterval(iv); resolve(); }
        };
        const iv = setInterval(tick, 20);
      });
      s.close();
      if (!stopping) await sleep(250);
    }
  })();
}

function runWs(room) {
  const c = newClient(room, 'ws');
  c.pending = new Map(); // key -> {resolve}
  c.open = null;
  c.done = (async () => {
    while (!stopping) {
      const pre = c.connects % 2 ? '/d' : '';
      const url = `ws://127.0.0.1:${nginx.port}${pre}/api/rooms/${room.name}/ws?` +
        new URLSearchParams({ token: room.user.token, since: c.lastId });
      const ws = new WebSocket(url);
      c.connects++;
      await new Promise((resolve) => {
        ws.on('open', () => { c.open = ws; });
        ws.on('message', (data) => {
          let m;
          try { m = JSON.parse(data.toString('utf8')); } catch { return; }
          if (m.type === 'message') c.take(m);
          else if (m.type === 'reset' || m.type === 'truncated') c.signal(m.type, m);
          else if ((m.type === 'ack' || m.type === 'error') && m.key && c.pending.has(m.key)) {
            const p = c.pending.get(m.key);
            c.pending.delete(m.key);
            p.resolve(m);
          }
        });
        ws.on('unexpected-response', (req, res) => { c.errors++; res.resume(); ws.terminate(); });
        ws.on('error', () => { c.errors++; });
        ws.on('close', () => {
          if (c.open === ws) c.open = null;
          // whatever was sent and not answered: the outcome is unknown
          for (const [k, p] of c.pending) { c.pending.delete(k); p.resolve({ type: 'closed' }); }
          resolve();
        });
        c.stop = () => ws.close();
      });
      if (!stopping) await sleep(250);
    }
  })();
  /** Sends a message frame; resolves with the ack, the error, or {type:'closed'|'timeout'}. */
  c.send = (text, key) => new Promise((resolve) => {
    const ws = c.open;
    if (!ws || ws.readyState !== WebSocket.OPEN) { resolve({ type: 'closed', notSent: true }); return; }
    const tm = setTimeout(() => { if (c.pending.delete(key)) resolve({ type: 'timeout' }); }, 10000);
    c.pending.set(key, { resolve: (m) => { clearTimeout(tm); resolve(m); } });
    ws.send(JSON.stringify({ type: 'message', text, key }));
  });
  return c;
}

function runLongPoll(room) {
  const c = newClient(room, 'longpoll');
  c.done = (async () => {
    while (!stopping) {
      const pre = c.connects % 2 ? '/d' : '';
      c.connects++;
      let r;
      try {
        // the shipped long poll timeout (25 s): no timeout= in the query
        r = await http('GET', `${nginx.url}${pre}/api/rooms/${room.name}/poll?since=${c.lastId}`, {
          headers: bearer(room.user.token), timeout: 40000,
        });
      } catch {
        c.errors++;
        if (!stopping) await sleep(250);
        continue;
      }
      if (stopping) break;
      if (r.status === 200) {
        if (r.json.reset || r.json.truncated) c.signal('poll signal', r.json);
        for (const e of r.json.events) c.take(e);
      } else if (r.status !== 204) {
        c.errors++;
        await sleep(250);
      }
    }
  })();
}

function runShortPoll(room) {
  const c = newClient(room, 'shortpoll');
  c.done = (async () => {
    while (!stopping) {
      // the pool (plain path) and crosstalkd (/d/) in turn
      const pre = c.connects % 2 ? '/d' : '';
      c.connects++;
      try {
        const r = await http('GET', `${nginx.url}${pre}/api/rooms/${room.name}/messages?since=${c.lastId}&limit=500`, {
          headers: bearer(room.user.token),
        });
        if (r.status === 200) {
          if (r.json.reset || r.json.truncated) c.signal('short poll signal', r.json);
          for (const e of r.json.events) c.take(e);
        } else c.errors++;
      } catch {
        c.errors++;
      }
      await sleep(500);
    }
  })();
}

// ------------------------------------------------------------------ senders

/**
 * REST send with a key through `base`; retries an unknown outcome with the
 * same key. `unsure`: an earlier try's outcome is unknown (a WebSocket
 * closed before its ack). A refusal ("nothing was stored") answers only
 * its own try, so after an unknown outcome it settles nothing: the key is
 * sent again until a 201 or 200 says where the message stands.
 */
async function sendRest(room, base, text, key, unsure = false) {
  let refusedUnsure = false;
  for (let attempt = 0; attempt < 400; attempt++) {
    let r;
    try {
      r = await http('POST', `${base}/api/rooms/${room.name}/messages`, {
        headers: { ...bearer(room.user.token), 'Idempotency-Key': key }, body: { text },
      });
    } catch {
      room.status.neterr = (room.status.neterr ?? 0) + 1; // a broken connection: unknown
      unsure = true;
      await sleep(250);
      continue;
    }
    room.status[r.status] = (room.status[r.status] ?? 0) + 1;
    if (r.status === 503 && phase === 'outage') room.outage503 = (room.outage503 ?? 0) + 1;
    if (r.status === 201 || r.status === 200) {
      // stored by the try whose outcome was unknown, though a later one was refused
      if (refusedUnsure && r.status === 200) room.status.storedBeforeRefusal = (room.status.storedBeforeRefusal ?? 0) + 1;
      return { id: r.json.id, status: r.status };
    }
    if (r.status === 503 && !is503Unknown(r) && !unsure) {
      return { refused: true, why: `${r.status} ${r.json?.message ?? r.text} via ${base} in phase ${phase} at ${elapsed()}` };
    }
    if (r.status === 503) {
      if (is503Unknown(r)) room.status.unknown = (room.status.unknown ?? 0) + 1;
      else {
        room.status.refusedWhenUnsure = (room.status.refusedWhenUnsure ?? 0) + 1;
        refusedUnsure = true;
      }
      unsure = true;
      await sleep(250);
      continue;
    }
    throw new Error(`send ${key} to ${room.name} via ${base}: unexpected ${r.status} ${r.text}`);
  }
  throw new Error(`send ${key} to ${room.name}: no outcome after 400 attempts`);
}

async function runSender(room, wsClient, skew) {
  for (let seq = 0; sending; seq++) {
    const key = `k${seq}`;
    const text = `${room.name} #${seq}`;
    // 0: the pool's POST, 1: crosstalkd's under /d/, 2: the room's WebSocket; skewed by
    // room, so that every way is in flight when a fault strikes
    const via = (seq + skew) % 3;
    const phaseAtStart = phase;
    let out;
    if (via === 2) {
      const m = await wsClient.send(text, key);
      if (m.type === 'ack') {
        room.status.wsack = (room.status.wsack ?? 0) + 1;
        out = { id: m.id };
      } else if (m.type === 'error' && !/outcome is unknown/.test(m.message ?? '')) {
        room.status.wserr = (room.status.wserr ?? 0) + 1;
        if (phase === 'outage') room.outage503 = (room.outage503 ?? 0) + 1;
        out = { refused: true, why: `WebSocket ${m.error} ${m.message} in phase ${phase} at ${elapsed()}` };
      } else {
        // closed or timed out before an answer, or an unknown outcome:
        // the same key again, over REST through crosstalkd
        if (!m.notSent) room.status.wsunknown = (room.status.wsunknown ?? 0) + 1;
        out = await sendRest(room, `${nginx.url}/d`, text, key, !m.notSent);
      }
    } else {
      out = await sendRest(room, via === 0 ? nginx.url : `${nginx.url}/d`, text, key);
    }
    if (out.refused) room.refused.push({ text, key, why: out.why });
    else {
      assert.ok(!room.acked.has(key), `${room.name}: key ${key} acknowledged twice`);
      room.acked.set(key, { id: out.id, text });
      if (phaseAtStart === 'outage' && phase === 'outage') room.outageAcks.push(out.id);
    }
    await sleep(PACE_MS);
  }
}

// ------------------------------------------------------------------ the run

test('3 shards, 2 daemons, nginx and the pool, 200 clients in 50 rooms; one shard SIGKILLed and restarted: nothing acknowledged lost or duplicated anywhere', { timeout: 240000 }, async () => {
  // a first message in each room, before anyone listens
  for (const r of rooms) {
    const out = await sendRest(r, nginx.url, `${r.name} seed`, 'seed');
    assert.ok(out.id, `seed of ${r.name}: ${JSON.stringify(out)}`);
    r.acked.set('seed', { id: out.id, text: `${r.name} seed` });
  }
  const wsOf = new Map();
  for (const r of rooms) {
    wsOf.set(r, runWs(r));
    runSse(r);
    runLongPoll(r);
    runShortPoll(r);
  }
  const clients = rooms.flatMap((r) => r.clients);
  assert.equal(clients.length, 200, '200 clients');
  await waitFor(() => [...wsOf.values()].every((c) => c.open), { timeout: 20000, what: 'all 50 WebSockets to open' });
  await waitFor(() => rooms.every((r) => r.clients.every((c) => c.got.length >= 1)), {
    timeout: 20000, what: 'every client to receive its room\'s seed',
  });

  const senders = rooms.map((r, i) => runSender(r, wsOf.get(r), i));
  await sleep(4000);

  phase = 'outage';
  killedAt = Date.now();
  await shards[DEAD].kill();
  await sleep(OUTAGE_MS);
  phase = 'after';
  await shards[DEAD].restart();
  restartedAt = Date.now();
  await sleep(4000);
  // the dead shard's rooms are writable again through both programs
  for (const r of rooms.filter((x) => x.shard === DEAD).slice(0, 2)) {
    for (const base of [nginx.url, `${nginx.url}/d`]) {
      await waitFor(async () => (await http('GET', `${base}/healthz`)).status === 200, {
        timeout: 20000, what: `${base}/healthz to be 200 after shard ${DEAD} came back`,
      });
      const k = `back-${base.endsWith('/d') ? 'd' : 'f'}`;
      const out = await sendRest(r, base, `${r.name} ${k}`, k);
      assert.ok(out.id, `${r.name} after the restart via ${base}: ${JSON.stringify(out)}`);
      r.acked.set(k, { id: out.id, text: `${r.name} ${k}` });
    }
  }
  // a second fault, on another shard: it hangs (CLIENT PAUSE ALL 3000 ms,
  // past the shipped redis_timeout_ms of 2000), so the sends in flight end
  // in 503 "the outcome is unknown" (or a WebSocket error saying so) and are
  // retried with their key: each must then be stored once
  phase = 'pause';
  await shards[HUNG].cmd('CLIENT', 'PAUSE', '3000', 'ALL');
  await sleep(6000);
  phase = 'end';
  sending = false;
  await Promise.all(senders);

  // --- what each room's stream holds, read from its shard directly
  const streams = new Map();
  for (const r of rooms) {
    const x = await shards[r.shard].cmd('XRANGE', roomKey(r.name), '-', '+');
    streams.set(r, x.map(([id, f]) => {
      const o = {};
      for (let i = 0; i < f.length; i += 2) o[f[i]] = f[i + 1];
      return { id, text: o.text };
    }));
    for (let i = 0; i < N; i++) {
      if (i !== r.shard) assert.equal(await shards[i].cmd('EXISTS', roomKey(r.name)), 0, `${r.name} on shard ${i} too`);
    }
  }

  // every client catches up with its room's stream (bounded)
  const behind = () => clients.filter((c) => c.got.length < streams.get(c.room).length);
  try {
    await waitFor(() => behind().length === 0, { timeout: 30000, interval: 100, what: 'every client to receive its room\'s whole stream' });
  } catch (e) {
    const b = behind().slice(0, 5).map((c) => `${c.kind} ${c.room.name} (shard ${c.room.shard}): ${c.got.length}/${streams.get(c.room).length}`);
    throw new Error(`${e.message}; behind: ${b.join('; ')}`);
  }
  stopping = true;
  for (const c of clients) {
    c.sse?.close();
    c.stop?.();
  }

  // --- the checks
  let acks = 0;
  let refused = 0;
  const stat = [{}, {}, {}];
  for (const r of rooms) {
    const st = streams.get(r);
    const ids = st.map((e) => e.id);
    const texts = st.map((e) => e.text);
    assert.equal(new Set(ids).size, ids.length, `${r.name}: no id twice in the stream`);
    assert.equal(new Set(texts).size, texts.length, `${r.name}: no message stored twice (texts ${texts.filter((t, i) => texts.indexOf(t) !== i)})`);
    const ackedIds = [...r.acked.values()].map((a) => a.id);
    // what the stream holds that no send was acknowledged for, and why its
    // sender took it as refused
    const extra = st.filter((e) => !ackedIds.includes(e.id)).map((e) => {
      const ref = r.refused.find((x) => x.text === e.text);
      return `${e.id} "${e.text}" (${ref ? `refused: ${ref.why}` : 'never refused'})`;
    });
    for (const a of r.acked.values()) {
      const i = ids.indexOf(a.id);
      assert.ok(i >= 0, `${r.name} (shard ${r.shard}): acknowledged ${a.id} "${a.text}" is not in the stream`);
      assert.equal(texts[i], a.text, `${r.name}: ${a.id} holds its own text`);
    }
    assert.deepEqual([...ids].sort(compareIds), [...new Set(ackedIds)].sort(compareIds),
      `${r.name} (shard ${r.shard}): the stream holds exactly the acknowledged messages; not acknowledged: ` +
      `${extra.join('; ') || 'none'}; outcomes ${JSON.stringify(r.status)}`);
    for (const x of r.refused) assert.ok(!texts.includes(x.text), `${r.name}: "${x.text}" was refused (${x.why}) yet is stored`);
    for (const c of r.clients) {
      assert.deepEqual(c.got, ids, `${c.kind} client of ${r.name} (shard ${r.shard}, ${c.connects} connects): received the stream exactly once, in order`);
    }
    acks += r.acked.size;
    refused += r.refused.length;
    for (const [k, v] of Object.entries(r.status)) stat[r.shard][k] = (stat[r.shard][k] ?? 0) + v;
    // the live shards' rooms took sends during the outage, and every client
    // had them before the dead shard came back
    if (r.shard !== DEAD) {
      assert.ok(r.outageAcks.length >= 2, `${r.name} (shard ${r.shard}) acknowledged ${r.outageAcks.length} sends during the outage (want >= 2)`);
      assert.ok(!r.outage503, `${r.name} (shard ${r.shard}, live): no 503 during the outage (${r.outage503}; ${JSON.stringify(r.status)})`);
    }
  }
  // streaming went on for the live rooms while the shard was dead: every
  // client of theirs received a message stored after the kill before the
  // dead shard was restarted
  const quiet = rooms.filter((r) => r.shard !== DEAD).flatMap((r) => r.clients.filter((c) => !c.outageSeen));
  assert.deepEqual(quiet.map((c) => `${c.kind} ${c.room.name}`), [], 'live rooms\' clients that received nothing during the outage');
  const deadRooms = rooms.filter((r) => r.shard === DEAD);
  const dead503 = deadRooms.reduce((n, r) => n + (r.status[503] ?? 0) + (r.status.wserr ?? 0) + (r.status.neterr ?? 0), 0);
  const unknown = rooms.filter((r) => r.shard === HUNG).reduce((n, r) => n + (r.status.unknown ?? 0) + (r.status.wsunknown ?? 0), 0);
  assert.ok(unknown > 0, `sends to the hung shard's rooms ended in "outcome unknown" and were retried with their key: ${unknown}`);
  assert.ok(dead503 > 0, `the dead shard's rooms got 503s (or errors) during the outage: ${dead503}`);
  assert.deepEqual(anomalies, [], 'no reset or truncated signal reached any client (Redis lost nothing)');
  console.log(`# shards_load: ${acks} acknowledged, ${refused} refused (503 nothing stored), shard ${DEAD} down ` +
    `${restartedAt - killedAt} ms; per shard outcomes ${JSON.stringify(stat)}; ` +
    `reconnects ${clients.reduce((n, c) => n + c.connects, 0)}; done at ${elapsed()}`);
});

