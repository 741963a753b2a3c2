// daemon.test.mjs - crosstalkd as a process: --help, configuration (file,
// CROSSTALK_* environment, flags; ranges), signals (SIGTERM drains and exits
// 0, SIGHUP reopens the log), connection limits and timeouts, Redis by URL
// and by Unix socket.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import nodeHttp from 'node:http';
import path from 'node:path';
import {
  RELAXED, bearer, bin, cleanup, http, rawHttp, register, roomKey, runSync, send, sendOk, sleep, sseOpen,
  startDaemon, startRedis, tmpDir, uniqueName, uniqueRoom, waitFor,
} from './harness.mjs';

let redis;

before(async () => {
  redis = await startRedis({ unixSocket: true });
});
after(cleanup);

describe('command line', () => {
  test('--help prints the options and exits 0', () => {
    const r = runSync(bin('crosstalkd'), ['--help']);
    assert.equal(r.status, 0, `status ${r.status}: ${r.stderr}`);
    const out = r.stdout + r.stderr;
    for (const key of ['port', 'redis-url', 'max-message-bytes', 'sse-heartbeat', 'config']) {
      assert.match(out, new RegExp(key.replace(/-/g, '[-_]')), `--help does not mention ${key}`);
    }
    assert.equal(out.match(/^ {2}--config /gm)?.length, 1, `--config listed once:\n${out}`);
    assert.equal(out.match(/^Configuration keys/gm)?.length, 1, `one heading for the keys:\n${out}`);
  });

  test('the three programs say it alike: "Usage:", one heading for the keys, an unknown argument exits 2', () => {
    for (const prog of ['crosstalkd', 'crosstalk-fcgi', 'crosstalk-backup']) {
      const h = runSync(bin(prog), ['--help']);
      assert.equal(h.status, 0, `${prog} --help: ${h.stderr}`);
      assert.match(h.stdout, new RegExp(`^Usage: ${prog} `), `${prog} --help starts:\n${h.stdout.slice(0, 200)}`);
      assert.equal(h.stdout.match(/^Configuration keys \(file, then CROSSTALK_<KEY>, then flags\):$/gm)?.length, 1, `${prog}: the keys' heading:\n${h.stdout}`);
      for (const arg of ['--bogus', 'stray']) {
        const r = runSync(bin(prog), [arg], { timeout: 5000 });
        assert.equal(r.status, 2, `${prog} ${arg}: exit ${r.status}: ${r.stderr}`);
        assert.equal(r.stderr.trim(), `${prog}: unknown argument '${arg}' (see --help)`, `${prog} ${arg}`);
      }
    }
  });

  test('a flag without its value, or with another flag where the value belongs, says so and exits 2', () => {
    for (const [prog, args, flag] of [
      ['crosstalkd', ['--log-file'], '--log-file'],
      ['crosstalkd', ['--log-file', '--port=9000'], '--log-file'],
      ['crosstalk-fcgi', ['--socket'], '--socket'],
      ['crosstalk-fcgi', ['--socket', '--port=9000'], '--socket'],
      ['crosstalk-backup', ['--room', '--retain=5'], '--room'],
    ]) {
      const r = runSync(bin(prog), args, { timeout: 5000 });
      assert.equal(r.status, 2, `${prog} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
      assert.equal(r.stderr.trim(), `${prog}: ${flag} needs a value`, `${prog} ${args.join(' ')}`);
    }
  });

  test('a value out of range stops start-up with a message naming key, value and range', () => {
    for (const [flag, key, value] of [
      ['--port=0', 'port', '0'],
      ['--max-body-bytes=1', 'max_body_bytes', '1'],
      ['--longpoll-timeout=999', 'longpoll_timeout', '999'],
      ['--sse-heartbeat=-5', 'sse_heartbeat', '-5'],
    ]) {
      const r = runSync(bin('crosstalkd'), [flag, `--redis-url=${redis.url}`], { timeout: 5000 });
      assert.ok(!r.timedOut, `${flag}: still running after 5 s (it should refuse to start)`);
      assert.notEqual(r.status, 0, `${flag}: exit status 0`);
      const msg = r.stderr + r.stdout;
      assert.match(msg, new RegExp(key.replace(/_/g, '[-_]')), `${flag}: message does not name the key: ${msg}`);
      assert.ok(msg.includes(value), `${flag}: message does not show the value: ${msg}`);
    }
  });

  test('an unknown option, a bad number or a bad log level stops start-up', () => {
    for (const args of [['--no-such-option=1'], ['--port=abc'], ['--max-message-bytes=12abc'], ['--log-level=chatty']]) {
      const r = runSync(bin('crosstalkd'), [...args, `--redis-url=${redis.url}`], { timeout: 5000 });
      assert.ok(!r.timedOut, `${args}: still running after 5 s`);
      assert.notEqual(r.status, 0, `${args}: exit status 0`);
      assert.ok((r.stderr + r.stdout).length > 0, `${args}: refused without a word`);
    }
  });
});

describe('configuration sources', () => {
  // max_message_bytes is visible from outside: over it, a send gets 413.
  async function limitOf(dd, user) {
    const room = uniqueRoom();
    const at = async (n) => (await send(dd.url, room, user, 'x'.repeat(n))).status;
    const found = [];
    for (const n of [50, 51, 70, 71, 100, 101]) found.push(`${n}:${await at(n)}`);
    return found.join(' ');
  }

  test('crosstalk.conf, then CROSSTALK_* environment, then flags', async () => {
    const dir = tmpDir('conf');
    const file = path.join(dir, 'crosstalk.conf');
    fs.writeFileSync(file, [
      '# a comment',
      '',
      'max_message_bytes = 100',
      '   rate_register_per_min   =   1000000',
      'rate_send_per_sec = 1000000',
      '',
    ].join('\n'));
    const fileOnly = await startDaemon({ redisUrl: redis.url, args: ['--config', file] });
    const u = await register(fileOnly.url);
    assert.equal(await limitOf(fileOnly, u), '50:201 51:201 70:201 71:201 100:201 101:413', 'limit from the file');
    await fileOnly.stop();

    const withEnv = await startDaemon({ redisUrl: redis.url, args: ['--config', file], env: { CROSSTALK_MAX_MESSAGE_BYTES: '50' } });
    assert.equal(await limitOf(withEnv, u), '50:201 51:413 70:413 71:413 100:413 101:413', 'the environment overrides the file');
    await withEnv.stop();

    const withFlag = await startDaemon({
      redisUrl: redis.url, args: ['--config', file, '--max-message-bytes=70'], env: { CROSSTALK_MAX_MESSAGE_BYTES: '50' },
    });
    assert.equal(await limitOf(withFlag, u), '50:201 51:201 70:201 71:413 100:413 101:413', 'a flag overrides both');
    await withFlag.stop();
  });

  test('a config file with a bad line or an unknown key stops start-up, naming the line', () => {
    const dir = tmpDir('conf');
    for (const [content, hint] of [['max_message_bytes = lots\n', 'max_message_bytes'], ['no_such_key = 1\n', 'no_such_key'], ['just garbage\n', '']]) {
      const file = path.join(dir, 'bad.conf');
      fs.writeFileSync(file, content);
      const r = runSync(bin('crosstalkd'), ['--config', file, `--redis-url=${redis.url}`], { timeout: 5000 });
      assert.ok(!r.timedOut, `${JSON.stringify(content)}: still running after 5 s`);
      assert.notEqual(r.status, 0, `${JSON.stringify(content)}: started anyway`);
      assert.ok((r.stderr + r.stdout).trim().length > 0 && (r.stderr + r.stdout).includes(hint), `${JSON.stringify(content)}: message does not mention ${hint || 'anything'}: ${r.stderr}`);
    }
  });

  test('Redis over a Unix socket (redis_url = unix:///path)', async () => {
    const dd = await startDaemon({ redisUrl: redis.socketUrl, config: RELAXED });
    assert.equal((await http('GET', `${dd.url}/healthz`)).status, 200, dd.logs().slice(-1000));
    const u = await register(dd.url);
    const room = uniqueRoom();
    const m = await sendOk(dd.url, room, u, 'over the socket');
    const x = await redis.cmd('XRANGE', roomKey(room), m.id, m.id);
    assert.equal(x.length, 1);
    assert.equal(await dd.stop(), 0);
  });
});

describe('signals', () => {
  test('SIGTERM: open SSE streams end cleanly, a waiting long poll is answered, exit status 0', async () => {
    const dd = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, sse_heartbeat: 1 } });
    const u = await register(dd.url);
    const room = uniqueRoom();
    const m0 = await sendOk(dd.url, room, u, 'x');
    const s = await sseOpen(`${dd.url}/api/rooms/${room}/events`, { headers: bearer(u.token) });
    assert.equal(s.status, 200);
    const poll = http('GET', `${dd.url}/api/rooms/${room}/poll?since=${m0.id}&timeout=30`, { headers: bearer(u.token), timeout: 15000 })
      .then((r) => ({ status: r.status }), (e) => ({ error: e.message }));
    await sleep(300);
    const t0 = Date.now();
    const exited = dd.stop();
    await s.waitEnd({ timeout: 5000, what: 'the SSE stream to end after SIGTERM' });
    assert.ok(s.endedCleanly, 'the SSE stream was cut (no terminating chunk) instead of ended');
    const p = await poll;
    assert.ok(Date.now() - t0 < 10000, 'the long poll hung across SIGTERM');
    assert.ok(p.status === 204 || p.status === 503 || p.status === 200, `long poll across SIGTERM: ${JSON.stringify(p)}`);
    assert.equal(await exited, 0, `exit status after SIGTERM; log:\n${dd.logs().slice(-2000)}`);
    assert.ok(Date.now() - t0 < 10000, `SIGTERM took ${Date.now() - t0} ms`);
  });

  /** A daemon (shipped timings), a user, and a room holding one message m0. */
  async function daemonWithRoom() {
    const dd = await startDaemon({ redisUrl: redis.url, config: RELAXED });
    const u = await register(dd.url);
    const room = uniqueRoom();
    return { dd, u, room, m0: await sendOk(dd.url, room, u, 'x') };
  }

  /**
   * SIGTERMs dd while a send is held in flight (Redis writes paused for
   * 1.5 s, under the shipped redis_timeout_ms of 2 s), so that it drains for
   * about 1.3 s. Resolves {exited: its exit status, held: the send's status}.
   */
  async function stopWithSendHeld(dd, room, u) {
    await redis.cmd('CLIENT', 'PAUSE', '1500', 'WRITE');
    const held = send(dd.url, room, u, 'held').then((r) => r.status, (e) => e.message);
    await sleep(200);
    return { exited: dd.stop(), held };
  }

  // A long poll asked while the daemon drains is answered at once with
  // nothing (204). On its keep-alive connection its client polled again at
  // once: thousands of answers a second until the daemon exited. Now every
  // answer while draining closes its connection, and the client's next poll
  // finds the listener closed.
  test('SIGTERM with long polls on keep-alive connections: each answered once, with Connection: close; none polls again on it', async () => {
    const { dd, u, room, m0 } = await daemonWithRoom();
    const agent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 3 });
    const answers = [];
    let stop = false;
    const poll = () => new Promise((resolve) => {
      const r = nodeHttp.get({
        host: '127.0.0.1', port: dd.port, agent, path: `/api/rooms/${room}/poll?since=${m0.id}`, headers: bearer(u.token),
      }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection }));
      });
      r.on('error', (e) => resolve({ error: e.code }));
    });
    const loops = Array.from({ length: 3 }, async () => {
      while (!stop) {
        const a = await poll();
        if (a.error) return; // the listener is closed: this client goes elsewhere
        answers.push(a);
      }
    });
    await sleep(300);
    const { exited, held } = await stopWithSendHeld(dd, room, u);
    const code = await exited;
    stop = true;
    await Promise.all(loops);
    agent.destroy();
    assert.equal(code, 0, dd.logs().slice(-2000));
    assert.equal(await held, 201, 'the send in flight at SIGTERM');
    assert.ok(answers.length >= 1 && answers.length <= 6, `${answers.length} long-poll answers during the drain: ${JSON.stringify(answers.slice(0, 8))}`);
    for (const a of answers) {
      assert.equal(a.connection, 'close', `an answer during the drain kept its connection: ${JSON.stringify(a)}`);
      assert.ok(a.status === 204 || a.status === 200, `a long poll during the drain got ${JSON.stringify(a)}`);
    }
  });

  // The case above finds every poll waiting at SIGTERM; this one asks on
  // connections kept alive from before, once the daemon drains. (Not a 503:
  // through nginx's kept connections it would reach the client.)
  test('SIGTERM, then a long poll and a short poll on connections kept alive from before: answered at once, and both connections closed', async () => {
    const { dd, u, room, m0 } = await daemonWithRoom();
    const agent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 2 });
    const ask = (p) => new Promise((resolve, reject) => {
      nodeHttp.get({ host: '127.0.0.1', port: dd.port, agent, path: p, headers: bearer(u.token) }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body, reused: res.req.reusedSocket }));
      }).on('error', reject);
    });
    // two connections kept alive
    await Promise.all([ask('/healthz'), ask('/healthz')]);
    const { exited, held } = await stopWithSendHeld(dd, room, u);
    await sleep(200);
    const [lp, sp] = await Promise.all([
      ask(`/api/rooms/${room}/poll?since=${m0.id}`),
      ask(`/api/rooms/${room}/messages?since=${m0.id}`),
    ]);
    agent.destroy();
    assert.equal(await exited, 0, dd.logs().slice(-2000));
    assert.equal(await held, 201, 'the send in flight at SIGTERM');
    assert.ok(lp.reused && sp.reused, 'both asked on the connections kept alive from before');
    // answered with what there is: nothing, or the send held at SIGTERM
    assert.ok(lp.status === 204 || lp.status === 200, `the long poll: ${JSON.stringify(lp)}`);
    assert.equal(lp.headers.connection, 'close');
    assert.equal(sp.status, 200, `the short poll: ${JSON.stringify(sp)}`);
    assert.equal(sp.headers.connection, 'close');
  });

  // A new stream while draining is not served here: its connection is
  // closed unanswered. nginx takes that for a failed daemon and tries the
  // next one, and a browser's EventSource reconnects after it; a 503 was
  // passed on by nginx, and ended a bare EventSource for good.
  test('SIGTERM, then an event stream and a WebSocket on connections kept alive from before: closed unanswered, not 503', async () => {
    const { dd, u, room, m0 } = await daemonWithRoom();
    const agent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 2 });
    const ask = (p, headers = {}) => new Promise((resolve) => {
      const req = nodeHttp.get({ host: '127.0.0.1', port: dd.port, agent, path: p, headers: { ...bearer(u.token), ...headers } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, reused: req.reusedSocket }));
        if (res.statusCode === 200 && p !== '/healthz') res.destroy(); // a stream: its head is enough
      });
      req.on('upgrade', (res, sock) => { sock.destroy(); resolve({ status: res.statusCode, reused: req.reusedSocket }); });
      req.on('error', (e) => resolve({ error: e.code, reused: req.reusedSocket }));
    });
    // two connections kept alive
    assert.deepEqual(await Promise.all([ask('/healthz'), ask('/healthz')]), [{ status: 200, reused: false }, { status: 200, reused: false }]);
    const { exited, held } = await stopWithSendHeld(dd, room, u);
    await sleep(200);
    const [sse, ws] = await Promise.all([
      ask(`/api/rooms/${room}/events?since=${m0.id}`, { Accept: 'text/event-stream' }),
      ask(`/api/rooms/${room}/ws?since=${m0.id}`, {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      }),
    ]);
    agent.destroy();
    assert.equal(await exited, 0, dd.logs().slice(-2000));
    assert.equal(await held, 201, 'the send in flight at SIGTERM');
    assert.deepEqual(sse, { error: 'ECONNRESET', reused: true }, 'an event stream asked while draining');
    assert.deepEqual(ws, { error: 'ECONNRESET', reused: true }, 'a WebSocket asked while draining');
  });

  test('SIGTERM during a burst of sends: every acknowledged message is stored', async () => {
    const dd = await startDaemon({ redisUrl: redis.url, config: RELAXED });
    const u = await register(dd.url);
    const room = uniqueRoom();
    const sends = [];
    let exited;
    for (let i = 0; i < 30; i++) {
      sends.push(send(dd.url, room, u, `burst ${i}`).then((r) => r, (e) => ({ status: 0, error: e.message })));
      if (i === 15) exited = dd.stop();
    }
    const rs = await Promise.all(sends);
    const code = await exited;
    assert.equal(code, 0, dd.logs().slice(-2000));
    const acked = rs.filter((r) => r.status === 201).map((r) => r.json.id);
    const stored = (await redis.cmd('XRANGE', roomKey(room), '-', '+')).map((x) => x[0]);
    for (const id of acked) assert.ok(stored.includes(id), `message ${id} was acknowledged but is not in Redis`);
    for (const r of rs) assert.ok([0, 201, 503].includes(r.status), `a send during shutdown got ${r.status} ${r.text ?? r.error}`);
  });

  test('SIGHUP reopens the log file', async () => {
    const dir = tmpDir('log');
    const log = path.join(dir, 'crosstalkd.log');
    const dd = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, log_file: log, log_level: 'debug' } });
    await waitFor(() => fs.existsSync(log) && fs.statSync(log).size > 0, { timeout: 3000, what: `${log} to get its first lines` });
    fs.renameSync(log, `${log}.1`);
    process.kill(dd.pid, 'SIGHUP');
    await waitFor(() => fs.existsSync(log), { timeout: 3000, what: `${log} to be created again after SIGHUP` });
    assert.equal((await http('GET', `${dd.url}/healthz`)).status, 200, 'not serving after SIGHUP');
    await register(dd.url);
    assert.equal(dd.proc.exitCode, null);
    assert.equal(await dd.stop(), 0);
    assert.ok(fs.statSync(log).size > 0, 'nothing was logged to the reopened file');
  });
});

describe('connections', () => {
  test('max_connections: beyond it new streams are refused; room again once one closes', async () => {
    const dd = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, max_connections: 3 } });
    const u = await register(dd.url);
    const room = uniqueRoom();
    const streams = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = await sseOpen(`${dd.url}/api/rooms/${room}/events`, { headers: bearer(u.token) });
        assert.equal(s.status, 200);
        streams.push(s);
      }
      // A 4th stream (or long poll) is refused: 503 in JSON, or the connection closed.
      const extra = await sseOpen(`${dd.url}/api/rooms/${room}/events`, { headers: bearer(u.token), timeout: 3000 })
        .then((s) => { s.close(); return s.status; }, () => 'refused');
      assert.ok(extra === 'refused' || extra === 503, `a 4th stream with max_connections=3 got ${extra}`);
      const lp = await http('GET', `${dd.url}/api/rooms/${room}/poll?timeout=1`, { headers: bearer(u.token), timeout: 3000 })
        .then((r) => r.status, () => 'refused');
      assert.ok(lp === 'refused' || lp === 503, `a long poll beyond max_connections=3 got ${lp}`);
      streams.pop().close();
      await waitFor(async () => {
        const s = await sseOpen(`${dd.url}/api/rooms/${room}/events`, { headers: bearer(u.token), timeout: 1000 }).catch(() => null);
        if (s && s.status === 200) streams.push(s);
        else s?.close();
        return s?.status === 200;
      }, { timeout: 3000, what: 'a new stream to be accepted once one closed' });
    } finally {
      for (const s of streams) s.close();
    }
    assert.equal(dd.proc.exitCode, null);
  });

  test('header_timeout: a client that never finishes its request head is dropped', async () => {
    const dd = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, header_timeout: 1 } });
    const t0 = Date.now();
    const r = await rawHttp(dd.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1', { timeout: 6000 });
    const ms = Date.now() - t0;
    assert.ok(r.closed, `still connected after ${ms} ms`);
    assert.ok(ms < 4000, `dropped only after ${ms} ms with header_timeout=1`);
    assert.ok(r.status === 0 || r.status === 408 || r.status === 400, `answer: ${r.raw.slice(0, 200)}`);
    assert.equal((await http('GET', `${dd.url}/healthz`)).status, 200);
  });

  test('a client that opens a socket and sends nothing does not block others', async () => {
    const dd = await startDaemon({ redisUrl: redis.url, config: RELAXED });
    const idle = [];
    for (let i = 0; i < 20; i++) {
      idle.push(await new Promise((res, rej) => {
        const s = net.connect({ host: '127.0.0.1', port: dd.port }, () => res(s));
        s.on('error', rej);
      }));
    }
    try {
      const u = await register(dd.url, uniqueName('busy'));
      await sendOk(dd.url, uniqueRoom(), u, 'served despite idle sockets');
    } finally {
      for (const s of idle) s.destroy();
    }
  });
});
