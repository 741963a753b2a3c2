// page.test.mjs - the comparison page (www/) in headless Chromium against the
// real stack as scripts/demo runs it: redis-server, crosstalkd, the FastCGI
// pool and nginx in front (tests/e2e/lib.mjs; a missing part is a failure,
// never a quiet fallback). Nothing is mocked; the browser talks to the
// servers over loopback. chat.test.mjs drives two people past the timeouts.
//
// CT_UPDATE_SCREENSHOT=1 also copies the screenshot to docs/screenshot.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, register, sendOk, cleanup, bearer, http } from '../integration/harness.mjs';
import {
  OUT, TRANSPORTS, seen, startStack, elapsed, until, paneTexts, inEveryPane, assertOnceEach,
  sendFromComposer, newContext, assertNoConsoleErrors,
} from './lib.mjs';

let redis, daemon, base, context, page;
// Redis is new for this file, so plain names read well in the screenshot.
const room = 'lobby';
const me = 'alice';
let bob = null;
const { consoleErrors, pageErrors, dialogs } = seen;
const setStep = (s) => { seen.step = s; };

before(async () => {
  ({ redis, daemon, base } = await startStack());
  ({ c: context, p: page } = await newContext());
  seen.page = page;
}, { timeout: 90000 });
after(async () => {
  await context?.close().catch(() => {});
  await cleanup();
}, { timeout: 30000 });

test('the page loads with no console errors and shows the server counters', { timeout: 30000 }, async () => {
  setStep('load');
  const res = await page.goto(`${base}/`);
  assert.equal(res.status(), 200, `GET ${base}/`);
  await until('the page script to start (body[data-ready])', () => document.body.dataset.ready === 'true');
  await until('four panes, all closed', () => document.querySelectorAll('.pane[data-state="closed"]').length === 4);
  await until('the /api/stats table to fill in', () => document.querySelectorAll('#stats tbody tr').length > 0);
  await page.waitForTimeout(500);
  assertNoConsoleErrors('while loading');
});

test('a bad room is refused before sending, a taken name is said so', { timeout: 30000 }, async () => {
  setStep('conflict');
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

test('a name over 32 characters is refused with a message, not cut', { timeout: 30000 }, async () => {
  setStep('long-name');
  const long = 'a_name_that_is_well_over_thirty_two_chars'; // 41
  await page.fill('#name', long);
  await page.fill('#room', room);
  assert.equal(await page.inputValue('#name'), long, 'the name field cut what was typed');
  await page.click('#join-btn');
  await until('the "at most 32" message', () => /41 characters long; a name holds at most 32/.test(document.getElementById('join-status').textContent));
  assert.equal(await page.getAttribute('#name', 'aria-invalid'), 'true');
  assert.equal(await page.inputValue('#name'), long, 'the name was cut instead of refused');
  assert.equal(await page.evaluate(() => document.body.dataset.joined), undefined, 'joined with a long name');
  assert.equal(await redis.cmd('EXISTS', `ct:user:${long.slice(0, 32)}`), 0, 'a cut name was registered');
});

test('joining opens all four transports and each pane shows the user online', { timeout: 60000 }, async () => {
  setStep('join');
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
  setStep('chat');
  const vias = ['/api', '/d/api', 'ws'];
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
  // Each verdict names what it compares, and says so when it is within noise.
  await until('a verdict in each measured row', () => ['latency', 'load', 'traffic'].every((r) =>
    [...document.querySelectorAll(`#compare tr[data-row="${r}"] .verdict`)].some((v) => v.textContent)));
  const verdicts = await page.evaluate(() => [...document.querySelectorAll('#compare .verdict')].map((v) => v.textContent).filter(Boolean));
  for (const v of verdicts) {
    assert.match(v, /^(best here: |costliest here: |lowest .*, within noise \(|highest .*, within noise \()(p50 latency|HTTP requests\/min|bytes per message)/, `verdict ${JSON.stringify(v)}`);
  }
  assertNoConsoleErrors('while chatting');
});

test('user text is shown as text and runs nothing', { timeout: 30000 }, async () => {
  setStep('xss');
  const evil = '<img src=x onerror=alert(1)>';
  await sendFromComposer(evil, '/api');
  await inEveryPane([evil]);
  await page.waitForTimeout(1000);
  assert.deepEqual(dialogs, [], 'a dialog opened');
  assert.equal(await page.locator('.msgs img').count(), 0, 'an <img> was created from message text');
  assertNoConsoleErrors('after the HTML message');
});

test('a burst arrives whole and once in every pane', { timeout: 60000 }, async () => {
  setStep('burst');
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
  setStep('typing');
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

test('the polling panes say why their typing line stays empty; message text is dir="auto"', { timeout: 30000 }, async () => {
  setStep('typing-note');
  for (const t of ['short', 'long']) {
    const line = await page.textContent(`#pane-${t} .typing`);
    assert.match(line, /typing is not stored.*only the streams/i, `the ${t} pane's typing line: ${JSON.stringify(line)}`);
  }
  const rtl = 'مرحبا بالجميع — שלום לכולם';
  await sendFromComposer(rtl, '/api');
  await inEveryPane([rtl]);
  const dirs = await page.evaluate(() => [...document.querySelectorAll('.msg .text')].map((e) => e.getAttribute('dir')));
  assert.ok(dirs.length > 0 && dirs.every((d) => d === 'auto'), `dir of message texts: ${JSON.stringify([...new Set(dirs)])}`);
  assertNoConsoleErrors('with right-to-left text');
});

test('after crosstalkd is killed and restarted the panes reconnect and show what was sent meanwhile', { timeout: 110000 }, async () => {
  setStep('outage');
  const t0 = Date.now();
  await daemon.kill();
  await until('the pushing panes (long poll, SSE, WebSocket) to notice the loss', () =>
    ['long', 'sse', 'ws'].every((t) => document.getElementById(`pane-${t}`).dataset.state !== 'open'), undefined, 40000);

  // Sent while crosstalkd is down, by someone else through FastCGI behind nginx.
  const meanwhile = [];
  const bobUser = bob ?? await register(base, 'bob');
  for (let i = 1; i <= 3; i++) {
    const text = `sent while crosstalkd was down ${i}`;
    await sendOk(base, room, bobUser, text);
    meanwhile.push(text);
  }
  // The page's own composer still works: REST via FastCGI needs no crosstalkd.
  const text = 'from the page, through FastCGI, while crosstalkd was down';
  await sendFromComposer(text, '/api');
  await until('the composer to report the FastCGI send', () => /^Stored as /.test(document.getElementById('send-status').textContent));
  meanwhile.push(text);
  // Through crosstalkd (/d/api) it cannot go: nginx answers its own 503,
  // which says the outcome is unknown. The page tries 4 times, then says
  // the message may or may not be stored and gives the text back; sent
  // again as it is once crosstalkd is back, it goes with the same key.
  const unsure = 'sent to crosstalkd while it was down';
  await sendFromComposer(unsure, '/d/api');
  await until('the composer to give up on the send to crosstalkd', () =>
    /may or may not be stored/.test(document.getElementById('send-status').textContent), undefined, 20000);
  const said = await page.textContent('#send-status');
  assert.match(said, /Not acknowledged after 4 tries .*503.*outcome is unknown.*Send it again as it is and it is stored once/, said);
  assert.equal(await page.inputValue('#text'), unsure, 'the text is given back to send again');

  await daemon.restart();
  process.stderr.write(`# e2e: crosstalkd back after ${elapsed(t0)}\n`);
  setStep('recovered');
  await inEveryPane(meanwhile);
  await until('all four panes open again', () => document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 30000);
  await page.press('#text', 'Enter'); // the unsure one, as it was given back
  await until('the composer to report the send to crosstalkd', () => /^Stored as /.test(document.getElementById('send-status').textContent));
  meanwhile.push(unsure);
  await inEveryPane([unsure]);
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
  setStep('screenshot');
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
