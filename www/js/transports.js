// transports.js - one class per way of hearing a room, behind one interface:
//
//   const t = new SSE({room, token, metrics, onEvent, onState, onAck, onAuth});
//   t.start(sinceId);   // connect, and keep reconnecting with backoff
//   t.stop();           // close for good
//   t.lastId            // newest stored id seen: where a reconnect resumes
//
// onEvent(event) gets every event (stored messages carry an id; typing and
// presence do not); onState(state, info) gets 'connecting' | 'open' |
// 'reconnecting' (info.until = when the next try starts, or info.since for
// the browser's own SSE retry) | 'closed'.

import { request, roomPath, maxId, ApiError } from './api.js';
import { HEAD_EST, WS_101_EST, byteLength, wsFrameBytes, sseEventBytes } from './metrics.js';

const BACKOFF_MIN = 500;
const BACKOFF_MAX = 10000;
const PRESENCE_EVERY = 10000;
const PAGE = 500;   // the API's largest limit: catch up in as few requests as possible
export const LONGPOLL_TIMEOUT = 25;

class Transport {
  constructor(opts) {
    this.room = opts.room;
    this.token = opts.token;
    this.m = opts.metrics;
    this.cb = opts;
    this.lastId = null;
    this.state = 'closed';
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
  }

  start(since) {
    this.lastId = since;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.close();
    this.setState('closed');
  }

  setState(state, info = {}) {
    if (state !== 'open' && this.state === 'open') this.m.closed();
    if (state === 'open' && this.state !== 'open') this.m.opened();
    this.state = state;
    this.cb.onState?.(state, info);
  }

  deliver(evt) {
    if (!evt || typeof evt !== 'object') return;
    if (evt.id) this.lastId = maxId(this.lastId, String(evt.id));
    // Messages are counted by the pane once shown and known not to be duplicates.
    if (evt.type !== 'message' && !evt.id) this.m.otherEvents++;
    this.cb.onEvent?.(evt);
  }

  // The server's word on where the history stands: "truncated" (what came
  // before first_id is no longer in Redis) or "reset" (the id we held is
  // newer than anything stored: delivery goes on from last_id).
  signal(kind, info) {
    if (!info || typeof info !== 'object') info = {};
    if (kind === 'reset') this.lastId = info.last_id ? String(info.last_id) : '0-0';
    this.cb.onSignal?.(kind, info);
  }

  // A poll answer's signals, beside its events.
  pollSignals(body) {
    if (!body) return;
    if (body.truncated === true) this.signal('truncated', { first_id: body.first_id });
    if (body.reset === true) this.signal('reset', { last_id: body.last_id });
  }

  // Schedules the next connect() after a loss: exponential backoff with jitter.
  retry(reason) {
    if (this.stopped) return;
    this.close();
    const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt++;
    this.m.reconnects++;
    this.setState('reconnecting', { until: Date.now() + delay, reason });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = null; if (!this.stopped) this.connect(); }, delay);
  }

  // One presence read, tagged with the pane so its cost is counted there.
  async presence(signal) {
    this.m.requests++;
    const r = await request(roomPath('/api', this.room, `presence?cl=${this.tag}`), { token: this.token, signal });
    this.m.estBytes += r.bytes + HEAD_EST;
    if (r.body && Array.isArray(r.body.online)) {
      this.deliver({ room: this.room, type: 'presence', online: r.body.online, ts: Date.now() });
    }
  }

  // Pushing panes learn presence from events, but those come on changes
  // only: one read when the connection opens shows who is already there.
  seedPresence() {
    this.presence().catch(() => {});
  }

  // A rejected token will not get better by retrying.
  failed(err) {
    if (this.stopped) return;
    if (err instanceof ApiError && err.status === 401) {
      this.stopped = true;
      this.close();
      this.setState('closed', { reason: 'token rejected (401)' });
      this.cb.onAuth?.(err);
      return;
    }
    this.retry(err instanceof ApiError ? `HTTP ${err.status}` : 'server unreachable');
  }

  close() {}
}

// Shared by both polling panes: presence is not in the message log, so
// polling clients must ask for it, and that costs requests too.
class Polling extends Transport {
  constructor(opts, tag) {
    super(opts);
    this.tag = tag;
    this.ctrl = null;
    this.presenceTimer = null;
  }

  async get(url) {
    this.m.requests++;
    const r = await request(url, { token: this.token, signal: this.ctrl.signal });
    this.m.estBytes += r.bytes + HEAD_EST;
    return r;
  }

  schedulePresence() {
    clearTimeout(this.presenceTimer);
    this.presenceTimer = setTimeout(async () => {
      if (this.stopped) return;
      try { await this.presence(this.ctrl?.signal); } catch (e) {
        // The short poll's next request aborts the one before it, and a
        // presence read in flight with it; only close() ends the reads.
        if (e.name === 'AbortError') {
          if (!this.stopped && this.ctrl) this.schedulePresence();
          return;
        }
        if (e instanceof ApiError && e.status === 401) { this.failed(e); return; }
      }
      if (!this.stopped) this.schedulePresence();
    }, PRESENCE_EVERY);
  }

  begin() {
    this.ctrl?.abort();
    this.ctrl = new AbortController();
    return this.ctrl.signal;
  }

  close() {
    this.ctrl?.abort();
    this.ctrl = null;
    clearTimeout(this.presenceTimer);
  }
}

export class ShortPoll extends Polling {
  constructor(opts) {
    super(opts, 'short');
    this.interval = (opts.interval || 2) * 1000;
    this.nextAt = null;
  }

  setInterval(seconds) {
    this.interval = Math.max(200, seconds * 1000);
    if (this.timer && this.state === 'open' && !this.stopped) {
      clearTimeout(this.timer);
      this.wait();
    }
  }

  connect() {
    if (this.state !== 'open') this.setState('connecting');
    this.poll();
  }

  wait() {
    this.nextAt = Date.now() + this.interval;
    this.setState('open', { detail: `asks every ${(this.interval / 1000).toFixed(1)} s`, next: this.nextAt });
    this.timer = setTimeout(() => { this.timer = null; this.poll(); }, this.interval);
  }

  async poll() {
    if (this.stopped) return;
    const signal = this.begin();
    try {
      const first = this.state !== 'open';
      for (;;) {
        const since = encodeURIComponent(this.lastId || '0-0');
        const { body } = await this.get(roomPath('/api', this.room, `messages?since=${since}&limit=${PAGE}`));
        const events = (body && Array.isArray(body.events)) ? body.events : [];
        if (!events.length) this.m.empties++;
        this.pollSignals(body);
        events.forEach((e) => this.deliver(e));
        if (events.length < PAGE) break;
      }
      if (first) { await this.presence(signal); this.schedulePresence(); }
      if (signal.aborted || this.stopped) return;
      this.attempt = 0;
      this.wait();
    } catch (e) {
      if (e.name === 'AbortError' || this.stopped) return;
      this.failed(e);
    }
  }
}

export class LongPoll extends Polling {
  constructor(opts) {
    super(opts, 'long');
  }

  // The presence request doubles as the check that the server is there, so
  // the pane shows "open" at once instead of after a 25 s hold.
  async connect() {
    this.setState('connecting');
    const signal = this.begin();
    try {
      await this.presence(signal);
      if (signal.aborted || this.stopped) return;
      // Behind nginx presence may be answered by FastCGI while crosstalkd
      // is down, so the backoff is reset by a poll that worked, not by this.
      this.setState('open', { detail: 'a request is always held by the server' });
      this.schedulePresence();
      await this.loop(signal);
    } catch (e) {
      if (e.name === 'AbortError' || this.stopped) return;
      this.failed(e);
    }
  }

  async loop(signal) {
    let quick = 0;
    while (!this.stopped && !signal.aborted) {
      const since = encodeURIComponent(this.lastId || '0-0');
      const t0 = performance.now();
      const r = await this.get(roomPath('/api', this.room, `poll?since=${since}&timeout=${LONGPOLL_TIMEOUT}`));
      const held = performance.now() - t0;
      this.attempt = 0;
      this.m.holdMs += held;
      this.m.holds++;
      const events = (r.status === 200 && r.body && Array.isArray(r.body.events)) ? r.body.events : [];
      if (r.status === 204 || !events.length) this.m.empties++;
      if (r.status === 200) this.pollSignals(r.body);
      events.forEach((e) => this.deliver(e));
      if (r.body && r.body.last_id && events.length) this.lastId = maxId(this.lastId, String(r.body.last_id));
      // An answer with nothing in it that came back at once would spin.
      quick = (!events.length && held < 200) ? quick + 1 : 0;
      if (quick >= 2) await new Promise((res) => setTimeout(res, 1000));
    }
  }
}

export class SSE extends Transport {
  constructor(opts) {
    super(opts);
    this.tag = 'sse';
    this.es = null;
    this.browserRetry = false;
  }

  connect() {
    this.setState('connecting');
    const q = new URLSearchParams({ token: this.token });
    if (this.lastId) q.set('since', this.lastId);
    const es = new EventSource(roomPath('/api', this.room, `events?${q}`));
    this.es = es;
    this.browserRetry = false;
    this.m.requests++;
    es.onopen = () => {
      if (this.es !== es) return;
      this.attempt = 0;
      this.browserRetry = false;
      this.m.estBytes += HEAD_EST;
      this.setState('open', { detail: 'one response that never ends' });
      this.seedPresence();
    };
    const onData = (ev) => {
      if (this.es !== es) return;
      let evt;
      try { evt = JSON.parse(ev.data); } catch { return; }
      this.m.estBytes += sseEventBytes(ev.type, evt && evt.id, ev.data);
      this.m.framesIn++;
      if (evt && !evt.type) evt.type = ev.type;
      this.deliver(evt);
    };
    for (const type of ['message', 'typing', 'presence']) es.addEventListener(type, onData);
    for (const type of ['truncated', 'reset']) {
      es.addEventListener(type, (ev) => {
        if (this.es !== es) return;
        this.m.framesIn++;
        let info = {};
        try { info = JSON.parse(ev.data); } catch { /* the signal stands without its id */ }
        this.signal(type, info);
      });
    }
    es.onerror = () => {
      if (this.es !== es || this.stopped) return;
      // The first loss is left to EventSource itself: it reconnects and sends
      // Last-Event-ID, which is what SSE is for. If its own try fails too, or
      // it gives up (an HTTP error closes it), the page takes over with
      // backoff and ?since=.
      if (es.readyState === EventSource.CONNECTING && !this.browserRetry) {
        this.browserRetry = true;
        this.m.reconnects++;
        this.m.requests++;
        this.setState('reconnecting', { since: Date.now(), reason: `browser retries with Last-Event-ID ${this.lastId || '(none)'}` });
        return;
      }
      this.retry(es.readyState === EventSource.CLOSED ? 'stream refused' : 'stream lost');
    };
  }

  close() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }
}

export class WS extends Transport {
  constructor(opts) {
    super(opts);
    this.tag = 'ws';
    this.ws = null;
  }

  connect() {
    this.setState('connecting');
    const q = new URLSearchParams({ token: this.token });
    if (this.lastId) q.set('since', this.lastId);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}${roomPath('/api', this.room, `ws?${q}`)}`);
    this.ws = ws;
    this.m.requests++;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.m.estBytes += WS_101_EST;
      this.setState('open', { detail: 'one socket, both directions' });
      this.seedPresence();
      this.cb.onOpen?.();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== 'string') return;
      this.m.estBytes += wsFrameBytes(byteLength(ev.data));
      this.m.framesIn++;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'ack') { this.cb.onAck?.(String(msg.id), msg.key == null ? null : String(msg.key)); return; }
      if (msg.type === 'error') { this.cb.onServerError?.(msg); return; }
      if (msg.type === 'truncated' || msg.type === 'reset') { this.signal(msg.type, msg); return; }
      this.deliver(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws || this.stopped) return;
      this.retry(`socket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
    };
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  // Drops the socket and connects again (an ack that never came).
  reconnect(reason) {
    if (!this.stopped) this.retry(reason);
  }

  // Sends one JSON message on the socket. Returns false when it is not open.
  send(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    const s = JSON.stringify(obj);
    this.ws.send(s);
    this.m.framesOut++;
    this.m.bytesOut += byteLength(s) + (byteLength(s) < 126 ? 6 : 8);
    return true;
  }

  close() {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onopen = null;
      if (ws.readyState === WebSocket.CONNECTING) {
        // Closing a socket still connecting logs a browser error; let it
        // open and close it then.
        ws.onopen = () => ws.close(1000);
        ws.onerror = () => {};
      } else {
        ws.close(1000);
      }
    }
  }
}
