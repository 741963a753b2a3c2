// chat.test.mjs - the page as a chat, two people in two browser contexts
// (alice and dana) against the real stack as scripts/demo runs it (nginx,
// the FastCGI pool reading the FerretDB archive, crosstalkd, Redis), with
// the shipped timeouts and for longer than them: a WebSocket quiet past
// header_timeout (10 s), a long poll past its 25 s timeout. The room list
// and its unread counts, switching rooms, own WebSocket sends marked until
// acknowledged, "load older messages" through the archive, and the
// server's counters summed over every process.
//
// CT_UPDATE_SCREENSHOT=1 also copies the screenshot to docs/screenshot-chat.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, bin, register, sendOk, cleanup, http, runSync, tmpDir } from '../integration/harness.mjs';
import {
  OUT, TRANSPORTS, seen, startStack, elapsed, until, paneTexts, inEveryPane, assertOnceEach,
  sendFromComposer, newContext, metric, assertNoConsoleErrors, daemonTail,
} from './lib.mjs';

let redis, ferret, base, context, page, context2, page2;
const room = 'lobby';
const me = 'alice';
const you = 'dana';
const setStep = (s) => { seen.step = s; };

before(async () => {
  ({ redis, ferret, base } = await startStack());
  ({ c: context, p: page } = await newContext());
  seen.page = page;
  ({ c: context2, p: page2 } = await newContext());
}, { timeout: 90000 });
after(async () => {
  await context?.close().catch(() => {});
  await context2?.close().catch(() => {});
  await cleanup();
}, { timeout: 30000 });

test('alice joins the lobby', { timeout: 30000 }, async () => {
  setStep('join');
  await page.goto(`${base}/`);
  await until('the page script to start', () => document.body.dataset.ready === 'true');
  await page.fill('#name', me);
  await page.fill('#room', room);
  await page.click('#join-btn');
  await until('all four panes open', () => document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 20000);
  await sendFromComposer('alice is here', '/api');
  await inEveryPane(['alice is here']);
});

test('a second person joins in another browser; each sees the other\'s messages, sent every way', { timeout: 90000 }, async () => {
  setStep('two');
  await page2.goto(`${base}/`);
  await until('dana\'s page to start', () => document.body.dataset.ready === 'true', undefined, 15000, page2);
  await page2.fill('#name', you);
  await page2.fill('#room', room);
  await page2.click('#join-btn');
  await until('all four panes open on dana\'s page', () => document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 20000, page2);
  await until(`dana online in alice's panes`, (n) => [...document.querySelectorAll('.pane')]
    .every((p) => [...p.querySelectorAll('.who li')].some((li) => li.textContent === n)), you, 30000);
  const fromDana = ['dana, by REST via FastCGI', 'dana, by REST via crosstalkd', 'dana, over her WebSocket'];
  await sendFromComposer(fromDana[0], '/api', page2);
  await sendFromComposer(fromDana[1], '/d/api', page2);
  await sendFromComposer(fromDana[2], 'ws', page2);
  await inEveryPane(fromDana);
  await assertOnceEach(fromDana);
  const fromAlice = 'alice answers over the WebSocket';
  await sendFromComposer(fromAlice, 'ws');
  await inEveryPane([fromAlice], page2);
  await until('no own WebSocket send left marked on either page', () => !document.querySelector('#pane-ws li.pending'));
  await until('no own WebSocket send left marked on dana\'s page', () => !document.querySelector('#pane-ws li.pending'), undefined, 15000, page2);
  assertNoConsoleErrors('with two people');
});

test('the room list: unread counts since the last visit, and switching rooms', { timeout: 90000 }, async () => {
  setStep('rooms');
  const danaUser = await page2.evaluate(() => JSON.parse(localStorage.getItem('crosstalk.identity')));
  const side = 'side';
  await sendOk(base, side, danaUser, 'the side room starts here');
  await until('the side room in alice\'s room list', (r) => !!document.querySelector(`#rooms button[data-room="${r}"]`), side, 20000);
  assert.equal(await page.getAttribute(`#rooms button[data-room="${room}"]`, 'aria-current'), 'true', 'the room alice is in is marked');
  await page.click(`#rooms button[data-room="${side}"]`);
  await until('alice in the side room, all four panes open', (r) => document.body.dataset.joined === 'true' &&
    /Joined “side”/.test(document.getElementById('join-status').textContent) &&
    document.querySelectorAll('.pane[data-state="open"]').length === 4, side, 20000);
  await inEveryPane(['the side room starts here']);
  const texts = await paneTexts();
  assert.ok(!texts.ws.includes('dana, over her WebSocket'), 'the lobby\'s messages stayed in the side room\'s panes');

  const unread = ['while alice is away 1', 'while alice is away 2'];
  for (const t of unread) await sendFromComposer(t, '/api', page2);
  await inEveryPane(unread, page2);
  await until('"2" unread beside the lobby in alice\'s room list', (r) =>
    document.querySelector(`#rooms button[data-room="${r}"] .unread`)?.textContent === '2', room, 25000);
  await page.click(`#rooms button[data-room="${room}"]`);
  await until('alice back in the lobby', () => /Joined “lobby”/.test(document.getElementById('join-status').textContent) &&
    document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 20000);
  await inEveryPane(unread);
  await until('the lobby marked current, with no unread count', (r) => {
    const b = document.querySelector(`#rooms button[data-room="${r}"]`);
    return b && b.getAttribute('aria-current') === 'true' && !b.querySelector('.unread');
  }, room, 15000);
  assertNoConsoleErrors('while switching rooms');
});

test('longer than the shipped timeouts: 32 s of quiet (header_timeout 10 s, long poll 25 s), then both send over their WebSockets', { timeout: 120000 }, async () => {
  setStep('quiet');
  const pages = [['alice', page], ['dana', page2]];
  const rec0 = {};
  const empt0 = {};
  for (const [who, pg] of pages) {
    rec0[who] = await metric(pg, 'reconnects');
    empt0[who] = await metric(pg, 'empties');
  }
  const t0 = Date.now();
  // Nothing is sent by either page: no message, no typing, no WebSocket frame.
  while (Date.now() - t0 < 32000) {
    for (const [who, pg] of pages) {
      const states = await pg.evaluate(() => [...document.querySelectorAll('.pane')].map((p) => `${p.dataset.transport}=${p.dataset.state}`));
      assert.ok(states.every((x) => x.endsWith('=open')), `${who}: after ${elapsed(t0)} of quiet a pane left "open": ${states.join(' ')}; crosstalkd log tail:\n${daemonTail()}`);
    }
    await page.waitForTimeout(1000);
  }
  for (const [who, pg] of pages) {
    const empt = await metric(pg, 'empties');
    assert.ok(empt.long > empt0[who].long, `${who}: no long poll ran out (204) in 32 s of quiet: empties ${empt0[who].long} -> ${empt.long}`);
  }
  // Each sends on a socket that has been quiet for 32 s: the ack comes, on
  // the same socket (no reconnect), and the other sees it on every transport.
  for (const [who, pg, other] of [['alice', page, page2], ['dana', page2, page]]) {
    const text = `${who}, after 32 s of quiet, over the WebSocket`;
    const ts = Date.now();
    await sendFromComposer(text, 'ws', pg);
    try {
      await until(`the ack of ${who}'s WebSocket send after the quiet (its "sending…" mark to clear)`, (t) =>
        [...document.querySelectorAll('#pane-ws .msg')].some((li) => li.querySelector('.text').textContent === t && !li.classList.contains('pending')),
      text, 4500, pg);
    } catch (e) {
      const rec = await metric(pg, 'reconnects');
      throw new Error(`${who}'s WebSocket, quiet for 32 s, did not acknowledge a message within 4.5 s ` +
        `(WebSocket reconnects ${rec0[who].ws} -> ${rec.ws}; send status: ${await pg.textContent('#send-status')})\n${e.message}`);
    }
    process.stderr.write(`# e2e: ${who}'s send after the quiet acknowledged in ${Date.now() - ts} ms\n`);
    await inEveryPane([text], other, 15000);
  }
  for (const [who, pg] of pages) {
    const rec = await metric(pg, 'reconnects');
    assert.deepEqual(rec, rec0[who], `${who}: reconnects during and after the quiet; crosstalkd log tail:\n${daemonTail()}`);
  }
  assertNoConsoleErrors('after the quiet');
});

test('load older messages: pages back through Redis into the MongoDB archive', { timeout: 120000 }, async () => {
  setStep('older');
  const erin = await register(base, 'erin');
  const hist = 'history';
  const N = 70;
  for (let i = 1; i <= N; i++) await sendOk(base, hist, erin, `history ${i}`);
  // The cron job's backup, keeping only the newest 20 in Redis.
  const conf = path.join(tmpDir('backup'), 'crosstalk.conf');
  fs.writeFileSync(conf, `redis_url = ${redis.url}\nmongo_uri = ${ferret.uri}\n`);
  const r = runSync(bin('crosstalk-backup'), ['--config', conf, '--retain', '20'], { timeout: 60000 });
  assert.equal(r.status, 0, `crosstalk-backup --retain 20: ${r.stdout}${r.stderr}`);
  assert.equal(await redis.cmd('XLEN', `ct:room:{${hist}}:log`), 20, 'Redis keeps the newest 20');

  await until('the history room in alice\'s room list', (h) => !!document.querySelector(`#rooms button[data-room="${h}"]`), hist, 20000);
  await page.click(`#rooms button[data-room="${hist}"]`);
  await until('alice in the history room', () => /Joined “history”/.test(document.getElementById('join-status').textContent) &&
    document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 20000);
  await inEveryPane([`history ${N}`]);
  for (let k = 0; k < 5; k++) {
    if (await page.isDisabled('#older-btn')) break;
    await page.click('#older-btn');
    await until('the older page to load', () => !/Loading/.test(document.getElementById('older-status').textContent), undefined, 15000);
  }
  await until('"this is the start of the room"', () => /start of the room/.test(document.getElementById('older-status').textContent));
  const all = Array.from({ length: N }, (_, i) => `history ${i + 1}`);
  await inEveryPane(all);
  const shown = await paneTexts();
  for (const t of TRANSPORTS) {
    const h = shown[t].filter((x) => /^history \d+$/.test(x));
    assert.deepEqual(h, all, `the ${t} pane shows every message once, oldest first`);
  }
  assert.equal(await page.isDisabled('#older-btn'), true, 'the button stays enabled at the start of the room');
  assertNoConsoleErrors('while paging back');
  await page.click(`#rooms button[data-room="${room}"]`);
  await until('alice back in the lobby', () => /Joined “lobby”/.test(document.getElementById('join-status').textContent) &&
    document.querySelectorAll('.pane[data-state="open"]').length === 4, undefined, 20000);
});

test('the server\'s counters are the sum over crosstalkd and the FastCGI pool, and say so', { timeout: 30000 }, async () => {
  setStep('stats');
  await until('the counters to name the processes they cover', () =>
    /sum over 3 processes: 1 crosstalkd .* and 2 crosstalk-fcgi processes/.test(document.getElementById('stats-scope').textContent), undefined, 15000);
  const row = await page.evaluate(() => {
    const heads = [...document.querySelectorAll('#stats thead th')].map((h) => h.textContent);
    const tr = [...document.querySelectorAll('#stats tbody tr')].find((x) => x.querySelector('th').textContent === 'short poll');
    return tr && Object.fromEntries([...tr.children].map((c, i) => [heads[i], c.textContent]));
  });
  assert.ok(row, 'a short poll row');
  assert.ok(Number(row.requests.replace(/,/g, '')) > 50, `short polls counted (the FastCGI pool answers them): ${JSON.stringify(row)}`);
  const api = (await http('GET', `${base}/api/stats`)).json;
  assert.equal(api.processes.length, 3, JSON.stringify(api.processes.map((p) => p.program)));
});

test('the chat, as dana sees it, in a screenshot', { timeout: 30000 }, async () => {
  setStep('screenshot');
  await until('every room in dana\'s room list', () => document.querySelectorAll('#rooms button.room').length >= 3, undefined, 20000, page2);
  await page2.fill('#text', 'Enter sends; the room list shows what is new elsewhere');
  await page2.evaluate(() => window.scrollTo(0, 0));
  await page2.waitForTimeout(500);
  await page2.screenshot({ path: path.join(OUT, 'chat.png') });
  if (process.env.CT_UPDATE_SCREENSHOT) fs.copyFileSync(path.join(OUT, 'chat.png'), path.join(REPO, 'docs', 'screenshot-chat.png'));
  assert.ok(fs.statSync(path.join(OUT, 'chat.png')).size > 10000, 'chat screenshot written');
});
