// page.test.mjs - the comparison page (www/) in headless Chromium against the
// real stack: redis-server, crosstalkd, and, when the repo has them, the
// FastCGI pool and nginx in front (as scripts/demo runs it). Nothing is
// mocked; the browser talks to the servers over loopback.
//
// CT_E2E_DIRECT=1 serves the page from crosstalkd itself, without nginx.
// CT_UPDATE_SCREENSHOT=1 also copies the screenshot to docs/screenshot.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  REPO, bin, which, startRedis, startDaemon, startFcgi, startNginx, register, sendOk, waitFor,
  tmpDir, cleanup, bearer, http, RELAXED,
} from '../integration/harness.mjs';

const OUT = path.join(REPO, 'tests', 'e2e', 'out');
const CHROMIUM = '/usr/bin/chromium';
const BEHIND_NGINX = !process.env.CT_E2E_DIRECT &&
  fs.existsSync(path.join(REPO, 'nginx', 'crosstalk.standalone.conf.in')) &&
  fs.existsSync(bin('crosstalk-fcgi')) && which('nginx') && which('spawn-fcgi');
const TRANSPORTS = ['short', 'long', 'sse', 'ws'];

let redis, daemon, fcgi, nginx, base, context, page;
// Redis is new for this file, so plain names read well in the screenshot.
const room = 'lobby';
const me = 'alice';
let bob = null;
// What the browser reported, each tagged with the step it happened in.
const consoleErrors = [];
const pageErrors = [];
const dialogs = [];
let step = 'load';

const elapsed = (t0) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

// What the page shows now, for failure messages.
async function snapshot() {
  try {
    return await page.evaluate(() => ({
      panes: [...document.querySelectorAll('.pane')].map((p) => ({
        transport: p.dataset.transport,
        state: p.querySelector('.state').textContent,
        why: p.querySelector('.state').title,
        messages: p.querySelectorAll('.msg').length,
        last: p.querySelector('.msg:last-child .text')?.textContent,
        online: [...p.querySelectorAll('.who li')].map((li) => li.textContent),
      })),
      join: document.getElementById('join-status').textContent,
      send: document.getElementById('send-status').textContent,
    }));
  } catch (e) {
    return `(no snapshot: ${e.message})`;
  }
}

function daemonTail() {
  const l = daemon?.logs?.() ?? '';
  return l.length > 1500 ? '…' + l.slice(-1500) : l;
}

// Waits until fn(arg) is true in the page; on timeout says what it waited
// for, how long, and what the page and the daemon showed.
async function until(what, fn, arg, timeout = 15000) {
  const t0 = Date.now();
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`timed out after ${elapsed(t0)} waiting for ${what}\n` +
      `page: ${JSON.stringify(await snapshot(), null, 1)}\n` +
      `console errors: ${JSON.stringify(consoleErrors.slice(-5))}\n` +
      `crosstalkd log tail:\n${daemonTail()}\n(${e.message.split('\n')[0]})`);
  }
}

// Texts shown in each pane, keyed by transport.
function paneTexts() {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('.pane')].map((p) =>
    [p.dataset.transport, [...p.querySelectorAll('.msg .text')].map((e) => e.textContent)])));
}

const inEveryPane = (texts) => until(
  `${texts.length} message(s) ${JSON.stringify(texts).slice(0, 200)} in all four panes`,
  (want) => [...document.querySelectorAll('.pane')].every((p) => {
    const have = new Set([...p.querySelectorAll('.msg .text')].map((e) => e.textContent));
    return want.every((t) => have.has(t));
  }),
  texts,
);

// Each text exactly once in each pane: a resume that re-delivers is caught here.
async function assertOnceEach(texts) {
  const shown = await paneTexts();
  for (const t of TRANSPORTS) {
    for (const text of texts) {
      const n = shown[t].filter((x) => x === text).length;
      assert.equal(n, 1, `the ${t} pane shows ${JSON.stringify(text)} ${n} times`);
    }
  }
}

async function sendFromComposer(text, via) {
  await page.check(`input[name="via"][value="${via}"]`);
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

function assertNoConsoleErrors(where) {
  const errs = consoleErrors.filter((e) => e.step !== 'outage' && e.step !== 'conflict');
  assert.deepEqual(errs, [], `console errors ${where}`);
  assert.deepEqual(pageErrors, [], `uncaught page errors ${where}`);
}

before(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  redis = await startRedis();
  daemon = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, trusted_proxies: '127.0.0.1' } });
  if (BEHIND_NGINX) {
    fcgi = await startFcgi({ redisUrl: redis.url, config: RELAXED });
    nginx = await startNginx({ daemons: [daemon.port], fcgiSocket: fcgi.socket, wwwRoot: path.join(REPO, 'www') });
    base = nginx.url;
  } else {
    base = daemon.url;
  }
  process.stderr.write(`# e2e: page at ${base} (${BEHIND_NGINX ? 'nginx + FastCGI + crosstalkd' : 'crosstalkd directly'})\n`);

  context = await chromium.launchPersistentContext(tmpDir('chromium'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push({ step, text: m.text() });
  });
  page.on('pageerror', (e) => pageErrors.push({ step, text: String(e && e.stack || e) }));
  page.on('dialog', (d) => {
    dialogs.push({ step, type: d.type(), message: d.message() });
    d.dismiss().catch(() => {});
  });
}, { timeout: 60000 });

after(async () => {
  await context?.close().catch(() => {});
  await cleanup();
}, { timeout: 30000 });

test('the page loads with no console errors and shows the server counters', { timeout: 30000 }, async () => {
  step = 'load';
  const res = await page.goto(`${base}/`);
  assert.equal(res.status(), 200, `GET ${base}/`);
  await until('the page script to start (body[data-ready])', () => document.body.dataset.ready === 'true');
  await until('four panes, all closed', () => document.querySelectorAll('.pane[data-state="closed"]').length === 4);
  await until('the /api/stats table to fill in', () => document.querySelectorAll('#stats tbody tr').length > 0);
  await page.waitForTimeout(500);
  assertNoConsoleErrors('while loading');
});

test('a bad room is refused before sending, a taken name is said so', { timeout: 30000 }, async () => {
  step = 'conflict';
  await page.fill('#name', me);
  await page.fill('#room', 'Not A Room');
  await page.click('#join-btn');
  await until('the room error', () => /room is 1–64/.test(document.getElementById('join-status').textContent));
  assert.equal(await page.getAttribute('#room', 'aria-invalid'), 'true');

  const taken = 'carol';
  await register(base, taken);
  await page.fill('#name', taken);
  await page.fill('#room', room);
  await page.click('#join-btn');
  await until('the "already taken" message', () => /already taken/.test(document.getElementById('join-status').textContent));
  assert.equal(await page.evaluate(() => document.body.dataset.joined), undefined, 'joined with a taken name');
  // The only console error allowed here is the browser's note of the 409.
  const errs = consoleErrors.filter((e) => e.step === 'conflict' && !/409/.test(e.text));
  assert.deepEqual(errs, [], 'console errors other than the 409');
});

test('joining opens all four transports and each pane shows the user online', { timeout: 60000 }, async () => {
  step = 'join';
  await page.fill('#name', me);
  await page.fill('#room', room);
  await page.click('#join-btn');
  await until(`the join status to say we joined as ${me}`, (n) => document.getElementById('join-status').textContent.includes(n), me);
  await until('all four panes to be open', () => document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 20000);
  await until(`${me} in every pane's presence list`, (n) => [...document.querySelectorAll('.pane')]
    .every((p) => [...p.querySelectorAll('.who li')].some((li) => li.textContent === n)), me, 20000);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('crosstalk.identity')));
  assert.equal(stored.name, me, 'identity kept in localStorage');
  assert.ok(stored.token.length > 10, 'token kept in localStorage');
  assertNoConsoleErrors('while joining');
});

test('messages sent from the composer appear in all four panes, timed and counted', { timeout: 60000 }, async () => {
  step = 'chat';
  const vias = BEHIND_NGINX ? ['/api', '/d/api', 'ws'] : ['/api', 'ws'];
  if (!BEHIND_NGINX) {
    assert.equal(await page.isDisabled('input[name="via"][value="/d/api"]'), true, '/d/api offered without nginx in front');
  }
  const texts = [];
  for (const via of vias) {
    const text = { '/api': 'hello, sent by REST through /api', '/d/api': 'hello, sent by REST straight to crosstalkd (/d/api)', ws: 'hello, sent over the WebSocket' }[via];
    texts.push(text);
    await sendFromComposer(text, via);
    await inEveryPane([text]);
  }
  await assertOnceEach(texts);

  // Own messages carry their latency in every pane.
  const badges = await page.evaluate((t) => [...document.querySelectorAll('.pane')].map((p) =>
    [...p.querySelectorAll('.msg')].filter((m) => m.querySelector('.text').textContent === t)
      .map((m) => m.querySelector('.lat')?.textContent)[0]), texts[0]);
  for (const [i, b] of badges.entries()) assert.match(b ?? '', /^\d+ ms$|^\d+\.\d+ s$/, `latency badge in pane ${TRANSPORTS[i]}`);

  await until('p50, p95, requests and bytes/message filled in for every transport', (n) =>
    [...document.querySelectorAll('#metrics tbody tr')].every((tr) => {
      const v = (k) => tr.querySelector(`[data-m="${k}"]`).textContent;
      return /\d/.test(v('p50')) && /\d/.test(v('p95')) && Number(v('requests').replace(/,/g, '')) > 0 &&
        /\d/.test(v('bpm')) && Number(v('delivered')) >= n;
    }), vias.length, 10000);
  const short = await page.evaluate(() => {
    const tr = document.querySelector('#metrics tr[data-transport="short"]');
    return { requests: Number(tr.querySelector('[data-m="requests"]').textContent.replace(/,/g, '')), bytes: tr.querySelector('[data-m="bytes"]').textContent };
  });
  assert.ok(short.requests >= 2, `short poll made ${short.requests} requests`);
  assert.doesNotMatch(short.bytes, /≈/, 'short-poll bytes come from Resource Timing, not an estimate');
  await until('the comparison table to show measured latency', () =>
    /p50 .*p95/.test(document.querySelector('#compare tr[data-row="latency"] td .meas').textContent));
  assertNoConsoleErrors('while chatting');
});

test('user text is shown as text and runs nothing', { timeout: 30000 }, async () => {
  step = 'xss';
  const evil = '<img src=x onerror=alert(1)>';
  await sendFromComposer(evil, '/api');
  await inEveryPane([evil]);
  await page.waitForTimeout(1000);
  assert.deepEqual(dialogs, [], 'a dialog opened');
  assert.equal(await page.locator('.msgs img').count(), 0, 'an <img> was created from message text');
  assertNoConsoleErrors('after the HTML message');
});

test('a burst arrives whole and once in every pane', { timeout: 60000 }, async () => {
  step = 'burst';
  await page.check('input[name="via"][value="ws"]');
  await page.fill('#burst-n', '15');
  await page.fill('#burst-gap', '40');
  await page.click('#burst-btn');
  await until('the burst to finish sending', () => /^Burst: 15 sent/.test(document.getElementById('send-status').textContent), undefined, 20000);
  await until('15 burst messages back on the WebSocket', () => [...document.querySelectorAll('#pane-ws .msg .text')]
    .filter((e) => /^burst /.test(e.textContent)).length >= 15);
  const texts = await page.evaluate(() => [...document.querySelectorAll('#pane-ws .msg .text')]
    .map((e) => e.textContent).filter((t) => /^burst /.test(t)));
  assert.equal(texts.length, 15, `burst messages in the WebSocket pane: ${texts.length}`);
  await inEveryPane(texts);
  await assertOnceEach(texts);
  assertNoConsoleErrors('after the burst');
});

test('typing by someone else shows in the panes whose transport carries it', { timeout: 30000 }, async () => {
  step = 'typing';
  bob = await register(base, 'bob');
  const r = await http('POST', `${base}/api/rooms/${room}/typing`, { headers: bearer(bob.token), body: {} });
  assert.equal(r.status, 202, `POST typing: ${r.status} ${r.text}`);
  // Typing is ephemeral: not in the log, so only the streams carry it.
  await until('"bob is typing…" in the SSE and WebSocket panes', () => ['sse', 'ws'].every((t) =>
    document.querySelector(`#pane-${t} .typing`).textContent === 'bob is typing…'), undefined, 10000);
  await until('the typing line to clear again', () => ['sse', 'ws'].every((t) =>
    document.querySelector(`#pane-${t} .typing`).textContent === ''), undefined, 10000);
  assertNoConsoleErrors('while bob typed');
});

test('a quiet room keeps every transport open: 20 s idle, no reconnect', { timeout: 60000 }, async () => {
  step = 'idle';
  const reconnects = () => page.evaluate(() => [...document.querySelectorAll('#metrics tbody tr')]
    .map((tr) => `${tr.dataset.transport}=${tr.querySelector('[data-m="reconnects"]').textContent}`).join(' '));
  const before = await reconnects();
  const t0 = Date.now();
  // Longer than the SSE heartbeat (15 s) and than header_timeout (10 s).
  while (Date.now() - t0 < 20000) {
    const states = await page.evaluate(() => [...document.querySelectorAll('.pane')].map((p) => `${p.dataset.transport}=${p.dataset.state}`));
    assert.ok(states.every((x) => x.endsWith('=open')), `after ${elapsed(t0)} idle a pane left "open": ${states.join(' ')}; console: ${JSON.stringify(consoleErrors.slice(-3))}`);
    await page.waitForTimeout(250);
  }
  assert.equal(await reconnects(), before, 'reconnects during 20 s of quiet');
  assertNoConsoleErrors('in 20 s of quiet');
});

test('after crosstalkd is killed and restarted the panes reconnect and show what was sent meanwhile', { timeout: 110000 }, async () => {
  step = 'outage';
  const t0 = Date.now();
  await daemon.kill();
  await until('the pushing panes (long poll, SSE, WebSocket) to notice the loss', () =>
    ['long', 'sse', 'ws'].every((t) => document.getElementById(`pane-${t}`).dataset.state !== 'open'), undefined, 40000);

  // Sent while crosstalkd is down, by someone else: through FastCGI behind
  // nginx, or through a second crosstalkd on the same Redis.
  const meanwhile = [];
  let spare = null;
  let via = base;
  if (!BEHIND_NGINX) {
    spare = await startDaemon({ redisUrl: redis.url, config: RELAXED });
    via = spare.url;
  }
  const bobUser = bob ?? await register(via, 'bob');
  for (let i = 1; i <= 3; i++) {
    const text = `sent while crosstalkd was down ${i}`;
    await sendOk(via, room, bobUser, text);
    meanwhile.push(text);
  }
  if (BEHIND_NGINX) {
    // The page's own composer still works: REST via FastCGI needs no crosstalkd.
    const text = 'from the page, through FastCGI, while crosstalkd was down';
    await sendFromComposer(text, '/api');
    await until('the composer to report the FastCGI send', () => /^Stored as /.test(document.getElementById('send-status').textContent));
    meanwhile.push(text);
  }
  await spare?.stop();

  await daemon.restart();
  process.stderr.write(`# e2e: crosstalkd back after ${elapsed(t0)}\n`);
  step = 'recovered';
  await inEveryPane(meanwhile);
  await until('all four panes open again', () => document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 30000);
  await assertOnceEach(meanwhile);
  const reconnects = await page.evaluate(() => Object.fromEntries(['long', 'sse', 'ws'].map((t) =>
    [t, Number(document.querySelector(`#metrics tr[data-transport="${t}"] [data-m="reconnects"]`).textContent)])));
  for (const [t, n] of Object.entries(reconnects)) assert.ok(n >= 1, `${t} counted ${n} reconnects`);
  assert.deepEqual(pageErrors, [], 'uncaught page errors during the outage');
  assert.deepEqual(dialogs, [], 'dialogs');
  // A new message after recovery reaches every pane too.
  const after = 'back after the restart, over the WebSocket';
  await sendFromComposer(after, 'ws');
  await inEveryPane([after]);
});

test('the page works at phone width, and a screenshot is saved', { timeout: 30000 }, async () => {
  step = 'screenshot';
  // Someone typing, for the picture.
  await http('POST', `${base}/api/rooms/${room}/typing`, { headers: bearer(bob.token), body: {} });
  await page.fill('#text', 'Enter sends; the panes show what each transport costs');
  await page.waitForTimeout(1500);
  await page.screenshot({ path: path.join(OUT, 'page.png'), fullPage: true });
  if (process.env.CT_UPDATE_SCREENSHOT) fs.copyFileSync(path.join(OUT, 'page.png'), path.join(REPO, 'docs', 'screenshot.png'));

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const { scroll, inner } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(scroll <= inner, `the page is ${scroll} px wide in a ${inner} px viewport`);
  await page.screenshot({ path: path.join(OUT, 'page-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.ok(fs.statSync(path.join(OUT, 'page.png')).size > 10000, 'screenshot written');
});
