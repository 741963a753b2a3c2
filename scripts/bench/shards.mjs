#!/usr/bin/env node
// shards.mjs - stored-and-delivered messages/s with 1, 2 and 3 Redis shards
// (issue 15), and each process's CPU over the run.
//
// For each shard count N: N redis-servers (appendonly yes, appendfsync
// everysec unless --fsync always), D crosstalkd on the comma-separated
// redis_url, ROOMS rooms, each with L SSE listeners (spread over the
// daemons) and one closed-loop sender (POST with keep-alive to a daemon,
// rooms alternating between the daemons). Measured over --duration s after
// a 1 s warm-up: messages stored (201) per second, deliveries per second,
// and the CPU seconds (utime+stime from /proc/PID/stat) of every
// redis-server, every crosstalkd and this client. Then the senders stop and
// every listener must have every message of its room (lost/duplicated are
// reported; both must be 0).
//
// usage: node scripts/bench/shards.mjs [--shards 1,2,3] [--daemons 2]
//        [--rooms 100] [--listeners 2] [--duration 10] [--fsync everysec|always]
//        [--json FILE]
// Needs a built tree (make) and tests/node_modules (scripts/test does npm ci).
// Loopback only; every process it starts is stopped on exit.
import fs from 'node:fs';
import nodeHttp from 'node:http';
import os from 'node:os';
import { spawn } from 'node:child_process';
import {
  RELAXED, bearer, cleanup, cpuSeconds, freePort, redisCommand, register, sleep, sseOpen, startDaemon,
  tmpDir, uniqueName, uniqueRoom, waitFor, which,
} from '../../tests/integration/harness.mjs';

const opt = { shards: '1,2,3', daemons: 2, rooms: 100, listeners: 2, duration: 10, fsync: 'everysec', json: '' };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '-h' || a === '--help') {
    console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(1, 20).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  }
  const k = a.replace(/^--/, '');
  if (!(k in opt) || i + 1 >= process.argv.length) {
    console.error(`shards.mjs: unknown or incomplete argument ${a} (try --help)`);
    process.exit(2);
  }
  opt[k] = typeof opt[k] === 'number' ? Number(process.argv[++i]) : process.argv[++i];
}

const redisProcs = [];
function stopAll() {
  for (const p of redisProcs) {
    try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
process.on('exit', stopAll);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => { stopAll(); process.exit(130); });

/** A redis-server of our own: the harness's is appendfsync always. */
async function redis() {
  const dir = tmpDir('bench-redis');
  const port = await freePort();
  const p = spawn(which('redis-server'), ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--appendonly', 'yes', '--appendfsync', opt.fsync, '--save', '', '--logfile', ''], { stdio: 'ignore' });
  redisProcs.push(p);
  await waitFor(async () => (await redisCommand(port, 'PING')) === 'PONG', { timeout: 10000, what: `redis on ${port}` });
  return { port, pid: p.pid, url: `redis://127.0.0.1:${port}/0`, stop: () => p.kill('SIGKILL') };
}

const agent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 1000 });
function post(url, token, text) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ text });
    const u = new URL(url);
    const req = nodeHttp.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
      headers: { ...bearer(token), 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function runOne(n) {
  const shards = [];
  for (let i = 0; i < n; i++) shards.push(await redis());
  const url = shards.map((s) => s.url).join(',');
  const daemons = [];
  for (let i = 0; i < opt.daemons; i++) daemons.push(await startDaemon({ redisUrl: url, config: RELAXED }));
  const rooms = [];
  for (let i = 0; i < opt.rooms; i++) {
    const user = await register(daemons[i % daemons.length].url, uniqueName('bs'));
    rooms.push({ name: uniqueRoom('bs'), user, d: daemons[i % daemons.length], stored: 0, sent: [], listeners: [] });
  }
  for (const [i, r] of rooms.entries()) {
    for (let l = 0; l < opt.listeners; l++) {
      const d = daemons[(i + l) % daemons.length];
      const s = await sseOpen(`${d.url}/api/rooms/${r.name}/events`, { headers: bearer(r.user.token) });
      if (s.status !== 200) throw new Error(`SSE ${r.name}: ${s.status} ${s.text}`);
      r.listeners.push(s);
    }
  }
  await sleep(500);
  let going = true;
  let counting = false;
  let stored = 0;
  let failed = 0;
  const senders = rooms.map(async (r) => {
    for (let seq = 0; going; seq++) {
      const text = `${r.name} ${seq} ${'x'.repeat(60)}`;
      const st = await post(`${r.d.url}/api/rooms/${r.name}/messages`, r.user.token, text);
      if (st === 201) {
        r.stored++;
        if (counting) stored++;
      } else failed++;
    }
  });
  const delivered = () => rooms.reduce((a, r) => a + r.listeners.reduce((b, s) => b + s.messages().length, 0), 0);
  await sleep(1000);
  const cpu = (pid) => { try { return cpuSeconds(pid); } catch { return NaN; } };
  const cpu0 = { redis: shards.map((s) => cpu(s.pid)), daemons: daemons.map((d) => cpu(d.pid)), client: process.cpuUsage() };
  const del0 = delivered();
  const t0 = process.hrtime.bigint();
  counting = true;
  await sleep(opt.duration * 1000);
  counting = false;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const del1 = delivered();
  const cpu1 = { redis: shards.map((s) => cpu(s.pid)), daemons: daemons.map((d) => cpu(d.pid)), client: process.cpuUsage(cpu0.client) };
  going = false;
  await Promise.all(senders);
  // every listener has every message of its room
  let lost = 0;
  let dup = 0;
  try {
    await waitFor(() => rooms.every((r) => r.listeners.every((s) => s.messages().length >= r.stored)), { timeout: 15000, what: 'the listeners to drain' });
  } catch { /* counted below */ }
  for (const r of rooms) {
    for (const s of r.listeners) {
      const ids = s.messages().map((e) => e.id);
      dup += ids.length - new Set(ids).size;
      lost += Math.max(0, r.stored - new Set(ids).size);
      s.close();
    }
  }
  const res = {
    shards: n, daemons: opt.daemons, rooms: opt.rooms, listeners_per_room: opt.listeners, fsync: opt.fsync,
    seconds: Number(secs.toFixed(2)),
    stored_per_s: Math.round(stored / secs),
    deliveries_per_s: Math.round((del1 - del0) / secs),
    send_errors: failed,
    lost, duplicated: dup,
    redis_cpu: shards.map((s, i) => Number(((cpu1.redis[i] - cpu0.redis[i]) / secs).toFixed(3))),
    daemon_cpu: daemons.map((d, i) => Number(((cpu1.daemons[i] - cpu0.daemons[i]) / secs).toFixed(3))),
    client_cpu: Number(((cpu1.client.user + cpu1.client.system) / 1e6 / secs).toFixed(3)),
  };
  for (const d of daemons) await d.stop();
  for (const s of shards) s.stop();
  return res;
}

const results = [];
console.error(`# ${os.cpus().length} cores (${os.cpus()[0]?.model}), load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (const n of opt.shards.split(',').map(Number)) {
  const r = await runOne(n);
  results.push(r);
  console.log(JSON.stringify(r));
}
console.error(`# load average after ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
if (opt.json) fs.writeFileSync(opt.json, results.map((r) => JSON.stringify(r)).join('\n') + '\n');
console.log('\n| shards | stored msg/s | deliveries/s | Redis CPU per shard (cores) | Redis CPU per 1,000 stored msg/s, per shard | crosstalkd CPU (each) | client CPU | lost / dup |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results) {
  const per1k = r.redis_cpu.map((c) => (c / (r.stored_per_s / 1000)).toFixed(3));
  console.log(`| ${r.shards} | ${r.stored_per_s} | ${r.deliveries_per_s} | ${r.redis_cpu.join(', ')} | ${per1k.join(', ')} | ` +
    `${r.daemon_cpu.join(', ')} | ${r.client_cpu} | ${r.lost} / ${r.duplicated} |`);
}
agent.destroy();
await cleanup();
process.exit(0);
