// pane.js - one transport's view of the room: messages, state, typing, presence.
// Every piece of user text goes in through textContent.

import { compareIds } from './api.js';

const KEEP = 300;          // messages kept in a pane's DOM
const TYPING_MS = 4000;    // how long "… is typing" stays after the last event

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

export class Pane {
  constructor(container, { key, title, how, color }) {
    const tpl = document.getElementById('pane-tpl');
    this.root = tpl.content.firstElementChild.cloneNode(true);
    this.root.id = `pane-${key}`;
    this.root.dataset.transport = key;
    this.root.dataset.state = 'closed';
    this.root.setAttribute('aria-label', `${title} pane`);
    this.root.style.setProperty('--c', color);
    this.q('.pane-title').textContent = title;
    this.q('.pane-how').textContent = how;
    this.stateEl = this.q('.state');
    this.list = this.q('.msgs');
    this.list.setAttribute('aria-label', `Messages received over ${title}`);
    this.whoEl = this.q('.who');
    this.typingEl = this.q('.typing');
    this.seen = new Set();
    this.typers = new Map();
    this.stateInfo = { state: 'closed' };
    this.me = null;
    container.append(this.root);
  }

  q(sel) { return this.root.querySelector(sel); }

  clear() {
    this.list.replaceChildren();
    this.seen.clear();
    this.typers.clear();
    this.whoEl.replaceChildren();
    this.typingEl.textContent = '';
  }

  setState(state, info = {}) {
    this.stateInfo = { state, ...info };
    this.root.dataset.state = state;
    this.renderState();
  }

  renderState() {
    const { state, until, since, detail, reason } = this.stateInfo;
    let text = state;
    if (state === 'reconnecting' && until) {
      text = `reconnecting in ${Math.max(0, Math.ceil((until - Date.now()) / 1000))} s`;
    } else if (state === 'reconnecting' && since) {
      text = `reconnecting (browser) ${Math.floor((Date.now() - since) / 1000)} s`;
    }
    if (this.stateEl.textContent !== text) this.stateEl.textContent = text;
    this.stateEl.dataset.state = state;
    const title = [detail, reason].filter(Boolean).join(' — ');
    if (this.stateEl.title !== title) this.stateEl.title = title;
  }

  // Shows a stored message once. Returns the <li> when it was new, else null.
  addMessage(evt, { history = false } = {}) {
    const id = evt.id ? String(evt.id) : null;
    if (id) {
      if (this.seen.has(id)) return null;
      this.seen.add(id);
    }
    const li = el('li', 'msg');
    if (id) li.dataset.id = id;
    if (history) li.classList.add('history');
    const from = typeof evt.from === 'string' ? evt.from : '?';
    if (from === this.me) li.classList.add('mine');
    const ts = Number(evt.ts);
    const time = el('time', 'at', Number.isFinite(ts) ? clock.format(new Date(ts)) : '');
    if (Number.isFinite(ts)) time.dateTime = new Date(ts).toISOString();
    li.append(time, el('span', 'from', from), el('span', 'text', typeof evt.text === 'string' ? evt.text : ''));
    li.querySelector('.from').title = from;

    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    // Ids arrive in order on every transport; after a reconnect that overlaps,
    // the duplicate is dropped above, so scanning back from the end is short.
    let after = this.list.lastElementChild;
    while (id && after && after.dataset.id && compareIds(after.dataset.id, id) > 0) after = after.previousElementSibling;
    if (after) after.after(li); else this.list.prepend(li);
    while (this.list.childElementCount > KEEP) {
      const first = this.list.firstElementChild;
      first.remove();
    }
    if (nearBottom || history) this.list.scrollTop = this.list.scrollHeight;
    // A typist who just sent stops typing.
    if (this.typers.delete(from)) this.renderTyping();
    return li;
  }

  setLatency(li, ms) {
    const b = el('span', 'lat', `${Math.round(ms)} ms`);
    b.title = 'from pressing send to being shown in this pane';
    li.append(b);
  }

  setPresence(online) {
    const names = [...new Set(online.filter((n) => typeof n === 'string'))].sort();
    const items = names.map((n) => {
      const li = el('li', n === this.me ? 'me' : '', n);
      return li;
    });
    if (!items.length) items.push(el('li', 'none', 'nobody'));
    this.whoEl.replaceChildren(...items);
  }

  typing(from) {
    if (typeof from !== 'string') return;
    this.typers.set(from, Date.now() + TYPING_MS);
    this.renderTyping();
  }

  renderTyping() {
    const now = Date.now();
    for (const [who, until] of this.typers) if (until < now) this.typers.delete(who);
    const names = [...this.typers.keys()].map((n) => (n === this.me ? `${n} (you)` : n));
    const text = !names.length ? ''
      : names.length === 1 ? `${names[0]} is typing…`
      : `${names.slice(0, -1).join(', ')} and ${names.at(-1)} are typing…`;
    if (this.typingEl.textContent !== text) this.typingEl.textContent = text;
  }

  setMini(values) {
    for (const [k, v] of Object.entries(values)) {
      const dd = this.root.querySelector(`[data-m="${k}"]`);
      if (dd && dd.textContent !== v) dd.textContent = v;
    }
  }

  tick() {
    this.renderState();
    if (this.typers.size) this.renderTyping();
  }
}
