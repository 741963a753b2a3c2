// bench_run.test.mjs - scripts/bench/run's fixed-rate mode (--at D), the one
// issue 14's CPU comparison is read from: a tiny run puts crosstalkd direct,
// nginx+nchan and crosstalkd behind the shipped nginx config at the same
// deliveries/s and prints one table row per transport and N, with each
// server's CPU per delivery and nothing lost; bad arguments are refused
// before anything starts. A measurement tool, checked for what it reports,
// not for how fast anything is.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

import { REPO } from './harness.mjs';

const RUN = path.join(process.env.CT_BUILDDIR || REPO, 'scripts', 'bench', 'run');

function run(args, limitMs = 120000) {
  return new Promise((resolve) => {
    const p = spawn(RUN, args.map(String), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), limitMs);
    p.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, out, ctx: `scripts/bench/run ${args.join(' ')}: exit ${status ?? signal}\n${out.slice(-4000)}` });
    });
  });
}

test('run --at: every server at the same rate, one row with each one\'s CPU per delivery', async () => {
  const r = await run(['--at', 400, '--transports', 'sse', '--ns', 20, '--step', 2]);
  assert.equal(r.status, 0, r.ctx);
  for (const label of ['crosstalk (at 400/s)', 'nchan (at 400/s)', 'crosstalk+nginx (at 400/s)', 'floor (at 400/s)']) {
    assert.ok(r.out.includes(`--- ${label}: `), `a run labelled "${label}"\n${r.ctx}`);
  }
  // 400 deliveries/s over 20 subscribers: 20 msgs/s for 2 s
  assert.ok(r.out.includes('--rate 20 --duration 2 '), r.ctx);
  assert.match(r.out, /Server CPU per delivery at 400 deliveries\/s/, r.ctx);
  const row = r.out.split('\n').find((l) => l.startsWith('| SSE | 20 |'));
  assert.ok(row, `a table row for SSE, N = 20\n${r.ctx}`);
  const cells = row.split('|').map((c) => c.trim());
  // | transport | N | msgs/s | µs/d crosstalk | µs/d nchan | ratio | µs/d floor | ratio |
  //   µs/d behind nginx | p99s | lost / dup |
  assert.equal(cells[3], '20', row);
  for (const i of [4, 5, 7, 9]) assert.match(cells[i], /^\d+\.\d$/, `a CPU figure in column ${i}: ${row}`);
  for (const i of [6, 8]) assert.match(cells[i], /^\d+\.\d\d× (met|\*\*not met\*\*)$/, `a ratio in column ${i}: ${row}`);
  assert.match(cells[10], /^[\d.]+ \/ [\d.]+ \/ [\d.]+ \/ [\d.]+$/, `four p99s: ${row}`);
  assert.equal(cells[11], '0/0, 0/0, 0/0, 0/0', `nothing lost or duplicated: ${row}`);
});

test('run --at refuses what it cannot measure, before starting anything', async () => {
  for (const [args, msg] of [
    [['--at', 'fast'], /--at needs a whole number of deliveries\/s, not 'fast'/],
    [['--at', 0], /--at needs a whole number/],
    [['--at', 1000, '--defaults'], /--at and --defaults do not go together/],
  ]) {
    const r = await run(args, 20000);
    assert.equal(r.status, 2, r.ctx);
    assert.match(r.out, msg, r.ctx);
    assert.doesNotMatch(r.out, /==> building/, `refused before building: ${r.ctx}`);
  }
});
