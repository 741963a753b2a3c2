// loadgen.mjs - a load generator for the fault and limit tests: many real
// clients of all four transports in one room, each resuming exactly as a
// browser does, each recording every message id it receives, plus senders
// that record every id the server acknowledged. After a fault, check()
// compares what every client got with what Redis stored: nothing missing,
// nothing twice, nothing out of order.
//
//   short poll  GET  {prefix}/api/rooms/R/messages?since=LAST&limit=500, every shortIntervalMs
//   long poll   GET  /api/rooms/R/poll?since=LAST&timeout=S&limit=500, again at once
//   SSE         EventSource (npm eventsource) on /api/rooms/R/events?since=SEED; it
//               reconnects by itself after retry: ms with Last-Event-ID
//   WebSocket   npm ws on /api/rooms/R/ws?since=LAST; reconnects 100-300 ms after a close
//
// Every client starts after `since` (a seed message's id), so every one of
// them must end up holding exactly the stored messages after it. Senders
// post over REST (through nginx: the FastCGI pool, and crosstalkd under /d/)
// and over WebSocket (awaiting {"type":"ack"}); only a 201 or an ack counts
// as acknowledged.
//
// HTTP clients use keep-alive agents (as browsers do), so thousands of
// polls do not leave thousands of sockets in TIME_WAIT. Every loop is
// bounded by close(); every request by a timeout.

import nodeHttp from 'node:http';
import { createRequire } from 'node:module';

import { compareIds, sleep, waitFor } from './harness.mjs';

const require = createRequire(import.meta.url);
const EventSource = require('eventsource');
const WebSocket = require('ws');

/** One GET/POST over `agent`; resolves {status, json, text}, rejects on a socket error or timeout. */
function request(agent, method, url, { headers = {}, body, timeout = 10000, inflight } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const h = { ...headers };
    if (payload) {
      h['Content-Type'] = 'application/json';
      h['Content-Length'] = payload.length;
    }
    const req = nodeHttp.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        done();
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', (e) => { done(); reject(e); });
      res.on('aborted', () => { done(); reject(new Error('response aborted')); });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeout} ms`)), timeout);
    const done = () => { clearTimeout(timer); inflight?.delete(req); };
    inflight?.add(req);
    req.on('error', (e) => { done(); reject(e); });
    if (payload) req.write(payload);
    req.end();
  });
}

const errText = (e) => (e && (e.message || e.code)) || String(e);

/**
 * Starts the load. Options:
 *   base          URL clients talk to (nginx, or one daemon)
 *   room          the room
 *   users         [{name, token}]: clients and senders are spread over them
 *   since         the id every client starts after
 *   clients       {short, long, sse, ws} counts (default 50 each: 200 clients)
 *   shortPrefixes path prefixes the short pollers cycle through (default ['']; through nginx ['', '/d'])
 *   restPrefixes  prefixes of the REST senders (default [''])
 *   shortIntervalMs, longTimeoutS, sseRetryMs (informational), wsSenders, restSenders, sendIntervalMs
 * Returns the load object (see the bottom of this function).
 */
export function startLoad({
  base, room, users, since,
  clients = { short: 50, long: 50, sse: 50, ws: 50 },
  shortPrefixes = [''], restPrefixes = [''],
  shortIntervalMs = 300, longTimeoutS = 3,
  restSenders = 2, wsSenders = 1, sendIntervalMs = 100,
} = {}) {
  if (!base || !room || !users?.length || !since) throw new Error('startLoad: base, room, users and since are required');
  const wsBase = base.replace(/^http/, 'ws');
  const agent = new nodeHttp.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
  const inflight = new Set();
  const all = [];
  const sent = []; // acknowledged: {id, via, text}
  const failedSends = []; // {via, text, why}
  let stopped = false;
  let sending = false;
  let userIx = 0;
  const nextUser = () => users[userIx++ % users.length];
  const loops = [];

  function client(kind, name) {
    const c = { kind, name, ids: [], seen: new Set(), dups: [], disorder: [], errors: 0, lastError: '', reconnects: 0, opens: 0, last: since };
    all.push(c);
    return c;
  }
  function got(c, ev) {
    if (!ev || ev.type !== 'message' || !ev.id) return;
    if (c.seen.has(ev.id)) {
      c.dups.push(ev.id);
      return;
    }
    if (c.ids.length && compareIds(ev.id, c.ids.at(-1)) <= 0) c.disorder.push([c.ids.at(-1), ev.id]);
    c.seen.add(ev.id);
    c.ids.push(ev.id);
    c.last = ev.id;
  }
  function failed(c, e) {
    c.errors++;
    c.lastError = errText(e);
  }

  // ---- short poll
  for (let i = 0; i < (clients.short ?? 0); i++) {
    const prefix = shortPrefixes[i % shortPrefixes.length];
    const c = client('short', `short poll #${i}${prefix ? ' via ' + prefix : ''}`);
    const u = nextUser();
    loops.push((async () => {
      await sleep(Math.floor(Math.random() * shortIntervalMs));
      while (!stopped) {
        try {
          const r = await request(agent, 'GET', `${base}${prefix}/api/rooms/${room}/messages?since=${c.last}&limit=500`,
            { headers: { Authorization: `Bearer ${u.token}` }, timeout: 8000, inflight });
          if (r.status === 200 && Array.isArray(r.json?.events)) {
            for (const e of r.json.events) got(c, e);
            c.opens++;
          } else {
            failed(c, `${r.status} ${r.text.slice(0, 120)}`);
          }
        } catch (e) {
          if (!stopped) failed(c, e);
        }
        await sleep(shortIntervalMs);
      }
    })());
  }

  // ---- long poll
  for (let i = 0; i < (clients.long ?? 0); i++) {
    const c = client('long', `long poll #${i}`);
    const u = nextUser();
    loops.push((async () => {
      while (!stopped) {
        try {
          const r = await request(agent, 'GET', `${base}/api/rooms/${room}/poll?since=${c.last}&timeout=${longTimeoutS}&limit=500`,
            { headers: { Authorization: `Bearer ${u.token}` }, timeout: (longTimeoutS + 5) * 1000, inflight });
          c.opens++;
          if (r.status === 200 && Array.isArray(r.json?.events)) {
            for (const e of r.json.events) got(c, e);
          } else if (r.status !== 204) {
            failed(c, `${r.status} ${r.text.slice(0, 120)}`);
            await sleep(200);
          }
        } catch (e) {
          if (!stopped) failed(c, e);
          await sleep(200);
        }
      }
    })());
  }

  // ---- SSE (a browser's EventSource)
  for (let i = 0; i < (clients.sse ?? 0); i++) {
    const c = client('sse', `SSE #${i}`);
    const u = nextUser();
    const es = new EventSource(`${base}/api/rooms/${room}/events?token=${u.token}&since=${since}`);
    es.addEventListener('message', (e) => {
      try { got(c, JSON.parse(e.data)); } catch (err) { failed(c, err); }
    });
    es.addEventListener('open', () => { if (c.opens++ > 0) c.reconnects++; });
    es.addEventListener('error', (e) => { if (!stopped) failed(c, e?.status ? `status ${e.status}` : (e?.message ?? 'stream ended')); });
    c.close = () => es.close();
    c.state = () => es.readyState;
  }

  // ---- WebSocket
  function wsClient(c, u, onOpen) {
    let ws = null;
    let timer = null;
    const connect = () => {
      if (stopped) return;
      const sinceQ = c.last ? `&since=${c.last}` : '';
      ws = new WebSocket(`${wsBase}/api/rooms/${room}/ws?token=${u.token}${sinceQ}`, { handshakeTimeout: 5000 });
      c.ws = ws;
      ws.on('open', () => { if (c.opens++ > 0) c.reconnects++; onOpen?.(ws); });
      ws.on('message', (data) => {
        let ev;
        try { ev = JSON.parse(data.toString()); } catch (e) { failed(c, e); return; }
        if (ev.type === 'ack') c.onAck?.(ev);
        else if (ev.type === 'error') c.onError?.(ev);
        else got(c, ev);
      });
      ws.on('unexpected-response', (_req, res) => { failed(c, `upgrade answered ${res.statusCode}`); res.resume(); });
      ws.on('error', (e) => { if (!stopped) failed(c, e); });
      ws.on('close', () => {
        c.onClose?.();
        if (stopped) return;
        timer = setTimeout(connect, 100 + Math.floor(Math.random() * 200));
      });
    };
    connect();
    c.close = () => {
      clearTimeout(timer);
      try { ws?.terminate(); } catch { /* closed */ }
    };
    c.state = () => ws?.readyState;
  }
  for (let i = 0; i < (clients.ws ?? 0); i++) {
    const c = client('ws', `WebSocket #${i}`);
    wsClient(c, nextUser());
  }

  // ---- senders
  let seq = 0;
  const senders = [];
  function restSender(k) {
    const prefix = restPrefixes[k % restPrefixes.length];
    const u = nextUser();
    const via = `REST${prefix ? ' ' + prefix : ''} #${k}`;
    return (async () => {
      while (sending && !stopped) {
        const text = `load ${room} ${via} ${++seq}`;
        try {
          const r = await request(agent, 'POST', `${base}${prefix}/api/rooms/${room}/messages`,
            { headers: { Authorization: `Bearer ${u.token}` }, body: { text }, timeout: 8000, inflight });
          if (r.status === 201 && r.json?.id) sent.push({ id: r.json.id, via, text });
          else failedSends.push({ via, text, why: `${r.status} ${r.text.slice(0, 120)}` });
        } catch (e) {
          failedSends.push({ via, text, why: errText(e) });
        }
        await sleep(sendIntervalMs);
      }
    })();
  }
  // A WebSocket sender: one message at a time, acknowledged by {"type":"ack","id"}.
  const wsSenderClients = [];
  for (let k = 0; k < wsSenders; k++) {
    const c = { kind: 'ws-sender', name: `WebSocket sender #${k}`, ids: [], seen: new Set(), dups: [], disorder: [], errors: 0, reconnects: 0, opens: 0, last: null };
    wsSenderClients.push(c);
    wsClient(c, nextUser());
  }
  function wsSender(c) {
    const via = c.name;
    return (async () => {
      while (sending && !stopped) {
        const ws = c.ws;
        if (!ws || ws.readyState !== WebSocket.OPEN) {
          await sleep(50);
          continue;
        }
        const text = `load ${room} ${via} ${++seq}`;
        const res = await new Promise((resolve) => {
          const t = setTimeout(() => finish({ why: 'no ack within 5000 ms' }), 5000);
          const finish = (v) => {
            clearTimeout(t);
            c.onAck = c.onError = c.onClose = null;
            resolve(v);
          };
          c.onAck = (ev) => finish({ id: ev.id });
          c.onError = (ev) => finish({ why: `error ${JSON.stringify(ev)}` });
          c.onClose = () => finish({ why: 'closed before the ack' });
          try {
            ws.send(JSON.stringify({ type: 'message', text }));
          } catch (e) {
            finish({ why: errText(e) });
          }
        });
        if (res.id) sent.push({ id: res.id, via, text });
        else failedSends.push({ via, text, why: res.why });
        await sleep(sendIntervalMs);
      }
    })();
  }

  const load = {
    clients: all,
    sent,
    failedSends,
    agent,

    /** Resolves once every streaming client (SSE, WebSocket, senders) is open and every poller has been answered once. */
    async ready({ timeout = 15000 } = {}) {
      const t0 = Date.now();
      await waitFor(() => all.every((c) => c.opens > 0) && wsSenderClients.every((c) => c.opens > 0), {
        timeout, interval: 50, what: `all ${all.length + wsSenderClients.length} clients to connect`,
      }).catch((e) => {
        const late = [...all, ...wsSenderClients].filter((c) => c.opens === 0);
        throw new Error(`${e.message}: ${late.length} never connected in ${Date.now() - t0} ms, e.g. ` +
          `${late.slice(0, 8).map((c) => `${c.name} (${c.errors} errors, last: ${c.lastError})`).join('; ')}`);
      });
    },

    /** Starts the senders (restSenders REST loops, wsSenders WebSocket loops). */
    startSending() {
      if (sending) return;
      sending = true;
      for (let k = 0; k < restSenders; k++) senders.push(restSender(k));
      for (const c of wsSenderClients) senders.push(wsSender(c));
    },

    /** Stops the senders and waits for their last request to be answered. */
    async stopSending() {
      sending = false;
      await Promise.all(senders.splice(0));
    },

    /**
     * Waits until every client holds `want` (the stored ids after `since`,
     * in order) or `timeout` ms pass; does not throw: check() says what is wrong.
     */
    async settle(want, { timeout = 20000 } = {}) {
      const last = want.at(-1);
      const t0 = Date.now();
      while (Date.now() - t0 < timeout) {
        if (all.every((c) => c.ids.length >= want.length && (!last || c.seen.has(last)))) return Date.now() - t0;
        await sleep(100);
      }
      return -1;
    },

    /**
     * Compares every client with `want`; returns a list of problems (empty
     * when every client holds exactly `want`, in order, each once).
     */
    check(want) {
      const problems = [];
      const wantSet = new Set(want);
      for (const c of all) {
        const missing = want.filter((id) => !c.seen.has(id));
        const extra = c.ids.filter((id) => !wantSet.has(id));
        const p = [];
        if (missing.length) p.push(`${missing.length} missing (first ${missing.slice(0, 3).join(', ')})`);
        if (c.dups.length) p.push(`${c.dups.length} delivered twice (first ${c.dups.slice(0, 3).join(', ')})`);
        if (c.disorder.length) p.push(`${c.disorder.length} out of order (first ${c.disorder[0].join(' then ')})`);
        if (extra.length) p.push(`${extra.length} not in the stream (first ${extra.slice(0, 3).join(', ')})`);
        if (p.length) problems.push(`${c.name}: ${p.join('; ')} [got ${c.ids.length} of ${want.length}, ${c.reconnects} reconnects, ${c.errors} errors, last error: ${c.lastError}]`);
      }
      return problems;
    },

    /** Per transport: clients, reconnects, errors, messages received. */
    summary() {
      const out = {};
      for (const c of all) {
        const s = (out[c.kind] ??= { clients: 0, reconnects: 0, errors: 0, received: 0, dups: 0 });
        s.clients++;
        s.reconnects += c.reconnects;
        s.errors += c.errors;
        s.received += c.ids.length;
        s.dups += c.dups.length;
      }
      out.sent = { acknowledged: sent.length, refused: failedSends.length };
      return out;
    },

    describeErrors() {
      const withErr = all.filter((c) => c.errors > 0);
      if (!withErr.length) return 'no client errors';
      return `${withErr.length} clients saw errors, e.g. ${withErr.slice(0, 3).map((c) => `${c.name}: ${c.lastError}`).join('; ')}`;
    },

    /** Stops everything: loops end, streams close, in-flight requests are aborted. */
    async close() {
      stopped = true;
      sending = false;
      for (const c of [...all, ...wsSenderClients]) c.close?.();
      for (const r of inflight) r.destroy();
      inflight.clear();
      await Promise.race([Promise.all([...loops, ...senders]), sleep(3000)]);
      agent.destroy();
    },
  };
  return load;
}
