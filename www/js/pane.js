// pane.js - one transport's view of the room: messages, state, typing, presence.
// Every piece of user text goes in through textContent.

import { compareIds } from './api.js';

const KEEP = 300;          // messages kept in a pane's DOM (older pages loaded add to it)
const TYPING_MS = 4000;    // how long "… is typing" stays after the last event

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

export class Pane {
  constructor(container, { key, title, how, color, typingNote = '' }) {
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
    this.keep = KEEP;
    // Why the typing line of a polling pane stays empty.
    this.typingNote = typingNote;
    this.renderTyping();
    container.append(this.root);
  }

  q(sel) { return this.root.querySelector(sel); }

  clear() {
    this.list.replaceChildren();
    this.seen.clear();
    this.typers.clear();
    this.whoEl.replaceChildren();
    this.keep = KEEP;
    this.renderTyping();
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
  addMessage(evt, { history = false, older = false } = {}) {
    const id = evt.id ? String(evt.id) : null;
    if (id) {
      if (this.seen.has(id)) return null;
      this.seen.add(id);
    }
    const from = typeof evt.from === 'string' ? evt.from : '?';
    // One's own WebSocket send, shown while it waited for its ack, becomes
    // the message itself.
    let li = from === this.me && !history ? this.adoptPending(evt) : null;
    if (!li) li = this.messageLi(evt, from);
    if (id) li.dataset.id = id;
    if (history) li.classList.add('history');
    this.fill(li, evt);

    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    if (!li.isConnected) {
      // Ids arrive in order on every transport; after a reconnect that
      // overlaps, the duplicate is dropped above, so scanning back from the
      // end is short. Older pages scan from the start.
      if (older) {
        let before = this.list.firstElementChild;
        while (before && !(before.dataset.id && compareIds(before.dataset.id, id) > 0)) before = before.nextElementSibling;
        // what a notice says is missing goes before the notice
        while (before && before.previousElementSibling?.classList.contains('notice')) before = before.previousElementSibling;
        if (before) before.before(li); else this.list.append(li);
      } else {
        let after = this.list.lastElementChild;
        while (id && after && (after.classList.contains('pending') || after.classList.contains('acked') || (after.dataset.id && compareIds(after.dataset.id, id) > 0))) after = after.previousElementSibling;
        if (after) after.after(li); else this.list.prepend(li);
      }
    }
    while (this.list.childElementCount > this.keep) this.list.firstElementChild.remove();
    if (!older && (nearBottom || history)) this.list.scrollTop = this.list.scrollHeight;
    // A typist who just sent stops typing.
    if (this.typers.delete(from)) this.renderTyping();
    return li;
  }

  messageLi(evt, from) {
    const li = el('li', 'msg');
    if (from === this.me) li.classList.add('mine');
    const text = el('span', 'text', typeof evt.text === 'string' ? evt.text : '');
    text.dir = 'auto';
    const who = el('span', 'from', from);
    who.dir = 'auto';
    who.title = from;
    li.append(el('time', 'at', ''), who, text);
    return li;
  }

  fill(li, evt) {
    const ts = Number(evt.ts);
    const time = li.querySelector('.at');
    time.textContent = Number.isFinite(ts) ? clock.format(new Date(ts)) : '';
    if (Number.isFinite(ts)) time.dateTime = new Date(ts).toISOString();
  }

  // Room for a page of older messages.
  grow(n) {
    this.keep += n;
  }

  get oldestId() {
    for (const li of this.list.children) if (li.dataset.id) return li.dataset.id;
    return null;
  }

  // One's own message sent on the WebSocket, marked until its ack comes.
  addPending(text, key) {
    const li = this.messageLi({ text }, this.me);
    li.classList.add('pending');
    li.dataset.key = key;
    const mark = el('span', 'mark', 'sending…');
    mark.title = 'sent on the WebSocket; waiting for the server to acknowledge it';
    li.append(mark);
    this.list.append(li);
    this.list.scrollTop = this.list.scrollHeight;
    return li;
  }

  pendingLi(key) {
    return [...this.list.querySelectorAll('li.pending')].find((li) => li.dataset.key === key) || null;
  }

  // Own sends not yet taken over by their message.
  unclaimed() {
    return [...this.list.querySelectorAll('li.pending, li.acked')].filter((li) => !li.dataset.id);
  }

  // The ack came: the message is stored under `id`. It stays in place
  // until the message itself arrives on the socket and takes it over.
  ackPending(key, id) {
    const li = this.pendingLi(key);
    if (!li) return;
    li.classList.remove('pending', 'failed');
    li.classList.add('acked');
    li.querySelector('.mark')?.remove();
    if (id && this.seen.has(id)) li.remove(); // the message came first, elsewhere
    else if (id) li.dataset.ackId = id;
  }

  notePending(key, text, failed = false) {
    const li = this.pendingLi(key);
    if (!li) return;
    li.classList.toggle('failed', failed);
    li.querySelector('.mark').textContent = text;
  }

  // The own send this message is: the one acknowledged with its id, else
  // the oldest with its text (the ack may come after the message).
  adoptPending(evt) {
    const mine = this.unclaimed();
    const id = evt.id ? String(evt.id) : null;
    const li = mine.find((x) => id && x.dataset.ackId === id) ||
      mine.find((x) => !x.dataset.ackId && x.querySelector('.text').textContent === evt.text);
    if (!li) return null;
    li.classList.remove('pending', 'failed', 'acked');
    li.querySelector('.mark')?.remove();
    li.remove(); // placed again by id
    return li;
  }

  // A line in the message list that is not a message: the history was cut,
  // or reset. `action` = {label, run} adds a button.
  addNotice(kind, text, action) {
    const li = el('li', `notice ${kind}`);
    li.setAttribute('role', 'note');
    li.append(el('span', 'notice-text', text));
    if (action) {
      const b = el('button', 'linkish', action.label);
      b.type = 'button';
      b.addEventListener('click', action.run);
      li.append(' ', b);
    }
    this.list.append(li);
    this.list.scrollTop = this.list.scrollHeight;
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
    // A polling pane never has typers: it says why instead of staying blank.
    const shown = text || this.typingNote;
    if (this.typingEl.textContent !== shown) this.typingEl.textContent = shown;
    this.typingEl.classList.toggle('is-note', !text && !!shown);
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
