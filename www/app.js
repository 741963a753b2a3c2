// app.js - the comparison page: join, four panes, composer, measurements.

import {
  NAME_RE, ROOM_RE, MAX_ID, ApiError, request, register, roomPath, maxId,
  loadIdentity, saveIdentity, forgetIdentity, loadRoom, saveRoom,
} from './js/api.js';
import { ShortPoll, LongPoll, SSE, WS, LONGPOLL_TIMEOUT } from './js/transports.js';
import { TransportMetrics, SendClock, observeResources, byteLength, WINDOW, HISTORY_MS } from './js/metrics.js';
import { Pane } from './js/pane.js';
import { renderChart } from './js/chart.js';

const TRANSPORTS = [
  {
    key: 'short', title: 'Short polling', Class: ShortPoll, color: '#b45309',
    how: () => `GET …/messages?since=ID every ${spInterval()} s, answered at once`,
    book: { direction: 'Client → Server', connection: 'Stateless', latency: 'High', load: 'High', traffic: 'High' },
  },
  {
    key: 'long', title: 'Long polling', Class: LongPoll, color: '#7c3aed',
    how: () => `GET …/poll?since=ID&timeout=${LONGPOLL_TIMEOUT}, held until there is news (204 on timeout)`,
    book: { direction: 'Client → Server', connection: 'Persistent', latency: 'Medium', load: 'Medium', traffic: 'Medium' },
  },
  {
    key: 'sse', title: 'Server-Sent Events', Class: SSE, color: '#047857',
    how: () => 'EventSource …/events: one response that never ends; resumes with Last-Event-ID',
    book: { direction: 'Server → Client', connection: 'Persistent', latency: 'Low', load: 'Low', traffic: 'Low' },
  },
  {
    key: 'ws', title: 'WebSocket', Class: WS, color: '#1d4ed8',
    how: () => 'WebSocket …/ws?since=ID: one socket, frames both ways',
    book: { direction: 'Bidirectional', connection: 'Persistent', latency: 'Low', load: 'Low', traffic: 'Low' },
  },
];

const $ = (id) => document.getElementById(id);
const ui = {
  join: $('join'), name: $('name'), room: $('room'), joinBtn: $('join-btn'), leaveBtn: $('leave-btn'),
  joinStatus: $('join-status'), composer: $('composer'), text: $('text'), sendBtn: $('send-btn'),
  burstN: $('burst-n'), burstGap: $('burst-gap'), burstBtn: $('burst-btn'), spInterval: $('sp-interval'),
  sendStatus: $('send-status'), panes: $('panes'), metrics: $('metrics'), compare: $('compare'),
  stats: $('stats'), statsStatus: $('stats-status'), chartLat: $('chart-latency'), chartBytes: $('chart-bytes'),
  legend: $('legend'),
};

const clock = new SendClock();
const metrics = Object.fromEntries(TRANSPORTS.map((d) => [d.key, new TransportMetrics(d.key)]));
const panes = Object.fromEntries(TRANSPORTS.map((d) => [d.key, new Pane(ui.panes, { ...d, how: d.how() })]));
let session = null;       // {name, token, room, transports}
let serverStats = null;
let behindNginx = null;   // learnt from the Server header of the first API answer

function spInterval() {
  const v = Number(ui.spInterval.value);
  return Number.isFinite(v) && v >= 0.2 && v <= 60 ? v : 2;
}

function say(elem, text, kind = 'info') {
  elem.textContent = text;
  elem.dataset.kind = kind;
}

// ---- formatting -------------------------------------------------------------

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
function fmtMs(v) {
  if (v == null) return '–';
  return v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
}
function fmtBytes(n) {
  if (n == null) return '–';
  if (n < 1000) return `${Math.round(n)} B`;
  if (n < 1e6) return `${(n / 1000).toFixed(1)} kB`;
  return `${(n / 1e6).toFixed(2)} MB`;
}
function fmtDur(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// ---- join / leave ------------------------------------------------------------

function describe(e, via) {
  if (e instanceof ApiError) {
    if (e.status === 404 && via === '/d/api') {
      return '/d/api is not routed here: the page is not behind the demo nginx. Use /api.';
    }
    switch (e.status) {
      case 401: return 'The server no longer accepts this browser\'s token (401). Join again to register.';
      case 413: return `Too long for the server (413): ${e.message}`;
      case 429: return `Rate limited (429): ${e.message}`;
      case 502: case 504: return `The proxy could not reach the backend (${e.status}).`;
      case 503: return `Redis is unavailable (503); nothing was stored. ${e.message}`;
      default: return `${e.status}: ${e.message}`;
    }
  }
  if (e && e.name === 'TypeError') return 'Could not reach the server.';
  return (e && e.message) || String(e);
}

async function identityFor(name, { fresh = false } = {}) {
  let id = loadIdentity();
  if (id && id.name === name && !fresh) return id;
  try {
    id = await register(name);
  } catch (e) {
    if (e instanceof ApiError && e.status === 409) {
      throw new Error(`The name “${name}” is already taken, and this browser does not hold its token. Please choose another name.`);
    }
    if (e instanceof ApiError && e.status === 400) throw new Error(`The server refused the name: ${e.message}`);
    throw new Error(`Could not register: ${describe(e)}`);
  }
  saveIdentity(id);
  return id;
}

async function history(id, room) {
  const url = roomPath('/api', room, `messages?before=${encodeURIComponent(MAX_ID)}&limit=30`);
  return request(url, { token: id.token });
}

function noteServer(res) {
  if (behindNginx != null || !res) return;
  behindNginx = /nginx/i.test(res.headers.get('server') || '');
  const d = document.querySelector('input[name="via"][value="/d/api"]');
  const f = document.querySelector('input[name="via"][value="/api"]');
  if (!behindNginx) {
    d.disabled = true;
    d.closest('label').title = 'Only behind the demo nginx, which proxies /d/api to crosstalkd.';
    d.closest('label').classList.add('off');
    const note = document.createElement('small');
    note.className = 'note';
    note.textContent = ' — no nginx in front of this page, so /api reaches crosstalkd itself';
    f.closest('label').append(note);
    if (d.checked) f.checked = true;
  }
}

async function join(ev) {
  ev.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  ui.name.removeAttribute('aria-invalid');
  ui.room.removeAttribute('aria-invalid');
  if (!NAME_RE.test(name)) {
    ui.name.setAttribute('aria-invalid', 'true');
    ui.name.focus();
    say(ui.joinStatus, 'A name is 1–32 letters, digits, “_”, “.” or “-”.', 'error');
    return;
  }
  if (!ROOM_RE.test(room)) {
    ui.room.setAttribute('aria-invalid', 'true');
    ui.room.focus();
    say(ui.joinStatus, 'A room is 1–64 lower-case letters, digits, “_” or “-”.', 'error');
    return;
  }
  leave();
  ui.joinBtn.disabled = true;
  say(ui.joinStatus, 'Joining…');
  try {
    let id = await identityFor(name);
    let first;
    try {
      first = await history(id, room);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) throw e;
      // The token this browser kept is no longer known (a wiped Redis):
      // register the name again if it is free.
      forgetIdentity();
      id = await identityFor(name, { fresh: true });
      first = await history(id, room);
    }
    noteServer(first.res);
    saveRoom(room);
    start(id, room, (first.body && Array.isArray(first.body.events)) ? first.body.events : [], first.body);
    say(ui.joinStatus, `Joined “${room}” as ${id.name}.`, 'ok');
  } catch (e) {
    say(ui.joinStatus, e instanceof ApiError || e.name === 'TypeError' ? describe(e) : e.message, 'error');
  } finally {
    ui.joinBtn.disabled = false;
  }
}

function start(id, room, events, body) {
  let since = null;
  for (const e of events) if (e && e.id) since = maxId(since, String(e.id));
  if (!since && body && typeof body.last_id === 'string' && body.last_id) since = body.last_id;
  since = since || '0-0';

  session = { name: id.name, token: id.token, room, transports: {} };
  for (const d of TRANSPORTS) {
    const pane = panes[d.key];
    pane.clear();
    pane.me = id.name;
    for (const e of events) pane.addMessage(e, { history: true });
    metrics[d.key].reset();
    const t = new d.Class({
      room, token: id.token, metrics: metrics[d.key], interval: spInterval(),
      onState: (state, info) => pane.setState(state, info),
      onEvent: (evt) => onEvent(d.key, evt),
      onAck: (ackId) => clock.ack(ackId),
      onServerError: (msg) => say(ui.sendStatus, `WebSocket: ${msg.message || msg.error || 'error'}`, 'error'),
      onAuth: () => say(ui.joinStatus, 'The server rejected the token (401). Join again.', 'error'),
    });
    session.transports[d.key] = t;
    t.start(since);
  }
  ui.leaveBtn.disabled = false;
  for (const c of [ui.text, ui.sendBtn, ui.burstBtn]) c.disabled = false;
  document.body.dataset.joined = 'true';
  refresh();
}

function leave() {
  if (!session) return;
  for (const t of Object.values(session.transports)) t.stop();
  session = null;
  ui.leaveBtn.disabled = true;
  for (const c of [ui.text, ui.sendBtn, ui.burstBtn]) c.disabled = true;
  delete document.body.dataset.joined;
  say(ui.joinStatus, 'Left the room.');
}

function onEvent(key, evt) {
  const pane = panes[key];
  const m = metrics[key];
  if (evt.type === 'typing') { pane.typing(evt.from); return; }
  if (evt.type === 'presence') { if (Array.isArray(evt.online)) pane.setPresence(evt.online); return; }
  if (evt.type && evt.type !== 'message') return;
  const li = pane.addMessage(evt);
  if (!li) return;
  m.delivered++;
  if (evt.from === session?.name) {
    const ms = clock.shown(evt);
    if (ms != null) {
      m.latency(ms);
      pane.setLatency(li, ms);
    }
  }
}

// ---- composer ---------------------------------------------------------------

const via = () => document.querySelector('input[name="via"]:checked').value;

async function sendOne(text, how) {
  if (!session) throw new Error('Join a room first.');
  if (how === 'ws') {
    const entry = clock.start(text, 'ws');
    if (!session.transports.ws.send({ type: 'message', text })) {
      clock.cancel(entry);
      throw new Error('The WebSocket pane is not open; pick a REST option or wait for it to reconnect.');
    }
    return null;
  }
  const entry = clock.start(text, how);
  try {
    const { body } = await request(roomPath(how, session.room, 'messages'), { method: 'POST', token: session.token, body: { text } });
    if (body && body.id) clock.bind(entry, String(body.id));
    return body && body.id;
  } catch (e) {
    clock.cancel(entry);
    throw e;
  }
}

async function send(ev) {
  ev.preventDefault();
  const text = ui.text.value;
  if (!text) { say(ui.sendStatus, 'Nothing to send.', 'error'); ui.text.focus(); return; }
  if (byteLength(text) > 4096) { say(ui.sendStatus, `That is ${byteLength(text)} bytes; a message holds at most 4096.`, 'error'); return; }
  const how = via();
  ui.text.value = '';
  try {
    const id = await sendOne(text, how);
    say(ui.sendStatus, how === 'ws' ? 'Sent on the WebSocket.' : `Stored as ${id || '(no id in the answer)'} via ${how}.`, 'ok');
  } catch (e) {
    if (!ui.text.value) ui.text.value = text;
    say(ui.sendStatus, describe(e, how), 'error');
  }
  ui.text.focus();
}

async function burst() {
  if (!session) return;
  const n = Math.min(500, Math.max(1, Math.floor(Number(ui.burstN.value) || 20)));
  const gap = Math.min(5000, Math.max(0, Number(ui.burstGap.value) || 0));
  const how = via();
  const stamp = new Date().toTimeString().slice(0, 8);
  ui.burstBtn.disabled = true;
  let ok = 0, failed = 0, lastErr = null;
  const inflight = [];
  for (let i = 1; i <= n && session; i++) {
    say(ui.sendStatus, `Burst: sending ${i}/${n}…`);
    inflight.push(sendOne(`burst ${stamp} ${i}/${n}`, how).then(() => ok++, (e) => { failed++; lastErr = e; }));
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
  await Promise.all(inflight);
  say(ui.sendStatus, `Burst: ${ok} sent via ${how === 'ws' ? 'WebSocket' : how}${failed ? `, ${failed} failed (${describe(lastErr, how)})` : ''}.`, failed ? 'error' : 'ok');
  ui.burstBtn.disabled = !session;
}

let lastTyping = 0;
function typing() {
  if (!session || !ui.text.value) return;
  const now = Date.now();
  if (now - lastTyping < 2000) return;
  lastTyping = now;
  const how = via();
  if (how === 'ws' && session.transports.ws.send({ type: 'typing' })) return;
  const base = how === 'ws' ? '/api' : how;
  request(roomPath(base, session.room, 'typing'), { method: 'POST', token: session.token, body: {} }).catch(() => {});
}

// ---- measurement tables and charts --------------------------------------------

const COLS = [
  ['delivered', 'Delivered'], ['p50', 'p50'], ['p95', 'p95'], ['requests', 'HTTP requests'],
  ['empties', 'Empty responses'], ['bytes', 'Bytes received'], ['bpm', 'Bytes / message'], ['reconnects', 'Reconnects'],
];
const metricCells = {};
const compareCells = {};

function th(text, scope) {
  const e = document.createElement('th');
  e.textContent = text;
  if (scope) e.scope = scope;
  return e;
}

function swatch(color) {
  const s = document.createElement('span');
  s.className = 'swatch';
  s.style.background = color;
  s.setAttribute('aria-hidden', 'true');
  return s;
}

function buildTables() {
  const hr = document.createElement('tr');
  hr.append(th('Transport', 'col'), ...COLS.map(([, label]) => th(label, 'col')));
  ui.metrics.tHead.append(hr);
  for (const d of TRANSPORTS) {
    const tr = document.createElement('tr');
    tr.dataset.transport = d.key;
    const h = th('', 'row');
    h.append(swatch(d.color), document.createTextNode(d.title));
    tr.append(h);
    metricCells[d.key] = {};
    for (const [k] of COLS) {
      const td = document.createElement('td');
      td.dataset.m = k;
      td.textContent = '–';
      metricCells[d.key][k] = td;
      tr.append(td);
    }
    ui.metrics.tBodies[0].append(tr);
  }

  const ch = document.createElement('tr');
  ch.append(th('', 'col'), ...TRANSPORTS.map((d) => {
    const h = th('', 'col');
    h.append(swatch(d.color), document.createTextNode(d.title));
    return h;
  }));
  ui.compare.tHead.append(ch);
  const rows = [['direction', 'Direction'], ['connection', 'Connection'], ['latency', 'Latency'], ['load', 'Server load'], ['traffic', 'Network traffic']];
  for (const [k, label] of rows) {
    const tr = document.createElement('tr');
    tr.dataset.row = k;
    tr.append(th(label, 'row'));
    compareCells[k] = {};
    for (const d of TRANSPORTS) {
      const td = document.createElement('td');
      const word = document.createElement('strong');
      word.textContent = d.book[k];
      const meas = document.createElement('span');
      meas.className = 'meas';
      meas.textContent = '–';
      td.append(word, meas);
      compareCells[k][d.key] = { td, meas };
      tr.append(td);
    }
    ui.compare.tBodies[0].append(tr);
  }

  ui.legend.replaceChildren(...TRANSPORTS.map((d) => {
    const li = document.createElement('li');
    li.append(swatch(d.color), document.createTextNode(d.title));
    return li;
  }));
  $('win-size').textContent = String(WINDOW);
}

const setText = (e, t) => { if (e.textContent !== t) e.textContent = t; };

function bytesText(m) {
  return (m.measured ? '' : '≈ ') + fmtBytes(m.bytes);
}

// The stats entry for a transport, whatever the server calls it.
function serverEntry(key) {
  const pats = { short: /short/i, long: /long/i, sse: /sse|event/i, ws: /^ws|websocket/i };
  for (const [k, f] of statsRows(serverStats).rows) if (pats[key].test(k)) return f;
  return null;
}

function serverLoadText(key) {
  const e = serverEntry(key);
  if (!e) return '';
  const bits = [];
  for (const [k, v] of Object.entries(e)) {
    if (typeof v !== 'number') continue;
    if (/open|conn|active|subscri/i.test(k)) bits.push(`${fmtInt(v)} open`);
    else if (/request/i.test(k)) bits.push(`${fmtInt(v)} requests`);
  }
  return bits.length ? `; server, all clients: ${bits.join(', ')}` : '';
}

function serverTrafficText(key) {
  const e = serverEntry(key);
  if (!e) return '';
  const out = Object.entries(e).find(([k, v]) => /bytes/i.test(k) && typeof v === 'number');
  const del = Object.entries(e).find(([k, v]) => /deliver/i.test(k) && typeof v === 'number');
  if (!out || !del || !del[1]) return '';
  return `; server wrote ${fmtBytes(out[1] / del[1])} per event delivered, all clients`;
}

function mark(row, key, values, lowerIsBetter = true) {
  const present = Object.entries(values).filter(([, v]) => v != null);
  for (const d of TRANSPORTS) compareCells[row][d.key].td.classList.remove('best', 'worst');
  if (present.length < 2) return;
  present.sort((a, b) => (lowerIsBetter ? a[1] - b[1] : b[1] - a[1]));
  compareCells[row][present[0][0]].td.classList.add('best');
  compareCells[row][present.at(-1)[0]].td.classList.add('worst');
}

function refresh() {
  const now = performance.now();
  for (const d of TRANSPORTS) {
    const m = metrics[d.key];
    if (session) m.sampleBytes(now);
    const c = metricCells[d.key];
    const p50 = m.p50, p95 = m.p95, bpm = m.bytesPerMessage;
    setText(c.delivered, fmtInt(m.delivered));
    setText(c.p50, fmtMs(p50));
    setText(c.p95, fmtMs(p95));
    setText(c.requests, fmtInt(m.requests));
    setText(c.empties, d.key === 'sse' || d.key === 'ws' ? 'n/a' : fmtInt(m.empties));
    setText(c.bytes, bytesText(m));
    setText(c.bpm, bpm == null ? '–' : (m.measured ? '' : '≈ ') + fmtBytes(bpm));
    setText(c.reconnects, fmtInt(m.reconnects));
    panes[d.key].setMini({
      p50: fmtMs(p50), p95: fmtMs(p95), requests: fmtInt(m.requests),
      bpm: bpm == null ? '–' : (m.measured ? '' : '≈ ') + fmtBytes(bpm), reconnects: fmtInt(m.reconnects),
    });

    const cc = (row) => compareCells[row][d.key].meas;
    const rpm = m.requestsPerMin;
    switch (d.key) {
      case 'short':
        setText(cc('direction'), `the page asked ${fmtInt(m.requests)} times; ${fmtInt(m.empties)} answers were empty`);
        setText(cc('connection'), `${fmtInt(m.requests)} separate requests, each answered at once`);
        break;
      case 'long':
        setText(cc('direction'), `the page asked ${fmtInt(m.requests)} times; the server answered when it had news`);
        setText(cc('connection'), m.holds ? `${fmtInt(m.requests)} requests, held ${fmtMs(m.holdMs / m.holds)} on average` : `${fmtInt(m.requests)} requests`);
        break;
      case 'sse':
        setText(cc('direction'), `${fmtInt(m.framesIn)} events pushed by the server, none sent back on the stream`);
        setText(cc('connection'), `${fmtInt(m.connections)} stream${m.connections === 1 ? '' : 's'}, open ${fmtDur(m.uptimeMs)}; ${fmtInt(m.reconnects)} reconnects`);
        break;
      case 'ws':
        setText(cc('direction'), `${fmtInt(m.framesIn)} frames in, ${fmtInt(m.framesOut)} out, on one socket`);
        setText(cc('connection'), `${fmtInt(m.connections)} socket${m.connections === 1 ? '' : 's'}, open ${fmtDur(m.uptimeMs)}; ${fmtInt(m.reconnects)} reconnects`);
        break;
    }
    setText(cc('latency'), p50 == null ? 'no message of yours timed yet' : `p50 ${fmtMs(p50)} · p95 ${fmtMs(p95)} (last ${m.window.length})`);
    setText(cc('load'), `${rpm == null ? '–' : rpm.toFixed(1)} HTTP requests/min from this tab${serverLoadText(d.key)}`);
    setText(cc('traffic'), bpm == null ? `${bytesText(m)} so far, no message delivered yet` : `${(m.measured ? '' : '≈ ') + fmtBytes(bpm)} per message (${bytesText(m)} in all)${serverTrafficText(d.key)}`);
  }
  const vals = (f) => Object.fromEntries(TRANSPORTS.map((d) => [d.key, f(metrics[d.key])]));
  mark('latency', 'p50', vals((m) => m.p50));
  mark('load', 'rpm', vals((m) => m.requestsPerMin));
  mark('traffic', 'bpm', vals((m) => m.bytesPerMessage));

  const series = (pick) => TRANSPORTS.map((d) => ({ key: d.key, label: d.title, color: d.color, points: pick(metrics[d.key]) }));
  renderChart(ui.chartLat, series((m) => m.samples), { now, windowMs: HISTORY_MS, fmt: (v) => fmtMs(v), dots: true, empty: 'send a message to see its latency' });
  renderChart(ui.chartBytes, series((m) => m.byteSamples), { now, windowMs: HISTORY_MS, fmt: (v) => fmtBytes(v), step: true, empty: 'join a room to start counting' });
}

// ---- the server's counters ----------------------------------------------------

// Rows of the stats table from whatever shape /api/stats has: a number at
// the top is a total; an object of objects (e.g. "transports") gives a row
// per child; any other object is a row of its own. Nested numbers flatten
// to dotted names.
function statsRows(obj) {
  const rows = [], totals = {};
  const isObj = (v) => v && typeof v === 'object' && !Array.isArray(v);
  const flat = (o, prefix = '', out = {}) => {
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === 'number') out[prefix + k] = v;
      else if (isObj(v)) flat(v, `${prefix}${k}.`, out);
    }
    return out;
  };
  for (const [k, v] of Object.entries(isObj(obj) ? obj : {})) {
    if (typeof v === 'number') totals[k] = v;
    else if (isObj(v) && Object.keys(v).length && Object.values(v).every(isObj)) {
      for (const [ck, cv] of Object.entries(v)) rows.push([ck, flat(cv)]);
    } else if (isObj(v)) rows.push([k, flat(v)]);
  }
  return { rows, totals };
}

function renderStats(obj) {
  const { rows, totals } = statsRows(obj);
  const cols = [];
  for (const [, f] of rows) for (const k of Object.keys(f)) if (!cols.includes(k)) cols.push(k);
  const hr = document.createElement('tr');
  hr.append(th('', 'col'), ...cols.map((c) => th(c.replace(/_/g, ' '), 'col')));
  ui.stats.tHead.replaceChildren(hr);
  ui.stats.tBodies[0].replaceChildren(...rows.map(([name, f]) => {
    const tr = document.createElement('tr');
    tr.append(th(name.replace(/_/g, ' '), 'row'), ...cols.map((c) => {
      const td = document.createElement('td');
      td.textContent = c in f ? fmtInt(f[c]) : '';
      return td;
    }));
    return tr;
  }));
  const t = Object.entries(totals).map(([k, v]) => `${k.replace(/_/g, ' ')}: ${fmtInt(v)}`).join(' · ');
  setText($('stats-totals'), t);
  return rows.length + Object.keys(totals).length;
}

let statsDelay = 5000;
async function pollStats() {
  try {
    const { body, res } = await request('/api/stats', { token: session?.token });
    noteServer(res);
    serverStats = body;
    const n = renderStats(body);
    const fcgiNote = behindNginx ? ' Behind nginx, REST calls, short polls and presence reads are answered by FastCGI, which these counters do not include.' : '';
    say(ui.statsStatus, n ? `Updated ${new Date().toTimeString().slice(0, 8)}; this crosstalkd's counts for every client, not just this tab.${fcgiNote}` : 'The server answered with no numeric counters.');
    statsDelay = 5000;
  } catch (e) {
    say(ui.statsStatus, `Could not read /api/stats: ${describe(e)}`, 'error');
    statsDelay = Math.min(60000, statsDelay * 2);
  }
  setTimeout(pollStats, statsDelay);
}

// ---- wiring -----------------------------------------------------------------

function init() {
  buildTables();
  observeResources(metrics);
  const id = loadIdentity();
  if (id) ui.name.value = id.name;
  const room = loadRoom();
  if (room && ROOM_RE.test(room)) ui.room.value = room;
  ui.join.addEventListener('submit', join);
  ui.leaveBtn.addEventListener('click', leave);
  ui.composer.addEventListener('submit', send);
  ui.burstBtn.addEventListener('click', burst);
  ui.text.addEventListener('input', typing);
  ui.text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  ui.spInterval.addEventListener('change', () => {
    const v = spInterval();
    ui.spInterval.value = String(v);
    session?.transports.short.setInterval(v);
    panes.short.q('.pane-how').textContent = TRANSPORTS[0].how();
  });
  setInterval(() => Object.values(panes).forEach((p) => p.tick()), 250);
  setInterval(refresh, 1000);
  refresh();
  pollStats();
  if (!ui.name.value) ui.name.focus();
  document.body.dataset.ready = 'true';
}

init();
