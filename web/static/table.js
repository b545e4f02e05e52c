// QuoteTable keeps a local view of each symbol's record, merged from
// snapshot and update messages, and repaints only the cells whose value
// changed, once per animation frame.
import { clock, cmp, fixed, grouped, sign, signed } from './format.js';

// The columns after the symbol: the field each shows and how.
const COLUMNS = [
  { field: 'bid', text: (v) => fixed(v), tick: true },
  { field: 'ask', text: (v) => fixed(v), tick: true },
  { field: 'last', text: (v) => fixed(v), tick: true },
  { field: 'change', text: (v) => signed(fixed(v)), signed: true },
  { field: 'changePct', text: (v) => `${signed(fixed(v))}%`, signed: true },
  { field: 'volume', text: grouped },
  { field: 'time', text: clock },
];

const BY_FIELD = new Map(COLUMNS.map((c) => [c.field, c]));

// FIELDS are the fields the table subscribes to.
export const FIELDS = [...COLUMNS.map((c) => c.field), 'status'];

const FLASH = {
  up: [{ backgroundColor: 'rgba(46, 160, 67, 0.55)' }, { backgroundColor: 'rgba(46, 160, 67, 0)' }],
  down: [{ backgroundColor: 'rgba(218, 54, 51, 0.55)' }, { backgroundColor: 'rgba(218, 54, 51, 0)' }],
};

export class QuoteTable {
  // tbody receives one row per symbol, in the order given.
  constructor(tbody, symbols) {
    this.rows = new Map(); // symbol → {tr, th, cells: {field: td}, fields, seq}
    this.dirty = new Map(); // symbol → Map(field → 'up'|'down'|'')
    this.frame = 0;
    tbody.replaceChildren();
    for (const sym of symbols) {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = sym;
      tr.append(th);
      const cells = {};
      for (const col of COLUMNS) {
        const td = document.createElement('td');
        td.textContent = '—';
        td.className = 'empty';
        cells[col.field] = td;
        tr.append(td);
      }
      tbody.append(tr);
      this.rows.set(sym, { tr, th, cells, fields: {}, seq: 0 });
    }
  }

  // apply folds one server message into the view.
  apply(msg) {
    const row = this.rows.get(msg.symbol);
    if (!row) return;
    if (msg.type === 'error') {
      row.tr.classList.add('refused');
      row.tr.title = `${msg.code}: ${msg.message}`;
      return;
    }
    if (msg.type !== 'snapshot' && msg.type !== 'update') return;
    // A snapshot starts the symbol afresh (a new connection, or a server
    // restarted with new seqs); an update older than it is stale.
    if (msg.type === 'update' && msg.seq < row.seq) return;
    row.seq = msg.seq;
    const old = row.fields;
    if (msg.type === 'snapshot') {
      row.fields = { ...msg.fields }; // a snapshot holds every field
    } else {
      row.fields = { ...old, ...msg.fields };
    }
    let marks = this.dirty.get(msg.symbol);
    if (!marks) this.dirty.set(msg.symbol, (marks = new Map()));
    for (const f of FIELDS) {
      if (row.fields[f] === old[f]) continue;
      let dir = '';
      if (BY_FIELD.get(f)?.tick && old[f] !== undefined && row.fields[f] !== undefined) {
        const c = cmp(row.fields[f], old[f]);
        dir = c > 0 ? 'up' : c < 0 ? 'down' : '';
      }
      marks.set(f, dir);
    }
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  // offline dims every row while no connection is live.
  offline(on) {
    for (const row of this.rows.values()) row.tr.classList.toggle('offline', on);
  }

  flush() {
    this.frame = 0;
    for (const [sym, marks] of this.dirty) {
      const row = this.rows.get(sym);
      for (const [field, dir] of marks) {
        if (field === 'status') {
          const st = row.fields.status ?? 'trading';
          row.th.dataset.status = st;
          row.th.title = st === 'trading' ? '' : `trading ${st}`;
          continue;
        }
        const col = BY_FIELD.get(field);
        const td = row.cells[field];
        const v = row.fields[field];
        td.textContent = v === undefined ? '—' : col.text(v);
        td.className = v === undefined ? 'empty' : '';
        if (col.signed && v !== undefined) {
          const s = sign(v);
          if (s) td.classList.add(s > 0 ? 'pos' : 'neg');
        }
        if (col.tick && dir) {
          td.animate(FLASH[dir], { duration: 800, easing: 'ease-out' });
        }
      }
    }
    this.dirty.clear();
  }
}
