// api.js - names, ids, the stored identity and the REST calls of DESIGN.md.

export const NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;
export const ROOM_RE = /^[a-z0-9_-]{1,64}$/;

// Stream ids are opaque to clients, but "ms-seq" compares numerically and the
// panes need an order to insert into and a maximum to resume from.
export function compareIds(a, b) {
  const [am, as = '0'] = String(a).split('-');
  const [bm, bs = '0'] = String(b).split('-');
  if (am.length !== bm.length) return am.length - bm.length;
  if (am !== bm) return am < bm ? -1 : 1;
  if (as.length !== bs.length) return as.length - bs.length;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

export function maxId(a, b) {
  if (a == null) return b;
  if (b == null) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

// The newest possible stream id: `before` it lies the newest history.
export const MAX_ID = '18446744073709551615-18446744073709551615';

const KEY = 'crosstalk.identity';

export function loadIdentity() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) || 'null');
    if (v && typeof v.name === 'string' && typeof v.token === 'string') return v;
  } catch { /* a damaged entry is as good as none */ }
  return null;
}

export function saveIdentity(id) {
  try { localStorage.setItem(KEY, JSON.stringify(id)); } catch { /* private mode */ }
}

export function forgetIdentity() {
  try { localStorage.removeItem(KEY); } catch { /* private mode */ }
}

// Where each room was last read, for unread counts: {room: {id, ts}}.
const VISITS = 'crosstalk.visits';

export function loadVisits() {
  try {
    const v = JSON.parse(localStorage.getItem(VISITS) || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch { /* a damaged entry is as good as none */ }
  return {};
}

export function saveVisit(room, id, ts) {
  const v = loadVisits();
  const old = v[room];
  if (old && old.id && id && compareIds(old.id, id) >= 0) return;
  v[room] = { id: id || (old && old.id) || null, ts: Math.max(Number(ts) || 0, (old && old.ts) || 0) };
  try { localStorage.setItem(VISITS, JSON.stringify(v)); } catch { /* private mode */ }
}

// An idempotency key for one send ([A-Za-z0-9_-]{1,64}): a retry with the
// same key is stored once.
export function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function loadRoom() {
  try { return localStorage.getItem('crosstalk.room'); } catch { return null; }
}

export function saveRoom(room) {
  try { localStorage.setItem('crosstalk.room', room); } catch { /* private mode */ }
}

// An HTTP failure with the server's JSON error, when it sent one.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(res) {
  let code = '', message = '';
  try {
    const body = await res.json();
    code = body.error || '';
    message = body.message || '';
  } catch { /* not JSON: nginx's own error pages are HTML */ }
  return new ApiError(res.status, code, message || `${res.status} ${res.statusText}`.trim());
}

export function roomPath(base, room, tail) {
  return `${base}/rooms/${encodeURIComponent(room)}/${tail}`;
}

// One JSON request. Resolves to {status, body, res}; a 4xx/5xx rejects with
// ApiError, a network failure with the browser's TypeError.
export async function request(url, { token, method = 'GET', body, signal, headers: extra } = {}) {
  const headers = { Accept: 'application/json', ...extra };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method, headers, signal, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    const err = await errorFrom(res);
    err.retryAfter = Number(res.headers.get('retry-after')) || 0;
    throw err;
  }
  const text = res.status === 204 ? '' : await res.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch {
      throw new ApiError(res.status, 'bad_json', `the server answered ${res.status} with something that is not JSON`);
    }
  }
  return { status: res.status, body: parsed, bytes: text.length, res };
}

export async function register(name) {
  const { body } = await request('/api/register', { method: 'POST', body: { name } });
  if (!body || typeof body.token !== 'string') throw new ApiError(201, 'bad_reply', 'register answered without a token');
  return { name: body.name || name, token: body.token };
}

// Every room, by recent activity, following the "more"/"next" pages
// (?after=<next>, at most `maxPages` of them).
export async function listRooms(token, maxPages = 20) {
  const rooms = [];
  let after = null;
  for (let page = 0; page < maxPages; page++) {
    const q = after ? `?after=${encodeURIComponent(after)}` : '';
    const { body } = await request(`/api/rooms${q}`, { token });
    for (const r of (body && Array.isArray(body.rooms)) ? body.rooms : []) {
      if (r && typeof r.name === 'string' && !rooms.some((x) => x.name === r.name)) rooms.push(r);
    }
    if (!body || body.more !== true || body.next == null || String(body.next) === String(after)) break;
    after = String(body.next);
  }
  return rooms;
}
