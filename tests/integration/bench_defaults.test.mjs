// bench_defaults.test.mjs - crosstalk-bench as users deploy crosstalk:
// against crosstalkd with the shipped defaults (no knob changed) it either
// completes a small run or stops within 5 s with the daemon's JSON error,
// never retrying until a timeout; and through the shipped nginx config
// (nginx/crosstalk.standalone.conf.in, /d/ prefix, as scripts/bench/run's
// "crosstalk+nginx" cell) one small run of each transport completes with
// nothing lost. Shipped limits: longpolls_per_token 8, streams_per_token 16,
// rate_register_per_min 30 per IP, rate_send_per_sec 20 per token.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

import { bin, cleanup, startDaemon, startNginx, startRedis } from './harness.mjs';

const FAIL_FAST_MS = 5000;
const RUN_LIMIT_MS = 45000; // a small run takes about 4 s; past this it hung

let redis;

before(async () => {
  redis = await startRedis();
});

after(cleanup);

/** Runs crosstalk-bench to its end (killed after RUN_LIMIT_MS); resolves
 * {status, signal, ms, stdout, stderr, summary, ctx}. */
function bench(args) {
  const all = ['--json', '--quiet', '--max-time', 40, ...args].map(String);
  return new Promise((resolve) => {
    const t0 = Date.now();
    const p = spawn(bin('crosstalk-bench'), all, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), RUN_LIMIT_MS);
    p.on('close', (status, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - t0;
      const ctx = `crosstalk-bench ${all.join(' ')}\nexit ${status ?? signal} after ${ms} ms` +
        `\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
      let summary = null;
      for (const l of stdout.split('\n').filter(Boolean)) {
        const j = JSON.parse(l);
        if (j.type === 'summary') summary = j;
      }
      resolve({ status, signal, ms, stdout, stderr, summary, ctx });
    });
  });
}

/** A complete small run: every subscriber connected, nothing lost. */
function assertCompleted(r, n, rate, seconds) {
  assert.equal(r.status, 0, `exit status 0 expected\n${r.ctx}`);
  assert.ok(r.summary, `a summary line expected\n${r.ctx}`);
  const s = r.summary;
  assert.equal(s.fatal, null, r.ctx);
  assert.equal(s.ok, true, r.ctx);
  assert.equal(s.connected, n, r.ctx);
  assert.equal(s.acked, rate * seconds, r.ctx);
  assert.equal(s.pub_errors, 0, r.ctx);
  assert.equal(s.sub_errors, 0, r.ctx);
  assert.equal(s.lost, 0, r.ctx);
  assert.equal(s.dups, 0, r.ctx);
  assert.equal(s.deliveries, rate * seconds * n, r.ctx);
}

/** Stopped at once (exit 4) with the daemon's JSON error `code`. */
function assertRefused(r, code, messagePart) {
  assert.equal(r.status, 4, `exit status 4 (the server refused the load) expected\n${r.ctx}`);
  assert.ok(r.ms < FAIL_FAST_MS, `expected to stop within ${FAIL_FAST_MS} ms, took ${r.ms} ms\n${r.ctx}`);
  const quoted = `{"error":"${code}"`;
  assert.ok(r.stderr.includes(quoted), `stderr should quote the daemon's ${quoted}...\n${r.ctx}`);
  assert.ok(r.stderr.includes(messagePart), `stderr should carry the daemon's message (${messagePart})\n${r.ctx}`);
  assert.ok(r.summary, `the summary line is still written\n${r.ctx}`);
  assert.equal(r.summary.ok, false, r.ctx);
  assert.ok(r.summary.fatal.includes(quoted), `summary.fatal should quote the daemon's error\n${r.ctx}`);
  assert.equal(r.summary.steps, 0, `no step may run\n${r.ctx}`);
}

test('shipped defaults: 50 long polls on one token stop at once on the daemon\'s 429 (was a 60 s hang)', async () => {
  const d = await startDaemon({ redisUrl: redis.url });
  const r = await bench(['--url', d.url, '--transport', 'longpoll', '-n', 50, '--rate', 10, '--duration', 2]);
  assertRefused(r, 'rate_limited', 'long polls');
  await d.stop();
});

test('shipped defaults: 50 SSE streams and 50 WebSockets on one token stop at once on too_many_streams', async () => {
  const d = await startDaemon({ redisUrl: redis.url });
  for (const t of ['sse', 'ws']) {
    const r = await bench(['--url', d.url, '--transport', t, '-n', 50, '--rate', 10, '--duration', 2]);
    assertRefused(r, 'too_many_streams', 'streams_per_token');
  }
  await d.stop();
});

test('shipped defaults: more users than rate_register_per_min stop at the first 429 to a registration', async () => {
  const d = await startDaemon({ redisUrl: redis.url });
  // 300 long polls, 8 per token: 38 users + the publisher, over 30 a minute
  const r = await bench(['--url', d.url, '--transport', 'longpoll', '-n', 300, '--per-user', 8, '--rate', 10, '--duration', 2]);
  assertRefused(r, 'rate_limited', 'retry in');
  assert.equal(r.summary.connected, 0, r.ctx);
  await d.stop();
});

test('shipped defaults: publishing faster than rate_send_per_sec stops at the first 429 to a publish', async () => {
  const d = await startDaemon({ redisUrl: redis.url });
  const r = await bench(['--url', d.url, '--transport', 'sse', '-n', 4, '--rate', 100, '--duration', 3]);
  // the burst (40) goes through; the 41st publish is refused within the step
  assert.equal(r.status, 4, `exit status 4 expected\n${r.ctx}`);
  assert.ok(r.ms < 3000 + FAIL_FAST_MS, `took ${r.ms} ms\n${r.ctx}`);
  assert.match(r.summary.fatal, /publish was answered 429 \{"error":"rate_limited"/, r.ctx);
  await d.stop();
});

test('shipped defaults: 50 long polls with --per-user 8 complete a small run', async () => {
  const d = await startDaemon({ redisUrl: redis.url });
  const r = await bench(['--url', d.url, '--transport', 'longpoll', '-n', 50, '--per-user', 8, '--rate', 10, '--duration', 2]);
  assertCompleted(r, 50, 10, 2);
  assert.equal(r.summary.users, 7, r.ctx);
  await d.stop();
});

test('behind the shipped nginx config, shipped defaults: a small run of every transport completes', async () => {
  const d = await startDaemon({ redisUrl: redis.url });
  const ng = await startNginx({ daemons: [d] });
  const per = { sse: 16, ws: 16, longpoll: 8, shortpoll: 0 };
  for (const t of ['sse', 'ws', 'longpoll', 'shortpoll']) {
    const args = ['--url', `${ng.url}/d`, '--transport', t, '-n', 20, '--rate', 10, '--duration', 2,
      '--server-pid', d.pid];
    if (per[t]) args.push('--per-user', per[t]);
    const r = await bench(args);
    try {
      assertCompleted(r, 20, 10, 2);
    } catch (e) {
      e.message += `\n--- nginx log ---\n${ng.logs().slice(-2000)}\n--- daemon log ---\n${d.logs().slice(-2000)}`;
      throw e;
    }
    assert.equal(r.summary.label, 'crosstalk@/d', r.ctx);
    if (t === 'longpoll' || t === 'shortpoll') assert.ok(r.summary.requests_per_delivery > 0, r.ctx);
  }
  await ng.stop();
  await d.stop();
});
