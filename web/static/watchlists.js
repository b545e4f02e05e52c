// Watchlists: several named, ordered lists of symbols, kept in
// localStorage under one key so that a page reload (or a second tab)
// finds them again. Storage that refuses writes (private mode, quota)
// leaves the lists working for the page's lifetime.

export const STORAGE_KEY = 'tickerd.watchlists.v1';

// SYMBOL is the contract's symbol syntax.
export const SYMBOL = /^[A-Z0-9][A-Z0-9._:-]{0,31}$/;

// normalize upper-cases and trims a typed symbol; '' when it is not one.
export function normalize(s) {
  const v = String(s ?? '').trim().toUpperCase();
  return SYMBOL.test(v) ? v : '';
}

// parseList reads "AAPL, msft,,IBM" into distinct valid symbols.
export function parseList(text) {
  return [...new Set(String(text ?? '').split(',').map(normalize).filter(Boolean))];
}

export class Watchlists {
  // storage is localStorage or a stand-in with getItem/setItem.
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
    this.listeners = new Set();
    this.lists = []; // [{name, symbols: []}]
    this.activeName = '';
    try {
      const saved = JSON.parse(storage?.getItem(STORAGE_KEY) ?? 'null');
      if (saved && Array.isArray(saved.lists)) {
        for (const l of saved.lists) {
          if (typeof l?.name === 'string' && l.name && Array.isArray(l.symbols)) {
            this.lists.push({ name: l.name, symbols: parseList(l.symbols.join(',')) });
          }
        }
        this.activeName = saved.active;
      }
    } catch {
      // Unreadable or corrupt: start afresh.
    }
    if (!this.find(this.activeName)) this.activeName = this.lists[0]?.name ?? '';
  }

  // empty reports whether no list was ever saved.
  get empty() {
    return this.lists.length === 0;
  }

  get active() {
    return this.find(this.activeName);
  }

  // symbols of the active list, in order (a copy).
  symbols() {
    return [...(this.active?.symbols ?? [])];
  }

  names() {
    return this.lists.map((l) => l.name);
  }

  find(name) {
    return this.lists.find((l) => l.name === name);
  }

  // put creates or replaces the list name with symbols and makes it active.
  put(name, symbols) {
    const list = this.find(name);
    if (list) list.symbols = parseList(symbols.join(','));
    else this.lists.push({ name, symbols: parseList(symbols.join(',')) });
    this.activeName = name;
    this.#changed();
  }

  // create adds an empty list (a fresh name if name is taken) and selects it.
  create(name) {
    let n = name.trim() || 'List';
    for (let i = 2; this.find(n); i++) n = `${name.trim() || 'List'} ${i}`;
    this.lists.push({ name: n, symbols: [] });
    this.activeName = n;
    this.#changed();
    return n;
  }

  rename(name) {
    const n = name.trim();
    if (!n || !this.active || this.find(n)) return false;
    this.active.name = n;
    this.activeName = n;
    this.#changed();
    return true;
  }

  // delete removes the active list; the first remaining one becomes active.
  delete() {
    this.lists = this.lists.filter((l) => l.name !== this.activeName);
    if (!this.lists.length) this.lists.push({ name: 'Main', symbols: [] });
    this.activeName = this.lists[0].name;
    this.#changed();
  }

  select(name) {
    if (!this.find(name) || name === this.activeName) return;
    this.activeName = name;
    this.#changed();
  }

  // add appends symbols to the active list; returns those that were new.
  add(...symbols) {
    if (!this.active) this.lists.push((this.activeName = 'Main') && { name: 'Main', symbols: [] });
    const list = this.active;
    const added = symbols.map(normalize).filter((s) => s && !list.symbols.includes(s));
    if (added.length) {
      list.symbols.push(...new Set(added));
      this.#changed();
    }
    return added;
  }

  remove(symbol) {
    const list = this.active;
    const i = list?.symbols.indexOf(symbol) ?? -1;
    if (i < 0) return;
    list.symbols.splice(i, 1);
    this.#changed();
  }

  // move puts symbol at index to (clamped) in the active list.
  move(symbol, to) {
    const list = this.active;
    const i = list?.symbols.indexOf(symbol) ?? -1;
    if (i < 0) return;
    const j = Math.max(0, Math.min(list.symbols.length - 1, to));
    if (i === j) return;
    list.symbols.splice(i, 1);
    list.symbols.splice(j, 0, symbol);
    this.#changed();
  }

  // onChange(fn): fn() after every change, once saved.
  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  #changed() {
    try {
      this.storage?.setItem(STORAGE_KEY, JSON.stringify({ active: this.activeName, lists: this.lists }));
    } catch {
      // Not persisted; the lists still work until the page closes.
    }
    for (const fn of this.listeners) fn();
  }
}
