// The watchlist grid: one row per symbol, its cells written once per
// animation frame and only where a value changed. Rows scrolled out of
// view keep their changes pending and catch up when they come back into
// view, so a 500-row list costs the same per frame as the visible part.
import { cmp, fixed, grouped, hms, sign, signed } from './format.js';
import { History, priceOf } from './history.js';
import { sparkline } from './sparkline.js';

// COLUMNS after the symbol: the field each shows, how, and which cue.
export const COLUMNS = [
  { field: 'bid', label: 'Bid', text: fixed, tick: true },
  { field: 'ask', label: 'Ask', text: fixed, tick: true },
  { field: 'last', label: 'Last', text: fixed, tick: true },
  { field: 'change', label: 'Chg', text: (v) => signed(fixed(v)), signed: true },
  { field: 'changePct', label: 'Chg %', text: (v) => `${signed(fixed(v))}%`, signed: true },
  { field: 'volume', label: 'Volume', text: grouped },
  { field: 'high', label: 'High', text: fixed },
  { field: 'low', label: 'Low', text: fixed },
  { field: 'time', label: 'Time', text: hms },
];

const BY_FIELD = new Map(COLUMNS.map((c) => [c.field, c]));
const SPARK_EVERY = 1000; // ms between redraws of one row's sparkline (its points are 1 s apart)
const SPARK_POINTS = 96; // at most this many points in a sparkline (about one per pixel)
// A flash fades in steps of FADE_STEP ms (level 3, 2, 1, then gone),
// applied in the frame batches: no animation runs per frame, so a screen
// of cells ticking at 20 Hz costs a few attribute writes, not a repaint
// of every lit cell in every frame. A new tick lights the cell fully again.
const FADE_STEP = 200;

export class Grid {
  // table is the <table>; hooks: open(sym), remove(sym), move(sym, index),
  // select(sym), visible() when rows come into or go out of view.
  // options.naive paints every update at once, into every row, visible or
  // not, measuring the sparkline each time: the unbatched renderer the
  // frame-budget test must catch (?paint=naive); never use it for real.
  constructor(table, hooks = {}, options = {}) {
    this.table = table;
    this.naive = !!options.naive;
    this.tbody = table.tBodies[0];
    this.hooks = hooks;
    this.rows = new Map(); // symbol → row
    this.order = []; // symbols, as shown
    this.dirty = new Set(); // rows with pending writes and in view
    this.frame = 0;
    this.selected = '';
    this.onFrame = null; // called at the end of each flush (the detail panel)
    this.stats = { frames: 0, cells: 0 }; // for the tests and the curious
    this.history = new Map(); // symbol → History, kept while listed
    this.lit = new Set(); // rows with a flash fading
    this.fadeTimer = 0;
    this.sparkTimer = 0;
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.resized(), 100);
    });
    this.io = new IntersectionObserver((entries) => this.#seen(entries), { root: null, rootMargin: '200px 0px' });
    this.#wire();
  }

  // setSymbols shows these symbols, in this order: rows are reused, new
  // ones created, dropped ones removed.
  setSymbols(symbols, records = () => undefined) {
    const want = new Set(symbols);
    for (const [sym, row] of this.rows) {
      if (want.has(sym)) continue;
      this.io.unobserve(row.tr);
      row.tr.remove();
      this.rows.delete(sym);
      this.dirty.delete(row);
      this.lit.delete(row);
      this.history.delete(sym);
    }
    const frag = document.createDocumentFragment();
    for (const sym of symbols) {
      let row = this.rows.get(sym);
      if (!row) {
        row = this.#row(sym);
        this.rows.set(sym, row);
        this.io.observe(row.tr);
        const rec = records(sym);
        if (rec) this.update({ ...rec, changed: Object.keys(rec.fields), type: 'snapshot' }, true);
      }
      frag.append(row.tr);
    }
    this.tbody.append(frag); // moves the rows into the new order
    this.order = [...symbols];
    if (!want.has(this.selected)) this.select(symbols[0] ?? '', false);
    this.table.classList.toggle('none', symbols.length === 0);
  }

  // update folds one client change event into a row: {symbol, fields,
  // changed, type, delayed, ts}. quiet: no flash (a record shown again).
  update(ev, quiet = false) {
    const row = this.rows.get(ev.symbol);
    if (!row) return;
    const old = row.fields;
    row.fields = ev.fields;
    const now = ev.ts ? ev.ts / 1000 : Date.now();
    const hist = this.historyOf(ev.symbol);
    hist.price(now, priceOf(ev.fields));
    hist.tick(now, ev.fields, ev.changed);
    for (const f of ev.changed) {
      if (f === 'status') {
        row.pending.add(f);
        continue;
      }
      const col = BY_FIELD.get(f);
      if (!col) continue;
      row.pending.add(f);
      if (col.tick && !quiet && ev.type === 'update' && old[f] !== undefined && ev.fields[f] !== undefined) {
        const c = cmp(ev.fields[f], old[f]);
        if (c) row.flash.set(f, c > 0 ? 'up' : 'down');
      }
    }
    if (row.delayed !== !!ev.delayed) {
      row.delayed = !!ev.delayed;
      row.pending.add('delayed');
    }
    row.sparkDirty = true;
    if (this.naive) {
      row.sparkAt = 0;
      row.cw = 0;
      this.dirty.add(row);
      this.flush();
      return;
    }
    if (row.visible) this.dirty.add(row);
    this.#schedule();
  }

  historyOf(sym) {
    let h = this.history.get(sym);
    if (!h) this.history.set(sym, (h = new History()));
    return h;
  }

  // refused marks a symbol the server would not give.
  refused(sym, code, message) {
    const row = this.rows.get(sym);
    if (!row) return;
    row.tr.classList.add('refused');
    row.th.title = `${code}: ${message ?? ''}`;
    row.badge.textContent = code === 'not_entitled' ? 'no access' : code.replace('_', ' ');
  }

  // offline dims the whole grid while no connection is live (one write).
  offline(on) {
    this.table.classList.toggle('offline', on);
  }

  // select highlights a row (keyboard focus follows when focus is set).
  select(sym, focus = false) {
    const prev = this.rows.get(this.selected);
    if (prev) {
      prev.tr.classList.remove('sel');
      prev.tr.setAttribute('aria-selected', 'false');
    }
    this.selected = this.rows.has(sym) ? sym : '';
    const row = this.rows.get(this.selected);
    if (!row) return;
    row.tr.classList.add('sel');
    row.tr.setAttribute('aria-selected', 'true');
    row.tr.scrollIntoView({ block: 'nearest' });
    if (focus) row.tr.focus({ preventScroll: true });
    this.hooks.select?.(this.selected);
  }

  #schedule() {
    if (!this.frame) this.frame = requestAnimationFrame((t) => this.flush(t));
  }

  // flush writes what changed in the rows in view: one batch per frame.
  // Layout is read first (the sparklines' sizes), while it is still clean
  // from the last frame, and only written after: no forced reflow.
  flush(now = performance.now()) {
    this.frame = 0;
    this.stats.frames++;
    let due = Infinity; // when the next held-back sparkline may be drawn
    const sparks = [];
    for (const row of this.dirty) {
      if (!row.sparkDirty) continue;
      if (now - row.sparkAt >= SPARK_EVERY || this.naive) {
        if (!row.cw) {
          row.cw = row.canvas.clientWidth;
          row.ch = row.canvas.clientHeight;
        }
        sparks.push(row);
      } else {
        due = Math.min(due, row.sparkAt + SPARK_EVERY);
      }
    }
    this.now = now;
    for (const row of this.dirty) {
      for (const f of row.pending) this.#write(row, f);
      row.pending.clear();
      row.flash.clear();
      if (!row.sparkDirty) this.dirty.delete(row);
    }
    for (const row of sparks) {
      this.#spark(row, now);
      this.dirty.delete(row);
    }
    if (this.lit.size) this.#fade(now);
    this.onFrame?.();
    if (due < Infinity && !this.sparkTimer) {
      // A timer, not a frame loop: a quiet feed leaves the page idle.
      this.sparkTimer = setTimeout(() => {
        this.sparkTimer = 0;
        this.#schedule();
      }, due - now);
    }
  }

  // resized forgets the sparklines' cached sizes (the layout changed).
  resized() {
    for (const row of this.rows.values()) row.cw = 0;
    this.redrawSparks();
  }

  #write(row, f) {
    this.stats.cells++;
    const v = row.fields[f];
    if (f === 'status') {
      const st = v ?? 'trading';
      row.tr.dataset.status = st;
      row.badge.textContent = st === 'trading' ? (row.delayed ? 'delayed' : '') : st;
      row.th.title = st === 'trading' ? '' : `${row.sym}: ${st}`;
      return;
    }
    if (f === 'delayed') {
      row.tr.classList.toggle('delayed', row.delayed);
      if ((row.fields.status ?? 'trading') === 'trading') row.badge.textContent = row.delayed ? 'delayed' : '';
      return;
    }
    const col = BY_FIELD.get(f);
    const td = row.cells[f];
    td.textContent = v === undefined ? '—' : col.text(v);
    if (col.signed) {
      const s = v === undefined ? 0 : sign(v);
      td.className = s > 0 ? 'pos' : s < 0 ? 'neg' : '';
    }
    const dir = row.flash.get(f);
    if (dir) {
      td.dataset.flash = `${dir}3`;
      row.lit.set(f, { dir, at: this.now, level: 3 });
      this.lit.add(row);
    }
  }

  // fade steps the lit cells down, and asks for a frame when the next
  // step is due.
  #fade(now) {
    for (const row of this.lit) {
      for (const [f, l] of row.lit) {
        const level = 3 - Math.floor((now - l.at) / FADE_STEP);
        if (level === l.level) continue;
        l.level = level;
        if (level > 0) {
          row.cells[f].dataset.flash = `${l.dir}${level}`;
        } else {
          delete row.cells[f].dataset.flash;
          row.lit.delete(f);
        }
      }
      if (!row.lit.size) this.lit.delete(row);
    }
    if (this.lit.size && !this.fadeTimer) {
      this.fadeTimer = setTimeout(() => {
        this.fadeTimer = 0;
        this.#schedule();
      }, FADE_STEP / 2);
    }
  }

  #spark(row, now) {
    row.sparkAt = now;
    row.sparkDirty = false;
    const h = this.history.get(row.sym);
    if (!h) return;
    const pc = row.fields.prevClose;
    const { times, prices } = h.series(SPARK_POINTS);
    sparkline(row.canvas, row.cw, row.ch, times, prices, pc === undefined ? NaN : Number(pc));
  }

  // redrawSparks repaints every visible sparkline (after a theme change).
  redrawSparks() {
    for (const row of this.rows.values()) {
      row.sparkDirty = true;
      row.sparkAt = 0;
      if (row.visible) this.dirty.add(row);
    }
    this.#schedule();
  }

  #seen(entries) {
    for (const e of entries) {
      const row = e.target.row;
      if (!row) continue;
      row.visible = e.isIntersecting;
      row.seen = true;
      if (row.visible && (row.pending.size || row.sparkDirty)) {
        row.flash.clear(); // changes that happened out of view do not flash
        this.dirty.add(row);
      }
    }
    if (this.dirty.size) this.#schedule();
    this.hooks.visible?.();
  }

  // isVisible reports whether sym's row is in (or near) view; a row not
  // laid out yet counts as visible (so that a new row starts at full rate
  // rather than being raised, with a fresh snapshot, a moment later).
  isVisible(sym) {
    const row = this.rows.get(sym);
    return !row || !row.seen || row.visible;
  }

  #row(sym) {
    const tr = document.createElement('tr');
    tr.tabIndex = -1;
    tr.draggable = true;
    tr.dataset.symbol = sym;
    tr.setAttribute('aria-selected', 'false');
    const th = document.createElement('th');
    th.scope = 'row';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = sym;
    const badge = document.createElement('em');
    badge.className = 'badge';
    th.append(name, badge);
    tr.append(th);
    const cells = {};
    for (const col of COLUMNS) {
      const td = document.createElement('td');
      td.dataset.field = col.field;
      td.textContent = '—';
      cells[col.field] = td;
      tr.append(td);
    }
    const sp = document.createElement('td');
    sp.className = 'spark';
    const canvas = document.createElement('canvas');
    canvas.setAttribute('aria-hidden', 'true');
    sp.append(canvas);
    const rm = document.createElement('td');
    rm.className = 'rm';
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.tabIndex = -1;
    btn.textContent = '×';
    btn.title = `Remove ${sym}`;
    btn.setAttribute('aria-label', `Remove ${sym}`);
    rm.append(btn);
    tr.append(sp, rm);
    const row = {
      sym, tr, th, badge, cells, canvas,
      fields: {}, pending: new Set(), flash: new Map(), lit: new Map(),
      visible: false, seen: false, delayed: false, sparkDirty: false, sparkAt: 0, cw: 0, ch: 0,
    };
    tr.row = row;
    return row;
  }

  // Mouse and keyboard: clicks select, double-click or Enter opens the
  // detail, arrows move, Alt+arrows reorder, Delete removes, drag reorders.
  #wire() {
    const symOf = (el) => el?.closest('tr')?.dataset.symbol;
    this.tbody.addEventListener('click', (e) => {
      const sym = symOf(e.target);
      if (!sym) return;
      if (e.target.closest('.rm button')) {
        this.hooks.remove?.(sym);
        return;
      }
      this.select(sym, true);
    });
    this.tbody.addEventListener('dblclick', (e) => {
      const sym = symOf(e.target);
      if (sym) this.hooks.open?.(sym);
    });
    this.table.addEventListener('keydown', (e) => this.#key(e));
    let dragged = '';
    this.tbody.addEventListener('dragstart', (e) => {
      dragged = symOf(e.target) ?? '';
      e.dataTransfer.effectAllowed = 'move';
      e.dataTransfer.setData('text/plain', dragged);
    });
    this.tbody.addEventListener('dragover', (e) => {
      if (dragged) e.preventDefault();
    });
    this.tbody.addEventListener('drop', (e) => {
      const to = symOf(e.target);
      if (dragged && to && to !== dragged) {
        e.preventDefault();
        this.hooks.move?.(dragged, this.order.indexOf(to));
      }
      dragged = '';
    });
  }

  #key(e) {
    if (e.target.closest('input, button, select')) return;
    const i = this.order.indexOf(this.selected);
    const go = (j) => {
      e.preventDefault();
      const sym = this.order[Math.max(0, Math.min(this.order.length - 1, j))];
      if (sym) this.select(sym, true);
    };
    switch (e.key) {
      case 'ArrowDown':
      case 'j':
        if (e.altKey && this.selected) {
          e.preventDefault();
          this.hooks.move?.(this.selected, i + 1);
          return;
        }
        return go(i < 0 ? 0 : i + 1);
      case 'ArrowUp':
      case 'k':
        if (e.altKey && this.selected) {
          e.preventDefault();
          this.hooks.move?.(this.selected, i - 1);
          return;
        }
        return go(i < 0 ? 0 : i - 1);
      case 'Home':
        return go(0);
      case 'End':
        return go(this.order.length - 1);
      case 'PageDown':
        return go(i + 15);
      case 'PageUp':
        return go(i - 15);
      case 'Enter':
        if (this.selected) {
          e.preventDefault();
          this.hooks.open?.(this.selected);
        }
        return;
      case 'Delete':
      case 'Backspace':
        if (this.selected) {
          e.preventDefault();
          const next = this.order[i + 1] ?? this.order[i - 1] ?? '';
          this.hooks.remove?.(this.selected);
          this.select(next, true);
        }
        return;
      default:
    }
  }
}
