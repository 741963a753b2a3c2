// lib.mjs - what the e2e tests share: the stack as scripts/demo runs it
// (redis-server, FerretDB, crosstalkd, the FastCGI pool, nginx), headless
// Chromium contexts, and waits that say what they waited for, how long, and
// what the page and the daemon showed.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  REPO, bin, which, startRedis, startDaemon, startFcgi, startNginx, startFerret, tmpDir, RELAXED,
} from '../integration/harness.mjs';

export const OUT = path.join(REPO, 'tests', 'e2e', 'out');
export const CHROMIUM = '/usr/bin/chromium';
export const TRANSPORTS = ['short', 'long', 'sse', 'ws'];
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// What the browsers reported, each tagged with the step it happened in.
export const seen = { step: 'load', consoleErrors: [], pageErrors: [], dialogs: [], page: null, daemon: null };
const consoleErrors = seen.consoleErrors;
const pageErrors = seen.pageErrors;

/**
 * Starts the whole stack with the shipped timeouts (only the rate limits are
 * lifted, for bursts). A missing part is a failure: the page is tested as the
 * demo serves it. Returns {redis, ferret, daemon, fcgi, nginx, base}.
 */
export async function startStack() {
  fs.mkdirSync(OUT, { recursive: true });
  for (const [what, ok] of [['nginx', which('nginx')], ['spawn-fcgi', which('spawn-fcgi')],
    ['crosstalk-fcgi', fs.existsSync(bin('crosstalk-fcgi'))], ['crosstalk-backup', fs.existsSync(bin('crosstalk-backup'))],
    ['chromium', fs.existsSync(CHROMIUM)]]) {
    assert.ok(ok, `${what} is missing: the page is tested behind nginx with the FastCGI pool, as the demo runs it`);
  }
  const redis = await startRedis();
  const ferret = await startFerret();
  const daemon = await startDaemon({ redisUrl: redis.url, config: { ...RELAXED, trusted_proxies: '127.0.0.1,unix' } });
  const fcgi = await startFcgi({ redisUrl: redis.url, mongoUri: ferret.uri, config: RELAXED });
  const nginx = await startNginx({ daemons: [daemon.port], fcgiSocket: fcgi.socket, wwwRoot: path.join(REPO, 'www') });
  seen.daemon = daemon;
  process.stderr.write(`# e2e: page at ${nginx.url} (nginx + FastCGI + crosstalkd, archive in FerretDB)\n`);
  return { redis, ferret, daemon, fcgi, nginx, base: nginx.url };
}

export const elapsed = (t0) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

// What the page shows now, for failure messages.
export async function snapshot(on = seen.page) {
  try {
    return await on.evaluate(() => ({
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
      rooms: document.getElementById('rooms').textContent,
      older: document.getElementById('older-status').textContent,
    }));
  } catch (e) {
    return `(no snapshot: ${e.message})`;
  }
}

export function daemonTail() {
  const l = seen.daemon?.logs?.() ?? '';
  return l.length > 1500 ? '…' + l.slice(-1500) : l;
}

// Waits until fn(arg) is true in the page; on timeout says what it waited
// for, how long, and what the page and the daemon showed.
export async function until(what, fn, arg, timeout = 15000, on = seen.page) {
  const t0 = Date.now();
  try {
    await on.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`timed out after ${elapsed(t0)} waiting for ${what}\n` +
      `page${on === seen.page ? '' : ' (the second browser)'}: ${JSON.stringify(await snapshot(on), null, 1)}\n` +
      `console errors: ${JSON.stringify(consoleErrors.slice(-5))}\n` +
      `crosstalkd log tail:\n${daemonTail()}\n(${e.message.split('\n')[0]})`);
  }
}

// Texts shown in each pane, keyed by transport.
export function paneTexts(on = seen.page) {
  return on.evaluate(() => Object.fromEntries([...document.querySelectorAll('.pane')].map((p) =>
    [p.dataset.transport, [...p.querySelectorAll('.msg .text')].map((e) => e.textContent)])));
}

export const inEveryPane = (texts, on = seen.page, timeout = 15000) => until(
  `${texts.length} message(s) ${JSON.stringify(texts).slice(0, 200)} in all four panes${on === seen.page ? '' : ' of the second browser'}`,
  (want) => [...document.querySelectorAll('.pane')].every((p) => {
    const have = new Set([...p.querySelectorAll('.msg .text')].map((e) => e.textContent));
    return want.every((t) => have.has(t));
  }),
  texts, timeout, on,
);

// Each text exactly once in each pane: a resume that re-delivers is caught here.
export async function assertOnceEach(texts, on = seen.page) {
  const shown = await paneTexts(on);
  for (const t of TRANSPORTS) {
    for (const text of texts) {
      const n = shown[t].filter((x) => x === text).length;
      assert.equal(n, 1, `the ${t} pane shows ${JSON.stringify(text)} ${n} times`);
    }
  }
}

export async function sendFromComposer(text, via, on = seen.page) {
  await on.check(`input[name="via"][value="${via}"]`);
  await on.fill('#text', text);
  await on.press('#text', 'Enter');
}

export async function newContext() {
  const c = await chromium.launchPersistentContext(tmpDir('chromium'), {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 900 },
  });
  const p = c.pages()[0] ?? await c.newPage();
  p.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push({ step: seen.step, text: m.text() });
  });
  p.on('pageerror', (e) => pageErrors.push({ step: seen.step, text: String(e && e.stack || e) }));
  p.on('dialog', (d) => {
    seen.dialogs.push({ step: seen.step, type: d.type(), message: d.message() });
    d.dismiss().catch(() => {});
  });
  return { c, p };
}

// Per transport, a number from the page's own metrics table.
export const metric = (on, key) => on.evaluate((k) => Object.fromEntries([...document.querySelectorAll('#metrics tbody tr')]
  .map((tr) => [tr.dataset.transport, Number(tr.querySelector(`[data-m="${k}"]`).textContent.replace(/,/g, ''))])), key);

export function assertNoConsoleErrors(where) {
  const errs = consoleErrors.filter((e) => e.step !== 'outage' && e.step !== 'conflict');
  assert.deepEqual(errs, [], `console errors ${where}`);
  assert.deepEqual(pageErrors, [], `uncaught page errors ${where}`);
}

