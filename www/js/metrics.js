// metrics.js - what each transport costs and how fast it delivers, from the
// browser's own clock, its Resource Timing entries and the bytes it is handed.

export const WINDOW = 50;          // latency samples in the p50/p95 window
export const HISTORY_MS = 120000;  // what the charts show
// Estimates for what JavaScript cannot see. They are labelled "≈" on the page.
export const HEAD_EST = 160;       // a small HTTP response head (status line + ~6 headers)
export const WS_101_EST = 130;     // "101 Switching Protocols" with Upgrade/Connection/Accept

const utf8 = new TextEncoder();
export const byteLength = (s) => utf8.encode(s).length;

// Bytes on the wire of one unmasked server→client WebSocket text frame.
export function wsFrameBytes(payloadBytes) {
  const header = payloadBytes < 126 ? 2 : payloadBytes < 65536 ? 4 : 10;
  return header + payloadBytes;
}

// Bytes of one SSE event as the server wrote it (event:, id:, data: lines).
export function sseEventBytes(type, id, data) {
  let n = 0;
  if (type) n += byteLength(`event: ${type}\n`);
  if (id) n += byteLength(`id: ${id}\n`);
  for (const line of String(data).split('\n')) n += byteLength(`data: ${line}\n`);
  return n + 1;
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export class TransportMetrics {
  constructor(key) {
    this.key = key;
    this.reset();
  }

  reset() {
    this.delivered = 0;        // distinct stored messages shown in the pane
    this.otherEvents = 0;      // typing, presence
    this.requests = 0;         // HTTP requests the pane made (upgrade and stream opens included)
    this.empties = 0;          // answers that carried nothing new
    this.reconnects = 0;
    this.connections = 0;      // streams/sockets that opened
    this.framesIn = 0;
    this.framesOut = 0;
    this.bytesOut = 0;         // what the pane sent on its own connection (WebSocket)
    this.rtBytes = 0;          // Resource Timing transferSize, summed
    this.rtEntries = 0;
    this.rtZero = 0;           // entries whose transferSize the browser left at 0
    this.estBytes = 0;         // counted from payloads + estimated heads
    this.holdMs = 0;           // long poll: time the server held requests
    this.holds = 0;
    this.window = [];          // last WINDOW latencies, ms
    this.timed = 0;
    this.samples = [];         // {t, v} latency points for the chart
    this.byteSamples = [];     // {t, v} cumulative bytes for the chart
    this.openSince = null;
    this.openMs = 0;
    this.startedAt = performance.now();
  }

  // Whether the bytes figure is measured (Resource Timing) or estimated.
  get measured() {
    return this.rtEntries > 0 && this.rtZero === 0;
  }

  get bytes() {
    return this.measured ? this.rtBytes : this.estBytes;
  }

  get bytesPerMessage() {
    return this.delivered ? this.bytes / this.delivered : null;
  }

  latency(ms) {
    this.timed++;
    this.window.push(ms);
    if (this.window.length > WINDOW) this.window.shift();
    this.samples.push({ t: performance.now(), v: ms });
  }

  get p50() { return percentile([...this.window].sort((a, b) => a - b), 50); }
  get p95() { return percentile([...this.window].sort((a, b) => a - b), 95); }

  opened() {
    this.connections++;
    if (this.openSince == null) this.openSince = performance.now();
  }

  closed() {
    if (this.openSince != null) this.openMs += performance.now() - this.openSince;
    this.openSince = null;
  }

  get uptimeMs() {
    return this.openMs + (this.openSince == null ? 0 : performance.now() - this.openSince);
  }

  get requestsPerMin() {
    const min = (performance.now() - this.startedAt) / 60000;
    return min > 0.05 ? this.requests / min : null;
  }

  sampleBytes(now) {
    this.byteSamples.push({ t: now, v: this.bytes });
    trim(this.byteSamples, now);
    trim(this.samples, now);
  }
}

function trim(list, now) {
  while (list.length && list[0].t < now - HISTORY_MS) list.shift();
}

// Which pane a Resource Timing entry belongs to, from its URL. The polling
// panes tag their presence requests with ?cl= so they can be told apart.
export function classify(url) {
  let u;
  try { u = new URL(url, location.href); } catch { return null; }
  if (u.origin !== location.origin) return null;
  const m = u.pathname.match(/\/api\/rooms\/[^/]+\/(messages|poll|events|ws|presence|typing)$/);
  if (!m) return null;
  switch (m[1]) {
    // ?cl=rooms: the room list's unread counts, not the short-poll pane's
    case 'messages': return u.searchParams.has('since') && !u.searchParams.has('cl') ? 'short' : null;
    case 'poll': return 'long';
    case 'presence': {
      // The pushing panes' one presence read is in their ≈ estimate already.
      const cl = u.searchParams.get('cl');
      return cl === 'short' || cl === 'long' ? cl : null;
    }
    default: return null;  // SSE/WS never finish; composer traffic is not a pane's
  }
}

// Feeds every finished request's transferSize to its pane's metrics.
export function observeResources(metricsByKey) {
  if (typeof PerformanceObserver === 'undefined') return;
  // The default buffer of 250 entries fills in minutes of short polling;
  // observers still see every entry, so the buffer is simply emptied.
  performance.addEventListener?.('resourcetimingbufferfull', () => performance.clearResourceTimings());
  const take = (entry) => {
    const key = classify(entry.name);
    const m = key && metricsByKey[key];
    if (!m) return;
    // A request that got no answer (server down) has nothing to count.
    if (!(entry.transferSize > 0) && !(entry.responseStart > 0)) return;
    m.rtEntries++;
    if (entry.transferSize > 0) m.rtBytes += entry.transferSize;
    else m.rtZero++;
  };
  const po = new PerformanceObserver((list) => list.getEntries().forEach(take));
  try {
    po.observe({ type: 'resource', buffered: true });
  } catch {
    po.observe({ entryTypes: ['resource'] });
  }
}

// Latency of your own messages: the moment you pressed send, matched to the
// id the server gave it. A message can reach a pane before its POST answers,
// so an unmatched message of yours binds to the oldest pending send with the
// same text.
export class SendClock {
  constructor() {
    this.pending = [];
    this.byId = new Map();
  }

  start(text, via) {
    const e = { text, via, t0: performance.now(), id: null };
    this.pending.push(e);
    const old = performance.now() - HISTORY_MS;
    while (this.pending.length && this.pending[0].t0 < old) this.pending.shift();
    if (this.byId.size > 2000) {
      for (const [id, v] of this.byId) if (v.t0 < old) this.byId.delete(id);
    }
    return e;
  }

  cancel(entry) {
    const i = this.pending.indexOf(entry);
    if (i >= 0) this.pending.splice(i, 1);
  }

  bind(entry, id) {
    if (!entry || entry.id || !id || this.byId.has(id)) return;
    entry.id = id;
    this.byId.set(id, entry);
  }

  // A WebSocket ack answers the oldest unanswered send on that socket.
  ack(id) {
    if (this.byId.has(id)) return;
    this.bind(this.pending.find((p) => p.via === 'ws' && !p.id), id);
  }

  // ms since send for an event of yours that was just shown; null otherwise.
  shown(evt) {
    if (!evt.id) return null;
    let e = this.byId.get(evt.id);
    if (!e) {
      e = this.pending.find((p) => !p.id && p.text === evt.text);
      if (!e) return null;
      this.bind(e, evt.id);
    }
    return performance.now() - e.t0;
  }
}
