// app.js - the comparison page: join, four panes, composer, measurements.

import {
  NAME_RE, ROOM_RE, MAX_ID, ApiError, request, register, roomPath, maxId,
  loadIdentity, saveIdentity, forgetIdentity, loadRoom, saveRoom, loadVisits, saveVisit, newKey, listRooms,
  compareIds,
} from './js/api.js';
import { ShortPoll, LongPoll, SSE, WS, LONGPOLL_TIMEOUT } from './js/transports.js';
import { TransportMetrics, SendClock, observeResources, byteLength, WINDOW, HISTORY_MS } from './js/metrics.js';
import { Pane } from './js/pane.js';
import { renderChart } from './js/chart.js';

const TRANSPORTS = [
  {
    key: 'short', title: 'Short polling', Class: ShortPoll, color: '#b45309',
    how: () => `GET …/messages?since=ID every ${spInterval()} s, answered at once`,
    typingNote: 'No typing shown here: typing is not stored, so a poll never returns it; only the streams (SSE, WebSocket) carry it.',
    book: { direction: 'Client → Server', connection: 'Stateless', latency: 'High', load: 'High', traffic: 'High' },
  },
  {
    key: 'long', title: 'Long polling', Class: LongPoll, color: '#7c3aed',
    how: () => `GET …/poll?since=ID&timeout=${LONGPOLL_TIMEOUT}, held until there is news (204 on timeout)`,
    typingNote: 'No typing shown here: typing is not stored, so a poll never returns it; only the streams (SSE, WebSocket) carry it.',
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
  legend: $('legend'), rooms: $('rooms'), roomsStatus: $('rooms-status'), older: $('older-btn'),
  olderStatus: $('older-status'), statsScope: $('stats-scope'),
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
      case 503: return `The server is unavailable (503): ${e.message}`;
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

const HISTORY_PAGE = 30;
let olderDone = false;

async function history(id, room) {
  const url = roomPath('/api', room, `messages?before=${encodeURIComponent(MAX_ID)}&limit=${HISTORY_PAGE}`);
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
    const n = [...name].length;
    say(ui.joinStatus, n > 32
      ? `That name is ${n} characters long; a name holds at most 32. Please choose a shorter one.`
      : 'A name is 1–32 letters, digits, “_”, “.” or “-”.', 'error');
    return;
  }
  if (!ROOM_RE.test(room)) {
    ui.room.setAttribute('aria-invalid', 'true');
    ui.room.focus();
    const n = [...room].length;
    say(ui.joinStatus, n > 64
      ? `That room name is ${n} characters long; a room name holds at most 64.`
      : 'A room is 1–64 lower-case letters, digits, “_” or “-”.', 'error');
    return;
  }
  await enter(name, room);
}

// Joins `room` as `name` (registering the name when this browser holds no
// token for it): the panes open, the room list follows.
async function enter(name, room) {
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
    // Only now, with the new room in hand, is the old one left: a switch
    // that fails keeps the room one is in.
    leave();
    saveRoom(room);
    ui.name.value = id.name;
    ui.room.value = room;
    const events = (first.body && Array.isArray(first.body.events)) ? first.body.events : [];
    start(id, room, events, first.body);
    olderDone = events.length < HISTORY_PAGE;
    say(ui.olderStatus, olderDone ? (events.length ? 'This is the start of the room.' : '') : '');
    ui.older.disabled = olderDone;
    say(ui.joinStatus, `Joined “${room}” as ${id.name}.`, 'ok');
    refreshRooms();
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
  const newest = events.at(-1);
  saveVisit(room, since === '0-0' ? null : since, newest ? newest.ts : Date.now());

  session = { name: id.name, token: id.token, room, transports: {} };
  outbox.clear();
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
      onAck: (ackId, key) => outbox.ack(ackId, key),
      onServerError: (msg) => outbox.error(msg),
      onOpen: () => outbox.resend(),
      onSignal: (kind, info) => onSignal(d.key, kind, info),
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
  outbox.clear();
  session = null;
  clearTimeout(roomsTimer);
  ui.older.disabled = true;
  say(ui.olderStatus, '');
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
  if (evt.id && evt.room === session?.room) saveVisit(session.room, String(evt.id), evt.ts);
  if (evt.from === session?.name) {
    const ms = clock.shown(evt);
    if (ms != null) {
      m.latency(ms);
      pane.setLatency(li, ms);
    }
  }
}

// The server's word on the history: shown in the pane that heard it.
function onSignal(key, kind, info) {
  const pane = panes[key];
  const sig = `${kind} ${info.first_id || info.last_id || ''}`;
  if (pane.lastSignal === sig) return;
  pane.lastSignal = sig;
  if (kind === 'truncated') {
    // Each click pages further back from where the last one ended.
    let cursor = info.first_id ? String(info.first_id) : null;
    const li = pane.addNotice('truncated', 'Messages before this point are no longer kept in Redis, so this pane could not be given all it missed. '
      + 'They are in the archive.', {
      label: 'Load the missing messages',
      run: async () => {
        const r = await loadOlder(cursor);
        if (r && r.oldest) cursor = r.oldest;
        if (r && r.done) li.querySelector('button')?.remove();
      },
    });
  } else if (kind === 'reset') {
    pane.addNotice('reset', 'The server holds no message as new as the last one this pane had seen (its data was restored or reset). '
      + `Going on from its newest message${info.last_id ? ` (${info.last_id})` : ''}.`);
  }
}

// One page of older messages into every pane: before `beforeId`, or before
// the oldest message shown. Through /api, which pages on into the MongoDB
// archive where Redis ends (the FastCGI pool behind nginx).
async function loadOlder(beforeId) {
  if (!session) return;
  const room = session.room;
  let before = beforeId || null;
  if (!before) {
    for (const d of TRANSPORTS) {
      const o = panes[d.key].oldestId;
      if (o && (!before || compareIds(o, before) < 0)) before = o;
    }
  }
  ui.older.disabled = true;
  let result = null;
  say(ui.olderStatus, 'Loading older messages…');
  try {
    const q = `messages?before=${encodeURIComponent(before || MAX_ID)}&limit=${HISTORY_PAGE}`;
    const { body } = await request(roomPath('/api', room, q), { token: session.token });
    if (!session || session.room !== room) return;
    const events = (body && Array.isArray(body.events)) ? body.events : [];
    let added = 0;
    for (const d of TRANSPORTS) {
      panes[d.key].grow(events.length);
      for (const e of events) if (panes[d.key].addMessage(e, { history: true, older: true }) && d.key === 'ws') added++;
    }
    if (!beforeId) olderDone = events.length < HISTORY_PAGE;
    result = { oldest: events.length ? String(events[0].id) : null, done: events.length < HISTORY_PAGE };
    say(ui.olderStatus, !events.length ? 'No older messages: this is the start of the room.'
      : `${events.length} older message${events.length === 1 ? '' : 's'} loaded${added < events.length ? ` (${events.length - added} were shown already)` : ''}`
        + `${olderDone ? '; this is the start of the room.' : '.'}`, 'ok');
  } catch (e) {
    say(ui.olderStatus, `Could not load older messages: ${describe(e)}`, 'error');
  } finally {
    ui.older.disabled = olderDone || !session;
  }
  return result;
}

// ---- rooms --------------------------------------------------------------------

const ROOMS_EVERY = 10000;
const UNREAD_MAX = 100;
let roomsTimer = null;

// The room list, with what arrived in each since this browser last read
// it: the count comes from one short poll after the last id seen there.
async function refreshRooms() {
  clearTimeout(roomsTimer);
  roomsTimer = setTimeout(refreshRooms, ROOMS_EVERY);
  const token = session?.token;
  if (!token) {
    say(ui.roomsStatus, 'Join to see the rooms and what is unread in them.');
    return;
  }
  try {
    const rooms = await listRooms(token);
    if (!session || session.token !== token) return;
    const visits = loadVisits();
    const unread = {};
    const todo = rooms.filter((r) => r.name !== session.room && visits[r.name]?.id && !(Number(r.last_ts) <= (visits[r.name].ts || 0)));
    await Promise.all(todo.slice(0, 20).map(async (r) => {
      try {
        const q = `messages?since=${encodeURIComponent(visits[r.name].id)}&limit=${UNREAD_MAX}&cl=rooms`;
        const { body } = await request(roomPath('/api', r.name, q), { token });
        const evs = (body && Array.isArray(body.events)) ? body.events : [];
        unread[r.name] = { n: evs.filter((e) => e.from !== session?.name).length, more: evs.length >= UNREAD_MAX };
      } catch { /* no count is better than a wrong one */ }
    }));
    if (!session || session.token !== token) return;
    renderRooms(rooms, unread, visits);
    say(ui.roomsStatus, rooms.length ? 'By recent activity; unread since your last visit in this browser.' : 'No rooms yet.');
  } catch (e) {
    say(ui.roomsStatus, `Could not list the rooms: ${describe(e)}`, 'error');
  }
}

function renderRooms(rooms, unread, visits) {
  const items = rooms.map((r) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'room';
    b.dataset.room = r.name;
    const name = document.createElement('span');
    name.className = 'room-name';
    name.textContent = r.name;
    b.append(name);
    const u = unread[r.name];
    let label = r.name;
    if (r.name === session.room) {
      b.setAttribute('aria-current', 'true');
      label += ', the room you are in';
    } else if (u && u.n > 0) {
      const badge = document.createElement('span');
      badge.className = 'unread';
      badge.textContent = u.more ? `${u.n}+` : String(u.n);
      b.append(badge);
      label += `, ${badge.textContent} unread`;
    } else if (!visits[r.name]) {
      const badge = document.createElement('span');
      badge.className = 'unread new';
      badge.textContent = 'new';
      b.append(badge);
      label += ', not visited yet';
    }
    if (Number(r.last_ts) > 0) b.title = `last message ${new Date(Number(r.last_ts)).toLocaleString()}`;
    b.setAttribute('aria-label', label);
    b.addEventListener('click', () => {
      if (session && r.name !== session.room) enter(session.name, r.name);
    });
    li.append(b);
    return li;
  });
  ui.rooms.replaceChildren(...items);
}

// ---- composer ---------------------------------------------------------------

const via = () => document.querySelector('input[name="via"]:checked').value;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const REST_TRIES = 4;

// A send given up with its outcome unknown (REST or WebSocket): the same
// text sent again in the same room goes with the same key, so it is stored
// once either way.
let unsettled = null; // {text, room, key}

/** The key for a new send of `text`: the unsettled one's when it is that text. */
function keyFor(text) {
  if (unsettled && unsettled.text === text && unsettled.room === session.room) return unsettled.key;
  return newKey();
}

/** A send of `text` with `key` given up with its outcome unknown: its text back in the composer. */
function giveUp(text, key) {
  unsettled = { text, room: session?.room, key };
  if (!ui.text.value) ui.text.value = text;
}

function settled(key) {
  if (unsettled && unsettled.key === key) unsettled = null;
}

// A REST send with an Idempotency-Key; when the answer leaves the outcome
// unknown (503, a proxy error, no answer at all) it is sent again with the
// same key, which the server stores once. A try's "nothing was stored"
// speaks for that try only: once one try's outcome was unknown, giving up
// says the message may or may not be stored.
async function restSend(how, text) {
  const key = keyFor(text);
  const entry = clock.start(text, how);
  // a send again of one given up unsettled starts unsure
  let unsure = unsettled !== null && unsettled.key === key;
  for (let attempt = 1; ; attempt++) {
    try {
      const { body } = await request(roomPath(how, session.room, 'messages'), {
        method: 'POST', token: session.token, body: { text }, headers: { 'Idempotency-Key': key },
      });
      if (body && body.id) clock.bind(entry, String(body.id));
      settled(key);
      return body && body.id;
    } catch (e) {
      const retry = e.name === 'TypeError' || (e instanceof ApiError && [502, 503, 504].includes(e.status));
      // no answer, a proxy's 502/504, or a 503 that says so
      if (e.name === 'TypeError' || (e instanceof ApiError &&
          ([502, 504].includes(e.status) || (e.status === 503 && /outcome is unknown/.test(e.message))))) {
        unsure = true;
      }
      if (!retry || attempt >= REST_TRIES || !session) {
        clock.cancel(entry);
        if (!unsure) throw e;
        giveUp(text, key);
        throw new Error(`Not acknowledged after ${attempt} tries (${describe(e, how)}): it may or may not be stored. ` +
          'Send it again as it is and it is stored once.');
      }
      const wait = Math.max((e.retryAfter || 0) * 1000, 500 * 2 ** (attempt - 1));
      say(ui.sendStatus, `${describe(e, how)} — sending again with the same idempotency key in ${fmtMs(wait)} (try ${attempt + 1} of ${REST_TRIES}).`, 'warn');
      await sleep(wait);
    }
  }
}

// One's own WebSocket sends until their acks: each shown in the WebSocket
// pane marked "sending…", sent with its idempotency key, sent again when no
// ack comes within ACK_MS, on a new socket the second time.
const ACK_MS = 5000;
const WS_TRIES = 5;
const outbox = {
  items: [],
  acked: new Set(),

  clear() {
    for (const it of this.items) {
      clearTimeout(it.timer);
      it.reject(new Error('left the room before the ack'));
    }
    this.items = [];
  },

  // Resolves with the id when acknowledged; rejects when refused or never
  // acknowledged.
  push(text) {
    const it = { key: keyFor(text), text, tries: 0, timer: null, entry: clock.start(text, 'ws') };
    const done = new Promise((resolve, reject) => { it.resolve = resolve; it.reject = reject; });
    done.catch(() => {}); // a single send reports through the status line
    this.items.push(it);
    panes.ws.addPending(text, it.key);
    this.transmit(it);
    return { it, done };
  },

  transmit(it) {
    clearTimeout(it.timer);
    it.timer = null;
    const ws = session?.transports.ws;
    if (!ws || !ws.send({ type: 'message', text: it.text, key: it.key })) {
      panes.ws.notePending(it.key, 'waiting for the WebSocket to open…');
      return; // resend() runs when it opens
    }
    it.tries++;
    if (it.tries > 1) panes.ws.notePending(it.key, `no ack yet: sent again with the same key (try ${it.tries})…`);
    it.timer = setTimeout(() => this.late(it), ACK_MS);
  },

  late(it) {
    if (!this.items.includes(it)) return;
    if (it.tries >= WS_TRIES) {
      this.drop(it);
      it.reject(new Error(`no ack after ${it.tries} tries`));
      panes.ws.notePending(it.key, `not acknowledged after ${it.tries} tries: it may or may not be stored`, true);
      giveUp(it.text, it.key);
      say(ui.sendStatus, `The WebSocket never acknowledged “${it.text.slice(0, 40)}” (${it.tries} tries of ${fmtMs(ACK_MS)}): ` +
        'it may or may not be stored. Send it again as it is and it is stored once.', 'error');
      return;
    }
    const ws = session?.transports.ws;
    if (it.tries >= 2 && ws?.isOpen) {
      // A socket that takes frames and answers none is not to be trusted.
      panes.ws.notePending(it.key, 'no ack: reconnecting to send it again…');
      ws.reconnect('no ack to a message sent twice');
      return;
    }
    this.transmit(it);
  },

  resend() {
    for (const it of this.items) this.transmit(it);
  },

  drop(it) {
    clearTimeout(it.timer);
    this.items = this.items.filter((x) => x !== it);
  },

  find(key) {
    return (key && this.items.find((x) => x.key === key)) || this.items.find((x) => x.tries > 0) || null;
  },

  ack(id, key) {
    // A repeat of a send already acknowledged is acknowledged again with the same id.
    if (this.acked.has(id)) return;
    this.acked.add(id);
    if (this.acked.size > 1000) this.acked.delete(this.acked.values().next().value);
    const it = this.find(key);
    if (!it) { clock.ack(id); return; }
    this.drop(it);
    settled(it.key);
    clock.bind(it.entry, id);
    panes.ws.ackPending(it.key, id);
    it.resolve(id);
    if (!bursting && (ui.sendStatus.dataset.kind !== 'error' || !this.items.length)) {
      say(ui.sendStatus, `Stored as ${id}, acknowledged on the WebSocket${it.tries > 1 ? ` after ${it.tries} tries` : ''}.`, 'ok');
    }
  },

  error(msg) {
    const it = this.find(msg.key == null ? null : String(msg.key));
    const text = msg.message || msg.error || 'error';
    if (!it) { say(ui.sendStatus, `WebSocket: ${text}`, 'error'); return; }
    if (msg.error === 'unavailable' || msg.error === 'rate_limited') {
      // The outcome is unknown, or the server asks to slow down: same key, later.
      clearTimeout(it.timer);
      panes.ws.notePending(it.key, `${text} — trying again…`);
      it.timer = setTimeout(() => this.transmit(it), 1000);
      return;
    }
    this.drop(it);
    it.reject(new Error(text));
    panes.ws.notePending(it.key, `refused: ${text}`, true);
    say(ui.sendStatus, `WebSocket: ${text}`, 'error');
  },
};

async function sendOne(text, how) {
  if (!session) throw new Error('Join a room first.');
  if (how === 'ws') return outbox.push(text);
  return restSend(how, text);
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
    if (how !== 'ws') say(ui.sendStatus, `Stored as ${id || '(no id in the answer)'} via ${how}.`, 'ok');
    else if (session?.transports.ws.isOpen) say(ui.sendStatus, 'Sent on the WebSocket; waiting for its ack.');
    else say(ui.sendStatus, 'The WebSocket is not open: the message waits and goes when it opens.', 'warn');
  } catch (e) {
    if (!ui.text.value) ui.text.value = text;
    say(ui.sendStatus, describe(e, how), 'error');
  }
  ui.text.focus();
}

let bursting = false;

async function burst() {
  if (!session) return;
  const n = Math.min(500, Math.max(1, Math.floor(Number(ui.burstN.value) || 20)));
  const gap = Math.min(5000, Math.max(0, Number(ui.burstGap.value) || 0));
  const how = via();
  const stamp = new Date().toTimeString().slice(0, 8);
  ui.burstBtn.disabled = true;
  bursting = true;
  let ok = 0, failed = 0, lastErr = null;
  const inflight = [];
  for (let i = 1; i <= n && session; i++) {
    say(ui.sendStatus, `Burst: sending ${i}/${n}…`);
    // WebSocket sends count once acknowledged.
    inflight.push(sendOne(`burst ${stamp} ${i}/${n}`, how).then((r) => (how === 'ws' ? r.done : r))
      .then(() => ok++, (e) => { failed++; lastErr = e; }));
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
  await Promise.all(inflight);
  bursting = false;
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
      const verdict = document.createElement('span');
      verdict.className = 'verdict';
      const meas = document.createElement('span');
      meas.className = 'meas';
      meas.textContent = '–';
      td.append(word, verdict, meas);
      compareCells[k][d.key] = { td, meas, verdict };
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

// What a verdict compares, per row, and how big a difference is noise
// here (timer jitter, a shared machine, a handful of samples).
const VERDICT = {
  latency: { what: 'p50 latency', fmt: (v) => fmtMs(v), noise: (lo) => Math.max(10, 0.25 * lo) },
  load: { what: 'HTTP requests/min', fmt: (v) => v.toFixed(1), noise: (lo) => Math.max(1, 0.25 * lo) },
  traffic: { what: 'bytes per message', fmt: (v) => fmtBytes(v), noise: (lo) => Math.max(50, 0.25 * lo) },
};

function mark(row, key, values, lowerIsBetter = true) {
  const present = Object.entries(values).filter(([, v]) => v != null);
  for (const d of TRANSPORTS) {
    const c = compareCells[row][d.key];
    c.td.classList.remove('best', 'worst', 'tie');
    setText(c.verdict, '');
  }
  if (present.length < 2) return;
  present.sort((a, b) => (lowerIsBetter ? a[1] - b[1] : b[1] - a[1]));
  const [bestKey, best] = present[0];
  const [worstKey, worst] = present.at(-1);
  const v = VERDICT[row];
  const best1 = compareCells[row][bestKey];
  const worst1 = compareCells[row][worstKey];
  if (Math.abs(worst - best) <= v.noise(Math.min(best, worst))) {
    // Too close to call: say what was compared rather than crown anyone.
    for (const [k] of present) compareCells[row][k].td.classList.add('tie');
    setText(best1.verdict, `lowest ${v.what}, within noise (${v.fmt(best)} vs ${v.fmt(worst)}) · `);
    setText(worst1.verdict, `highest ${v.what}, within noise (${v.fmt(worst)} vs ${v.fmt(best)}) · `);
    return;
  }
  best1.td.classList.add('best');
  worst1.td.classList.add('worst');
  setText(best1.verdict, `best here: ${v.what} ${v.fmt(best)} · `);
  setText(worst1.verdict, `costliest here: ${v.what} ${v.fmt(worst)} · `);
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
    if (k === 'interval_ms') continue; // a setting, said in the scope line
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

// Which processes the counters cover, in words.
function statsScope(body) {
  const procs = Array.isArray(body?.processes) ? body.processes.filter((p) => p && typeof p === 'object') : null;
  if (!procs) {
    return 'The counters of whichever crosstalkd answered this request (this server does not add up the others).';
  }
  const group = (prog) => procs.filter((p) => p.program === prog);
  const daemons = group('crosstalkd');
  const fcgi = group('crosstalk-fcgi');
  const others = procs.filter((p) => p.program !== 'crosstalkd' && p.program !== 'crosstalk-fcgi');
  const parts = [];
  if (daemons.length) {
    parts.push(`${daemons.length} crosstalkd (${daemons.map((p) => `${p.host || '?'}:${p.port || '?'} pid ${p.pid}`).join(', ')})`);
  }
  if (fcgi.length) parts.push(`${fcgi.length} crosstalk-fcgi process${fcgi.length === 1 ? '' : 'es'} (pid ${fcgi.map((p) => p.pid).join(', ')})`);
  for (const p of others) parts.push(`${p.program} ${p.pid}`);
  const every = Number(body.interval_ms) > 0 ? `; each reports every ${fmtMs(Number(body.interval_ms))} and leaves the sum ${fmtMs(3 * Number(body.interval_ms))} after it stops` : '';
  if (body.scope === 'process') {
    return `Only the crosstalkd that answered (${parts.join(', ') || 'one process'}): it could not read the other processes' counters from Redis.`;
  }
  return `The sum over ${procs.length} process${procs.length === 1 ? '' : 'es'}: ${parts.join(' and ')}${every}. /metrics stays per process.`;
}

let statsDelay = 5000;
async function pollStats() {
  try {
    const { body, res } = await request('/api/stats', { token: session?.token });
    noteServer(res);
    serverStats = body;
    const n = renderStats(body);
    setText(ui.statsScope, statsScope(body));
    say(ui.statsStatus, n ? `Updated ${new Date().toTimeString().slice(0, 8)}; counts for every client, not just this tab.` : 'The server answered with no numeric counters.');
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
  ui.older.addEventListener('click', () => loadOlder(null));
  refreshRooms();
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
