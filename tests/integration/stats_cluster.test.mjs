// stats_cluster.test.mjs - /api/stats adds up the whole cluster: two
// crosstalkd and a FastCGI pool of two behind nginx, each writing its
// counters to Redis every stats_interval_ms (the shipped 1000), and a process
// that stops drops out of the sum after its record's TTL (3 intervals).
// /metrics stays per process.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RELAXED, alive, bearer, cleanup, http, redisCommand, register, sendOk, sleep, sseOpen, startDaemon,
  startFcgi, startNginx, startRedis, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

const INTERVAL_MS = 1000; // the shipped stats_interval_ms
const TTL_MS = 3 * INTERVAL_MS;

let redis, a, b, fcgi, nginx, user;
const room = uniqueRoom('stats');

before(async () => {
  redis = await startRedis();
  a = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  b = await startDaemon({ redisUrl: redis.url, config: RELAXED });
  fcgi = await startFcgi({ redisUrl: redis.url, config: RELAXED, children: 2 });
  nginx = await startNginx({ daemons: [a.port, b.port], fcgiSocket: fcgi.socket });
  user = await register(nginx.url, uniqueName('st'));
});
after(cleanup);

async function stats(base) {
  const r = await http('GET', `${base}/api/stats`);
  assert.equal(r.status, 200, `GET ${base}/api/stats: ${r.status} ${r.text}`);
  return r.json;
}

const FIELDS = ['open', 'requests', 'delivered', 'bytes_out', 'empty', 'dropped'];
const TRANSPORTS = ['rest', 'short_poll', 'long_poll', 'sse', 'websocket'];

// The top level is the sum of the rows, field by field.
function assertSum(s, where) {
  for (const t of TRANSPORTS) {
    for (const f of FIELDS) {
      const sum = s.processes.reduce((acc, p) => acc + p.transports[t][f], 0);
      assert.equal(s.transports[t][f], sum, `${where}: ${t}.${f} is not the sum of the ${s.processes.length} rows`);
    }
  }
  assert.equal(s.streams, s.processes.reduce((acc, p) => acc + p.streams, 0), `${where}: streams`);
}

const describe = (s) => s.processes.map((p) => `${p.program}:${p.pid}${p.port ? `@${p.port}` : ''}`).sort().join(' ');

async function waitProcesses(base, want, what) {
  let last = null;
  const t0 = Date.now();
  try {
    await waitFor(async () => {
      last = await stats(base);
      return want(last);
    }, { timeout: 4 * TTL_MS, interval: 200, what });
  } catch (e) {
    throw new Error(`${e.message}\nafter ${Date.now() - t0} ms /api/stats of ${base} lists: ${last ? describe(last) : '(nothing)'}`);
  }
  return last;
}

test('every crosstalkd and every FastCGI process is in the sum, whichever daemon answers', async () => {
  const want = (s) => s.scope === 'cluster' &&
    s.processes.filter((p) => p.program === 'crosstalkd').length === 2 &&
    s.processes.filter((p) => p.program === 'crosstalk-fcgi').length === 2;
  await waitProcesses(a.url, want, 'daemon A to list 2 crosstalkd and 2 crosstalk-fcgi');
  const sb = await waitProcesses(b.url, want, 'daemon B to list 2 crosstalkd and 2 crosstalk-fcgi');
  const ports = sb.processes.filter((p) => p.program === 'crosstalkd').map((p) => p.port).sort();
  assert.deepEqual(ports, [a.port, b.port].sort(), 'the daemons are listed with their ports');
  const pids = sb.processes.filter((p) => p.program === 'crosstalk-fcgi').map((p) => p.pid).sort();
  assert.deepEqual(pids, [...fcgi.pids].sort(), 'the FastCGI processes are listed with their pids');
  for (const p of sb.processes) {
    assert.ok(p.started > 0 && p.updated >= p.started, `${p.id}: started ${p.started}, updated ${p.updated}`);
    assert.equal(p.interval_ms, INTERVAL_MS, `${p.id}: interval`);
  }
  assert.ok(sb.self && sb.processes.some((p) => p.id === sb.self), `self ${sb.self} is one of the rows`);
});

test('short polls answered by the FastCGI pool are counted, and both daemons give the same sum', async () => {
  const before0 = await stats(a.url);
  // Through nginx: /api/rooms/R/messages goes to the FastCGI pool.
  await sendOk(nginx.url, room, user, 'one');
  await sendOk(nginx.url, room, user, 'two');
  const POLLS = 10;
  let nonEmpty = 0;
  for (let i = 0; i < POLLS; i++) {
    const r = await http('GET', `${nginx.url}/api/rooms/${room}/messages${i === 0 ? '' : '?since=$'}`, { headers: bearer(user.token) });
    // since=$ is not an id: a 400, counted as a request all the same
    if (i === 0) {
      assert.equal(r.status, 200, r.text);
      nonEmpty += r.json.events.length;
    }
  }
  const empties = 5;
  const last = (await http('GET', `${nginx.url}/api/rooms/${room}/messages`, { headers: bearer(user.token) })).json.last_id;
  for (let i = 0; i < empties; i++) {
    const r = await http('GET', `${nginx.url}/api/rooms/${room}/messages?since=${last}`, { headers: bearer(user.token) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.events.length, 0);
  }
  const polls = POLLS + 1 + empties;
  // Counters reach Redis within an interval; wait for two.
  const grown = (s) => {
    const fc = s.processes.filter((p) => p.program === 'crosstalk-fcgi');
    const sp = fc.reduce((acc, p) => acc + p.transports.short_poll.requests, 0);
    const sp0 = before0.processes.filter((p) => p.program === 'crosstalk-fcgi')
      .reduce((acc, p) => acc + p.transports.short_poll.requests, 0);
    return sp - sp0 >= polls;
  };
  const sa = await waitProcesses(a.url, grown, `the FastCGI rows to count ${polls} more short polls`);
  assertSum(sa, 'daemon A');
  const fc = sa.processes.filter((p) => p.program === 'crosstalk-fcgi');
  const sum = (t, f) => fc.reduce((acc, p) => acc + p.transports[t][f], 0);
  const sum0 = (t, f) => before0.processes.filter((p) => p.program === 'crosstalk-fcgi')
    .reduce((acc, p) => acc + p.transports[t][f], 0);
  assert.ok(sum('short_poll', 'delivered') - sum0('short_poll', 'delivered') >= nonEmpty + 1,
    `FastCGI delivered ${sum('short_poll', 'delivered') - sum0('short_poll', 'delivered')} events by short poll, want >= ${nonEmpty + 1}`);
  assert.ok(sum('short_poll', 'empty') - sum0('short_poll', 'empty') >= empties, 'empty short polls counted');
  assert.ok(sum('short_poll', 'bytes_out') > sum0('short_poll', 'bytes_out'), 'short-poll bytes counted');
  assert.ok(sum('rest', 'requests') - sum0('rest', 'requests') >= 2, 'the two sends through FastCGI counted as REST');
  assert.equal(sa.transports.short_poll.requests, sa.processes.reduce((acc, p) => acc + p.transports.short_poll.requests, 0));

  // B answers the same short-poll sum once its own read sees the same records.
  await sleep(2 * INTERVAL_MS);
  const [x, y] = [await stats(a.url), await stats(b.url)];
  assertSum(y, 'daemon B');
  assert.equal(x.transports.short_poll.requests, y.transports.short_poll.requests, 'A and B sum the short polls alike');
  assert.equal(x.transports.short_poll.delivered, y.transports.short_poll.delivered, 'A and B sum the deliveries alike');
});

test('/metrics stays per process while /api/stats sums', async () => {
  // An SSE stream on B only.
  const sse = await sseOpen(`${b.url}/api/rooms/${room}/events`, { headers: bearer(user.token) });
  try {
    assert.equal(sse.status, 200);
    const metric = async (d) => {
      const r = await http('GET', `${d.url}/metrics`);
      assert.equal(r.status, 200);
      return Number(/^crosstalk_open\{transport="sse"\} (\d+)$/m.exec(r.text)[1]);
    };
    assert.equal(await metric(b), 1, 'B\'s /metrics shows its SSE stream');
    assert.equal(await metric(a), 0, 'A\'s /metrics shows no SSE stream');
    const s = await waitProcesses(a.url, (s) => s.transports.sse.open === 1,
      'A\'s /api/stats to count B\'s SSE stream in the sum');
    const row = s.processes.find((p) => p.port === b.port);
    assert.equal(row.transports.sse.open, 1, 'B\'s row holds the stream');
    assert.equal(s.streams, 1);
  } finally {
    sse.close();
  }
});

test('a stopped daemon and a stopped FastCGI process drop out after the TTL', async () => {
  const s0 = await stats(a.url);
  assert.equal(s0.processes.length, 4, describe(s0));
  const t0 = Date.now();
  await b.stop();
  const gone = fcgi.pids[0];
  process.kill(gone, 'SIGTERM');
  await waitFor(() => !alive(gone), { timeout: 5000, what: `crosstalk-fcgi ${gone} to exit on SIGTERM` });
  const s = await waitProcesses(a.url, (s) => s.processes.length === 2,
    'daemon A to list only itself and the FastCGI process left');
  const took = Date.now() - t0;
  process.stderr.write(`# stopped processes left the sum after ${took} ms (TTL ${TTL_MS} ms)\n`);
  assert.ok(took <= TTL_MS + 2 * INTERVAL_MS + 2000, `took ${took} ms, TTL ${TTL_MS}`);
  assert.deepEqual(s.processes.map((p) => p.program).sort(), ['crosstalk-fcgi', 'crosstalkd']);
  assert.ok(!s.processes.some((p) => p.pid === gone || p.port === b.port), describe(s));
  assertSum(s, 'after the stops');
  // The index forgets them too.
  const ids = await redisCommand(redis.port, 'SMEMBERS', 'ct:stats:procs');
  assert.equal(ids.length, 2, `ct:stats:procs: ${JSON.stringify(ids)}`);
  // An idle FastCGI process stays listed: it writes while waiting for requests.
  await sleep(TTL_MS + INTERVAL_MS);
  const later = await stats(a.url);
  assert.equal(later.processes.length, 2, `an idle process dropped out: ${describe(later)}`);
});

test('with Redis unreachable /api/stats answers this process alone and says so', async () => {
  const r0 = await stats(a.url);
  assert.equal(r0.scope, 'cluster');
  await redis.stop();
  const s = await waitProcesses(a.url, (s) => s.scope === 'process', 'scope "process" with Redis down');
  assert.equal(s.processes.length, 1);
  assert.equal(s.processes[0].port, a.port);
});

test('?scope=process answers the one daemon; a bad scope is a 400 that changes nothing', async () => {
  const r = await http('GET', `${a.url}/api/stats?scope=process`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.scope, 'process');
  assert.deepEqual(r.json.processes.map((p) => p.port), [a.port]);
  const bad = await http('GET', `${a.url}/api/stats?scope=everything`);
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error, 'bad_request');
  assert.match(bad.json.message, /scope/);
});
