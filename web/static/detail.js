// The symbol detail panel: every field of the record, the recent ticks and
// a larger price chart. Repainted at most a few times a second, and only
// while open.
import { digits, fixed, grouped, hms, sign, signed } from './format.js';
import { chart } from './sparkline.js';

// FIELDS in the order shown, with labels and formats.
const FIELDS = [
  ['bid', 'Bid', fixed], ['bidSize', 'Bid size', grouped],
  ['ask', 'Ask', fixed], ['askSize', 'Ask size', grouped],
  ['last', 'Last', fixed], ['lastSize', 'Last size', grouped],
  ['change', 'Change', (v) => signed(fixed(v))], ['changePct', 'Change %', (v) => `${signed(fixed(v))}%`],
  ['open', 'Open', fixed], ['prevClose', 'Prev close', fixed],
  ['high', 'High', fixed], ['low', 'Low', fixed],
  ['volume', 'Volume', grouped], ['status', 'Status', (v) => v],
  ['time', 'Time', hms],
];
const TICK_COLS = ['bid', 'ask', 'last', 'lastSize'];
const EVERY = 250; // ms between repaints

export class Detail {
  // el is the panel; source(sym) returns {record, history}.
  constructor(el, source) {
    this.el = el;
    this.source = source;
    this.sym = '';
    this.drawnAt = 0;
    this.drawnVersion = -1;
    this.timer = 0;
    this.title = el.querySelector('.d-title');
    this.sub = el.querySelector('.d-sub');
    this.canvas = el.querySelector('canvas');
    this.list = el.querySelector('dl');
    this.ticks = el.querySelector('.d-ticks tbody');
    this.cells = new Map();
    for (const [f, label] of FIELDS) {
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.dataset.field = f;
      this.list.append(dt, dd);
      this.cells.set(f, dd);
    }
    el.querySelector('.d-close').addEventListener('click', () => this.close());
  }

  get isOpen() {
    return !!this.sym;
  }

  open(sym) {
    this.sym = sym;
    this.el.hidden = false;
    document.body.classList.add('detail-open');
    this.title.textContent = sym;
    this.drawnVersion = -1;
    this.drawnAt = 0;
    this.refresh(true);
    // The panel takes focus (not its close button: the Enter that opened
    // it must not press the button too).
    this.el.focus({ preventScroll: true });
    this.onOpen?.(sym);
  }

  close() {
    if (!this.sym) return;
    this.sym = '';
    this.el.hidden = true;
    document.body.classList.remove('detail-open');
    clearTimeout(this.timer);
    this.timer = 0;
    this.onClose?.();
  }

  // refresh repaints when something changed, at most every EVERY ms; call
  // it from the grid's frame.
  refresh(force = false) {
    if (!this.sym) return;
    const { record, history } = this.source(this.sym);
    const version = history?.version ?? 0;
    if (!force && version === this.drawnVersion) return;
    const now = performance.now();
    if (!force && now - this.drawnAt < EVERY) {
      if (!this.timer) this.timer = setTimeout(() => ((this.timer = 0), this.refresh()), EVERY);
      return;
    }
    this.drawnAt = now;
    this.drawnVersion = version;
    const f = record?.fields ?? {};
    for (const [k, , fmt] of FIELDS) {
      const dd = this.cells.get(k);
      const v = f[k];
      dd.textContent = v === undefined ? '—' : fmt(v);
      if (k === 'change' || k === 'changePct') {
        const s = v === undefined ? 0 : sign(v);
        dd.className = s > 0 ? 'pos' : s < 0 ? 'neg' : '';
      }
    }
    const parts = [];
    if (record) parts.push(`seq ${record.seq}`);
    if (record?.delayed) parts.push('delayed data');
    if (f.status && f.status !== 'trading') parts.push(f.status);
    if (!record) parts.push('waiting for data');
    this.sub.textContent = parts.join(' · ');
    this.el.dataset.status = f.status ?? 'trading';
    this.el.classList.toggle('delayed', !!record?.delayed);
    if (history) {
      const d = f.last ? digits(f.last) : f.bid ? digits(f.bid) : 2;
      const { times, prices } = history.series(600);
      chart(this.canvas, times, prices, f.prevClose === undefined ? NaN : Number(f.prevClose), Math.max(2, d));
      const rows = [];
      for (const t of history.recent(30)) {
        const tr = document.createElement('tr');
        const td0 = document.createElement('td');
        td0.textContent = new Date(t.t).toTimeString().slice(0, 8);
        tr.append(td0);
        for (const k of TICK_COLS) {
          const td = document.createElement('td');
          const v = t.fields[k];
          td.textContent = v === undefined ? '' : k === 'lastSize' ? grouped(v) : fixed(v);
          tr.append(td);
        }
        rows.push(tr);
      }
      this.ticks.replaceChildren(...rows);
    }
  }
}
