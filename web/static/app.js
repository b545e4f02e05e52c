// The trader dashboard: watchlists of live quotes streamed through
// tickerd's JavaScript client (/v1/client.js, the module integrators
// import). This file wires the parts: sign-in, watchlists and their tabs,
// the add box, the grid, the detail panel and the status bar.
import { TickerClient, TRANSPORTS } from './v1/client.js';
import { Detail } from './detail.js';
import { grouped } from './format.js';
import { Grid } from './grid.js';
import { themeChanged } from './sparkline.js';
import { Stats } from './stats.js';
import { SymbolIndex } from './symbols.js';
import { Watchlists, normalize, parseList } from './watchlists.js';

const TOKEN_KEY = 'tickerd.token'; // sessionStorage: this tab only
const THEME_KEY = 'tickerd.theme';
const DEFAULT_ROWS = 20; // a first visit's list: the server's first symbols
// Rows out of view are subscribed at BACKGROUND_HZ (?bgHz=N), those in
// view (and the detail panel's symbol) at the page's maxHz: the server
// conflates what nobody is looking at, and the page's work follows the
// screen, not the list's length.
const BACKGROUND_HZ = Number(new URLSearchParams(location.search).get('bgHz')) || 1;
const NAMES = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

// api fetches a JSON endpoint with the credential, if any.
function api(path, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  return fetch(new URL(path, location.href), { headers, cache: 'no-store' });
}

// askToken shows the sign-in dialog and resolves with what was typed.
function askToken(message) {
  const dlg = $('login');
  const err = $('login-error');
  err.textContent = message;
  err.hidden = !message;
  $('token').value = '';
  document.body.classList.add('signed-out');
  // Esc would close the modal with no key: the page has nothing to show.
  dlg.oncancel = (e) => e.preventDefault();
  if (!dlg.open) dlg.showModal();
  return new Promise((resolve) => {
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const t = $('token').value.trim();
      dlg.close();
      document.body.classList.remove('signed-out');
      resolve(t);
    }, { once: true });
  });
}

// signIn returns a credential the server takes (or '' in open mode) and
// its symbol list; null symbols when the server could not be asked (it
// may be restarting: the client will reconnect by itself).
async function signIn(message = '') {
  let token = message ? '' : sessionStorage.getItem(TOKEN_KEY) ?? '';
  if (message) token = await askToken(message);
  for (;;) {
    let r;
    try {
      r = await api('v1/symbols', token);
    } catch {
      return { token, symbols: null };
    }
    if (r.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      token = await askToken(token ? 'That key was refused.' : '');
      continue;
    }
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    if (!r.ok) return { token, symbols: null };
    return { token, symbols: (await r.json()).symbols ?? [] };
  }
}

function setTheme(t) {
  document.documentElement.dataset.theme = t;
  try {
    localStorage.setItem(THEME_KEY, t);
  } catch {
    // Not kept; the switch still works.
  }
  themeChanged();
}

class Dashboard {
  constructor() {
    this.index = new SymbolIndex();
    this.lists = new Watchlists();
    this.stats = new Stats();
    this.token = '';
    this.client = null;
    this.subscribed = new Set();
    this.hz = new Map(); // symbol → the maxHz it is subscribed at
    this.rateTimer = 0;
    this.naive = params.get('paint') === 'naive';
    this.pendingDefault = false; // a first visit waits for the server's symbols
    this.waited = 0;
    this.reauthing = false;
    this.grid = new Grid($('grid'), {
      visible: () => this.#scheduleRates(),
      open: (sym) => this.detail.open(sym),
      remove: (sym) => this.lists.remove(sym),
      move: (sym, to) => {
        this.lists.move(sym, to);
        this.grid.select(sym, true);
      },
    }, { naive: this.naive });
    this.detail = new Detail($('detail'), (sym) => ({ record: this.client?.get(sym), history: this.grid.history.get(sym) }));
    this.detail.onClose = () => {
      this.grid.select(this.grid.selected, true);
      this.#scheduleRates();
    };
    this.detail.onOpen = () => this.#rates();
    this.grid.onFrame = () => this.detail.refresh();
    this.lists.onChange(() => this.#listChanged());
  }

  async start() {
    const { token, symbols } = await signIn();
    this.token = token;
    $('logout').hidden = !token;
    if (symbols) this.index.set(symbols);
    const shared = parseList(params.get('symbols'));
    if (shared.length) {
      this.lists.put(params.get('list') || 'Shared', shared);
    } else if (params.get('list')) {
      this.lists.select(params.get('list'));
    }
    if (this.lists.empty) {
      if (symbols?.length) {
        this.lists.put('Main', symbols.slice(0, DEFAULT_ROWS));
      } else {
        // A first visit while the server is down or has no data yet: the
        // list fills in with its first symbols once it has some.
        this.pendingDefault = true;
        this.note(symbols ? 'No symbols yet: waiting for the feed…' : 'Cannot reach the server yet; the list fills in when it answers.');
      }
    }
    this.#wireAdd();
    this.#wireKeys();
    this.#connect();
    this.#listChanged();
    setInterval(() => this.#tick(), 1000);
  }

  note(text) {
    $('note').textContent = text;
    $('note').hidden = !text;
  }

  #connect() {
    this.client?.close();
    this.subscribed.clear();
    this.hz.clear();
    const first = TRANSPORTS.indexOf(params.get('transport'));
    const client = new TickerClient({ token: this.token || undefined, transports: TRANSPORTS.slice(Math.max(first, 0)) });
    this.client = client;
    this.maxHz = Number(params.get('maxHz')) || 0;
    client.onState((s) => this.#state(s));
    client.onError((e) => {
      if (e.symbol) {
        this.grid.refused(e.symbol, e.code, e.message);
        return;
      }
      if (e.code === 'unauthorized' || e.code === 'revoked') {
        this.#reauth(`Signed out by the server: ${e.message || e.code}.`);
        return;
      }
      console.warn(`tickerd: ${e.code}: ${e.message}`);
    });
    client.onChange((ev) => {
      this.stats.record(ev.latency);
      this.grid.update(ev);
      // The panel follows its symbol even when the row is scrolled away
      // (refresh is throttled to a few paints a second).
      if (ev.symbol === this.detail.sym) this.detail.refresh();
    });
    this.#subscribe();
    client.start();
  }

  async #reauth(message) {
    if (this.reauthing) return;
    this.reauthing = true;
    this.client?.close('signed out');
    sessionStorage.removeItem(TOKEN_KEY);
    const { token, symbols } = await signIn(message);
    this.token = token;
    $('logout').hidden = !token;
    if (symbols) this.index.set(symbols);
    this.reauthing = false;
    this.#connect();
  }

  // subscribe makes the client's subscriptions the active list.
  #subscribe() {
    const want = new Set(this.lists.symbols());
    const add = [...want].filter((s) => !this.subscribed.has(s));
    const drop = [...this.subscribed].filter((s) => !want.has(s));
    if (drop.length) this.client.unsubscribe(drop);
    for (const s of drop) this.hz.delete(s);
    this.subscribed = want;
    if (add.length) this.#rates();
  }

  #scheduleRates() {
    if (!this.rateTimer) this.rateTimer = setTimeout(() => this.#rates(), 150);
  }

  // rates subscribes each symbol at the rate its visibility calls for,
  // sending only the changes, one op per rate.
  #rates() {
    clearTimeout(this.rateTimer);
    this.rateTimer = 0;
    if (!this.client) return;
    const groups = new Map();
    for (const sym of this.subscribed) {
      const fast = this.naive || this.grid.isVisible(sym) || sym === this.detail.sym;
      const hz = fast ? this.maxHz : BACKGROUND_HZ;
      if (this.hz.get(sym) === hz) continue;
      this.hz.set(sym, hz);
      if (!groups.has(hz)) groups.set(hz, []);
      groups.get(hz).push(sym);
    }
    for (const [hz, syms] of groups) this.client.subscribe(syms, { maxHz: hz });
  }

  #listChanged() {
    const syms = this.lists.symbols();
    this.grid.setSymbols(syms, (s) => this.client?.get(s));
    if (this.client) this.#subscribe();
    if (this.detail.isOpen && !syms.includes(this.detail.sym)) this.detail.close();
    $('empty').hidden = syms.length > 0;
    this.#tabs();
    const share = new URL(location.href);
    share.search = syms.length ? `?symbols=${syms.join(',')}` : '';
    $('share').href = share.href;
    this.#tick(false);
  }

  // tabs draws the watchlist tabs: click shows a list, double-click (or
  // F2 on the tab) renames it in place, + names a new one in place, and −
  // deletes the list shown on a second press.
  #tabs() {
    const nav = $('lists');
    const btns = this.lists.names().map((name) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'tab';
      b.textContent = name;
      b.setAttribute('aria-pressed', String(name === this.lists.activeName));
      b.title = name === this.lists.activeName ? 'Double-click or F2 to rename' : `Show ${name}`;
      b.addEventListener('click', () => this.lists.select(name));
      const rename = () => this.#nameBox(b, name, (n) => this.lists.rename(n));
      b.addEventListener('dblclick', rename);
      b.addEventListener('keydown', (e) => e.key === 'F2' && rename());
      return b;
    });
    const add = document.createElement('button');
    add.type = 'button';
    add.className = 'tab new';
    add.textContent = '+';
    add.title = 'New watchlist';
    add.setAttribute('aria-label', 'New watchlist');
    add.addEventListener('click', () =>
      this.#nameBox(add, '', (n) => {
        this.lists.create(n);
        $('add').focus();
      }),
    );
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'tab del';
    del.textContent = '−';
    del.title = `Delete watchlist ${this.lists.activeName}`;
    del.setAttribute('aria-label', del.title);
    let armed = 0;
    del.addEventListener('click', () => {
      if (armed) {
        clearTimeout(armed);
        this.lists.delete();
        return;
      }
      del.textContent = `Delete ${this.lists.activeName}?`;
      del.classList.add('armed');
      armed = setTimeout(() => {
        armed = 0;
        del.textContent = '−';
        del.classList.remove('armed');
      }, 3000);
    });
    nav.replaceChildren(...btns, add, del);
  }

  // nameBox puts a text box in place of el; Enter calls done with the
  // name, Escape or leaving it puts el back.
  #nameBox(el, value, done) {
    const box = document.createElement('input');
    box.className = 'tab name';
    box.value = value;
    box.placeholder = 'Watchlist name';
    box.setAttribute('aria-label', 'Watchlist name');
    box.maxLength = 40;
    let over = false;
    const finish = (ok) => {
      if (over) return;
      over = true;
      const n = box.value.trim();
      box.replaceWith(el);
      if (ok && n) done(n);
      else el.focus();
    };
    box.addEventListener('keydown', (e) => {
      e.stopPropagation();
      if (e.key === 'Enter') finish(true);
      if (e.key === 'Escape') finish(false);
    });
    box.addEventListener('blur', () => finish(false));
    el.replaceWith(box);
    box.focus();
    box.select();
  }

  #state(s) {
    const el = $('conn');
    const live = s.state === 'open';
    el.dataset.state = live ? 'live' : s.state;
    const name = NAMES[s.transport] ?? s.transport;
    let text = {
      connecting: `connecting${name ? ` (${name})` : ''}…`,
      open: `live · ${name}`,
      reconnecting: `reconnecting${name ? ` (${name})` : ''}…`,
      closed: `closed${s.reason ? `: ${s.reason}` : ''}`,
    }[s.state];
    if (s.state === 'reconnecting' && s.retryIn) text = `reconnecting in ${(s.retryIn / 1000).toFixed(1)} s…`;
    el.querySelector('b').textContent = text;
    el.title = s.reason ? `last problem: ${s.reason}` : '';
    this.grid.offline(!live);
    if (live && this.index.size === 0) this.#refreshIndex();
  }

  // tick updates the status bar once a second.
  #tick(roll = true) {
    if (roll) this.stats.roll();
    if (roll && this.pendingDefault && ++this.waited % 5 === 0) this.#refreshIndex();
    const p50 = this.stats.p50();
    $('latency').textContent = `p50 ${Number.isNaN(p50) ? '—' : p50 < 10 ? p50.toFixed(1) : p50.toFixed(0)} ms`;
    $('rate').textContent = `${grouped(String(Math.round(this.stats.rate(3))))} upd/s`;
    const n = this.lists.symbols().length;
    $('count').textContent = `${n} symbol${n === 1 ? '' : 's'}`;
    let delayed = 0;
    for (const s of this.subscribed) if (this.client?.get(s)?.delayed) delayed++;
    $('delayed-note').hidden = delayed === 0;
    $('delayed-note').textContent = `${delayed} delayed`;
  }

  async #refreshIndex() {
    try {
      const r = await api('v1/symbols', this.token);
      if (r.ok) this.index.set((await r.json()).symbols ?? []);
      if (this.pendingDefault && this.index.size) {
        this.pendingDefault = false;
        this.note('');
        if (this.lists.empty) this.lists.put('Main', this.index.list.slice(0, DEFAULT_ROWS));
      }
    } catch {
      // Kept as it was; asked again on the next focus.
    }
  }

  // The add box: type, pick with arrows, Enter adds; autocomplete from
  // the server's symbols.
  #wireAdd() {
    const input = $('add');
    const box = $('suggest');
    let items = [];
    let active = -1;
    const render = () => {
      box.replaceChildren(
        ...items.map((s, i) => {
          const li = document.createElement('li');
          li.id = `opt-${i}`;
          li.role = 'option';
          li.textContent = s;
          li.setAttribute('aria-selected', String(i === active));
          if (this.lists.symbols().includes(s)) li.classList.add('have');
          return li;
        }),
      );
      box.hidden = items.length === 0;
      input.setAttribute('aria-expanded', String(!box.hidden));
      if (active >= 0) input.setAttribute('aria-activedescendant', `opt-${active}`);
      else input.removeAttribute('aria-activedescendant');
    };
    const close = () => {
      items = [];
      active = -1;
      render();
    };
    const commit = (text) => {
      const syms = text.includes(',') ? parseList(text) : [normalize(text)].filter(Boolean);
      if (!syms.length) {
        input.classList.add('bad');
        return;
      }
      this.lists.add(...syms);
      this.grid.select(syms[syms.length - 1]);
      input.value = '';
      input.classList.remove('bad');
      close();
    };
    input.addEventListener('focus', () => {
      if (Date.now() - this.index.loaded > 30000 || this.index.size === 0) this.#refreshIndex();
    });
    input.addEventListener('input', () => {
      // The / that focused the box may arrive as a character too; no
      // symbol contains one.
      if (input.value.includes('/')) input.value = input.value.replaceAll('/', '');
      input.classList.remove('bad');
      items = this.index.search(input.value, 10);
      active = items.length && items[0] === input.value.trim().toUpperCase() ? 0 : -1;
      render();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        if (!items.length) return;
        e.preventDefault();
        const d = e.key === 'ArrowDown' ? 1 : -1;
        active = (active + d + items.length + 1) % (items.length + 1);
        if (active === items.length) active = -1;
        render();
      } else if (e.key === 'Enter') {
        e.preventDefault();
        commit(active >= 0 ? items[active] : input.value);
      } else if (e.key === 'Tab' && active >= 0) {
        input.value = items[active];
      } else if (e.key === 'Escape') {
        e.stopPropagation();
        if (items.length) close();
        else {
          input.value = '';
          this.grid.select(this.grid.selected || this.lists.symbols()[0] || '', true);
        }
      }
    });
    input.addEventListener('blur', () => setTimeout(close, 150));
    box.addEventListener('mousedown', (e) => {
      const li = e.target.closest('li');
      if (!li) return;
      e.preventDefault();
      commit(li.textContent);
    });
  }

  #wireKeys() {
    $('theme').addEventListener('click', () => this.#toggleTheme());
    $('help-btn').addEventListener('click', () => $('help').showModal());
    $('logout').addEventListener('click', () => this.#reauth(''));
    $('share').addEventListener('click', (e) => {
      if (navigator.clipboard && window.isSecureContext) {
        e.preventDefault();
        navigator.clipboard.writeText($('share').href).then(() => this.note('Link copied.'), () => {});
        setTimeout(() => this.note(''), 2000);
      }
    });
    document.addEventListener('keydown', (e) => {
      if (e.ctrlKey || e.metaKey) return;
      const typing = e.target.closest?.('input, textarea, dialog');
      if (e.key === 'Escape' && this.detail.isOpen) {
        e.preventDefault();
        this.detail.close();
        return;
      }
      if (typing) return;
      const names = this.lists.names();
      const cur = names.indexOf(this.lists.activeName);
      switch (e.key) {
        case '/':
          e.preventDefault();
          $('add').focus();
          return;
        case 't':
          this.#toggleTheme();
          return;
        case '?':
          $('help').showModal();
          return;
        case '[':
        case ']':
          if (names.length > 1) this.lists.select(names[(cur + (e.key === ']' ? 1 : -1) + names.length) % names.length]);
          return;
        case 'ArrowDown':
        case 'ArrowUp':
          // Arrows anywhere outside an input drive the grid.
          if (!e.target.closest?.('#grid')) {
            e.preventDefault();
            this.grid.select(this.grid.selected || this.lists.symbols()[0] || '', true);
          }
          return;
        default:
      }
    });
  }

  #toggleTheme() {
    setTheme(document.documentElement.dataset.theme === 'light' ? 'dark' : 'light');
    this.grid.redrawSparks();
    this.detail.refresh(true);
  }
}

const dash = new Dashboard();
window.dashboard = dash; // for the console and the browser tests
dash.start();
