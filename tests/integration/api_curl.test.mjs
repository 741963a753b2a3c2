// api_curl.test.mjs - docs/api.md's "A session with curl" run as a reader
// runs it: the shell block as it is written, with bash and curl, against a
// crosstalkd alone and against nginx with the FastCGI pool and a daemon
// behind it. Every call's printed status must be the one its comment
// promises, in order, so the page cannot drift from what the servers answer.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, cleanup, runSync, startDaemon, startFcgi, startNginx, startRedis, tmpDir } from './harness.mjs';

let d;
let nginx;

/** The ```sh block under "## A session with curl" and the statuses its comments promise. */
function curlSession() {
  const page = fs.readFileSync(path.join(REPO, 'docs', 'api.md'), 'utf8');
  const at = page.indexOf('\n## A session with curl');
  assert.ok(at >= 0, 'docs/api.md has no "## A session with curl" section');
  const m = page.slice(at).match(/```sh\n([\s\S]*?)```/);
  assert.ok(m, 'the curl section has no ```sh block');
  const promised = [...m[1].matchAll(/#\s+(\d{3})\b/g)].map((x) => x[1]);
  assert.ok(promised.length >= 10, `only ${promised.length} calls promise a status`);
  return { script: m[1], promised };
}

function runSession(base) {
  const { script, promised } = curlSession();
  const t0 = Date.now();
  const r = runSync('bash', ['-c', script], { env: { B: base }, timeout: 60000 });
  const ms = Date.now() - t0;
  assert.ok(!r.timedOut, `the curl session against ${base} still ran after ${ms} ms`);
  assert.equal(r.status, 0, `the curl session against ${base} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  const got = r.stdout.split('\n').filter((l) => /^ \d{3}$/.test(l)).map((l) => l.trim());
  assert.deepEqual(got, promised, `statuses printed against ${base} (left) against the ones docs/api.md promises (right); output:\n${r.stdout}`);
  return r.stdout;
}

before(async () => {
  const redis = await startRedis();
  d = await startDaemon({ redisUrl: redis.url });
  const fcgi = await startFcgi({ redisUrl: redis.url });
  const www = tmpDir('www');
  fs.chmodSync(www, 0o755); // nginx workers may run as another user
  fs.writeFileSync(path.join(www, 'index.html'), '<!doctype html><title>t</title>', { mode: 0o644 });
  nginx = await startNginx({ daemons: [d.port], fcgiSocket: fcgi.socket, wwwRoot: www });
});
after(cleanup);

test('the curl session of docs/api.md against a crosstalkd alone: every status as written', () => {
  const out = runSession(d.url);
  assert.match(out, /"token":"/, 'the register call printed a token');
  assert.match(out, /^event: message$/m, 'the SSE call printed an event');
});

test('the curl session of docs/api.md through nginx (REST on the FastCGI pool): every status as written', () => {
  const out = runSession(nginx.url);
  assert.match(out, /"online":\[/, 'the presence call printed who is online');
});
